//! Paper cuts a new user met (issue 43), each shown where the user meets it: on the command
//! line, on fixtures.
mod common;
use common::*;

use std::path::{Path, PathBuf};

/// Stdout and stderr of a command that must succeed, together.
fn both(o: std::process::Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    format!("{}{e}", ok(o))
}

/// The BIDS fixture with other `trial_type` values per subject (and no root sidecar declaring
/// its Levels): sub-01 and sub-03 neutral/disgust, sub-02 calm/tense.
fn bids_with_classes_per_subject(tmp: &Path) -> PathBuf {
    let d = tmp.join("bids");
    copy_dir(&root().join("fixtures/bids"), &d);
    std::fs::remove_file(d.join("task-film_events.json")).unwrap();
    for (sub, kind, names) in [
        ("sub-01", "eeg", ["neutral", "disgust"]),
        ("sub-02", "eeg", ["calm", "tense"]),
        ("sub-03", "beh", ["neutral", "disgust"]),
    ] {
        let p = d.join(format!("{sub}/{kind}/{sub}_task-film_run-1_events.tsv"));
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("fear", names[0])
            .replace("joy", names[1])
            .replace("neutral\t", &format!("{}\t", names[0]));
        std::fs::write(&p, text).unwrap();
    }
    d
}

#[test]
fn inspect_lists_the_classes_of_every_events_file_as_prepare_does() {
    let tmp = tempfile::tempdir().unwrap();
    let d = bids_with_classes_per_subject(tmp.path());
    let classes = "trial_type (classes calm, disgust, neutral, tense)";
    let t = both(run(&["inspect", s(&d)]));
    assert!(t.contains(classes), "{t}");
    let t = both(run(&prepare_2s(&d, &tmp.path().join("c"))));
    assert!(t.contains(classes), "{t}");
}

#[test]
fn inspect_of_bids_shows_the_runs_beside_the_trials() {
    let bids = root().join("fixtures/bids");
    let t = both(run(&["inspect", s(&bids)]));
    // Each run: its file, length, rate, channels and events; then their total.
    assert!(t.contains("runs (the continuous recordings"), "{t}");
    let line = t
        .lines()
        .find(|l| l.starts_with("sub-02/eeg/sub-02_task-film_run-1_eeg.edf"))
        .unwrap_or_else(|| panic!("no line for sub-02's run in\n{t}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 1], "4", "{line}");
    assert!(
        t.contains("3 runs, ") && t.contains(" of signal, 12 events"),
        "{t}"
    );
    assert!(t.contains("(trials cut at events)"), "{t}");
    let o = run(&["inspect", s(&bids), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    // The existing keys stay; the runs come beside them.
    for k in ["format", "recordings", "skipped", "warnings"] {
        assert!(doc.get(k).is_some(), "{k} missing");
    }
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let trials: f64 = doc["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["duration_s"].as_f64().unwrap())
        .sum();
    let whole: f64 = runs.iter().map(|r| r["duration_s"].as_f64().unwrap()).sum();
    assert!(whole > trials, "runs {whole} s, trials {trials} s");
    for r in runs {
        assert_eq!(r["events"], 4, "{r}");
        let fs = r["fs"].as_f64().unwrap();
        let n = r["samples"].as_f64().unwrap();
        assert!(
            (n / fs - r["duration_s"].as_f64().unwrap()).abs() < 1e-9,
            "{r}"
        );
        assert!(!r["channels"].as_array().unwrap().is_empty(), "{r}");
        assert!(r["source"].as_str().unwrap().contains("sub-0"), "{r}");
    }
}

#[test]
fn prepare_warns_up_front_when_the_shipped_weights_expect_another_window() {
    let tmp = tempfile::tempdir().unwrap();
    // What the shipped weights expect, from their own file (it changes with them).
    let pp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("weights/bundled/preprocess.json")).unwrap(),
    )
    .unwrap();
    let (window_s, fs) = (pp["window_s"].as_f64().unwrap(), pp["fs"].as_f64().unwrap());
    let edf = root().join("data/biosignalsnotebooks/supine_1min.edf");
    let prepare = |window: &str, out: &str| {
        let o = run(&[
            "prepare",
            "--source",
            s(&edf),
            "--fs",
            &fs.to_string(),
            "--window",
            window,
            "--stride",
            window,
            "--out",
            s(&tmp.path().join(out)),
        ]);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = prepare(&format!("{}s", window_s / 2.0), "half");
    assert!(
        e.contains("warning: the shipped pre-trained weights")
            && e.contains(&format!("--window {window_s}s")),
        "{e}"
    );
    let e = prepare(&format!("{window_s}s"), "same");
    assert!(!e.contains("shipped pre-trained weights"), "{e}");
}

/// A tiny model fine-tuned (2 steps, no pre-training) on a synthetic corpus of 3 subjects x 4
/// trials: its run folder, and what finetune printed.
fn tiny_run(tmp: &Path) -> (PathBuf, String) {
    let corpus = synth_corpus(tmp, "3", "4");
    let cfg = tmp.join("tiny.json");
    std::fs::write(&cfg, TINY).unwrap();
    let out = tmp.join("run");
    let printed = ok(run(&[
        "finetune",
        "--corpus",
        s(&corpus),
        "--task",
        "arousal",
        "--config",
        s(&cfg),
        "--pretrained",
        "none",
        "--methods",
        "scratch",
        "--folds",
        "3",
        "--steps",
        "2",
        "--batch",
        "8",
        "--out",
        s(&out),
    ]));
    (out, printed)
}

#[test]
fn results_on_synth_data_are_named_synthetic_not_after_a_real_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, printed) = tiny_run(tmp.path());
    let name = "synthetic (AMIGOS layout)";
    // The printout (what the demo shows), results.md, results.json and the report.
    assert!(
        printed.contains(&format!("recognition: {name}")),
        "{printed}"
    );
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains(&format!("# arousal recognition: {name}")),
        "{md}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["datasets"], serde_json::json!([name]));
    ok(run(&["report", s(&out)]));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(&format!("recognition — {name}")),
        "no synthetic name in the report's heading"
    );
    assert!(!html.contains("recognition — AMIGOS"));
}

#[test]
fn predict_says_its_default_decisions_are_relative_to_the_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _) = tiny_run(tmp.path());
    let predict = |extra: &[&str]| {
        let tl = tmp.path().join("t.csv");
        let _ = std::fs::remove_file(tmp.path().join("t.svg"));
        let mut args = vec![
            "predict",
            "--model",
            s(&model),
            "bundled:biosignalsnotebooks/ecg_7min",
            "--out",
            s(&tl),
        ];
        args.extend_from_slice(extra);
        let o = bin()
            .args(&args)
            .env("CARDIAFFECT_CACHE", tmp.path().join("cache"))
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        ok(o);
        let svg = std::fs::read_to_string(tmp.path().join("t.svg")).unwrap();
        (e, svg)
    };
    // Default: every good window is the reference, said where the decision is printed and on
    // the plot, with the way to a statement about the person.
    let (e, svg) = predict(&[]);
    assert!(
        e.contains("relative to this recording")
            && e.contains("about half of any recording is called")
            && e.contains("--calibrate-from"),
        "{e}"
    );
    assert!(svg.contains("relative to this recording"), "{svg}");
    // A rest segment as the reference: not relative to the recording as a whole.
    let (e, svg) = predict(&["--calibrate-from", "0-60"]);
    assert!(!e.contains("relative to this recording"), "{e}");
    assert!(!svg.contains("relative to this recording"));
}

#[test]
fn the_release_build_is_lean_and_profiling_has_its_own_profile() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let profile = doc["profile"].as_table().unwrap();
    // Release: line tables at most (debug = 1 made a 251 MB binary).
    let release = profile["release"].as_table().unwrap();
    let lean = match release.get("debug") {
        None => true,
        Some(toml::Value::Boolean(b)) => !b,
        Some(toml::Value::Integer(i)) => *i == 0,
        Some(toml::Value::String(s)) => {
            ["none", "line-tables-only", "line-directives-only"].contains(&s.as_str())
        }
        Some(_) => false,
    };
    assert!(lean, "[profile.release] debug = {:?}", release.get("debug"));
    // Perf work has a profile of its own, the release build with debug info.
    let p = profile["profiling"].as_table().unwrap();
    assert_eq!(p["inherits"].as_str(), Some("release"));
    assert!(
        matches!(p.get("debug"), Some(toml::Value::Integer(i)) if *i >= 1)
            || p.get("debug") == Some(&toml::Value::Boolean(true)),
        "{p:?}"
    );
    let bench = std::fs::read_to_string(root().join("BENCHMARKS.md")).unwrap();
    assert!(bench.contains("--profile profiling"));
}
