//! One recording -> fixed-length windows on a global grid, with their metadata.
//!
//! The recording is split into runs without NaN; each run is band-passed (zero phase) at its own
//! rate, resampled to the target rate, and searched for R-peaks. Window `k` starts at
//! `k * stride` seconds from the start of the recording; a window is kept only if it lies in one
//! run and passes the quality checks on its raw samples; otherwise it is counted under a reason.

use cardiaffect_io::Recording;
use cardiaffect_signal::{check_window, ecg_clean, ecg_peaks_neurokit, resample};
use serde::{Deserialize, Serialize};

use crate::{CorpusError, PrepareConfig};

/// One row of the corpus metadata table (`windows.csv`), in the two forms it takes: as a shard
/// stores it, labels by name (`WindowMeta`, the default `L`), and as [`crate::Corpus`] reads it
/// back, label values in the order of `Manifest::label_columns` ([`crate::Row`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMeta<L = Vec<(String, f64)>> {
    pub dataset: String,
    pub source: String,
    pub subject: String,
    pub trial: String,
    pub segment: String,
    pub lead: String,
    pub start_s: f64,
    pub hr_bpm: f64,
    /// Per-trial labels. In a shard: name -> value on the dataset's scale, finite values only.
    /// In a [`crate::Row`]: values in the order of `Manifest::label_columns`, NaN where absent.
    pub labels: L,
    /// WESAD-style per-sample condition, when the whole window has one.
    pub condition: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub source: String,
    pub subject: String,
    pub trial: String,
    pub start_s: f64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Windows {
    pub meta: Vec<WindowMeta>,
    /// `meta.len() * window_len` samples, window after window.
    pub data: Vec<f32>,
    pub dropped: Vec<Dropped>,
    pub warnings: Vec<String>,
    /// Parallel to `meta`: the quality flaw of a window kept by [`window_recording_flagged`]
    /// (always `None` from [`window_recording`], which drops flawed windows).
    pub flaws: Vec<Option<String>>,
}

/// Runs of finite samples, as half-open index ranges.
fn finite_runs(x: &[f32]) -> Vec<(usize, usize)> {
    let mut runs = FiniteRuns::default();
    runs.feed(0, x);
    runs.finish(x.len())
}

/// Runs of finite samples found over a signal read in consecutive pieces.
#[derive(Default)]
pub(crate) struct FiniteRuns {
    runs: Vec<(usize, usize)>,
    start: Option<usize>,
}

impl FiniteRuns {
    /// The piece `x` of the signal, starting at sample `at` (where the last piece ended).
    pub(crate) fn feed(&mut self, at: usize, x: &[f32]) {
        for (i, v) in x.iter().enumerate() {
            match (v.is_finite(), self.start) {
                (true, None) => self.start = Some(at + i),
                (false, Some(s)) => {
                    self.runs.push((s, at + i));
                    self.start = None;
                }
                _ => {}
            }
        }
    }

    /// The runs of a signal of `n` samples, all of them fed.
    pub(crate) fn finish(mut self, n: usize) -> Vec<(usize, usize)> {
        if let Some(s) = self.start {
            self.runs.push((s, n));
        }
        self.runs
    }
}

/// A run of finite samples band-passed (zero phase) at its own rate, resampled to the target
/// rate, and its R-peaks (at the target rate).
pub(crate) fn clean_run(
    x: &[f32],
    fs_in: f64,
    cfg: &PrepareConfig,
) -> Result<(Vec<f32>, Vec<usize>), CorpusError> {
    let filtered = ecg_clean(x, fs_in, &cfg.clean)?;
    let y = resample(&filtered, fs_in, cfg.fs)?;
    let peaks = ecg_peaks_neurokit(&y, cfg.fs);
    Ok((y, peaks))
}

/// The R-peaks inside the window `j0..j0 + len` (relative to its start) and the heart rate
/// they give (NaN with fewer than two).
pub(crate) fn window_peaks(peaks: &[usize], j0: usize, len: usize, fs: f64) -> (Vec<usize>, f64) {
    let lo = peaks.partition_point(|&p| p < j0);
    let hi = peaks.partition_point(|&p| p < j0 + len);
    let rel: Vec<usize> = peaks[lo..hi].iter().map(|p| p - j0).collect();
    let hr = if rel.len() >= 2 {
        60.0 * (rel.len() - 1) as f64 / ((rel[rel.len() - 1] - rel[0]) as f64 / fs)
    } else {
        f64::NAN
    };
    (rel, hr)
}

struct Run {
    start: usize,
    end: usize,
    /// Filtered and resampled; sample j is at time start / fs_in + j / fs_out.
    y: Vec<f32>,
    peaks: Vec<usize>,
}

/// Windows of one recording that pass the quality checks (flawed ones are counted in `dropped`).
pub fn window_recording(rec: &Recording, cfg: &PrepareConfig) -> Result<Windows, CorpusError> {
    windows_of(rec, cfg, false)
}

/// Every window of one recording, flawed ones kept with their flaw named in `flaws` (for
/// prediction timelines, where a gap says less than a flagged window). Windows over NaN
/// samples still cannot be filtered and are listed in `dropped`.
pub fn window_recording_flagged(
    rec: &Recording,
    cfg: &PrepareConfig,
) -> Result<Windows, CorpusError> {
    windows_of(rec, cfg, true)
}

fn windows_of(
    rec: &Recording,
    cfg: &PrepareConfig,
    keep_flawed: bool,
) -> Result<Windows, CorpusError> {
    let source = rec.source.display().to_string();
    let fs_in = rec.fs;
    let needed = 2.0 * cfg.clean.high_hz;
    if fs_in < needed {
        return Err(CorpusError::RateTooLow {
            recording: source,
            fs: fs_in,
            needed,
        });
    }
    let mut out = Windows::default();
    let n = rec.samples.len();
    let native_len = (cfg.window_s * fs_in).round() as usize;
    let len = cfg.window_len();
    if n < native_len {
        out.warnings.push(format!(
            "{source}: {} trial {}: {:.1} s is shorter than one {} s window: no window",
            rec.subject,
            rec.trial,
            n as f64 / fs_in,
            cfg.window_s
        ));
        return Ok(out);
    }
    let mut runs = Vec::new();
    for (a, b) in finite_runs(&rec.samples) {
        if b - a < native_len {
            continue;
        }
        let (y, peaks) = clean_run(&rec.samples[a..b], fs_in, cfg)?;
        runs.push(Run {
            start: a,
            end: b,
            y,
            peaks,
        });
    }
    let labels: Vec<(String, f64)> = rec
        .labels
        .iter()
        .filter(|l| l.value.is_finite())
        .map(|l| (l.name.clone(), l.value))
        .collect();
    let segment = rec.segment.clone().unwrap_or_default();
    let blocks = rec
        .label_track
        .as_ref()
        .map(|t| t.blocks())
        .unwrap_or_default();
    let mut k = 0usize;
    loop {
        let t0 = k as f64 * cfg.stride_s;
        let ns = (t0 * fs_in).round() as usize;
        if ns + native_len > n {
            break;
        }
        k += 1;
        let drop = |reason: &str, out: &mut Windows| {
            out.dropped.push(Dropped {
                source: source.clone(),
                subject: rec.subject.clone(),
                trial: rec.trial.clone(),
                start_s: t0,
                reason: reason.into(),
            });
        };
        let Some(run) = runs
            .iter()
            .find(|r| r.start <= ns && ns + native_len <= r.end)
        else {
            drop("nan", &mut out);
            continue;
        };
        let j0 = ((t0 - run.start as f64 / fs_in) * cfg.fs).round() as usize;
        if j0 + len > run.y.len() {
            drop("nan", &mut out);
            continue;
        }
        let (rel, hr) = window_peaks(&run.peaks, j0, len, cfg.fs);
        let mut flaw_name = None;
        if let Err(flaw) = check_window(
            &rec.samples[ns..ns + native_len],
            fs_in,
            &rel,
            cfg.fs,
            &cfg.quality,
        ) {
            if !keep_flawed {
                drop(flaw.name(), &mut out);
                continue;
            }
            flaw_name = Some(flaw.name().to_string());
        }
        let condition = rec.label_track.as_ref().and_then(|t| {
            let a = (t0 * t.fs).round() as usize;
            let b = ((t0 + cfg.window_s) * t.fs).round() as usize;
            let s = t.values.get(a..b.min(t.values.len()))?;
            let first = *s.first()?;
            s.iter().all(|&v| v == first).then_some(first)
        });
        // A session with a condition track (WESAD): the window's trial is the condition block
        // it lies in, so trial-grouped protocols and trial-level metrics have trials to use.
        let trial = match (&rec.label_track, condition) {
            (Some(t), Some(_)) => {
                let a = (t0 * t.fs).round() as usize;
                let k = blocks.partition_point(|b| b.1 <= a);
                blocks
                    .get(k)
                    .map(|b| b.2.clone())
                    .unwrap_or_else(|| rec.trial.clone())
            }
            _ => rec.trial.clone(),
        };
        out.flaws.push(flaw_name);
        out.data.extend_from_slice(&run.y[j0..j0 + len]);
        out.meta.push(WindowMeta {
            dataset: rec.dataset.clone(),
            source: source.clone(),
            subject: rec.subject.clone(),
            trial,
            segment: segment.clone(),
            lead: rec.lead.clone(),
            start_s: t0,
            hr_bpm: hr,
            labels: labels.clone(),
            condition,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_blocks_of_a_session_become_trials() {
        use cardiaffect_io::LabelTrack;
        use cardiaffect_signal::{ecgsyn, EcgSynParams, Rng};
        let fs = 256.0;
        let p = EcgSynParams {
            fs,
            duration_s: 80.0,
            hr_mean_bpm: 70.0,
            ..EcgSynParams::default()
        };
        let (ecg, _) = ecgsyn(&p, &mut Rng::new(2));
        let mut rec = Recording::new("WESAD", std::path::Path::new("S2.pkl"), fs, ecg);
        rec.trial = "session".into();
        // 20 s baseline, 20 s stress, 10 s transient, 30 s baseline again.
        let n = |s: f64| (s * fs) as usize;
        let mut values = vec![1u8; n(20.0)];
        values.extend(vec![2u8; n(20.0)]);
        values.extend(vec![0u8; n(10.0)]);
        values.extend(vec![1u8; n(30.0)]);
        rec.label_track = Some(LabelTrack {
            name: "condition".into(),
            fs,
            values,
            classes: vec![(0, "transient"), (1, "baseline"), (2, "stress")],
        });
        let cfg = PrepareConfig {
            window_s: 10.0,
            stride_s: 10.0,
            ..PrepareConfig::default()
        };
        let w = window_recording_flagged(&rec, &cfg).unwrap();
        let trials: Vec<&str> = w.meta.iter().map(|m| m.trial.as_str()).collect();
        assert_eq!(
            trials,
            [
                "baseline-1",
                "baseline-1",
                "stress-1",
                "stress-1",
                "transient-1",
                "baseline-2",
                "baseline-2",
                "baseline-2"
            ]
        );
    }

    #[test]
    fn runs_split_at_nan() {
        let x = [1.0, 2.0, f32::NAN, f32::NAN, 3.0, 4.0, 5.0];
        assert_eq!(finite_runs(&x), vec![(0, 2), (4, 7)]);
    }
}
