//! The train crate's one error type, and the small conversions its modules share.
//!
//! Kept apart from the modules that raise it (and with [`ReduceError`], which one of its
//! variants wraps) so that every module depends on it and it on none of them.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] cardiaffect_corpus::CorpusError),
    #[error(transparent)]
    Model(#[from] cardiaffect_model::ModelError),
    #[error(transparent)]
    Bundle(#[from] cardiaffect_bundle::BundleError),
    #[error(transparent)]
    Write(#[from] cardiaffect_io::artifact::WriteError),
    #[error(transparent)]
    Verify(#[from] cardiaffect_io::artifact::VerifyError),
    #[error(transparent)]
    Lock(#[from] cardiaffect_corpus::LockError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("corpus {path}: {field} is {found}, the model expects {expected}")]
    Mismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Data(String),
    /// A config field outside its range (the CLI names the flag that set it).
    #[error("‹{field}› {value}: expected {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("loss became {loss} at step {step}: training stopped; the last good checkpoint (step {last_checkpoint}) is kept in {run}")]
    NonFinite {
        step: usize,
        loss: f32,
        last_checkpoint: usize,
        run: PathBuf,
    },
    #[error("‹resume› {run}: it was made with another configuration: {differences}")]
    ResumeMismatch { run: PathBuf, differences: String },
    /// The group's size is not the one the configuration (or the resumed run) was made for.
    #[error("{run}: the run is made for {configured} processes (world_size in its pretrain.json), this group has {group}; start {configured} ranks (mpirun -n {configured}), or begin a new run")]
    WorldSize {
        run: PathBuf,
        configured: usize,
        group: usize,
    },
    /// A rank of a data-parallel group sees other inputs or state than rank 0.
    #[error("rank {rank} of the group differs from rank 0 in {what}")]
    RanksDisagree { rank: usize, what: String },
    /// Summing over the group failed (a rank died, or the transport broke).
    #[error("summing gradients over the group (step {step})")]
    Reduce {
        step: usize,
        #[source]
        source: ReduceError,
    },
}

/// Summing over a data-parallel group failed ([`crate::distributed`] raises it; re-exported
/// there).
#[derive(Debug, thiserror::Error)]
pub enum ReduceError {
    #[error("rank {rank} left the group before the sum was complete")]
    Left { rank: usize },
    #[error("rank {rank} gave {found} values to sum where rank 0 gave {expected}")]
    Length {
        rank: usize,
        found: usize,
        expected: usize,
    },
    #[error(
        "rank {rank}'s values did not reach the others: the reducer does not sum over the group"
    )]
    NotSummed { rank: usize },
    /// An error of the transport (MPI, ...) in its words.
    #[error("{transport}: {message}")]
    Transport {
        transport: &'static str,
        message: String,
    },
}

/// Maps an OS error to [`TrainError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// An evaluation error as [`TrainError::Data`] (its message is all the caller needs).
pub(crate) fn eval_err(e: cardiaffect_eval::EvalError) -> TrainError {
    TrainError::Data(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::path::PathBuf;

    /// Every library error that wraps an OS error names the file and leaves the cause to its
    /// source: printed as a chain (as the CLI does), the cause appears once.
    #[test]
    fn every_error_with_an_os_cause_says_it_once() {
        let cause = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let text = cause().to_string();
        let p = || PathBuf::from("/run/x.json");
        let errors: Vec<Box<dyn Error>> = vec![
            Box::new(cardiaffect_io::IoError::Open {
                path: p(),
                source: cause(),
            }),
            Box::new(cardiaffect_corpus::CorpusError::Io {
                path: p(),
                source: cause(),
            }),
            Box::new(cardiaffect_model::ModelError::Io {
                path: p(),
                source: cause(),
            }),
            Box::new(cardiaffect_eval::EvalError::Io {
                path: p(),
                source: cause(),
            }),
            Box::new(super::TrainError::Io {
                path: p(),
                source: cause(),
            }),
            Box::new(super::TrainError::from(
                cardiaffect_corpus::CorpusError::from(cardiaffect_io::artifact::WriteError::new(
                    p(),
                    cause(),
                )),
            )),
            Box::new(cardiaffect_corpus::LockError::Io {
                path: p(),
                source: cause(),
            }),
            Box::new(cardiaffect_io::artifact::VerifyError::Read {
                path: p(),
                source: cause(),
            }),
        ];
        for e in errors {
            let mut all = vec![e.to_string()];
            let mut cur = e.source();
            while let Some(s) = cur {
                all.push(s.to_string());
                cur = s.source();
            }
            let chain = all.join(": ");
            assert_eq!(chain.matches(&text).count(), 1, "{chain}");
            assert!(chain.contains("/run/x.json"), "{chain}");
        }
    }
}
