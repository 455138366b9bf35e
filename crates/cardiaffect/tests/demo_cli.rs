//! `cardiaffect demo --quick` end to end: every promised file exists, the metrics are sane
//! numbers (not fixed values: they are read, range-checked, and must differ between methods),
//! and a second run in another folder gives the same numbers (every random choice is seeded).

mod common;
use common::{bin, ok};

use std::path::Path;
use std::process::Command;

/// `cardiaffect demo --quick` with `flags` into `out`, the bundled data cached in `tmp`.
fn quick_demo(tmp: &Path, out: &Path, flags: &[&str]) -> Command {
    let mut c = bin();
    c.args(["demo", "--quick"])
        .args(flags)
        .args(["--out", out.to_str().unwrap()])
        .env("CARDIAFFECT_CACHE", tmp.join("cache"));
    c
}

#[test]
fn demo_quick_writes_what_it_promises() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let stdout = ok(quick_demo(tmp.path(), &out, &[]).output().unwrap());
    assert!(
        stdout.contains("| pretrained | window |")
            && stdout.contains("| hrv | window |")
            && stdout.contains("| fusion | window |")
            && stdout.contains("mental stress vs rest (PhysioNet eegmat, 12 people)")
            && !stdout.contains("SYNTHETIC")
            && !stdout.contains("arousal recognition")
            && stdout.contains("not valence or arousal ratings"),
        "{stdout}"
    );
    for f in [
        "report.html",
        "pretrain/summary.json",
        "pretrain/reconstructions.png",
        "pretrain/loss.svg",
        "finetune/results.json",
        "finetune/results.md",
        "finetune/confusion.svg",
        "finetune/model/labels.json",
        "timeline.csv",
        "timeline.svg",
        "curve/curve.json",
        "curve/curve.md",
        "curve/curve.svg",
        "finetune/model/operating_point.json",
    ] {
        assert!(out.join(f).exists(), "demo did not write {f}");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("finetune/results.json")).unwrap()).unwrap();
    // Real labels: the eegmat runs' trial_type, every table headed with what they are.
    assert!(r["label_rule"]
        .as_str()
        .unwrap()
        .contains("arithmetic / rest"));
    assert_eq!(
        r["datasets"][0],
        "mental stress vs rest (PhysioNet eegmat, 12 people)"
    );
    assert!(std::fs::read_to_string(out.join("finetune/results.md"))
        .unwrap()
        .contains("mental stress vs rest (PhysioNet eegmat, 12 people)"));
    assert_eq!(r["protocol"], "subject-independent");
    assert_eq!(r["pretrained"], "bundled");
    let mut accs = Vec::new();
    for m in ["pretrained", "scratch", "hrv"] {
        let a = r["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["method"] == m && a["level"] == "window")
            .unwrap_or_else(|| panic!("no {m} row"));
        let acc = a["accuracy"][0].as_f64().unwrap();
        let f1 = a["macro_f1"][0].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&f1),
            "{m}: accuracy {acc}, macro-F1 {f1}"
        );
        accs.push(acc);
    }
    assert!(
        accs.iter().any(|&a| a != accs[0]),
        "three methods with identical accuracy: {accs:?}"
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pretrain/summary.json")).unwrap()).unwrap();
    let (v, b) = (
        s["val_loss"].as_f64().unwrap(),
        s["baseline_mean_prediction"].as_f64().unwrap(),
    );
    assert!(
        v.is_finite() && v > 0.0 && b.is_finite() && b > 0.0,
        "pretrain {v} vs {b}"
    );
    // Reproducible: the same command in a fresh folder gives the same figures.
    let out2 = tmp.path().join("demo2");
    let o = quick_demo(tmp.path(), &out2, &[]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("finetune/results.json")).unwrap())
            .unwrap();
    assert_eq!(
        r["summary"], r2["summary"],
        "a second demo run gave other metrics"
    );
    let s2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("pretrain/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["val_loss"], s2["val_loss"]);
    assert_eq!(
        std::fs::read_to_string(out.join("timeline.csv")).unwrap(),
        std::fs::read_to_string(out2.join("timeline.csv"))
            .unwrap()
            .replace("demo2", "demo")
    );
    // One person's two runs, rest (run-1) then arithmetic (run-2), in one timeline.
    let tl = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let rows: Vec<&str> = tl.lines().skip(1).collect();
    assert!(rows.len() > 20, "{} timeline rows", rows.len());
    assert!(rows.iter().any(|r| r.contains("_run-1_")), "{tl}");
    assert!(rows.iter().any(|r| r.contains("_run-2_")), "{tl}");
    assert!(rows.iter().all(|r| r.contains(",sub-03,")), "{tl}");
    for r in rows {
        let p: f64 = r.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{r}");
    }
}

/// `--synthetic` keeps the pipeline check on the synthetic affect set, and says so.
#[test]
fn demo_synthetic_says_it_is_synthetic() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let stdout = ok(quick_demo(tmp.path(), &out, &["--synthetic"])
        .output()
        .unwrap());
    assert!(stdout.contains("SYNTHETIC"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("finetune/results.json")).unwrap()).unwrap();
    assert!(r["label_rule"].as_str().unwrap().contains("arousal > 5"));
}
