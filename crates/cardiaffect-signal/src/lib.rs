//! ECG signal processing for cardiaffect. Each function is named for what it does and, where it
//! implements a published method, after that method (NeuroKit2's habit), with the reference in
//! its documentation.
#![forbid(unsafe_code)]

pub mod filter;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("{field}: expected {expected}, found {found}")]
    Config {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{what} needs at least {needed} samples, found {found}")]
    TooShort {
        what: &'static str,
        needed: usize,
        found: usize,
    },
    #[error("resampling from {from} Hz to {to} Hz: {reason}")]
    Resample { from: f64, to: f64, reason: String },
}
pub mod hrv;
pub mod normalize;
pub mod peaks;
pub mod quality;
pub mod resample;

pub use filter::{butter_sos, iirnotch_sos, sosfiltfilt, Band, Sos, SosStream};
pub use hrv::{hrv, Hrv};
pub use normalize::{zscore, Standardizer};
pub use peaks::ecg_peaks_neurokit;
pub use quality::{check_window, Flaw, QualityConfig};
pub use resample::{rational_factors, resample};

/// How `ecg_clean` filters: zero-phase Butterworth band-pass, optional notch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CleanConfig {
    pub low_hz: f64,
    pub high_hz: f64,
    pub order: usize,
    /// Powerline frequency to notch out (50 or 60 Hz), if any.
    pub notch_hz: Option<f64>,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            low_hz: 0.5,
            high_hz: 40.0,
            order: 4,
            notch_hz: None,
        }
    }
}

/// Band-pass (and notch) an ECG with zero phase; f64 inside, f32 out.
pub fn ecg_clean(x: &[f32], fs: f64, cfg: &CleanConfig) -> Result<Vec<f32>, SignalError> {
    let sos = butter_sos(cfg.order, Band::BandPass(cfg.low_hz, cfg.high_hz), fs)?;
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut y = sosfiltfilt(&sos, &xd)?;
    // The notch is a second pass, as scipy's filtfilt(iirnotch) after sosfiltfilt(butter).
    if let Some(f) = cfg.notch_hz.filter(|&f| f < fs / 2.0) {
        y = sosfiltfilt(&[iirnotch_sos(f, 30.0, fs)?], &y)?;
    }
    Ok(y.into_iter().map(|v| v as f32).collect())
}
pub mod ecgsyn;
pub mod rng;

pub use ecgsyn::{ecgsyn, EcgSynParams};
pub use rng::Rng;
