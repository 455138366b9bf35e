//! Evaluation that can be put in a paper: binary or multi-class labels from a dataset's scale
//! with a named threshold ([`labels`]), cross-validation protocols that keep subjects or trials
//! on one side ([`protocol`]), metrics at window and trial level ([`metrics`]), the classic
//! HRV + logistic-regression baseline ([`hrv_baseline`]), and the results files ([`report`]).
#![forbid(unsafe_code)]

pub mod calibration;
pub mod hrv_baseline;
pub mod labels;
pub mod method;
pub mod metrics;
pub mod protocol;
pub mod report;

use std::path::PathBuf;

pub use calibration::{Calibration, OperatingPoint};
pub use labels::{make_labels, unlabeled_subjects, Labels, Task, Thresholds};
pub use method::Method;
pub use metrics::{trial_level, Metrics};
pub use protocol::{make_folds, Fold, Folds, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("corpus {corpus}: no labels for task `{task}`: {reason}")]
    NoLabels {
        corpus: PathBuf,
        task: String,
        reason: String,
    },
    #[error("{protocol}: {groups} {what} for {folds} folds: every fold needs at least one {what_one} in its test set (use fewer ‹folds›)")]
    TooFewGroups {
        protocol: String,
        groups: usize,
        folds: usize,
        what: &'static str,
        what_one: &'static str,
    },
    #[error("option ‹{field}›: expected {expected}, found {found}")]
    Config {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Choice(#[from] cardiaffect_bundle::InvalidChoice),
    #[error("HRV baseline, fold {fold}: {message}")]
    Baseline { fold: usize, message: String },
    #[error(transparent)]
    Write(#[from] cardiaffect_io::artifact::WriteError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
