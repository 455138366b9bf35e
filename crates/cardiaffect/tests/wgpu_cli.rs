//! `--backend wgpu` end to end, in a binary built with `--features wgpu` (in CI on Mesa's
//! software Vulkan driver, lavapipe): pre-training and fine-tuning steps whose loss falls, a
//! pre-training run killed and resumed on wgpu, `predict` equal to flex within 1e-4; and a
//! machine without an adapter gets an error naming the backend and the flex fallback.
#![cfg(feature = "wgpu")]

mod common;
use common::*;

use std::path::Path;
use std::time::Duration;

fn pretrain_args(corpus: &Path, cfg: &Path, run: &Path, steps: &str) -> Vec<String> {
    pretrain_cmdline(
        corpus,
        cfg,
        run,
        [steps, "8", "5", "20"],
        &["--lr", "2e-3", "--backend", "wgpu"],
    )
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn pretraining_on_wgpu_lowers_the_loss_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, cfg) = bundled_corpus(tmp.path());

    let a = tmp.path().join("a");
    let out = ok(bin()
        .args(pretrain_args(&corpus, &cfg, &a, "40"))
        .output()
        .unwrap());
    assert!(out.contains("pre-trained 40 steps"), "{out}");
    let losses: Vec<f64> = std::fs::read_to_string(a.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 40);
    let (first, last) = (mean(&losses[..5]), mean(&losses[35..]));
    eprintln!("wgpu pre-training loss: first 5 steps {first:.4}, last 5 {last:.4}");
    assert!(
        losses.iter().all(|l| l.is_finite()) && last < 0.9 * first,
        "the loss did not fall on wgpu: {losses:?}"
    );

    // Killed once a checkpoint exists, resumed on wgpu: the weights an uninterrupted run ends
    // with (to 1e-5 of their scale: a GPU's reductions need not be bit-reproducible).
    let b = tmp.path().join("b");
    let mut cmd = bin();
    cmd.args(pretrain_args(&corpus, &cfg, &b, "40"));
    let step = kill_at_first_checkpoint(cmd, &b, 40, Duration::from_secs(300));
    let out = ok(bin()
        .args(["pretrain", "--backend", "wgpu", "--resume"])
        .arg(&b)
        .output()
        .unwrap());
    assert!(out.contains("pre-trained 40 steps"), "{out}");
    let (wa, wb) = (
        f32_tensors(&a.join("model.safetensors")),
        f32_tensors(&b.join("model.safetensors")),
    );
    assert_eq!(wa.len(), wb.len());
    for ((name, x), (_, y)) in wa.iter().zip(&wb) {
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let d = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            d <= 1e-5 * scale,
            "{name}: resumed from step {step}, differs by {d:e} (scale {scale:e})"
        );
    }
}

#[test]
fn finetuning_on_wgpu_lowers_the_loss_and_predicts_as_flex_does() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = synth_corpus(tmp.path(), "6", "6");
    let cfg = tmp.path().join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();
    let out = tmp.path().join("run");
    let o = bin()
        .args(["finetune", "--backend", "wgpu", "--corpus"])
        .arg(&corpus)
        .args(["--task", "arousal", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--folds", "3", "--steps", "30", "--batch", "16"])
        .args(["--eval-every", "10", "--patience", "100", "--seed", "5"])
        .args([
            "--pretrained",
            "none",
            "--methods",
            "scratch",
            "--lr",
            "3e-3",
        ])
        // Each step's loss (debug), without the engine's own debug lines.
        .env("RUST_LOG", "warn,cardiaffect=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    // The final model's steps (trained on every labeled window), from the debug log.
    let losses: Vec<f64> = stderr
        .lines()
        .filter(|l| l.contains("fine-tuning step") && l.contains("final model"))
        .map(|l| {
            let v = l.split("loss=").nth(1).expect("a loss field");
            v.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 30, "{stderr}");
    let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
    eprintln!("wgpu fine-tuning loss: first 5 steps {first:.4}, last 5 {last:.4}");
    assert!(
        last < first,
        "the fine-tuning loss did not fall on wgpu: {losses:?}"
    );

    // The model predicts a real recording on wgpu as it does on flex.
    let rec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mitdb208/208.hea");
    let probs = |backend: &str| -> Vec<f64> {
        let js = tmp.path().join(format!("timeline-{backend}.json"));
        ok(run(&[
            "predict",
            "--backend",
            backend,
            "--model",
            s(&out),
            s(&rec),
            "--out",
            s(&js),
        ]));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
        let mut p = Vec::new();
        for r in v["recordings"][0]["rows"].as_array().unwrap() {
            for m in r["probs"].as_array().unwrap() {
                p.extend(m.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()));
            }
        }
        p
    };
    let (f, w) = (probs("flex"), probs("wgpu"));
    assert!(
        f.len() > 200 && f.len() == w.len(),
        "{} vs {}",
        f.len(),
        w.len()
    );
    let d = f
        .iter()
        .zip(&w)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "predict, wgpu against flex: max |difference| {d:e} over {} probabilities",
        f.len()
    );
    assert!(d <= 1e-4, "wgpu differs from flex by {d:e}");
}

#[test]
fn no_adapter_is_an_error_naming_the_backend_and_the_fallback() {
    // A discrete GPU asked for where there is none (lavapipe is a CPU adapter): wgpu's own
    // "no adapter" answer, as on a machine without a driver.
    let o = bin()
        .args(["bench", "--backend", "wgpu", "--steps", "1", "--skip-train"])
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(0)")
        .output()
        .unwrap();
    let e = err(o);
    assert!(
        e.contains("--backend wgpu")
            && e.contains("no usable graphics adapter")
            && e.contains("CUBECL_WGPU_DEFAULT_DEVICE=DiscreteGpu(0)")
            && e.contains("--backend flex"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}
