//! From recordings to a training corpus: windows on a global grid, quality checks, and the
//! on-disk corpus (numpy-readable windows, a metadata table, a manifest), built from shards
//! that later runs reuse.
// Unsafe code only where marked `#[allow(unsafe_code)]`: the mapping of windows.npy (corpus.rs).
#![deny(unsafe_code)]

pub mod blocks;
pub mod config;
pub mod corpus;
pub mod lock;
pub mod npy;
pub mod prepare;
pub mod synth;
pub mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use config::{Dtype, PrepareConfig};
pub use corpus::{Corpus, OpenOptions, Row};
pub use lock::{LockError, RunLock};
pub use prepare::{
    prepare, verify, LabelScale, Manifest, PrepareReport, Progress, ShardInfo, Source,
};
pub use window::{window_recording, window_recording_flagged, Dropped, WindowMeta, Windows};

/// The fixed columns of `windows.csv`, after `index` and before one column per label.
pub const META_COLUMNS: [&str; 9] = [
    "dataset",
    "source",
    "subject",
    "trial",
    "segment",
    "lead",
    "start_s",
    "hr_bpm",
    "condition",
];

/// Bumped whenever the corpus layout changes; a corpus of another version is refused.
/// 2: the manifest holds the checksums of the corpus files.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error(transparent)]
    Read(#[from] cardiaffect_io::IoError),
    #[error(transparent)]
    Signal(#[from] cardiaffect_signal::SignalError),
    #[error(transparent)]
    Write(#[from] cardiaffect_io::artifact::WriteError),
    #[error(transparent)]
    Verify(#[from] cardiaffect_io::artifact::VerifyError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{recording}: sampling rate {fs} Hz is below twice the band's upper edge ({needed} Hz): lower ‹prepare.clean› or use another source")]
    RateTooLow {
        recording: String,
        fs: f64,
        needed: f64,
    },
    #[error("option ‹{field}›: expected {expected}, found {found}")]
    Config {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("no window survived: {recordings} recordings read, {skipped} trials skipped, windows dropped by reason: {dropped:?}")]
    Empty {
        recordings: usize,
        skipped: usize,
        dropped: BTreeMap<String, usize>,
    },
    #[error("{path}: corpus format version {found} (made by {created_by}); this cardiaffect reads version {expected}: run `cardiaffect prepare` again")]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
        created_by: String,
    },
    #[error("label column `{column}`: {reason}")]
    LabelColumn { column: String, reason: String },
    #[error("{path}: row {row} (0-based, after the header), column `{column}`: expected {expected}, found {found:?}")]
    Cell {
        path: PathBuf,
        row: usize,
        column: String,
        expected: String,
        found: String,
    },
    #[error("{path}: damaged corpus: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {count} window(s) hold NaN or infinite values (indices {indices:?}{more}); prepare never writes such windows: run `cardiaffect prepare` again")]
    NonFinite {
        path: PathBuf,
        count: usize,
        indices: Vec<usize>,
        more: &'static str,
    },
}
