//! Synthetic ECG datasets, for testing that the pipeline learns. **Never emotion-recognition
//! results**: the physiology below is a documented caricature, not a measurement.
//!
//! `write_affect` writes N subjects x T trials in the AMIGOS preprocessed layout
//! (`Data_Preprocessed_P##.mat`: `joined_data` 1xT of n x 17 at 128 Hz, ECG Right/Left in columns
//! 15/16, GSR in 17, EEG columns zero; `labels_selfassessment` 1xT of 1x12 on AMIGOS's scales),
//! plus `synth_truth.csv` with the generating parameters of every trial. Each file carries a
//! `cardiaffect_synthetic` variable, so that the AMIGOS reader names its recordings
//! "synthetic (AMIGOS layout)" and every result on them says so.
//!
//! How affect changes the ECG (ECGSYN parameters), scaled per subject by a reactivity factor
//! drawn in 0.5-1.5, with arousal `a` and valence `v` on 1-9 and centred at 5:
//! - heart rate: + 2.2 bpm per arousal point (sympathetic activation raises HR; Kreibig,
//!   "Autonomic nervous system activity in emotion: a review", Biol. Psychol. 84, 2010), and
//!   - 0.4 bpm per valence point (slight deceleration in pleasant states, same review);
//! - heart-rate variability: the HR standard deviation shrinks by exp(-0.09 (a - 5)) — arousal
//!   lowers vagally mediated HRV such as RMSSD (Thayer & Lane, Biol. Psychol. 74, 2007);
//! - LF/HF: x exp(0.18 (a - 5)) (sympathovagal balance shifts towards LF with arousal);
//! - respiration rate: x (1 + 0.03 (a - 5));
//! - T-wave amplitude: x (1 + 0.05 (v - 5)) — a small morphological valence cue.
//!
//! Subjects differ more than trials do: resting HR 68 +- 9 bpm, HRV, LF/HF, amplitude, noise and
//! baseline wander are drawn per subject, so that a model that does not know the subject
//! (subject-independent evaluation) has a harder task than one that does, as with real data.
//! Self-reports are the true values plus N(0, 0.6) rating noise, rounded to 0.01, kept in 1-9.

use std::io::Write;
use std::path::{Path, PathBuf};

use cardiaffect_io::datasets::amigos;
use cardiaffect_io::formats::mat::{self, MatValue};
use cardiaffect_signal::{ecgsyn, EcgSynParams, Rng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::CorpusError;
use cardiaffect_io::artifact::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectConfig {
    pub subjects: usize,
    pub trials: usize,
    pub trial_s: f64,
    pub seed: u64,
}

impl Default for AffectConfig {
    fn default() -> Self {
        AffectConfig {
            subjects: 8,
            trials: 20,
            trial_s: 60.0,
            seed: 1,
        }
    }
}

/// The generating parameters of one trial (also written to `synth_truth.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialTruth {
    pub subject: String,
    pub trial: usize,
    pub arousal: f64,
    pub valence: f64,
    pub reported_arousal: f64,
    pub reported_valence: f64,
    pub hr_bpm: f64,
    pub hr_std_bpm: f64,
    pub lf_hf: f64,
}

const FS: f64 = 128.0;

fn clamp_rating(x: f64) -> f64 {
    ((x * 100.0).round() / 100.0).clamp(1.0, 9.0)
}

fn subject(cfg: &AffectConfig, s: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<TrialTruth>) {
    let mut rng = Rng::new(cfg.seed).fork(1000 + s as u64);
    let hr0 = 68.0 + 9.0 * rng.normal();
    let std0 = 2.5 * (0.25 * rng.normal()).exp();
    let lfhf0 = 1.2 * (0.4 * rng.normal()).exp();
    let amp = rng.range(0.7, 1.3);
    let resp0 = rng.range(0.2, 0.3);
    let muscle = rng.range(0.005, 0.03);
    let wander = rng.range(0.03, 0.15);
    let powerline = rng.range(0.0, 0.02);
    let t_wave = 0.75 * rng.range(0.7, 1.3);
    let k = rng.range(0.5, 1.5);
    let name = format!("P{:02}", s + 1);
    let n = (cfg.trial_s * FS).round() as usize;
    let mut trials = Vec::new();
    let mut labels = Vec::new();
    let mut truth = Vec::new();
    for t in 0..cfg.trials {
        let mut tr = rng.fork(t as u64);
        let a = tr.range(1.0, 9.0);
        let v = tr.range(1.0, 9.0);
        let hr = (hr0 + k * 2.2 * (a - 5.0) - k * 0.4 * (v - 5.0) + tr.normal()).clamp(40.0, 150.0);
        let hr_std = std0 * (-k * 0.09 * (a - 5.0)).exp();
        let lf_hf = lfhf0 * (k * 0.18 * (a - 5.0)).exp();
        let mut ev = EcgSynParams::default().event_amplitude;
        ev[4] = t_wave * (1.0 + 0.05 * k * (v - 5.0));
        let p = EcgSynParams {
            fs: FS,
            duration_s: cfg.trial_s,
            hr_mean_bpm: hr,
            hr_std_bpm: hr_std,
            lf_hf,
            resp_hz: resp0 * (1.0 + 0.03 * k * (a - 5.0)),
            hf_hz: resp0 * (1.0 + 0.03 * k * (a - 5.0)),
            amplitude: amp,
            event_amplitude: ev,
            baseline_wander_mv: wander,
            muscle_noise_mv: muscle,
            powerline_mv: powerline,
            ..EcgSynParams::default()
        };
        let (ecg, _) = ecgsyn(&p, &mut tr);
        let mut rows = vec![0.0f64; n * 17];
        for i in 0..n {
            let e = ecg[i] as f64;
            rows[i * 17 + 14] = 0.8 * e + 0.01 * tr.normal();
            rows[i * 17 + 15] = e;
            rows[i * 17 + 16] = 1500.0 + 40.0 * k * (a - 5.0) + 20.0 * (i as f64 / n as f64);
        }
        let (ra, rv) = (
            clamp_rating(a + 0.6 * tr.normal()),
            clamp_rating(v + 0.6 * tr.normal()),
        );
        let b = |c: bool| if c { 1.0 } else { 0.0 };
        let mut lab = vec![
            ra,
            rv,
            clamp_rating(tr.range(1.0, 9.0)),
            clamp_rating(tr.range(1.0, 9.0)),
            clamp_rating(tr.range(1.0, 9.0)),
        ];
        // Basic emotions from the quadrant (neutral, disgust, happiness, surprise, anger, fear, sadness).
        lab.extend([
            b((a - 5.0).abs() < 1.5 && (v - 5.0).abs() < 1.5),
            b(v < 3.0 && a < 6.0),
            b(v > 5.0 && a > 5.0),
            b(a > 7.0 && v > 4.0),
            b(v < 5.0 && a > 6.0),
            b(v < 4.0 && a > 7.0),
            b(v < 5.0 && a < 5.0),
        ]);
        trials.push(rows);
        labels.push(lab);
        truth.push(TrialTruth {
            subject: name.clone(),
            trial: t + 1,
            arousal: a,
            valence: v,
            reported_arousal: ra,
            reported_valence: rv,
            hr_bpm: hr,
            hr_std_bpm: hr_std,
            lf_hf,
        });
    }
    (trials, labels, truth)
}

/// Write the affect dataset; returns the truth of every trial.
pub fn write_affect(
    out: &Path,
    cfg: &AffectConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<TrialTruth>, CorpusError> {
    if cfg.subjects == 0 || cfg.trials == 0 || cfg.trial_s < 1.0 {
        return Err(CorpusError::Config {
            field: "synth",
            expected: "at least 1 subject, 1 trial, and 1 s per trial".into(),
            found: format!("{cfg:?}"),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| CorpusError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let n = (cfg.trial_s * FS).round() as usize;
    let results: Vec<Result<Vec<TrialTruth>, CorpusError>> = (0..cfg.subjects)
        .into_par_iter()
        .map(|s| {
            let (trials, labels, truth) = subject(cfg, s);
            let cell = |items: Vec<MatValue>| MatValue::Cell {
                dims: vec![1, items.len()],
                items,
            };
            let joined = cell(
                trials
                    .iter()
                    .map(|r| mat::matrix_from_rows(n, 17, r))
                    .collect(),
            );
            let labs = cell(
                labels
                    .iter()
                    .map(|l| mat::matrix_from_rows(1, 12, l))
                    .collect(),
            );
            let ext = cell((0..cfg.trials).map(|_| MatValue::Empty).collect());
            let vids = cell(
                (0..cfg.trials)
                    .map(|t| MatValue::Char {
                        dims: vec![1, format!("S{}", t + 1).len()],
                        text: format!("S{}", t + 1),
                    })
                    .collect(),
            );
            // The mark that makes readers name these data synthetic, not AMIGOS.
            let mark_text = format!(
                "written by cardiaffect synth --affect (seed {}): synthetic ECG, not emotion data",
                cfg.seed
            );
            let mark = MatValue::Char {
                dims: vec![1, mark_text.len()],
                text: mark_text,
            };
            let bytes = mat::write(
                &[
                    ("joined_data", &joined),
                    ("labels_selfassessment", &labs),
                    ("labels_ext_annotation", &ext),
                    ("VideoIDs", &vids),
                    (amigos::SYNTHETIC_MARK, &mark),
                ],
                true,
            );
            let path: PathBuf = out.join(format!("Data_Preprocessed_P{:02}.mat", s + 1));
            write_atomic(&path, &bytes)?;
            progress(s);
            Ok(truth)
        })
        .collect();
    let mut truth = Vec::new();
    for r in results {
        truth.extend(r?);
    }
    let mut csv = Vec::new();
    let _ = writeln!(
        csv,
        "subject,trial,arousal,valence,reported_arousal,reported_valence,hr_bpm,hr_std_bpm,lf_hf"
    );
    for t in &truth {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{},{},{:.3},{:.4},{:.4}",
            t.subject,
            t.trial,
            t.arousal,
            t.valence,
            t.reported_arousal,
            t.reported_valence,
            t.hr_bpm,
            t.hr_std_bpm,
            t.lf_hf
        );
    }
    write_atomic(&out.join("synth_truth.csv"), &csv)?;
    let readme = format!(
        "SYNTHETIC data written by cardiaffect synth --affect (seed {}, {} subjects x {} trials x {} s).\n\
         AMIGOS preprocessed layout. ECG from the ECGSYN model with documented, literature-motivated\n\
         effects of arousal and valence (see cardiaffect-corpus/src/synth.rs). It exists to test that\n\
         a pipeline learns: never report results on it as emotion recognition.\n",
        cfg.seed, cfg.subjects, cfg.trials, cfg.trial_s
    );
    write_atomic(&out.join("README.txt"), readme.as_bytes())?;
    Ok(truth)
}

/// The file format [`write_unlabeled`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RecordFormat {
    /// A WFDB record, format 16 (`synthNNN.hea` + `.dat`).
    #[default]
    Wfdb,
    /// A plain EDF file, 16-bit, 1-s records (`synthNNN.edf`; a whole number of Hz).
    Edf,
}

/// Unlabeled synthetic ECG for pre-training: one WFDB record (or EDF file) per subject, `minutes` long, at
/// `fs`. Each subject has their own beat morphology (P/Q/R/S/T amplitudes, an inverted T wave
/// in about one in ten), breathing rate and resting heart rate; heart rate, HRV and noise vary
/// minute by minute over the record.
pub fn write_unlabeled(
    out: &Path,
    subjects: usize,
    minutes: f64,
    fs: f64,
    seed: u64,
    format: RecordFormat,
) -> Result<usize, CorpusError> {
    if format == RecordFormat::Edf && fs.fract() != 0.0 {
        return Err(CorpusError::Config {
            field: "fs",
            expected: "a whole number of Hz for EDF (whole samples per 1-s record)".into(),
            found: fs.to_string(),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| CorpusError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let results: Vec<Result<(), CorpusError>> = (0..subjects)
        .into_par_iter()
        .map(|s| {
            let mut rng = Rng::new(seed).fork(5000 + s as u64);
            // Each person's own beat shape and breathing (drawn once): P, Q, R, S and T
            // amplitudes scaled around ECGSYN's defaults, an inverted T wave in one person of
            // ten (as in some leads and people), a resting heart rate of 50-100 bpm.
            let mut shape = rng.fork(77);
            let d = EcgSynParams::default().event_amplitude;
            let t_sign = if shape.uniform() < 0.1 { -1.0 } else { 1.0 };
            let event_amplitude = [
                d[0] * shape.range(0.5, 1.8),
                d[1] * shape.range(0.3, 1.7),
                d[2] * shape.range(0.7, 1.3),
                d[3] * shape.range(0.3, 1.7),
                d[4] * shape.range(0.3, 1.8) * t_sign,
            ];
            let resp_hz = shape.range(0.15, 0.4);
            let hr_rest = shape.range(50.0, 100.0);
            let mut ecg = Vec::new();
            let segments = (minutes.max(0.1) / 1.0).ceil() as usize;
            for _ in 0..segments {
                let p = EcgSynParams {
                    fs,
                    duration_s: 60.0f64.min(minutes * 60.0),
                    hr_mean_bpm: hr_rest + 10.0 * rng.uniform(),
                    hr_std_bpm: rng.range(1.0, 5.0),
                    lf_hf: rng.range(0.3, 4.0),
                    resp_hz,
                    amplitude: rng.range(0.6, 1.5),
                    event_amplitude,
                    baseline_wander_mv: rng.range(0.02, 0.2),
                    muscle_noise_mv: rng.range(0.005, 0.05),
                    powerline_mv: rng.range(0.0, 0.03),
                    ..EcgSynParams::default()
                };
                ecg.extend(ecgsyn(&p, &mut rng).0);
            }
            ecg.truncate((minutes * 60.0 * fs).round() as usize);
            let name = format!("synth{:03}", s + 1);
            match format {
                RecordFormat::Wfdb => cardiaffect_io::formats::wfdb::write_record_16(
                    out,
                    &name,
                    fs,
                    &[("ECG", "mV", 1000.0, &ecg)],
                )
                .map_err(|e| CorpusError::Io {
                    path: out.to_path_buf(),
                    source: e,
                }),
                RecordFormat::Edf => {
                    let path = out.join(format!("{name}.edf"));
                    let signal = cardiaffect_io::formats::edf::WriteSignal {
                        label: "ECG",
                        unit: "mV",
                        physical_min: -10.0,
                        physical_max: 10.0,
                        samples: &ecg,
                    };
                    let bytes =
                        cardiaffect_io::formats::edf::write(fs, &[signal]).map_err(|found| {
                            CorpusError::Config {
                                field: "fs",
                                expected: "what EDF can store".into(),
                                found,
                            }
                        })?;
                    Ok(write_atomic(&path, &bytes)?)
                }
            }
        })
        .collect();
    for r in results {
        r?;
    }
    Ok(subjects)
}
