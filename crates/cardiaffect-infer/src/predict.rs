//! A model applied to a recording: the recording is band-passed and resampled exactly as the
//! model's training corpus was (`preprocess.json`), cut into windows every `hop` seconds, each
//! window z-scored, and the class probabilities returned per window with its quality flag.
//! A model fine-tuned with subject or baseline calibration (`operating_point.json`) has its
//! logits z-scored with this person's own statistics (all good windows of the recording, or
//! a segment given with `--calibrate-from`), then decided at its saved threshold.

use std::path::Path;

use burn::prelude::*;
use cardiaffect_bundle::decision::{apply_threshold, softmax, Standardiser};
use cardiaffect_bundle::Calibration;
use cardiaffect_corpus::blocks::{windows_in_blocks, BlockConfig};
use cardiaffect_corpus::PrepareConfig;
use cardiaffect_io::chunked::{InMemory, SampleSource};
use cardiaffect_io::Recording;
use cardiaffect_model::batch;
use cardiaffect_model::{ModelBundle, PreparedModel};
use serde::{Deserialize, Serialize};

use crate::InferError;

pub use cardiaffect_bundle::OPERATING_POINT_FILE;

pub use cardiaffect_bundle::Preprocess;

/// A fine-tuned model ready to apply: its bundle (config, preprocessing, classes, operating
/// point, weights; reached through `Deref`) and the device it runs on.
pub struct Predictor {
    pub bundle: ModelBundle,
    pub device: Device,
    /// The bundle's model with its weights prepared for inference once.
    prepared: PreparedModel,
}

impl std::ops::Deref for Predictor {
    type Target = ModelBundle;
    fn deref(&self) -> &ModelBundle {
        &self.bundle
    }
}

impl Predictor {
    /// Load a model folder; a `finetune` run folder is accepted too (its final `model/`). Every
    /// file is checked against the folder's `checksums.json`; a folder that `finetune` swaps in
    /// while it is read is read again (all files come from one folder).
    pub fn load(dir: &Path, device: &Device) -> Result<Predictor, InferError> {
        let bundle = ModelBundle::load(dir, device)?;
        Ok(Predictor {
            prepared: bundle.model.prepared(),
            bundle,
            device: device.clone(),
        })
    }

    /// The calibration the model was evaluated and thresholded with.
    pub fn calibration(&self) -> Calibration {
        self.operating_point
            .as_ref()
            .map(|o| o.calibration)
            .unwrap_or(Calibration::None)
    }

    /// Centred class logits of preprocessed windows `[n * L]` (what calibration works on).
    pub fn logits(&self, windows: &[f32]) -> Vec<Vec<f64>> {
        let l = self.config.window_len;
        let mut out = Vec::with_capacity(windows.len() / l);
        for chunk in windows.chunks(64 * l) {
            let mut x = chunk.to_vec();
            batch::zscore_rows(&mut x, l);
            let x = batch::tensor(x, l, &self.device);
            out.extend(self.prepared.class_logits(x).into_iter().map(|r| {
                let m = r.iter().sum::<f64>() / r.len().max(1) as f64;
                r.into_iter().map(|v| v - m).collect::<Vec<f64>>()
            }));
        }
        out
    }

    /// Probabilities at the model's operating point from centred logits: calibrated with
    /// `stats` (this person's) where the model was calibrated, then thresholded. A calibrated
    /// model given no statistics returns its plain probabilities: its threshold was chosen on
    /// calibrated scores and means nothing on raw ones.
    pub fn decide(&self, logits: &[Vec<f64>], stats: Option<&Standardiser>) -> Vec<Vec<f64>> {
        let mut p: Vec<Vec<f64>> = logits
            .iter()
            .map(|l| {
                let mut l = l.clone();
                if let Some(s) = stats {
                    s.apply(&mut l);
                }
                softmax(&l)
            })
            .collect();
        let comparable = stats.is_some() || self.calibration() == Calibration::None;
        if let Some(t) = self.operating_point.as_ref().and_then(|o| o.threshold) {
            if comparable {
                apply_threshold(&mut p, t);
            }
        }
        p
    }

    /// Class probabilities of windows already preprocessed (band-passed, resampled), `[n * L]`.
    /// (Uncalibrated: the model's own probabilities, at no operating point.)
    pub fn probs(&self, windows: &[f32]) -> Vec<Vec<f64>> {
        self.logits(windows).iter().map(|l| softmax(l)).collect()
    }

    /// Where the CLS token looks in one preprocessed window (`L` samples): the last layer's
    /// attention from CLS to each signal token, averaged over heads (`T` values; with CLS's
    /// attention to itself they sum to 1). What the summary attends to, not a causal
    /// explanation of the prediction.
    pub fn cls_attention(&self, window: &[f32]) -> Vec<f32> {
        let mut x = window.to_vec();
        let n = x.len();
        batch::zscore_rows(&mut x, n);
        let x = batch::tensor(x, n, &self.device);
        let Some(last) = self.model.attention_maps(x).pop() else {
            return Vec::new();
        };
        let [_, heads, t1, _] = last.dims();
        let row = last
            .slice([0..1, 0..heads, 0..1, 1..t1])
            .mean_dim(1)
            .reshape([t1 - 1]);
        row.into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap_or_default()
    }

    /// The windowing and filtering of this model's training data, with windows every `hop_s`.
    pub fn prepare_config(&self, hop_s: f64) -> PrepareConfig {
        let p = &self.preprocess;
        PrepareConfig::for_window(
            p.window_s,
            p.fs,
            hop_s,
            p.band_hz,
            p.filter_order,
            p.notch_hz,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub start_s: f64,
    pub end_s: f64,
    /// `ok`, or the quality check the window failed (its prediction is then unreliable).
    pub quality: String,
    pub hr_bpm: f64,
    /// Per model, the class probabilities.
    pub probs: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub recording: String,
    pub subject: String,
    pub trial: String,
    pub fs_in: f64,
    pub rows: Vec<TimelineRow>,
    /// The first seconds of the preprocessed signal (model rate), for the plot.
    #[serde(skip)]
    pub strip: Vec<f32>,
    /// Windows that could not be filtered (NaN samples).
    pub skipped_windows: usize,
    /// The first model's CLS attention on the first window that passed the quality checks
    /// (or the first window), for the plot.
    #[serde(skip)]
    pub attention: Option<WindowAttention>,
    /// Per model, how its scores were calibrated for this recording.
    #[serde(default)]
    pub calibration: Vec<String>,
    /// Per model, each row's centred logits before calibration (for [`calibrate_per_person`]).
    #[serde(skip)]
    pub logits: Vec<Vec<Vec<f64>>>,
}

/// Recalibrate timelines of the same person together: each calibrated model's logits are
/// z-scored with the statistics of every good window of all of that person's recordings (as
/// `finetune` calibrates a test person), instead of each recording's own. A recording of rest
/// and one of a task then keep their difference, where calibrating each on itself calls about
/// half of each "high". Timelines of a person with one recording are left as they are.
pub fn calibrate_per_person(timelines: &mut [Timeline], models: &[Predictor]) {
    let mut people: Vec<&str> = timelines.iter().map(|t| t.subject.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    let people: Vec<String> = people.into_iter().map(String::from).collect();
    for person in people {
        let idx: Vec<usize> = (0..timelines.len())
            .filter(|&i| timelines[i].subject == person)
            .collect();
        if idx.len() < 2 {
            continue;
        }
        for (mi, m) in models.iter().enumerate() {
            if m.calibration() == Calibration::None {
                continue;
            }
            let good = |t: &Timeline| -> Vec<usize> {
                (0..t.rows.len())
                    .filter(|&r| t.rows[r].quality == "ok")
                    .collect()
            };
            let reference: Vec<&[f64]> = idx
                .iter()
                .flat_map(|&i| {
                    let t = &timelines[i];
                    good(t).into_iter().map(move |r| t.logits[mi][r].as_slice())
                })
                .collect();
            let n = reference.len();
            let Some(stats) = Standardiser::fit(reference) else {
                continue;
            };
            for &i in &idx {
                let t = &mut timelines[i];
                let probs = m.decide(&t.logits[mi], Some(&stats));
                for (row, p) in t.rows.iter_mut().zip(probs) {
                    row.probs[mi] = p;
                }
                if let Some(c) = t.calibration.get_mut(mi) {
                    *c = format!(
                        "{}: from {n} windows (every good window of this person's {} recordings)",
                        m.calibration(),
                        idx.len()
                    );
                }
            }
        }
    }
}

/// One window (model rate, preprocessed) and the CLS attention over its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAttention {
    pub start_s: f64,
    pub fs: f64,
    pub window: Vec<f32>,
    /// Per signal token (each `window.len() / tokens.len()` samples), averaged over heads.
    pub tokens: Vec<f32>,
    pub heads: usize,
    pub layer: usize,
}

/// Predict a timeline for one recording with one or more models (same window and rate),
/// calibrating from all good windows of the recording where a model needs it.
pub fn predict_recording(
    rec: &Recording,
    models: &[Predictor],
    hop_s: f64,
) -> Result<Timeline, InferError> {
    predict_recording_calibrated(rec, models, hop_s, None)
}

/// Which windows calibrate: those inside `from` (seconds of the recording), else every window
/// that passed the quality checks. Errors name the segment.
fn reference_windows(
    starts: &[f64],
    window_s: f64,
    flaws: &[Option<String>],
    duration_s: f64,
    from: Option<(f64, f64)>,
) -> Result<Vec<usize>, InferError> {
    let Some((a, b)) = from else {
        let ok: Vec<usize> = (0..starts.len()).filter(|&i| flaws[i].is_none()).collect();
        // No good window at all: every window is flagged in the timeline anyway, so calibrate
        // from all of them rather than refuse the recording (the note says so).
        return Ok(if ok.is_empty() {
            (0..starts.len()).collect()
        } else {
            ok
        });
    };
    check_segment(a, b, window_s, duration_s)?;
    let bad = |m: String| InferError::Calibration {
        value: format!("{a}-{b}"),
        message: m,
    };
    let inside: Vec<usize> = (0..starts.len())
        .filter(|&i| starts[i] >= a - 1e-9 && starts[i] + window_s <= b + 1e-9)
        .collect();
    let ok: Vec<usize> = inside
        .iter()
        .copied()
        .filter(|&i| flaws[i].is_none())
        .collect();
    if ok.is_empty() {
        return Err(bad(format!(
            "all {} windows in the segment failed the quality checks",
            inside.len()
        )));
    }
    Ok(ok)
}

/// A calibration segment `a-b` (seconds) that can hold a window of this recording.
fn check_segment(a: f64, b: f64, window_s: f64, duration_s: f64) -> Result<(), InferError> {
    let bad = |m: String| InferError::Calibration {
        value: format!("{a}-{b}"),
        message: m,
    };
    if !(a.is_finite() && b.is_finite()) || a < 0.0 || b <= a {
        return Err(bad("expected START-END in seconds, 0 <= START < END".into()));
    }
    if b > duration_s + 1e-6 {
        return Err(bad(format!(
            "the segment ends after the recording ({duration_s:.1} s)"
        )));
    }
    if b - a < window_s {
        return Err(bad(format!(
            "the segment is shorter than one window ({window_s} s)"
        )));
    }
    Ok(())
}

/// [`predict_recording`] with the calibration segment given (`--calibrate-from START-END`).
pub fn predict_recording_calibrated(
    rec: &Recording,
    models: &[Predictor],
    hop_s: f64,
    calibrate_from: Option<(f64, f64)>,
) -> Result<Timeline, InferError> {
    predict_source(
        rec,
        &mut InMemory(&rec.samples),
        models,
        hop_s,
        calibrate_from,
        &BlockConfig::default(),
    )
}

/// [`predict_recording_calibrated`] on a signal read through `source` block by block (a
/// [`cardiaffect_io::chunked::Streamed`] recording, `rec` without its samples): memory stays
/// that of one block whatever the recording's length, plus a few numbers per window.
pub fn predict_source(
    rec: &Recording,
    source: &mut dyn SampleSource,
    models: &[Predictor],
    hop_s: f64,
    calibrate_from: Option<(f64, f64)>,
    blocks: &BlockConfig,
) -> Result<Timeline, InferError> {
    let first = models
        .first()
        .ok_or_else(|| InferError::Mismatch("no model given".into()))?;
    for m in &models[1..] {
        if m.preprocess != first.preprocess {
            return Err(InferError::Mismatch(format!(
                "models {} and {} were trained on different preprocessing (rate, window or band): predict with them separately",
                first.dir.display(),
                m.dir.display()
            )));
        }
    }
    if hop_s.is_nan() || hop_s <= 0.0 {
        return Err(InferError::Mismatch(format!(
            "hop {hop_s} s: expected a positive number of seconds"
        )));
    }
    let duration_s = source.len() as f64 / rec.fs;
    if let Some((a, b)) = calibrate_from {
        // Checked before hours of signal go by.
        check_segment(a, b, first.preprocess.window_s, duration_s)?;
    }
    let l = first.config.window_len;
    let strip_len = (10.0 * first.preprocess.fs) as usize;
    let mut strip: Vec<f32> = Vec::new();
    let mut starts = Vec::new();
    let mut hrs = Vec::new();
    let mut flaws: Vec<Option<String>> = Vec::new();
    let mut logits: Vec<Vec<Vec<f64>>> = vec![Vec::new(); models.len()];
    let mut first_window: Option<(f64, Vec<f32>)> = None;
    let mut attention = None;
    let name = format!(
        "{}: {} trial {}",
        rec.source.display(),
        rec.subject,
        rec.trial
    );
    let summary = windows_in_blocks(
        source,
        rec.fs,
        &name,
        &first.prepare_config(hop_s),
        blocks,
        |block| {
            if strip.len() < strip_len {
                let take = (strip_len - strip.len()).min(block.data.len());
                strip.extend_from_slice(&block.data[..take]);
            }
            if first_window.is_none() {
                first_window = Some((block.windows[0].start_s, block.data[..l].to_vec()));
            }
            if attention.is_none() {
                if let Some(i) = block.windows.iter().position(|w| w.flaw.is_none()) {
                    attention = Some((
                        block.windows[i].start_s,
                        block.data[i * l..(i + 1) * l].to_vec(),
                    ));
                }
            }
            for (m, out) in models.iter().zip(&mut logits) {
                out.extend(m.logits(&block.data));
            }
            for w in &block.windows {
                starts.push(w.start_s);
                hrs.push(w.hr_bpm);
                flaws.push(w.flaw.map(str::to_string));
            }
        },
    )?;
    let mut per_model: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut calibration = Vec::new();
    for (m, logits) in models.iter().zip(&logits) {
        let stats = match m.calibration() {
            Calibration::None => {
                calibration.push("none".to_string());
                None
            }
            cal => {
                if cal == Calibration::Baseline && calibrate_from.is_none() {
                    return Err(InferError::Calibration {
                        value: "(not given)".into(),
                        message: format!(
                            "model {} was calibrated on each person's rest segment: give ‹calibrate_from› START-END, a resting segment of this recording in seconds",
                            m.dir.display()
                        ),
                    });
                }
                let idx = reference_windows(
                    &starts,
                    first.preprocess.window_s,
                    &flaws,
                    duration_s,
                    calibrate_from,
                )?;
                let s = Standardiser::fit(idx.iter().map(|&i| logits[i].as_slice()));
                let all_flagged = flaws.iter().all(|f| f.is_some());
                calibration.push(format!(
                    "{cal}: from {} windows {}",
                    idx.len(),
                    match calibrate_from {
                        Some((a, b)) => format!("in {a}-{b} s"),
                        None if all_flagged =>
                            "(none passed the quality checks: all of them, unreliable)".into(),
                        None => "(every good window of the recording)".into(),
                    }
                ));
                s
            }
        };
        per_model.push(m.decide(logits, stats.as_ref()));
    }
    let rows = (0..starts.len())
        .map(|i| TimelineRow {
            start_s: starts[i],
            end_s: starts[i] + first.preprocess.window_s,
            quality: flaws[i].clone().unwrap_or_else(|| "ok".into()),
            hr_bpm: hrs[i],
            probs: per_model.iter().map(|p| p[i].clone()).collect(),
        })
        .collect();
    let attention = attention
        .or(first_window)
        .map(|(start_s, window)| WindowAttention {
            start_s,
            fs: first.preprocess.fs,
            tokens: first.cls_attention(&window),
            window,
            heads: first.config.n_heads,
            layer: first.config.n_layers,
        });
    Ok(Timeline {
        recording: rec.source.display().to_string(),
        subject: rec.subject.clone(),
        trial: rec.trial.clone(),
        fs_in: rec.fs,
        rows,
        strip,
        skipped_windows: summary.dropped,
        attention,
        calibration,
        logits,
    })
}
