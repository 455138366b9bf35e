//! Helpers shared by the CLI tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A synthetic labeled corpus (`subjects` x `trials` of 16 s, seed 3) as 2 s windows; the raw
/// dataset is in `tmp/raw`.
pub fn synth_corpus(tmp: &Path, subjects: &str, trials: &str) -> PathBuf {
    let raw = tmp.join("raw");
    let corpus = tmp.join("corpus");
    ok(run(&[
        "synth",
        "--affect",
        "--subjects",
        subjects,
        "--trials",
        trials,
        "--trial-seconds",
        "16",
        "--seed",
        "3",
        "--out",
        s(&raw),
    ]));
    ok(run(&[
        "prepare",
        "--source",
        s(&raw),
        "--window",
        "2s",
        "--stride",
        "2s",
        "--out",
        s(&corpus),
    ]));
    corpus
}
