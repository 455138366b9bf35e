//! The methods a `finetune` run compares, each named in every result.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One way of recognising affect from the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Method {
    /// The Transformer from pre-trained weights, fine-tuned.
    Pretrained,
    /// The same Transformer from random weights.
    Scratch,
    /// Two HRV features and logistic regression.
    Hrv,
    /// A model method and `hrv` joined (see `Fusion`).
    Fusion,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::Pretrained,
        Method::Scratch,
        Method::Hrv,
        Method::Fusion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Pretrained => "pretrained",
            Method::Scratch => "scratch",
            Method::Hrv => "hrv",
            Method::Fusion => "fusion",
        }
    }

    /// Whether it trains the Transformer.
    pub fn is_model(self) -> bool {
        matches!(self, Method::Pretrained | Method::Scratch)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Method, EvalError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| EvalError::Config {
                field: "method",
                expected: "pretrained, scratch, hrv or fusion".into(),
                found: format!("`{s}`"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialise_as_written() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
        let e = "svm".parse::<Method>().unwrap_err().to_string();
        assert!(
            e.contains("svm") && e.contains("pretrained, scratch, hrv or fusion"),
            "{e}"
        );
    }
}
