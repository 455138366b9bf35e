//! Which tokens the pretext task hides. A named, documented choice: add a strategy by adding
//! a variant here.

use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Masking {
    /// Contiguous spans of `span` tokens until about `ratio` of the tokens are hidden, as in
    /// BERT-style span masking (Joshi et al., "SpanBERT", TACL 2020) and masked time-series
    /// pre-training (Zerveas et al., KDD 2021). The default: 15 % in spans of 5 tokens
    /// (5 tokens = 20 samples = 156 ms at 128 Hz, about one QRS complex).
    Spans { ratio: f64, span: usize },
    /// Independent tokens, each hidden with probability `ratio`.
    RandomTokens { ratio: f64 },
}

impl Default for Masking {
    fn default() -> Self {
        Masking::Spans {
            ratio: 0.15,
            span: 5,
        }
    }
}

impl Masking {
    /// The ratio must hide some tokens and keep some; a span covers at least one token.
    pub fn validate(&self) -> Result<(), crate::TrainError> {
        let (ratio, span) = match *self {
            Masking::Spans { ratio, span } => (ratio, Some(span)),
            Masking::RandomTokens { ratio } => (ratio, None),
        };
        if !(ratio > 0.0 && ratio < 1.0) {
            return Err(crate::TrainError::Invalid {
                field: "masking.ratio",
                value: ratio.to_string(),
                expected: "a fraction in (0, 1)",
            });
        }
        if span == Some(0) {
            return Err(crate::TrainError::Invalid {
                field: "masking.span",
                value: "0".into(),
                expected: "at least 1 token",
            });
        }
        Ok(())
    }

    /// A `[batch * tokens]` row-major mask (true = hidden); every row hides at least one token.
    pub fn sample(&self, batch: usize, tokens: usize, rng: &mut Rng) -> Vec<bool> {
        let mut m = vec![false; batch * tokens];
        for row in m.chunks_mut(tokens) {
            match *self {
                Masking::Spans { ratio, span } => {
                    let span = span.clamp(1, tokens);
                    let target = ((ratio * tokens as f64).round() as usize).clamp(1, tokens);
                    let mut hidden = 0;
                    let mut guard = 0;
                    while hidden < target && guard < 100 * tokens {
                        guard += 1;
                        let start = rng.below(tokens - span + 1);
                        for v in &mut row[start..start + span] {
                            if !*v {
                                *v = true;
                                hidden += 1;
                            }
                        }
                    }
                }
                Masking::RandomTokens { ratio } => {
                    for v in row.iter_mut() {
                        *v = rng.uniform() < ratio;
                    }
                    if !row.iter().any(|&v| v) {
                        let i = rng.below(tokens);
                        row[i] = true;
                    }
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_hide_about_the_ratio_in_runs() {
        let m = Masking::default().sample(4, 320, &mut Rng::new(1));
        for row in m.chunks(320) {
            let n = row.iter().filter(|&&v| v).count();
            assert!((48..=52).contains(&n), "{n}");
            // Runs are at least one span long (spans may touch and merge).
            let mut run = 0;
            for (i, &v) in row.iter().enumerate() {
                if v {
                    run += 1;
                } else {
                    assert!(run == 0 || run >= 5, "run of {run} ending at {i}");
                    run = 0;
                }
            }
        }
        let r = Masking::RandomTokens { ratio: 0.2 }.sample(1, 1000, &mut Rng::new(2));
        let n = r.iter().filter(|&&v| v).count();
        assert!((150..=250).contains(&n), "{n}");
    }
}
