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
    /// The windowing and filtering a model's inputs went through, as its saved preprocessing
    /// states them (window, rate, band-pass edges and order, notch), with windows every
    /// `stride_s` seconds; quality checks and dtype at their defaults. Where a model's side
    /// turns its record back into a config, so that it need not know how this one is built.
    pub fn for_window(
        window_s: f64,
        fs: f64,
        stride_s: f64,
        band_hz: [f64; 2],
        filter_order: usize,
        notch_hz: Option<f64>,
    ) -> PrepareConfig {
        PrepareConfig {
            fs,
            window_s,
            stride_s,
            clean: CleanConfig {
                low_hz: band_hz[0],
                high_hz: band_hz[1],
                order: filter_order,
                notch_hz,
            },
            ..PrepareConfig::default()
        }
    }

    /// Samples per window at the target rate.
    pub fn window_len(&self) -> usize {
        (self.window_s * self.fs).round() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_window_sets_what_it_is_given_and_defaults_the_rest() {
        let c = PrepareConfig::for_window(8.0, 256.0, 2.0, [1.0, 30.0], 2, Some(50.0));
        assert_eq!(
            c,
            PrepareConfig {
                fs: 256.0,
                window_s: 8.0,
                stride_s: 2.0,
                clean: CleanConfig {
                    low_hz: 1.0,
                    high_hz: 30.0,
                    order: 2,
                    notch_hz: Some(50.0),
                },
                ..PrepareConfig::default()
            }
        );
    }
}
