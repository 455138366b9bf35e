//! Rust errors as Python exceptions: `cardiaffect.ReadError` (an `OSError` naming the file
//! and field where known) for what cannot be read, `ValueError` for a wrong value, with the
//! libraries' setting names spelt as this package's keyword arguments.

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use cardiaffect_io::IoError;

create_exception!(
    cardiaffect,
    ReadError,
    PyOSError,
    "A file that cannot be read as asked; `file` and `field` name where, when known."
);

/// Every message of an error chain, each once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    keywords(&cardiaffect_io::artifact::chain(e), false)
}

/// A message with the settings the libraries name (`‹field›`) spelt as this package's keyword
/// arguments: mostly the field's own name. `fs` is the read option (the input's rate), which
/// `prepare` calls `input_fs` beside its own `fs`.
pub(crate) fn keywords(message: &str, in_prepare: bool) -> String {
    cardiaffect_io::setting::spell(message, |field| {
        match field {
            "fs" if in_prepare => "input_fs",
            "prepare.fs" => "fs",
            "prepare.window_s" => "window",
            "prepare.stride_s" => "stride",
            "prepare.clean" => "band",
            "no_verify" => "verify=False",
            "method" => "methods",
            f => f,
        }
        .to_string()
    })
}

pub(crate) fn read_error(py: Python<'_>, e: IoError) -> PyErr {
    let (file, field): (Option<PathBuf>, Option<String>) = match &e {
        IoError::Open { path, .. }
        | IoError::MissingFile { path, .. }
        | IoError::UnknownFormat { path, .. }
        | IoError::Empty { path, .. } => (Some(path.clone()), None),
        IoError::Layout { path, field, .. } => (Some(path.clone()), Some(field.clone())),
        IoError::Option { path, option, .. } => (Some(path.clone()), Some(option.to_string())),
        _ => (None, None),
    };
    read_error_at(py, chain(&e), file.as_deref(), field)
}

/// A `ReadError` with its message, and the file and field it is about where known.
pub(crate) fn read_error_at(
    py: Python<'_>,
    message: String,
    file: Option<&std::path::Path>,
    field: Option<String>,
) -> PyErr {
    let err = ReadError::new_err(message);
    let value = err.value(py);
    let _ = value.setattr("file", file.map(|p| p.display().to_string()));
    let _ = value.setattr("field", field);
    err
}

pub(crate) fn value_error(e: impl std::error::Error + 'static) -> PyErr {
    PyValueError::new_err(chain(&e))
}
