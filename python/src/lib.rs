//! `import cardiaffect`: the dataset readers, NeuroKit2-named signal functions and the
//! subject-safe folds of the Rust crates, with numpy arrays in and out.
//!
//! Long calls release the GIL; Rust errors become `cardiaffect.ReadError` (an `OSError` with
//! `file` and `field` attributes where the error names them) or `ValueError`.
//!
//! One module a concern: `errors` (exceptions), `convert` (arrays and tables), `recordings`
//! (`read`), `signal` (NeuroKit2-named functions), `corpus`, `prepare`, `folds`, `model`.

use pyo3::prelude::*;

mod convert;
mod corpus;
mod errors;
mod folds;
mod model;
mod prepare;
mod recordings;
mod signal;

use corpus::Corpus;
use errors::ReadError;
use model::Model;
use recordings::{Recording, Recordings};

#[pymodule]
fn cardiaffect(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ReadError", m.py().get_type::<ReadError>())?;
    m.add_class::<Recording>()?;
    m.add_class::<Recordings>()?;
    m.add_class::<Corpus>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(recordings::read, m)?)?;
    m.add_function(wrap_pyfunction!(signal::ecg_clean, m)?)?;
    m.add_function(wrap_pyfunction!(signal::ecg_peaks, m)?)?;
    m.add_function(wrap_pyfunction!(signal::hrv_time, m)?)?;
    m.add_function(wrap_pyfunction!(signal::resample, m)?)?;
    m.add_function(wrap_pyfunction!(folds::folds, m)?)?;
    m.add_function(wrap_pyfunction!(prepare::prepare, m)?)?;
    Ok(())
}
