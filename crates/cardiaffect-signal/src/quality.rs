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

/// Check a raw (unfiltered) window at `fs_raw` and the R-peaks found in its filtered,
/// resampled version (indices at `fs_peaks`, relative to the window start).
pub fn check_window(
    raw: &[f32],
    fs_raw: f64,
    peaks: &[usize],
    fs_peaks: f64,
    cfg: &QualityConfig,
) -> Result<(), Flaw> {
    let fs = fs_raw;
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
    // Heart rate from the beats' mean interval, and no gap (window edges included) longer than
    // one beat at the slowest plausible rate: catches missed beats and asystole as well.
    let len_peaks = (raw.len() as f64 / fs * fs_peaks).round() as usize;
    if peaks.len() < 2 {
        return Err(Flaw::ImplausibleHeartRate);
    }
    let hr =
        60.0 * (peaks.len() - 1) as f64 / ((peaks[peaks.len() - 1] - peaks[0]) as f64 / fs_peaks);
    let mut longest_gap = peaks[0].max(len_peaks.saturating_sub(peaks[peaks.len() - 1]));
    for w in peaks.windows(2) {
        longest_gap = longest_gap.max(w[1] - w[0]);
    }
    if !(cfg.min_hr_bpm..=cfg.max_hr_bpm).contains(&hr)
        || longest_gap as f64 / fs_peaks > 60.0 / cfg.min_hr_bpm
    {
        return Err(Flaw::ImplausibleHeartRate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flaw_is_caught() {
        let cfg = QualityConfig::default();
        let fs = 100.0;
        // 10 s of a varying signal with beats every second.
        let good: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin()).collect();
        let beats: Vec<usize> = (0..10).map(|i| i * 100 + 20).collect();
        assert_eq!(check_window(&good, fs, &beats, fs, &cfg), Ok(()));
        let mut nan = good.clone();
        nan[500] = f32::NAN;
        assert_eq!(check_window(&nan, fs, &beats, fs, &cfg), Err(Flaw::Nan));
        let mut flat = good.clone();
        flat[100..200].fill(0.25);
        assert_eq!(check_window(&flat, fs, &beats, fs, &cfg), Err(Flaw::Flat));
        let clipped: Vec<f32> = good.iter().map(|v| v.clamp(-0.5, 0.5)).collect();
        assert_eq!(
            check_window(&clipped, fs, &beats, fs, &cfg),
            Err(Flaw::Clipped)
        );
        assert_eq!(
            check_window(&good, fs, &beats[..2], fs, &cfg),
            Err(Flaw::ImplausibleHeartRate)
        );
        let fast: Vec<usize> = (0..60).map(|i| i * 16).collect();
        assert_eq!(
            check_window(&good, fs, &fast, fs, &cfg),
            Err(Flaw::ImplausibleHeartRate)
        );
    }
}
