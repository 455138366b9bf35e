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
    let cardiaffect_io::ReadResult {
        format: fmt,
        output: out,
        ..
    } = read(tmp.path(), Format::Auto, &ReadOptions::default()).unwrap();
    assert_eq!(fmt, Format::Amigos);
    assert_eq!(out.recordings.len(), 40);
    // Read as AMIGOS, named as what they are.
    assert!(out
        .recordings
        .iter()
        .all(|r| r.dataset == "synthetic (AMIGOS layout)" && r.meta.contains_key("synthetic")));
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

/// The mean beat (R-peak aligned, z-scored) of one record's first and second half.
fn mean_beats(path: &std::path::Path) -> (Vec<f64>, Vec<f64>) {
    let cardiaffect_io::ReadResult { output: out, .. } =
        read(path, Format::Wfdb, &ReadOptions::default()).unwrap();
    let r = &out.recordings[0];
    let x = ecg_clean(&r.samples, r.fs, &CleanConfig::default()).unwrap();
    let peaks = ecg_peaks_neurokit(&x, r.fs);
    let (pre, post) = ((0.25 * r.fs) as usize, (0.45 * r.fs) as usize);
    let mean = |ps: &[usize]| {
        let mut m = vec![0.0; pre + post];
        let mut n = 0.0;
        for &p in ps.iter().filter(|&&p| p >= pre && p + post <= x.len()) {
            for (k, v) in m.iter_mut().enumerate() {
                *v += x[p - pre + k] as f64;
            }
            n += 1.0;
        }
        let mu = m.iter().sum::<f64>() / m.len() as f64;
        let sd = (m.iter().map(|v| (v / n - mu / n).powi(2)).sum::<f64>() / m.len() as f64).sqrt();
        m.iter()
            .map(|v| (v / n - mu / n) / sd)
            .collect::<Vec<f64>>()
    };
    let half = peaks.len() / 2;
    (mean(&peaks[..half]), mean(&peaks[half..]))
}

#[test]
fn unlabeled_subjects_have_their_own_beat_shape() {
    let tmp = tempfile::tempdir().unwrap();
    cardiaffect_corpus::synth::write_unlabeled(tmp.path(), 4, 2.0, 256.0, 11, Default::default())
        .unwrap();
    let beats: Vec<(Vec<f64>, Vec<f64>)> = (1..=4)
        .map(|s| mean_beats(&tmp.path().join(format!("synth{s:03}.hea"))))
        .collect();
    let dist = |a: &[f64], b: &[f64]| {
        (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
    };
    // Within a subject the two halves' mean beats agree better than any two subjects' do.
    let within = beats.iter().map(|(a, b)| dist(a, b)).fold(0.0, f64::max);
    let mut between = f64::INFINITY;
    for i in 0..4 {
        for j in i + 1..4 {
            between = between.min(dist(&beats[i].0, &beats[j].0));
        }
    }
    assert!(within < between, "within {within:.3}, between {between:.3}");
}
