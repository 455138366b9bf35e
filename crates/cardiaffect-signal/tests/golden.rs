//! cardiaffect-signal against scipy and NeuroKit2 on the bundled real ECG.
//! Golden files: `reference/golden_signal.py` -> `fixtures/golden/signal/`.

use std::path::{Path, PathBuf};

use cardiaffect_io::{read, Format, ReadOptions};
use cardiaffect_signal::{
    butter_sos, ecg_peaks_neurokit, hrv, iirnotch_sos, resample, sosfiltfilt, Band, SosStream,
};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_dir() -> PathBuf {
    root().join("fixtures/golden/signal")
}

fn npy(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(golden_dir().join(name)).unwrap();
    cardiaffect_io::formats::npy::parse(&bytes).unwrap().values
}

fn recording(name: &str) -> (Vec<f32>, f64) {
    let path = match name {
        "mitdb208" => root().join("data/mitdb208/208.hea"),
        "supine_1min" => root().join("data/biosignalsnotebooks/supine_1min.edf"),
        other => root().join(format!("data/biosignalsnotebooks/{other}.hea")),
    };
    let cardiaffect_io::ReadResult { output: out, .. } =
        read(&path, Format::Auto, &ReadOptions::default()).unwrap();
    let r = out.recordings.into_iter().next().unwrap();
    (r.samples, r.fs)
}

fn doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden_dir().join("signal.json")).unwrap())
        .unwrap()
}

/// Largest absolute difference relative to the reference's largest magnitude.
fn rel_max_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// F1 of detections against reference peaks, matching each within `tol` samples at most once.
fn f1(found: &[usize], reference: &[usize], tol: usize) -> f64 {
    let mut used = vec![false; reference.len()];
    let mut tp = 0;
    for &p in found {
        if let Some(j) = reference
            .iter()
            .enumerate()
            .position(|(j, &r)| !used[j] && r.abs_diff(p) <= tol)
        {
            used[j] = true;
            tp += 1;
        }
    }
    let precision = tp as f64 / found.len().max(1) as f64;
    let recall = tp as f64 / reference.len().max(1) as f64;
    if tp == 0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

#[test]
fn stream_filter_in_chunks_equals_scipy_sosfilt() {
    let (x, fs) = recording("mitdb208");
    let seg: Vec<f64> = x[..(20.0 * fs) as usize]
        .iter()
        .map(|&v| v as f64)
        .collect();
    let mut f = SosStream::new(butter_sos(4, Band::BandPass(0.5, 40.0), fs).unwrap());
    let mut out = Vec::new();
    // Uneven chunks, as a device delivers them.
    for chunk in seg.chunks(97) {
        let mut c = chunk.to_vec();
        f.process(&mut c);
        out.extend(c);
    }
    let err = rel_max_err(&out, &npy("mitdb208_causal.npy"));
    assert!(
        err < 1e-9,
        "causal filter differs from scipy sosfilt by {err:e}"
    );
}

#[test]
fn bandpass_and_notch_equal_scipy_sosfiltfilt() {
    for r in doc()["recordings"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let (x, fs) = recording(name);
        let seg: Vec<f64> = x[..(20.0 * fs) as usize]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let sos = butter_sos(4, Band::BandPass(0.5, 40.0), fs).unwrap();
        let ours = sosfiltfilt(&sos, &seg).unwrap();
        let err = rel_max_err(&ours, &npy(&format!("{name}_bp.npy")));
        assert!(
            err < 1e-5,
            "{name}: band-pass differs from scipy by {err:e} of full scale"
        );
        if name == "mitdb208" {
            let notched = sosfiltfilt(&[iirnotch_sos(50.0, 30.0, fs).unwrap()], &ours).unwrap();
            let err = rel_max_err(&notched, &npy("mitdb208_notch.npy"));
            assert!(err < 1e-5, "notch differs from scipy by {err:e}");
        }
    }
}

#[test]
fn resampling_equals_scipy_resample_poly() {
    for r in doc()["recordings"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let (x, fs) = recording(name);
        let seg = &x[..(20.0 * fs) as usize];
        let ours: Vec<f64> = resample(seg, fs, 128.0)
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect();
        let reference = npy(&format!("{name}_rs128.npy"));
        assert_eq!(ours.len(), reference.len(), "{name}: length");
        let err = rel_max_err(&ours, &reference);
        assert!(
            err < 1e-5,
            "{name}: resampled signal differs from resample_poly by {err:e} of full scale"
        );
    }
}

#[test]
fn r_peaks_match_neurokit() {
    for r in doc()["recordings"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let (x, fs) = recording(name);
        let sos = butter_sos(4, Band::BandPass(0.5, 40.0), fs).unwrap();
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let bp: Vec<f32> = sosfiltfilt(&sos, &xd)
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let ours = ecg_peaks_neurokit(&bp, fs);
        let to_vec = |v: &Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as usize)
                .collect()
        };
        // Same detector, same input: the same beats.
        let same_input = to_vec(&r["nk_on_bandpass"]);
        let tol = (0.05 * fs) as usize;
        let f_same = f1(&ours, &same_input, tol);
        assert!(
            f_same > 0.999,
            "{name}: detector F1 {f_same} against NeuroKit on the same band-passed signal"
        );
        // Our pipeline against NeuroKit's own cleaning + detection.
        let nk = to_vec(&r["nk_default"]);
        let f = f1(&ours, &nk, tol);
        if r["clean"].as_bool().unwrap() {
            assert!(
                f >= 0.99,
                "{name}: F1 {f} against NeuroKit2 (50 ms tolerance)"
            );
        } else {
            assert!(f >= 0.95, "{name} (arrhythmic): F1 {f} against NeuroKit2");
        }
    }
}

#[test]
fn hrv_time_domain_equals_neurokit() {
    for r in doc()["recordings"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let fs = r["fs"].as_f64().unwrap();
        let peaks: Vec<usize> = r["nk_default"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        let h = hrv(&peaks, fs).unwrap();
        let t = &r["hrv_time"];
        let close = |a: f64, b: f64, what: &str| {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{name}: {what} {a} vs NeuroKit {b}"
            )
        };
        close(
            60_000.0 / h.mean_hr_bpm,
            t["HRV_MeanNN"].as_f64().unwrap(),
            "mean NN",
        );
        close(h.sdnn_ms, t["HRV_SDNN"].as_f64().unwrap(), "SDNN");
        close(h.rmssd_ms, t["HRV_RMSSD"].as_f64().unwrap(), "RMSSD");
        close(h.pnn50_pct, t["HRV_pNN50"].as_f64().unwrap(), "pNN50");
    }
}
