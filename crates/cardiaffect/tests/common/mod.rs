//! Helpers shared by the CLI tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::Path;
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
