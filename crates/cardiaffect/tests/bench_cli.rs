//! `cardiaffect bench`: figures, not assertions about speed; this checks the JSON shape that
//! scripts rely on and that each kernel mode runs.

mod common;
use common::*;

fn bench_json(kernels: Option<&str>) -> serde_json::Value {
    bench_json_with(kernels, &[])
}

fn bench_json_with(kernels: Option<&str>, extra: &[&str]) -> serde_json::Value {
    let mut c = bin();
    c.args([
        "bench",
        "--skip-train",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--torch-python",
        "none",
        "--json",
    ]);
    c.args(extra);
    if let Some(k) = kernels {
        c.env("CARDIAFFECT_KERNELS", k);
    }
    serde_json::from_str(&ok(c.output().unwrap())).unwrap()
}

#[test]
fn bench_json_names_its_figures_and_kernels() {
    let j = bench_json(None);
    assert_eq!(j["kernels"], "in-tree");
    assert_eq!(j["backend"], "flex");
    assert!(j["infer_b32_windows_per_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["infer_b1_ms"].as_f64().unwrap() > 0.0, "{j}");
    // Skipped figures are null, not made up.
    assert!(j["pretrain_step_ms"].is_null(), "{j}");
    assert!(j.get("pytorch_infer_b1_ms").is_none(), "{j}");
    // Every row unless --cls-row (the CLS row of the last layer, as `predict` runs it).
    assert_eq!(j["infer_cls_row"], false, "{j}");
    // Our allocator thresholds; no PyTorch process, so no settings of one.
    assert_eq!(j["malloc_thresholds"]["mmap"], 64 << 20, "{j}");
    assert!(j["malloc_thresholds"]["pytorch_env"].is_null(), "{j}");
    let j = bench_json_with(None, &["--cls-row"]);
    assert_eq!(j["infer_cls_row"], true, "{j}");
    assert!(j["infer_b32_windows_per_s"].as_f64().unwrap() > 0.0, "{j}");
    for k in ["ops", "burn"] {
        let j = bench_json(Some(k));
        assert_eq!(j["kernels"], k);
        assert!(j["infer_b1_ms"].as_f64().unwrap() > 0.0, "{j}");
    }
}

#[test]
fn bench_rounds_report_each_round_and_their_medians() {
    let j = bench_json_with(None, &["--rounds", "3", "--cpu-hog"]);
    assert_eq!(j["rounds"], 3, "{j}");
    assert_eq!(j["cpu_hog"], true, "{j}");
    let rounds = j["per_round"]
        .as_array()
        .expect("per_round with --rounds > 1");
    assert_eq!(rounds.len(), 3, "{j}");
    // The top-level figure is the median of the rounds' figures.
    let mut b1: Vec<f64> = rounds
        .iter()
        .map(|r| r["infer_b1_ms"].as_f64().unwrap())
        .collect();
    b1.sort_by(f64::total_cmp);
    assert_eq!(j["infer_b1_ms"].as_f64().unwrap(), b1[1], "{j}");
    assert!(
        rounds.iter().all(|r| r["pretrain_step_ms"].is_null()),
        "{j}"
    );
    // One round (the default) has no per-round list.
    assert!(bench_json(None).get("per_round").is_none());
    // Zero rounds is refused by the parser, naming the flag.
    let out = bin()
        .args(["bench", "--rounds", "0", "--torch-python", "none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rounds"));
}
