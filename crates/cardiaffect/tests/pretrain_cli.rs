//! `cardiaffect pretrain`: a run killed with SIGKILL and resumed ends with the same weights as
//! an uninterrupted run; bad inputs are refused with their reason.

mod common;
use common::*;

use std::path::Path;
use std::time::Duration;

fn args(corpus: &Path, cfg: &Path, run: &Path) -> Vec<String> {
    pretrain_cmdline(corpus, cfg, run, ["60", "8", "4", "20"], &["--lr", "2e-3"])
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| (k, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn killed_and_resumed_run_ends_with_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, cfg) = bundled_corpus(tmp.path());
    let a = tmp.path().join("a");
    let out = ok(bin().args(args(&corpus, &cfg, &a)).output().unwrap());
    assert!(out.contains("pre-trained 60 steps"), "{out}");
    // The same run, killed (SIGKILL) once a checkpoint exists and before the end.
    let b = tmp.path().join("b");
    let mut cmd = bin();
    cmd.args(args(&corpus, &cfg, &b));
    let step = kill_at_first_checkpoint(cmd, &b, 60, Duration::from_secs(120));
    let out = ok(bin()
        .arg("pretrain")
        .arg("--resume")
        .arg(&b)
        .output()
        .unwrap());
    assert!(out.contains("pre-trained 60 steps"), "{out}");
    let (ta, tb) = (
        tensors(&a.join("model.safetensors")),
        tensors(&b.join("model.safetensors")),
    );
    let differ: Vec<&String> = ta
        .iter()
        .zip(&tb)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| &x.0)
        .collect();
    assert!(
        ta.len() == tb.len() && differ.is_empty(),
        "resumed from step {step}: {} of {} tensors differ: {differ:?}",
        differ.len(),
        ta.len()
    );
    // The metrics log holds each step once.
    let steps: Vec<u64> = std::fs::read_to_string(b.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=60).collect::<Vec<_>>());
    // `--evaluate` measures a run's own weights on its own validation set: summary.json's
    // per-corpus figures exactly; another run's weights (killed and resumed: the same weights)
    // the same; and it writes nothing.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("summary.json")).unwrap()).unwrap();
    let before: Vec<_> = std::fs::read_dir(&a).unwrap().collect();
    let e = ok(bin()
        .args(["pretrain", "--resume", a.to_str().unwrap(), "--evaluate"])
        .arg(&b)
        .output()
        .unwrap());
    let c = &summary["val_by_corpus"][0];
    let want = format!(
        "| {} | {:.3} | {:.3} |",
        c["val_windows"],
        c["val_loss"].as_f64().unwrap(),
        c["baseline_mean_prediction"].as_f64().unwrap()
    );
    assert!(e.contains(&want), "{want} not in\n{e}");
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), before.len());
    // Fresh weights (another seed's first checkpoint would do; here: none) are refused clearly.
    let o = bin()
        .args(["pretrain", "--resume", a.to_str().unwrap(), "--evaluate"])
        .arg(tmp.path().join("nothing-here"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--evaluate"));
    for f in [
        "summary.json",
        "loss.svg",
        "reconstructions.svg",
        "config.json",
        "pretrain.json",
    ] {
        assert!(b.join(f).exists(), "{f}");
    }
}

#[test]
fn bad_inputs_are_refused_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, cfg) = bundled_corpus(tmp.path());
    let fail = |args: Vec<String>| -> String {
        let o = bin().args(args).output().unwrap();
        assert!(
            !o.status.success(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // The default model wants 1280-sample windows (10 s at 128 Hz); this corpus has 256.
    let e = fail(vec![
        "pretrain".into(),
        "--corpus".into(),
        corpus.display().to_string(),
        "--out".into(),
        tmp.path().join("x").display().to_string(),
        "--steps".into(),
        "2".into(),
    ]);
    assert!(
        e.contains("window length") && e.contains("1280") && e.contains("256"),
        "{e}"
    );
    // An empty folder is not a corpus.
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let e = fail(vec![
        "pretrain".into(),
        "--corpus".into(),
        tmp.path().join("empty").display().to_string(),
        "--out".into(),
        tmp.path().join("y").display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
    ]);
    assert!(e.contains("manifest.json"), "{e}");
    // Masking outside its range: the library names the field, the message the flag.
    for (flag, value, expected) in [
        (
            "--mask-ratio",
            "1.5",
            "--mask-ratio 1.5: expected a fraction in (0, 1)",
        ),
        (
            "--mask-span",
            "0",
            "--mask-span 0: expected at least 1 token",
        ),
    ] {
        let mut a = args(&corpus, &cfg, &tmp.path().join("m"));
        a.extend([flag.to_string(), value.to_string()]);
        let e = fail(a);
        assert!(e.contains(expected), "{e}");
        assert!(!tmp.path().join("m").join("pretrain.json").exists());
    }
    // A diverging run stops with the reason and keeps its last good checkpoint.
    let run = tmp.path().join("nan");
    let mut a = args(&corpus, &cfg, &run);
    let lr = a.iter().position(|s| s == "--lr").unwrap();
    a[lr + 1] = "1e30".into();
    let e = fail(a);
    assert!(
        e.contains("loss became") && e.contains("last good checkpoint"),
        "{e}"
    );
}

#[test]
fn closed_choices_are_refused_with_the_ones_there_are() {
    for (args, choices) in [
        (
            vec!["pretrain", "--out", "x", "--backend", "gpu"],
            "[possible values: flex, cuda, wgpu]",
        ),
        (
            vec!["pretrain", "--out", "x", "--mask-strategy", "blocks"],
            "[possible values: spans, tokens]",
        ),
        (
            vec!["prepare", "--out", "x", "--dtype", "f64"],
            "[possible values: f32, f16]",
        ),
        (
            vec!["export", "--model", "m", "--out", "x", "--layout", "onnx"],
            "[possible values: pytorch, burn]",
        ),
        (
            vec!["stream", "--model", "m", "--fs", "128", "--format", "wav"],
            "[possible values: f32le, csv]",
        ),
    ] {
        let e = err(run(&args));
        assert!(e.contains(choices), "{args:?}: {e}");
    }
}
