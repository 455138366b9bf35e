//! Values across the boundary: numpy arrays in (one ECG lead) and out (float64 samples),
//! tables as pandas DataFrames when pandas is there, and the checks on arguments they share.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Columns as a pandas DataFrame when pandas is installed, else the dict itself.
pub(crate) fn table<'py>(
    py: Python<'py>,
    columns: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    match py.import("pandas") {
        Ok(pd) => pd.call_method1("DataFrame", (columns,)),
        Err(_) => Ok(columns.into_any()),
    }
}

/// Samples as a float64 numpy array (the Rust crates keep f32).
pub(crate) fn f64_array<'py>(py: Python<'py>, x: &[f32]) -> Bound<'py, PyArray1<f64>> {
    x.iter()
        .map(|&v| v as f64)
        .collect::<Vec<_>>()
        .into_pyarray(py)
}

/// A sampling rate must be a positive, finite number of Hz.
pub(crate) fn check_fs(fs: f64, name: &str) -> PyResult<f64> {
    if fs.is_finite() && fs > 0.0 {
        Ok(fs)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} = {fs}: expected a positive, finite sampling rate in Hz"
        )))
    }
}

/// One lead of ECG as f32, from a 1-D numpy array of any float dtype.
pub(crate) fn one_lead(signal: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if let Ok(a) = signal.extract::<PyReadonlyArray1<f64>>() {
        return Ok(a.as_array().iter().map(|&v| v as f32).collect());
    }
    if let Ok(a) = signal.extract::<PyReadonlyArray1<f32>>() {
        return Ok(a.as_array().to_vec());
    }
    let shape = signal
        .getattr("shape")
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "none".into());
    Err(PyValueError::new_err(format!(
        "signal: expected a 1-D numpy array of floats (one ECG lead), got {} with shape {shape}",
        signal.get_type().name()?
    )))
}
