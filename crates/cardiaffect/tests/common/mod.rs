//! Helpers shared by the CLI tests (each test file uses some of them).
#![allow(dead_code)]

// Each test file uses some of them.
#[allow(unused_imports)]
pub use cardiaffect_testkit::{copy_dir, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The tiny model the CLI tests train (seconds, not minutes).
pub const TINY: &str = r#"{"window_len": 256, "conv_channels": [8, 16, 16], "d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32}"#;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cardiaffect"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Stdout of a command that must succeed (else both streams in the failure).
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a command that must fail.
pub fn err(o: Output) -> String {
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The JSON file at `path`, parsed.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A synthetic labeled corpus (`subjects` x `trials` of 16 s, seed 3) as 2 s windows; the raw
/// dataset is in `tmp/raw`.
pub fn synth_corpus(tmp: &Path, subjects: &str, trials: &str) -> PathBuf {
    let corpus = tmp.join("corpus");
    synth_corpus_at(&tmp.join("raw"), &corpus, subjects, trials, "16");
    corpus
}

/// A synthetic labeled dataset in `raw` (`subjects` x `trials` of `trial_seconds`, seed 3),
/// prepared as 2 s windows into `corpus`.
pub fn synth_corpus_at(
    raw: &Path,
    corpus: &Path,
    subjects: &str,
    trials: &str,
    trial_seconds: &str,
) {
    ok(run(&[
        "synth",
        "--affect",
        "--subjects",
        subjects,
        "--trials",
        trials,
        "--trial-seconds",
        trial_seconds,
        "--seed",
        "3",
        "--out",
        s(raw),
    ]));
    ok(run(&prepare_2s(raw, corpus)));
}

/// The `prepare` command line of `raw` into `corpus` as 2 s windows (stride 2 s).
pub fn prepare_2s<'a>(raw: &'a Path, corpus: &'a Path) -> [&'a str; 9] {
    [
        "prepare",
        "--source",
        s(raw),
        "--window",
        "2s",
        "--stride",
        "2s",
        "--out",
        s(corpus),
    ]
}

/// The bundled real ECG as a 2-second-window corpus in `tmp/corpus`, and the tiny model config
/// in `tmp/tiny.json`.
pub fn bundled_corpus(tmp: &Path) -> (PathBuf, PathBuf) {
    let corpus = tmp.join("corpus");
    ok(bin()
        .args(["prepare", "--window", "2s", "--stride", "2s", "--out"])
        .arg(&corpus)
        .env("CARDIAFFECT_CACHE", tmp.join("cache"))
        .output()
        .unwrap());
    let cfg = tmp.join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();
    (corpus, cfg)
}

/// Runs `cmd` (a pretrain run into `run` of `steps` steps), kills it (SIGKILL) once a
/// checkpoint exists (waiting at most `wait`) and returns the step that checkpoint holds,
/// after checking that the run was interrupted before its end.
pub fn kill_at_first_checkpoint(mut cmd: Command, run: &Path, steps: u64, wait: Duration) -> u64 {
    let mut child = cmd.spawn().unwrap();
    let state = run.join("checkpoint/state.json");
    let t0 = Instant::now();
    while !state.exists() && t0.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let step = at["step"].as_u64().unwrap();
    assert!(
        step < steps && !run.join("model.safetensors").exists(),
        "the run was not interrupted (checkpoint at step {step})"
    );
    step
}

/// A `pretrain` command line: `corpus` with the model `cfg` into `out`; `steps`, `batch`, a
/// checkpoint every `checkpoint_every` and an evaluation every `eval_every` steps, seed 9;
/// then `more` flags.
pub fn pretrain_cmdline(
    corpus: &Path,
    cfg: &Path,
    out: &Path,
    [steps, batch, checkpoint_every, eval_every]: [&str; 4],
    more: &[&str],
) -> Vec<String> {
    [
        "pretrain",
        "--corpus",
        s(corpus),
        "--config",
        s(cfg),
        "--out",
        s(out),
        "--steps",
        steps,
        "--batch",
        batch,
        "--checkpoint-every",
        checkpoint_every,
        "--eval-every",
        eval_every,
        "--seed",
        "9",
    ]
    .iter()
    .chain(more)
    .map(|s| s.to_string())
    .collect()
}

/// Every tensor of a safetensors file as f32 values, by name.
pub fn f32_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| {
            let f = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (k, f)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
