//! Normalisation: per-window z-score (pre-training), and statistics fitted on training data
//! only and applied to other data (fine-tuning).

use serde::{Deserialize, Serialize};

/// Z-score in place; a constant window becomes zeros.
pub fn zscore(x: &mut [f32]) {
    let n = x.len() as f64;
    if n == 0.0 {
        return;
    }
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    for v in x.iter_mut() {
        *v = if sd > 1e-12 {
            ((*v as f64 - mean) / sd) as f32
        } else {
            0.0
        };
    }
}

/// Mean and standard deviation fitted on training windows only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: f64,
    pub std: f64,
    /// How many samples the statistics came from.
    pub count: u64,
}

impl Standardizer {
    /// Fit on the given windows (the training fold).
    pub fn fit<'a>(windows: impl IntoIterator<Item = &'a [f32]>) -> Standardizer {
        // Welford: one pass, stable.
        let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
        for w in windows {
            for &v in w {
                n += 1;
                let d = v as f64 - mean;
                mean += d / n as f64;
                m2 += d * (v as f64 - mean);
            }
        }
        let std = if n > 1 { (m2 / n as f64).sqrt() } else { 1.0 };
        Standardizer {
            mean,
            std: if std > 1e-12 { std } else { 1.0 },
            count: n,
        }
    }

    pub fn apply(&self, x: &mut [f32]) {
        for v in x {
            *v = ((*v as f64 - self.mean) / self.std) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_and_fit() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        zscore(&mut x);
        let m: f32 = x.iter().sum::<f32>() / 4.0;
        assert!(m.abs() < 1e-6);
        let s = Standardizer::fit([&[1.0f32, 2.0][..], &[3.0, 4.0][..]]);
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.std - 1.25f64.sqrt()).abs() < 1e-12);
        let mut y = vec![2.5f32];
        s.apply(&mut y);
        assert_eq!(y, vec![0.0]);
    }
}
