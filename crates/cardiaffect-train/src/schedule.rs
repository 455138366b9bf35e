//! The learning-rate schedule of pre-training and fine-tuning: a linear warm-up to the peak
//! rate, then a half cosine down to zero at the last step.

/// Linear warm-up over `warmup` steps to `lr`, then a half cosine to 0 at `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    pub lr: f64,
    pub warmup: usize,
    pub steps: usize,
}

impl WarmupCosine {
    /// The rate of step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let p = ((step - self.warmup) as f64 / span).min(1.0);
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_falls_as_a_half_cosine() {
        let s = WarmupCosine {
            lr: 1e-3,
            warmup: 10,
            steps: 110,
        };
        assert_eq!(s.at(0), 1e-4);
        assert_eq!(s.at(9), 1e-3);
        assert_eq!(s.at(10), 1e-3);
        assert!(
            (s.at(60) - 5e-4).abs() < 1e-15,
            "half way down: {}",
            s.at(60)
        );
        assert!(s.at(110).abs() < 1e-18);
        assert!(s.at(500).abs() < 1e-18, "past the end it stays at 0");
        // More warm-up than steps: every step warms up (no underflow).
        let short = WarmupCosine {
            lr: 1.0,
            warmup: 8,
            steps: 4,
        };
        assert_eq!(short.at(3), 0.5);
    }
}
