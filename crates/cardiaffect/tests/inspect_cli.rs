//! `cardiaffect inspect` end to end: the binary on committed fixtures and bundled data.

mod common;
use common::{bin, root};

use std::process::Output;

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(root())
        .output()
        .expect("run cardiaffect")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn json_has_the_documented_shape_and_the_written_values() {
    let o = run(&[
        "inspect",
        "fixtures/amigos/Data_Preprocessed_P01.mat",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(doc["format"], "amigos");
    assert!(doc["detected"]
        .as_str()
        .unwrap()
        .contains("Data_Preprocessed_P01.mat"));
    let recs = doc["recordings"].as_array().unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/expected.json")).unwrap(),
    )
    .unwrap();
    let want = expected["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "amigos/Data_Preprocessed_P01.mat")
        .unwrap()["recordings"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(recs.len(), want.len());
    for (r, w) in recs.iter().zip(&want) {
        for key in ["subject", "trial", "lead", "fs", "samples"] {
            assert_eq!(r[key], w[key], "{key}");
        }
        let first = r["first_samples"].as_array().unwrap();
        assert_eq!(first.len(), 5);
        for (a, b) in first.iter().zip(w["first_samples"].as_array().unwrap()) {
            match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{a} vs {b}"),
                (None, None) => {}
                other => panic!("first_samples differ: {other:?}"),
            }
        }
        assert_eq!(
            r["labels"]["arousal"].as_f64(),
            w["labels"]["arousal"].as_f64()
        );
        assert_eq!(r["label_scales"]["arousal"], "AMIGOS self-assessment 1-9");
    }
    let skipped = doc["skipped"].as_array().unwrap();
    assert_eq!(
        skipped.len(),
        2,
        "trials 5 and 7 of P01 are empty / all NaN"
    );
}

#[test]
fn dreamer_stimulus_and_baseline_are_two_entries() {
    let o = run(&["inspect", "fixtures/dreamer/DREAMER.mat", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let recs = doc["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 2 * 18 * 2);
    assert_eq!(recs[0]["segment"], "stimuli");
    assert_eq!(recs[1]["segment"], "baseline");
    assert_eq!(recs[0]["trial"], recs[1]["trial"]);
    assert!(recs[0]["labels"]["valence"].is_number());
    assert!(
        recs[1]["labels"].as_object().unwrap().is_empty(),
        "ratings belong to the stimulus"
    );
}

#[test]
fn table_on_bundled_real_ecg() {
    let o = run(&["inspect", "data/mitdb208/208.hea"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("detected format: wfdb"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("WFDB"))
        .expect("a WFDB row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["WFDB", "208", "1", "MLII", "360", "108000", "5m00.0s"]
    );
}

#[test]
fn bundled_edf_from_a_real_device() {
    let o = run(&[
        "inspect",
        "data/biosignalsnotebooks/supine_1min.edf",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let r = &doc["recordings"][0];
    assert_eq!(r["lead"], "ECG");
    assert_eq!(r["fs"], 1000.0);
    assert_eq!(r["samples"], 60000);
    assert_eq!(r["unit"], "mV");
    // Physical range declared by the file: -1.47..1.47 mV.
    let v = r["first_samples"][0].as_f64().unwrap();
    assert!(v.abs() <= 1.47, "{v}");
}

#[test]
fn csv_needs_a_rate_and_says_so() {
    let o = run(&["inspect", "fixtures/csv/ecg_header.csv"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("ecg_header.csv") && e.contains("--fs"), "{e}");
    let o = run(&["inspect", "fixtures/csv/ecg_header.csv", "--fs", "500"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("500"));
}

#[test]
fn bad_input_is_a_message_not_a_panic() {
    for (path, fmt, needle) in [
        ("fixtures/bad/wfdb_huge/r2.hea", "auto", "number of samples"),
        ("fixtures/bad/not_a_mat.mat", "amigos", "MATLAB"),
        ("fixtures/bad/dreamer_no_ecg", "auto", "ECG"),
        ("fixtures/wesad", "amigos", "Data_Preprocessed"),
    ] {
        let o = run(&["inspect", path, "--format", fmt]);
        assert!(!o.status.success(), "{path}");
        let e = stderr(&o);
        assert!(e.starts_with("error: "), "{path}: {e}");
        assert!(e.contains(needle), "{path}: {e}");
        assert!(!e.contains("panicked"), "{path}: {e}");
    }
    let o = run(&["inspect", "fixtures/amigos", "--format", "matlab"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("expected one of auto, amigos"),
        "{}",
        stderr(&o)
    );
}
