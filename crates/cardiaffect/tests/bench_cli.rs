//! `cardiaffect bench`: figures, not assertions about speed; this checks the JSON shape that
//! scripts rely on and that each kernel mode runs.

mod common;
use common::*;

fn bench_json(kernels: Option<&str>) -> serde_json::Value {
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
    for k in ["ops", "burn"] {
        let j = bench_json(Some(k));
        assert_eq!(j["kernels"], k);
        assert!(j["infer_b1_ms"].as_f64().unwrap() > 0.0, "{j}");
    }
}
