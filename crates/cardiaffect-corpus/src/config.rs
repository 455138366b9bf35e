//! What `prepare` does to every recording; saved in every corpus manifest.

use cardiaffect_signal::{CleanConfig, QualityConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
}

impl Dtype {
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F16 => "<f2",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareConfig {
    /// Target sampling rate (Hz).
    pub fs: f64,
    pub window_s: f64,
    pub stride_s: f64,
    pub clean: CleanConfig,
    pub quality: QualityConfig,
    pub dtype: Dtype,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            fs: 128.0,
            // The shipped pre-trained model's window (weights/bundled/), so that a corpus
            // prepared with the defaults fine-tunes from pre-training without a flag.
            window_s: 10.0,
            stride_s: 4.0,
            clean: CleanConfig::default(),
            quality: QualityConfig::default(),
            dtype: Dtype::F32,
        }
    }
}

impl PrepareConfig {
    /// Samples per window at the target rate.
    pub fn window_len(&self) -> usize {
        (self.window_s * self.fs).round() as usize
    }
}
