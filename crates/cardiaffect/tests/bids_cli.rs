//! A lab's own study end to end: `inspect` and `prepare` list the columns that can be tasks,
//! `finetune --task COLUMN` trains on one, and event options are checked before any work.

mod common;
use common::{bin, root};

use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(root())
        .env(
            "CARDIAFFECT_CACHE",
            std::env::temp_dir().join("cardiaffect-bids-cli-cache"),
        )
        .output()
        .expect("run cardiaffect")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_bids_study_from_inspect_to_finetune_on_a_column() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["inspect", "fixtures/bids"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("detected format: bids"), "{t}");
    assert!(t.contains("trial_type (classes fear, joy, neutral)"), "{t}");
    assert!(t.contains("row 4, column `onset`"), "{t}");
    let corpus = tmp.path().join("corpus");
    let c = corpus.to_str().unwrap();
    // 4 s windows: the fixture's trials last 8-12 s.
    let o = run(&[
        "prepare",
        "--source",
        "fixtures/bids",
        "--out",
        c,
        "--window",
        "4s",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("skipped 3 trials: outside the recording 3"),
        "{t}"
    );
    assert!(
        t.contains("tasks (finetune --task): arousal (high/low on 2-6.5, inferred"),
        "{t}"
    );
    let run_dir = tmp.path().join("run");
    let o = run(&[
        "finetune",
        "--corpus",
        c,
        "--task",
        "trial_type",
        "--classes",
        "fear,joy",
        "--methods",
        "hrv",
        "--pretrained",
        "none",
        "--out",
        run_dir.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(res["task"], "trial_type");
    assert_eq!(res["labels"]["task"], "trial_type");
    assert_eq!(res["labels"]["classes"], serde_json::json!(["fear", "joy"]));
    assert_eq!(res["labels"]["counts"], serde_json::json!([6, 6]));
    // A column only some subjects have: said, with who.
    let o = run(&[
        "finetune",
        "--corpus",
        c,
        "--task",
        "arousal",
        "--folds",
        "loso",
        "--methods",
        "hrv",
        "--pretrained",
        "none",
        "--out",
        tmp.path().join("run2").to_str().unwrap(),
    ]);
    assert!(
        text(&o).contains("2 subject(s) have no labeled window and are left out: sub-02, sub-03"),
        "{}",
        text(&o)
    );
}

#[test]
fn event_options_are_checked_first() {
    let o = run(&[
        "prepare",
        "--source",
        "fixtures/edf/ecg_plain.edf",
        "--out",
        "/nonexistent/x",
        "--events",
        "nope.csv",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("nope.csv: no such file"), "{}", text(&o));
    let o = run(&[
        "inspect",
        "fixtures/edf/ecg_plain.edf",
        "--baseline",
        "-2..1",
    ]);
    assert!(
        text(&o).contains("a baseline ends at the onset"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "inspect",
        "fixtures/edf/ecg_edfplus.edf",
        "--events",
        "annotations",
        "--baseline",
        "-0.25..0",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("ecg_edfplus_annotation-001 baseline"), "{t}");
    assert!(
        t.contains("ecg_edfplus_annotation-002") && t.contains("a point event is not a trial"),
        "{t}"
    );
    let o = run(&[
        "inspect",
        "fixtures/edf/ecg_plain.edf",
        "--label-scale",
        "valence=9-1",
    ]);
    assert!(text(&o).contains("expected NAME=LO-HI"), "{}", text(&o));
}
