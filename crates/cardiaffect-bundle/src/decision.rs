//! How a fine-tuned model decides (`operating_point.json`): the calibration that removes a
//! person's offset and scale from its scores, and the threshold it decides at. Chosen by
//! `cardiaffect_eval::calibration` on training people; applied by `predict` and `stream`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::InvalidChoice;

/// Written beside a fine-tuned model (its calibration and threshold), read by `predict`.
pub const OPERATING_POINT_FILE: &str = "operating_point.json";

/// Which statistics of a person remove their offset and scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Calibration {
    None,
    /// The default: measured better than `none` for every method on the demo's folds (README).
    #[default]
    Subject,
    Baseline,
}

impl Calibration {
    pub const ALL: [&'static str; 3] = ["none", "subject", "baseline"];

    /// One line for results files.
    pub fn describe(&self) -> &'static str {
        match self {
            Calibration::None => "none (scores used as the model gives them)",
            Calibration::Subject => {
                "subject (each person's scores z-scored with the mean and std of all of that person's windows; no label read)"
            }
            Calibration::Baseline => {
                "baseline (each person's scores z-scored with the mean and std of that person's rest/baseline windows)"
            }
        }
    }
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Calibration::None => "none",
            Calibration::Subject => "subject",
            Calibration::Baseline => "baseline",
        })
    }
}

impl FromStr for Calibration {
    type Err = InvalidChoice;
    fn from_str(s: &str) -> Result<Self, InvalidChoice> {
        match s {
            "none" => Ok(Calibration::None),
            "subject" => Ok(Calibration::Subject),
            "baseline" => Ok(Calibration::Baseline),
            _ => Err(InvalidChoice {
                field: "calibration",
                expected: "none, subject or baseline".into(),
                found: s.into(),
            }),
        }
    }
}

/// Column-wise mean and standard deviation over finite values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Rows the statistics came from.
    pub n: usize,
}

impl Standardiser {
    /// Statistics of `rows` (all the same width); `None` without rows. A column without finite
    /// values gets mean 0, std 1; a constant column std 1 (it is only centred).
    pub fn fit<'a>(rows: impl IntoIterator<Item = &'a [f64]>) -> Option<Standardiser> {
        let mut sum: Vec<f64> = Vec::new();
        let mut sq: Vec<f64> = Vec::new();
        let mut cnt: Vec<usize> = Vec::new();
        let mut n = 0;
        for r in rows {
            if sum.is_empty() {
                sum = vec![0.0; r.len()];
                sq = vec![0.0; r.len()];
                cnt = vec![0; r.len()];
            }
            n += 1;
            for (j, &v) in r.iter().enumerate().take(sum.len()) {
                if v.is_finite() {
                    sum[j] += v;
                    sq[j] += v * v;
                    cnt[j] += 1;
                }
            }
        }
        if n == 0 {
            return None;
        }
        let mut mean = vec![0.0; sum.len()];
        let mut std = vec![1.0; sum.len()];
        for j in 0..sum.len() {
            if cnt[j] > 0 {
                let m = sum[j] / cnt[j] as f64;
                let var = (sq[j] / cnt[j] as f64 - m * m).max(0.0);
                mean[j] = m;
                std[j] = if var.sqrt() > 1e-9 { var.sqrt() } else { 1.0 };
            }
        }
        Some(Standardiser { mean, std, n })
    }

    /// Standardise one row in place (non-finite values stay as they are, for imputation).
    pub fn apply(&self, row: &mut [f64]) {
        for (j, v) in row.iter_mut().enumerate().take(self.mean.len()) {
            if v.is_finite() {
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
    }
}

/// Class scores as centred log-probabilities (logits up to a constant per row).
pub fn logits(probs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    probs
        .iter()
        .map(|p| {
            // f64 probabilities: exact logits up to a gap of about 700.
            let l: Vec<f64> = p.iter().map(|&v| v.max(f64::MIN_POSITIVE).ln()).collect();
            let m = l.iter().sum::<f64>() / l.len().max(1) as f64;
            l.into_iter().map(|v| v - m).collect()
        })
        .collect()
}

/// Probabilities from logits (softmax, stable).
pub fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// Where the decision is made, saved with every model and stated in every result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub calibration: Calibration,
    /// Two classes: the second class is decided when its (calibrated) probability is above
    /// this. `None` for more classes (the most probable class is decided).
    pub threshold: Option<f64>,
    /// The class the threshold is for.
    pub positive_class: Option<String>,
    /// Who it was chosen on, e.g. "validation people P03, P08 (training fold 2)".
    pub chosen_on: String,
    /// Their balanced accuracy at the threshold.
    pub val_balanced_accuracy: Option<f64>,
}

/// Move the decision of two-class probabilities to `threshold`: p1' = σ(logit p1 − logit t),
/// a monotone map (AUROC unchanged) under which the most probable class is the one the
/// threshold decides (p1 > t ⇔ p1' > 0.5).
pub fn apply_threshold(probs: &mut [Vec<f64>], threshold: f64) {
    let lt = (threshold / (1.0 - threshold)).ln();
    for p in probs.iter_mut() {
        if p.len() != 2 {
            continue;
        }
        let q = p[1].clamp(1e-15, 1.0 - 1e-15);
        let z = (q / (1.0 - q)).ln() - lt;
        let p1 = 1.0 / (1.0 + (-z).exp());
        p[1] = p1;
        p[0] = 1.0 - p1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_and_softmax_round_trip() {
        let p = vec![vec![0.2, 0.8], vec![0.1, 0.3, 0.6]];
        for (row, l) in p.iter().zip(logits(&p)) {
            assert!(l.iter().sum::<f64>().abs() < 1e-12);
            for (a, b) in softmax(&l).iter().zip(row) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        assert_eq!(
            "subject".parse::<Calibration>().unwrap(),
            Calibration::Subject
        );
        assert!("per-person".parse::<Calibration>().is_err());
    }
}
