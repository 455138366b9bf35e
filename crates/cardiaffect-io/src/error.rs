//! One error type for every reader: each variant names the file, and where it makes sense the
//! field (a MAT variable path, a header field, a pickle key) and what was expected.

use std::path::PathBuf;

/// Where in a file a low-level parser failed, before the file's path is known.
///
/// The byte-level parsers (MAT v5, pickle, NPY) work on `&[u8]`; the dataset layer attaches
/// the path with [`ParseError::in_file`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at byte {offset}: {field}: expected {expected}, found {found}")]
pub struct ParseError {
    pub offset: u64,
    pub field: String,
    pub expected: String,
    pub found: String,
}

impl ParseError {
    pub fn new(
        offset: usize,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        ParseError {
            offset: offset as u64,
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Attach the file this error came from.
    pub fn in_file(self, path: impl Into<PathBuf>, format: &'static str) -> IoError {
        IoError::Parse {
            path: path.into(),
            format,
            offset: self.offset,
            field: self.field,
            expected: self.expected,
            found: self.found,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: cannot read")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid {format} file: {field}: expected {expected}, found {found} (byte {offset})")]
    Parse {
        path: PathBuf,
        format: &'static str,
        offset: u64,
        field: String,
        expected: String,
        found: String,
    },

    /// The file parsed, but a field of the dataset layout is missing or has the wrong shape.
    #[error("{path}: field `{field}`: expected {expected}, found {found}")]
    Layout {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    #[error("{path}: {feature} is not supported: {hint}")]
    Unsupported {
        path: PathBuf,
        feature: String,
        hint: String,
    },

    #[error("{path}: a file named by field `{field}` is missing: {missing}")]
    MissingFile {
        path: PathBuf,
        field: String,
        missing: PathBuf,
    },

    #[error("{path}: cannot tell the format: {reason}")]
    UnknownFormat { path: PathBuf, reason: String },

    #[error("{path}: no recording found: {reason}")]
    Empty { path: PathBuf, reason: String },

    /// A read option ([`ReadOptions`](crate::ReadOptions) field `option`) this source cannot use.
    #[error("{path}: option ‹{option}›: {message}")]
    Option {
        path: PathBuf,
        option: &'static str,
        message: String,
    },
}

impl IoError {
    pub fn layout(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        IoError::Layout {
            path: path.into(),
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub fn open(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Open {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// Read a whole file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| IoError::open(path, e))
}

/// Read a JSON sidecar, naming it in the error.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    serde_json::from_slice(&read_file(path)?)
        .map_err(|e| IoError::layout(path, "JSON", "a JSON object", e.to_string()))
}
