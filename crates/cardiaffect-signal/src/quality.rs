//! Quality checks for a window of ECG: a failing window is dropped and counted, never kept.

use serde::{Deserialize, Serialize};

/// Thresholds, all configurable and saved with every corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityConfig {
    /// Longest tolerated run of identical samples (flat line), seconds.
    pub max_flat_s: f64,
    /// Largest tolerated fraction of samples at the window's min or max (clipping).
    pub max_clipped_fraction: f64,
    /// Plausible heart rate range, beats per minute.
    pub min_hr_bpm: f64,
    pub max_hr_bpm: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_flat_s: 0.5,
            max_clipped_fraction: 0.02,
            min_hr_bpm: 30.0,
            max_hr_bpm: 220.0,
        }
    }
}

/// Why a window failed, the first reason found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flaw {
    Nan,
    Flat,
    Clipped,
    ImplausibleHeartRate,
}

impl Flaw {
    pub fn name(self) -> &'static str {
        match self {
            Flaw::Nan => "nan",
            Flaw::Flat => "flat",
            Flaw::Clipped => "clipped",
            Flaw::ImplausibleHeartRate => "implausible_hr",
        }
    }
}

/// Check a raw (unfiltered) window and the R-peaks found in its filtered version.
pub fn check_window(
    raw: &[f32],
    peaks: &[usize],
    fs: f64,
    cfg: &QualityConfig,
) -> Result<(), Flaw> {
    if raw.iter().any(|v| !v.is_finite()) {
        return Err(Flaw::Nan);
    }
    let mut run = 1usize;
    let mut longest = 1usize;
    for w in raw.windows(2) {
        if w[0] == w[1] {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 1;
        }
    }
    if longest as f64 / fs > cfg.max_flat_s {
        return Err(Flaw::Flat);
    }
    let (lo, hi) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let at_edges = raw.iter().filter(|&&v| v == lo || v == hi).count();
    // Two samples are always at the extremes; clipping shows as many.
    if at_edges > 2 && at_edges as f64 / raw.len() as f64 > cfg.max_clipped_fraction {
        return Err(Flaw::Clipped);
    }
    let duration = raw.len() as f64 / fs;
    let hr = if peaks.len() >= 2 {
        60.0 * (peaks.len() - 1) as f64 / ((peaks[peaks.len() - 1] - peaks[0]) as f64 / fs)
    } else {
        60.0 * peaks.len() as f64 / duration
    };
    if !(cfg.min_hr_bpm..=cfg.max_hr_bpm).contains(&hr) {
        return Err(Flaw::ImplausibleHeartRate);
    }
    Ok(())
}
