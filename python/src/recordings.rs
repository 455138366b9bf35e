//! `cardiaffect.read`: the dataset readers, each recording's lead as a numpy array (a view of
//! the mapped file where the reader left it in place) with what the file says.

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{PyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use cardiaffect_io::{ChannelRef, Format, ReadOptions};

use crate::convert::{check_fs, f64_array};
use crate::errors::read_error;

/// One recording read from a file: its ECG lead in physical units and what the file says.
#[pyclass(module = "cardiaffect", frozen)]
pub struct Recording {
    /// The ECG lead, float64, in physical units as stored (never filtered).
    #[pyo3(get)]
    signal: Py<PyArray1<f64>>,
    #[pyo3(get)]
    fs: f64,
    #[pyo3(get)]
    dataset: String,
    #[pyo3(get)]
    source: String,
    #[pyo3(get)]
    subject: String,
    #[pyo3(get)]
    trial: String,
    /// A part of a trial that is its own recording (DREAMER's `baseline`), or None.
    #[pyo3(get)]
    segment: Option<String>,
    #[pyo3(get)]
    lead: String,
    #[pyo3(get)]
    unit: Option<String>,
    /// Label name -> value (None where the dataset has the field but no value).
    #[pyo3(get)]
    labels: Py<PyDict>,
    /// Label name -> {min, max, description, classes, inferred}.
    #[pyo3(get)]
    label_scales: Py<PyDict>,
    /// Other facts from the file (age, stimulus, start time).
    #[pyo3(get)]
    meta: BTreeMap<String, String>,
    channel_refs: Vec<ChannelRef>,
}

#[pymethods]
impl Recording {
    /// Names of the file's other channels (EDA, respiration, EEG, other leads).
    #[getter]
    fn channels(&self) -> Vec<String> {
        self.channel_refs.iter().map(|c| c.name.clone()).collect()
    }

    /// One other channel, read on demand, as float64: `(samples, fs)`.
    fn load_channel<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(Bound<'py, PyArray1<f64>>, f64)> {
        let c = self
            .channel_refs
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "no channel {name:?} in {}: it has {:?}",
                    self.source,
                    self.channels()
                ))
            })?;
        let data = py
            .allow_threads(|| c.load())
            .map_err(|e| read_error(py, e))?;
        Ok((f64_array(py, &data), c.fs))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Recording(dataset={:?}, subject={:?}, trial={:?}, lead={:?}, fs={}, samples={})",
            self.dataset,
            self.subject,
            self.trial,
            self.lead,
            self.fs,
            self.signal.bind(py).len()
        )
    }
}

/// Keeps a mapped file alive under the numpy arrays that view it.
#[pyclass(module = "cardiaffect", frozen)]
struct MappedFile {
    _values: cardiaffect_io::mapped::F64s,
}

/// The lead as float64: a view of the mapped file where the reader left it in place (nothing
/// copied; the mapping is private, so writing to the array never reaches the file), else
/// converted from the f32 samples.
fn signal_array<'py>(
    py: Python<'py>,
    r: &cardiaffect_io::Recording,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    match &r.stored {
        Some(v) if v.is_view() => {
            let owner = Bound::new(py, MappedFile { _values: v.clone() })?;
            let view = numpy::ndarray::ArrayView1::from(v.as_slice());
            // SAFETY: numpy needs the memory alive and in place while `owner`, the array's base
            // object, lives. `v` is a view into shared bytes (the match arm), so the clone in
            // `owner` holds an `Arc` of the same mapping (or buffer) that `view` points into,
            // which is never moved or reallocated while an `Arc` of it exists.
            Ok(unsafe { PyArray1::borrow_from_array(&view, owner.into_any()) })
        }
        // Owned values (no reader stores them today): a clone would be another buffer, so the
        // array gets a copy of its own.
        Some(v) => Ok(PyArray1::from_slice(py, v.as_slice())),
        None => Ok(f64_array(py, &r.samples)),
    }
}

fn recording(py: Python<'_>, r: cardiaffect_io::Recording) -> PyResult<Recording> {
    let labels = PyDict::new(py);
    let scales = PyDict::new(py);
    for l in &r.labels {
        let v: Option<f64> = l.value.is_finite().then_some(l.value);
        labels.set_item(&l.name, v)?;
        let s = PyDict::new(py);
        s.set_item("min", l.scale.min)?;
        s.set_item("max", l.scale.max)?;
        s.set_item("description", l.scale.description.as_ref())?;
        s.set_item("classes", l.scale.classes.clone())?;
        s.set_item("inferred", l.scale.inferred)?;
        scales.set_item(&l.name, s)?;
    }
    Ok(Recording {
        signal: signal_array(py, &r)?.unbind(),
        fs: r.fs,
        dataset: r.dataset,
        source: r.source.display().to_string(),
        subject: r.subject,
        trial: r.trial,
        segment: r.segment,
        lead: r.lead,
        unit: r.unit,
        labels: labels.unbind(),
        label_scales: scales.unbind(),
        meta: r.meta,
        channel_refs: r.channels,
    })
}

/// What [`read`] returns: a sequence of recordings, with the trials that were skipped (and
/// why) and the reader's warnings, as `cardiaffect inspect --json` lists them.
#[pyclass(module = "cardiaffect", frozen, sequence)]
pub struct Recordings {
    items: Vec<Py<Recording>>,
    /// Trials in the files that were not returned: dicts of source, subject, trial, kind, reason.
    #[pyo3(get)]
    skipped: Vec<Py<PyDict>>,
    #[pyo3(get)]
    warnings: Vec<String>,
}

#[pymethods]
impl Recordings {
    fn __len__(&self) -> usize {
        self.items.len()
    }

    fn __getitem__(&self, py: Python<'_>, i: isize) -> PyResult<Py<Recording>> {
        let n = self.items.len() as isize;
        let k = if i < 0 { i + n } else { i };
        if k < 0 || k >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "recording {i}: there are {n}"
            )));
        }
        Ok(self.items[k as usize].clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "Recordings({} recordings, {} skipped, {} warnings)",
            self.items.len(),
            self.skipped.len(),
            self.warnings.len()
        )
    }
}

/// Read every recording under `path` (a file or a dataset folder).
///
/// `format`: "auto" (detected), or one of amigos, dreamer, wesad, ascertain, wfdb, edf, npy,
/// csv, bids, brainvision. `lead`: a lead's name or 1-based number. `fs`: the sampling rate of
/// formats that store none (CSV, NPY). Returns a sequence of [`Recording`]s with `.skipped`
/// and `.warnings`.
#[pyfunction]
#[pyo3(signature = (path, format = "auto", lead = None, fs = None))]
pub(crate) fn read(
    py: Python<'_>,
    path: PathBuf,
    format: &str,
    lead: Option<String>,
    fs: Option<f64>,
) -> PyResult<Recordings> {
    let format: Format = format.parse().map_err(PyValueError::new_err)?;
    if let Some(f) = fs {
        check_fs(f, "fs")?;
    }
    let opts = ReadOptions {
        fs,
        lead,
        zero_copy: true,
        ..ReadOptions::default()
    };
    let out = py
        .allow_threads(|| cardiaffect_io::read(&path, format, &opts))
        .map_err(|e| read_error(py, e))?
        .output;
    let skipped = out
        .skipped
        .iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("source", s.source.display().to_string())?;
            d.set_item("subject", &s.subject)?;
            d.set_item("trial", &s.trial)?;
            d.set_item("kind", s.kind)?;
            d.set_item("reason", &s.reason)?;
            Ok(d.unbind())
        })
        .collect::<PyResult<Vec<_>>>()?;
    let items = out
        .recordings
        .into_iter()
        .map(|r| Py::new(py, recording(py, r)?))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Recordings {
        items,
        skipped,
        warnings: out.warnings,
    })
}
