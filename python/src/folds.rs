//! `cardiaffect.folds`: the subject-safe folds `cardiaffect finetune` evaluates on, as index
//! arrays scikit-learn takes for `cv=`.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::corpus::Corpus;
use crate::errors::{chain, value_error};

/// One fold's window indices: (train, test).
type TrainTest<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// The folds `cardiaffect finetune` uses on a corpus (a [`Corpus`] or its folder), as
/// `(train, test)` index arrays over its windows: usable as `cv=` in scikit-learn. `train`
/// holds the fold's training and validation windows; windows without a label for `task` are in
/// neither. `protocol`: subject-independent (no person on both sides), trial-grouped or paper.
#[pyfunction]
#[pyo3(signature = (corpus, task = "arousal", protocol = "subject-independent", n_folds = 5, seed = 1, val_fraction = 0.2))]
pub(crate) fn folds<'py>(
    py: Python<'py>,
    corpus: &Bound<'py, PyAny>,
    task: &str,
    protocol: &str,
    n_folds: usize,
    seed: u64,
    val_fraction: f64,
) -> PyResult<Vec<TrainTest<'py>>> {
    use cardiaffect_eval::{make_folds, make_labels, Folds, Protocol, Task, Thresholds};
    let corpus: PathBuf = match corpus.downcast::<Corpus>() {
        Ok(c) => c.get().inner.dir.clone(),
        Err(_) => corpus.extract()?,
    };
    let task: Task = task.parse().map_err(value_error)?;
    let protocol: Protocol = protocol.parse().map_err(value_error)?;
    if n_folds < 2 {
        return Err(PyValueError::new_err(format!(
            "n_folds = {n_folds}: expected at least 2"
        )));
    }
    let folds = py.allow_threads(|| -> Result<_, String> {
        let c = cardiaffect_corpus::Corpus::open(&corpus).map_err(|e| chain(&e))?;
        let labels = make_labels(&c, task, &Thresholds::default()).map_err(|e| chain(&e))?;
        let usable: Vec<usize> = (0..c.len()).filter(|&i| labels.y[i].is_some()).collect();
        make_folds(
            &c.rows,
            &usable,
            protocol,
            Folds::K(n_folds),
            val_fraction,
            seed,
        )
        .map_err(|e| chain(&e))
    });
    let folds = folds.map_err(PyValueError::new_err)?;
    Ok(folds
        .into_iter()
        .map(|f| {
            let mut train: Vec<i64> = f.train.iter().chain(&f.val).map(|&i| i as i64).collect();
            train.sort_unstable();
            let test: Vec<i64> = f.test.iter().map(|&i| i as i64).collect();
            (train.into_pyarray(py), test.into_pyarray(py))
        })
        .collect())
}
