//! The synthetic affect dataset: readable as AMIGOS, reproducible, and with the documented
//! physiology (checked on the ECG itself, through the R-peak detector).

use cardiaffect_corpus::synth::{write_affect, AffectConfig};
use cardiaffect_io::{read, Format, ReadOptions};
use cardiaffect_signal::{ecg_clean, ecg_peaks_neurokit, hrv, CleanConfig};

fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        for (k, &i) in idx.iter().enumerate() {
            r[i] = k as f64;
        }
        r
    };
    let (a, b) = (rank(x), rank(y));
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(&b).map(|(p, q)| (p - ma) * (q - mb)).sum();
    let va: f64 = a.iter().map(|p| (p - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|q| (q - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn affect_dataset_has_the_documented_physiology() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = AffectConfig {
        subjects: 4,
        trials: 10,
        trial_s: 40.0,
        seed: 7,
    };
    let truth = write_affect(tmp.path(), &cfg, &|_| {}).unwrap();
    let (fmt, _, out) = read(tmp.path(), Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(fmt, Format::Amigos);
    assert_eq!(out.recordings.len(), 40);
    let (mut all_hr, mut all_arousal, mut within) = (Vec::new(), Vec::new(), Vec::new());
    for s in 0..4 {
        let recs: Vec<_> = out
            .recordings
            .iter()
            .filter(|r| r.subject == format!("P{:02}", s + 1))
            .collect();
        let mut hrs = Vec::new();
        let mut arousal = Vec::new();
        for r in &recs {
            let t = truth
                .iter()
                .find(|t| t.subject == r.subject && t.trial.to_string() == r.trial)
                .unwrap();
            // Reported ratings are what the file holds.
            assert_eq!(r.label("arousal").unwrap().value, t.reported_arousal);
            let clean = ecg_clean(&r.samples, r.fs, &CleanConfig::default()).unwrap();
            let h = hrv(&ecg_peaks_neurokit(&clean, r.fs), r.fs).unwrap();
            hrs.push(h.mean_hr_bpm);
            arousal.push(t.arousal);
        }
        let rho = spearman(&arousal, &hrs);
        assert!(
            rho > 0.7,
            "subject {s}: HR follows arousal with Spearman {rho}"
        );
        within.push(rho);
        all_hr.extend(hrs);
        all_arousal.extend(arousal);
    }
    // Subjects' baselines differ: pooled over subjects, heart rate ranks arousal worse than
    // within a subject — subject-independent evaluation is the harder task, as with real data.
    let pooled = spearman(&all_arousal, &all_hr);
    let mean_within = within.iter().sum::<f64>() / within.len() as f64;
    assert!(
        pooled < mean_within - 0.1,
        "pooled Spearman {pooled} vs within-subject {mean_within}"
    );
    // Reproducible: the same seed writes the same files.
    let tmp2 = tempfile::tempdir().unwrap();
    write_affect(tmp2.path(), &cfg, &|_| {}).unwrap();
    for f in ["Data_Preprocessed_P01.mat", "synth_truth.csv"] {
        assert_eq!(
            std::fs::read(tmp.path().join(f)).unwrap(),
            std::fs::read(tmp2.path().join(f)).unwrap(),
            "{f}"
        );
    }
}
