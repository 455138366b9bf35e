//! `cardiaffect.Corpus`: a prepared corpus folder, its windows memory-mapped, their metadata
//! as a table and their labels for any task.

use std::path::PathBuf;

use numpy::IntoPyArray;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::table;
use crate::errors::{chain, read_error_at, value_error};

/// A corpus folder written by `prepare` (`cardiaffect prepare` or its library call), opened and
/// checked against its checksums: its windows, their metadata and labels for any task.
#[pyclass(module = "cardiaffect", frozen)]
pub struct Corpus {
    pub(crate) inner: cardiaffect_corpus::Corpus,
}

fn corpus_error(
    py: Python<'_>,
    dir: &std::path::Path,
    e: cardiaffect_corpus::CorpusError,
) -> PyErr {
    read_error_at(py, chain(&e), Some(dir), None)
}

#[pymethods]
impl Corpus {
    #[new]
    pub(crate) fn new(py: Python<'_>, path: PathBuf) -> PyResult<Corpus> {
        let inner = py
            .allow_threads(|| cardiaffect_corpus::Corpus::open(&path))
            .map_err(|e| corpus_error(py, &path, e))?;
        Ok(Corpus { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.dir.display().to_string()
    }

    /// Samples per window.
    #[getter]
    fn window_len(&self) -> usize {
        self.inner.window_len()
    }

    /// The windows' sampling rate, Hz.
    #[getter]
    fn fs(&self) -> f64 {
        self.inner.manifest.config.fs
    }

    /// The label columns (any of them is a task for `labels` and `folds`).
    #[getter]
    fn label_columns(&self) -> Vec<String> {
        self.inner.manifest.label_columns.clone()
    }

    /// `[n, window_len]` float32, a read-only memory map of `windows.npy` (nothing is copied).
    #[getter]
    fn windows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let np = py.import("numpy")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("mmap_mode", "r")?;
        np.call_method(
            "load",
            (self.inner.dir.join("windows.npy").display().to_string(),),
            Some(&kwargs),
        )
    }

    /// One row per window: dataset, source, subject, trial, segment, lead, start_s, hr_bpm and
    /// every label column (NaN where absent; a categorical one's class names beside it, as
    /// `COLUMN_name`, None where absent); a pandas DataFrame when pandas is installed, else a
    /// dict of numpy arrays and lists.
    #[getter]
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = &self.inner.rows;
        let d = PyDict::new(py);
        let strings = |f: &dyn Fn(&cardiaffect_corpus::Row) -> String| -> Vec<String> {
            rows.iter().map(f).collect()
        };
        d.set_item("dataset", strings(&|r| r.dataset.clone()))?;
        d.set_item("source", strings(&|r| r.source.clone()))?;
        d.set_item("subject", strings(&|r| r.subject.clone()))?;
        d.set_item("trial", strings(&|r| r.trial.clone()))?;
        d.set_item("segment", strings(&|r| r.segment.clone()))?;
        d.set_item("lead", strings(&|r| r.lead.clone()))?;
        let floats = |f: &dyn Fn(&cardiaffect_corpus::Row) -> f64| -> Vec<f64> {
            rows.iter().map(f).collect()
        };
        d.set_item("start_s", floats(&|r| r.start_s).into_pyarray(py))?;
        d.set_item("hr_bpm", floats(&|r| r.hr_bpm).into_pyarray(py))?;
        for (k, c) in self.inner.manifest.label_columns.iter().enumerate() {
            d.set_item(
                c,
                floats(&|r| r.labels.get(k).copied().unwrap_or(f64::NAN)).into_pyarray(py),
            )?;
            // A categorical label's class names beside its indices, as in windows.csv.
            if let Some(name) =
                cardiaffect_corpus::corpus::class_name_column(&self.inner.manifest, c)
            {
                let names: Vec<Option<&str>> = (0..rows.len())
                    .map(|i| self.inner.class_name(i, k))
                    .collect();
                d.set_item(name, names)?;
            }
        }
        table(py, d)
    }

    /// Class labels of every window for `task` (arousal, valence, quadrant, condition, stress, or
    /// any label column): a dict with `y` (int64, -1 where the window has no label), `classes`,
    /// `counts` and `rule` (the rule, named, as every result states it). `threshold`: high =
    /// value > this (default: the scale's midpoint).
    #[pyo3(signature = (task, threshold = None))]
    fn labels<'py>(
        &self,
        py: Python<'py>,
        task: &str,
        threshold: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        use cardiaffect_eval::{make_labels, Task, Thresholds};
        let task: Task = task.parse().map_err(value_error)?;
        let mut th = Thresholds::default();
        match (&task, threshold) {
            (Task::Arousal, t) => th.arousal = t,
            (Task::Valence, t) => th.valence = t,
            (Task::Column(_), t) => th.column = t,
            (_, Some(t)) => {
                return Err(PyValueError::new_err(format!(
                    "threshold = {t}: task {task} has its own rule; a threshold is for arousal, valence or a numeric label column"
                )))
            }
            (_, None) => {}
        }
        let l = make_labels(&self.inner, task, &th).map_err(value_error)?;
        let d = PyDict::new(py);
        let y: Vec<i64> = l.y.iter().map(|v| v.map_or(-1, |c| c as i64)).collect();
        d.set_item("y", y.into_pyarray(py))?;
        d.set_item("classes", l.classes.clone())?;
        d.set_item("counts", l.counts.clone())?;
        d.set_item("rule", l.describe())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Corpus({:?}: {} windows of {} samples at {} Hz)",
            self.path(),
            self.inner.len(),
            self.inner.window_len(),
            self.fs()
        )
    }
}
