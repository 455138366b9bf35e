//! `import cardiaffect`: the dataset readers, NeuroKit2-named signal functions and the
//! subject-safe folds of the Rust crates, with numpy arrays in and out.
//!
//! Long calls release the GIL; Rust errors become `cardiaffect.ReadError` (an `OSError` with
//! `file` and `field` attributes where the error names them) or `ValueError`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use cardiaffect_io::{ChannelRef, Format, IoError, ReadOptions};

create_exception!(
    cardiaffect,
    ReadError,
    PyOSError,
    "A file that cannot be read as asked; `file` and `field` name where, when known."
);

/// Every message of an error chain, each once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    keywords(&cardiaffect_io::artifact::chain(e), false)
}

/// A message with the settings the libraries name (`‹field›`) spelt as this package's keyword
/// arguments: mostly the field's own name. `fs` is the read option (the input's rate), which
/// `prepare` calls `input_fs` beside its own `fs`.
fn keywords(message: &str, in_prepare: bool) -> String {
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

fn read_error(py: Python<'_>, e: IoError) -> PyErr {
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
fn read_error_at(
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

/// Columns as a pandas DataFrame when pandas is installed, else the dict itself.
fn table<'py>(py: Python<'py>, columns: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    match py.import("pandas") {
        Ok(pd) => pd.call_method1("DataFrame", (columns,)),
        Err(_) => Ok(columns.into_any()),
    }
}

/// Samples as a float64 numpy array (the Rust crates keep f32).
fn f64_array<'py>(py: Python<'py>, x: &[f32]) -> Bound<'py, PyArray1<f64>> {
    x.iter()
        .map(|&v| v as f64)
        .collect::<Vec<_>>()
        .into_pyarray(py)
}

fn value_error(e: impl std::error::Error + 'static) -> PyErr {
    PyValueError::new_err(chain(&e))
}

/// A sampling rate must be a positive, finite number of Hz.
fn check_fs(fs: f64, name: &str) -> PyResult<f64> {
    if fs.is_finite() && fs > 0.0 {
        Ok(fs)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} = {fs}: expected a positive, finite sampling rate in Hz"
        )))
    }
}

/// One lead of ECG as f32, from a 1-D numpy array of any float dtype.
fn one_lead(signal: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
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
        Some(v) => {
            let owner = Bound::new(py, MappedFile { _values: v.clone() })?;
            let view = numpy::ndarray::ArrayView1::from(v.as_slice());
            // SAFETY: numpy needs the memory alive and in place while `owner`, the array's base
            // object, lives. `stored` is only ever a view into shared bytes (the readers set it
            // only where `F64s::is_view`: `cardiaffect_io::datasets::lead_samples`), so the clone
            // in `owner` holds an `Arc` of the same mapping (or buffer) that `view` points into,
            // which is never moved or reallocated while an `Arc` of it exists.
            Ok(unsafe { PyArray1::borrow_from_array(&view, owner.into_any()) })
        }
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
fn read(
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

/// Band-pass (and optionally notch) an ECG with zero phase, as NeuroKit2's `ecg_clean`
/// (Butterworth order 4, 0.5-40 Hz by default). Returns float64.
#[pyfunction]
#[pyo3(signature = (ecg_signal, sampling_rate = 1000.0, lowcut = 0.5, highcut = 40.0, order = 4, powerline = None))]
fn ecg_clean<'py>(
    py: Python<'py>,
    ecg_signal: &Bound<'py, PyAny>,
    sampling_rate: f64,
    lowcut: f64,
    highcut: f64,
    order: usize,
    powerline: Option<f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let fs = check_fs(sampling_rate, "sampling_rate")?;
    let x = one_lead(ecg_signal)?;
    let cfg = cardiaffect_signal::CleanConfig {
        low_hz: lowcut,
        high_hz: highcut,
        order,
        notch_hz: powerline,
    };
    let y = py
        .allow_threads(|| cardiaffect_signal::ecg_clean(&x, fs, &cfg))
        .map_err(value_error)?;
    Ok(f64_array(py, &y))
}

/// R-peak sample indices by NeuroKit2's default method (`ecg_peaks(method="neurokit")`), on a
/// cleaned signal. Returns int64 indices.
#[pyfunction]
#[pyo3(signature = (ecg_cleaned, sampling_rate = 1000.0))]
fn ecg_peaks<'py>(
    py: Python<'py>,
    ecg_cleaned: &Bound<'py, PyAny>,
    sampling_rate: f64,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let fs = check_fs(sampling_rate, "sampling_rate")?;
    let x = one_lead(ecg_cleaned)?;
    let p = py.allow_threads(|| cardiaffect_signal::ecg_peaks_neurokit(&x, fs));
    Ok(p.into_iter()
        .map(|i| i as i64)
        .collect::<Vec<_>>()
        .into_pyarray(py))
}

/// Time- and frequency-domain HRV from R-peak indices: mean_hr_bpm, sdnn_ms, rmssd_ms,
/// pnn50_pct, lf_ms2, hf_ms2, lf_hf (None with fewer than three beats).
#[pyfunction]
#[pyo3(signature = (peaks, sampling_rate = 1000.0))]
fn hrv_time(
    py: Python<'_>,
    peaks: PyReadonlyArray1<'_, i64>,
    sampling_rate: f64,
) -> PyResult<Option<Py<PyDict>>> {
    let fs = check_fs(sampling_rate, "sampling_rate")?;
    let mut p = Vec::with_capacity(peaks.len());
    for &i in peaks.as_array() {
        if i < 0 {
            return Err(PyValueError::new_err(format!(
                "peaks: expected sample indices >= 0, found {i}"
            )));
        }
        p.push(i as usize);
    }
    let Some(h) = cardiaffect_signal::hrv(&p, fs) else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    for (k, v) in cardiaffect_signal::Hrv::NAMES.iter().zip(h.to_vec()) {
        d.set_item(*k, v)?;
    }
    Ok(Some(d.unbind()))
}

/// Resample from `sampling_rate` to `desired_sampling_rate` (polyphase, as
/// `scipy.signal.resample_poly`). Returns float64.
#[pyfunction]
fn resample<'py>(
    py: Python<'py>,
    signal: &Bound<'py, PyAny>,
    sampling_rate: f64,
    desired_sampling_rate: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let from = check_fs(sampling_rate, "sampling_rate")?;
    let to = check_fs(desired_sampling_rate, "desired_sampling_rate")?;
    let x = one_lead(signal)?;
    let y = py
        .allow_threads(|| cardiaffect_signal::resample(&x, from, to))
        .map_err(value_error)?;
    Ok(f64_array(py, &y))
}

/// A corpus folder written by `prepare` (`cardiaffect prepare` or its library call), opened and
/// checked against its checksums: its windows, their metadata and labels for any task.
#[pyclass(module = "cardiaffect", frozen)]
pub struct Corpus {
    inner: cardiaffect_corpus::Corpus,
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
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Corpus> {
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

/// A model folder: pre-trained (`pretrain`'s output, or "bundled") or fine-tuned (`finetune`'s
/// `model/`), for CLS embeddings (features for scikit-learn) and, fine-tuned, class
/// probabilities.
#[pyclass(module = "cardiaffect", unsendable)]
pub struct Model {
    dir: PathBuf,
    config: cardiaffect_model::ModelConfig,
    model: cardiaffect_model::Model,
    labels: Option<cardiaffect_bundle::Labels>,
    preprocess: Option<cardiaffect_bundle::Preprocess>,
    /// A fine-tuned model's bundle with its decision (calibration, operating point).
    predictor: Option<cardiaffect_infer::Predictor>,
    device: burn::prelude::Device,
}

impl Model {
    /// `f` on batches of the windows, its `width` values per window stacked into `[n, width]`.
    fn per_window(
        &self,
        windows: &Bound<'_, PyAny>,
        width: usize,
        f: impl Fn(burn::prelude::Tensor<2>) -> Vec<Vec<f64>> + Sync,
    ) -> PyResult<numpy::ndarray::Array2<f64>> {
        let (x, n) = self.rows(windows)?;
        let l = self.config.window_len;
        let out = windows.py().allow_threads(|| {
            let mut out: Vec<f64> = Vec::with_capacity(n * width);
            for chunk in x.chunks(64 * l) {
                let t = cardiaffect_model::batch::tensor(chunk.to_vec(), l, &self.device);
                out.extend(f(t).into_iter().flatten());
            }
            out
        });
        numpy::ndarray::Array2::from_shape_vec((n, width), out)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// `[n, window_len]` windows from a 2-D numpy array, as f32 rows z-scored one by one.
    fn rows(&self, windows: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, usize)> {
        let l = self.config.window_len;
        let (x, shape): (Vec<f32>, Vec<usize>) =
            if let Ok(a) = windows.extract::<numpy::PyReadonlyArray2<f32>>() {
                (a.as_array().iter().copied().collect(), a.shape().to_vec())
            } else if let Ok(a) = windows.extract::<numpy::PyReadonlyArray2<f64>>() {
                (
                    a.as_array().iter().map(|&v| v as f32).collect(),
                    a.shape().to_vec(),
                )
            } else {
                return Err(PyValueError::new_err(format!(
                    "windows: expected a 2-D numpy array of floats [n, {l}], got {}",
                    windows.get_type().name()?
                )));
            };
        if shape[1] != l {
            return Err(PyValueError::new_err(format!(
                "windows: expected rows of {l} samples (the model's window), got shape {shape:?}"
            )));
        }
        let mut x = x;
        cardiaffect_model::batch::zscore_rows(&mut x, l);
        Ok((x, shape[0]))
    }
}

fn model_error(e: impl std::error::Error + 'static) -> PyErr {
    PyOSError::new_err(chain(&e))
}

#[pymethods]
impl Model {
    /// Load a model folder (a `finetune` run folder stands for its `model/`), or `"bundled"`
    /// for the shipped pre-trained weights.
    #[staticmethod]
    fn load(path: &str) -> PyResult<Model> {
        let dir = if path == "bundled" {
            cardiaffect_model::bundled::weights_dir().map_err(model_error)?
        } else {
            cardiaffect_bundle::resolve(std::path::Path::new(path))
        };
        let device = burn::prelude::Device::flex();
        let (config, model) = cardiaffect_model::load_model(&dir, &device).map_err(model_error)?;
        let preprocess = cardiaffect_bundle::read_preprocess(&dir).map_err(model_error)?;
        let labels = cardiaffect_bundle::read_labels(&dir).map_err(model_error)?;
        let predictor = match labels {
            Some(_) => Some(
                cardiaffect_infer::Predictor::load(&dir, &device)
                    .map_err(|e| PyOSError::new_err(chain(&e)))?,
            ),
            None => None,
        };
        Ok(Model {
            dir,
            config,
            model,
            labels,
            preprocess,
            predictor,
            device,
        })
    }

    #[getter]
    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    /// Samples per window the model takes.
    #[getter]
    fn window_len(&self) -> usize {
        self.config.window_len
    }

    /// The sampling rate its windows must have (from `preprocess.json`), if recorded.
    #[getter]
    fn fs(&self) -> Option<f64> {
        self.preprocess.as_ref().map(|p| p.fs)
    }

    /// The classes of a fine-tuned model; None for a pre-trained one.
    #[getter]
    fn classes(&self) -> Option<Vec<String>> {
        self.labels.as_ref().map(|l| l.classes.clone())
    }

    /// CLS embeddings `[n, d_model]` (float32) of windows `[n, window_len]` prepared as the
    /// model's corpus was (e.g. `Corpus.windows`); each window is z-scored here.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        windows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, numpy::PyArray2<f32>>> {
        let a = self.per_window(windows, self.config.d_model, |t| {
            self.model.cls_embeddings(t)
        })?;
        Ok(a.mapv(|v| v as f32).into_pyarray(py))
    }

    /// Class probabilities `[n, classes]` (float64, softmax of the logits, before any
    /// calibration or operating point) of a fine-tuned model.
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        windows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, numpy::PyArray2<f64>>> {
        let Some(labels) = &self.labels else {
            return Err(PyValueError::new_err(format!(
                "{}: a pre-trained model has no classes (no labels.json): use embed(), or fine-tune it",
                self.dir.display()
            )));
        };
        let a = self.per_window(windows, labels.classes.len(), |t| {
            self.model
                .class_logits(t)
                .iter()
                .map(|row| cardiaffect_bundle::decision::softmax(row))
                .collect()
        })?;
        Ok(a.into_pyarray(py))
    }

    /// The model's config (`config.json`) as a dict: `reference/model.py`'s `Model(config)`.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = serde_json::to_string(&self.config)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        py.import("json")?.call_method1("loads", (text,))
    }

    /// The weights in PyTorch's layout (Linear `[out, in]`, LayerNorm `weight`/`bias`), the
    /// names `cardiaffect export` writes, as numpy float32 arrays; no torch needed.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let bytes = cardiaffect_model::safetensors_bytes(&self.model, true)
            .map_err(PyValueError::new_err)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let d = PyDict::new(py);
        let mut names = st.names();
        names.sort();
        for name in names {
            let t = st
                .tensor(name)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(PyValueError::new_err(format!(
                    "{name}: stored as {:?}, expected F32",
                    t.dtype()
                )));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let a = numpy::ndarray::ArrayD::from_shape_vec(t.shape().to_vec(), v)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            d.set_item(name, a.into_pyarray(py))?;
        }
        Ok(d)
    }

    /// [`state_dict`] as torch tensors, for
    /// `reference/model.py`: `Model(m.config).load_state_dict(m.to_torch_state_dict())`.
    fn to_torch_state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let torch = py.import("torch").map_err(|e| {
            pyo3::exceptions::PyImportError::new_err(format!(
                "to_torch_state_dict needs torch ({e}); state_dict() gives the same arrays in numpy"
            ))
        })?;
        let d = PyDict::new(py);
        for (k, v) in self.state_dict(py)?.iter() {
            d.set_item(k, torch.call_method1("from_numpy", (v,))?)?;
        }
        Ok(d)
    }

    /// The timeline `cardiaffect predict` writes, for one ECG lead `ecg` (1-D, physical units,
    /// any rate of at least twice the model's band) sampled at `fs` Hz: filtered, resampled and
    /// windowed as the model's corpus was, every `hop` seconds (default: half a window).
    /// Columns: start_s, end_s, quality (`ok` or the flaw), hr_bpm and `p_<class>` for each
    /// class, at the model's operating point. A model calibrated on each person is calibrated
    /// on this recording's good windows, or on `calibrate_from=(start_s, end_s)` (required for
    /// `baseline` calibration: a resting segment). A DataFrame with pandas, else a dict.
    #[pyo3(signature = (ecg, fs, hop = None, calibrate_from = None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        ecg: &Bound<'py, PyAny>,
        fs: f64,
        hop: Option<f64>,
        calibrate_from: Option<(f64, f64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(p) = &self.predictor else {
            return Err(PyValueError::new_err(format!(
                "{}: a pre-trained model has no classes (no labels.json): use embed(), or fine-tune it",
                self.dir.display()
            )));
        };
        let fs = check_fs(fs, "fs")?;
        let hop = match hop {
            Some(h) if h.is_finite() && h > 0.0 => h,
            Some(h) => {
                return Err(PyValueError::new_err(format!(
                    "hop {h}: expected a positive number of seconds"
                )))
            }
            None => p.preprocess.window_s / 2.0,
        };
        let rec = cardiaffect_io::Recording::new("array", "<array>", fs, one_lead(ecg)?);
        let models = std::slice::from_ref(p);
        let t = py
            .allow_threads(|| {
                cardiaffect_infer::predict_recording_calibrated(&rec, models, hop, calibrate_from)
            })
            .map_err(|e| PyValueError::new_err(chain(&e)))?;
        let d = PyDict::new(py);
        let col = |f: &dyn Fn(&cardiaffect_infer::TimelineRow) -> f64| -> Vec<f64> {
            t.rows.iter().map(f).collect()
        };
        d.set_item("start_s", col(&|r| r.start_s).into_pyarray(py))?;
        d.set_item("end_s", col(&|r| r.end_s).into_pyarray(py))?;
        d.set_item(
            "quality",
            t.rows.iter().map(|r| r.quality.clone()).collect::<Vec<_>>(),
        )?;
        d.set_item("hr_bpm", col(&|r| r.hr_bpm).into_pyarray(py))?;
        for (k, c) in p.labels.classes.iter().enumerate() {
            // Named as `predict`'s CSV names them.
            let name = format!("p_{}", c.replace([' ', ','], "_"));
            d.set_item(name, col(&|r| r.probs[0][k]).into_pyarray(py))?;
        }
        table(py, d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}: window {} samples, d_model {}, {})",
            self.path(),
            self.config.window_len,
            self.config.d_model,
            match &self.labels {
                Some(l) => format!("classes {:?}", l.classes),
                None => "pre-trained".into(),
            }
        )
    }
}

/// Build (or bring up to date) the corpus folder `out` from `sources`, as `cardiaffect prepare`
/// does, and open it: each recording band-passed (zero phase), resampled to `fs`, cut into
/// `window`-second windows every `stride` seconds, each window checked for quality.
///
/// `sources`: one or a list of paths, each `PATH` (format detected) or `FORMAT:PATH` (e.g.
/// `"dreamer:/data/DREAMER.mat"`). `lead`: a lead's name or 1-based number; `input_fs`: the
/// rate of sources that store none (CSV, NPY); `band`: (low, high) Hz; `dtype`: "float32" or
/// "float16" windows. A second call with the same sources and settings reuses what is done.
/// The defaults are the command line's (4-s windows: the bundled pre-trained model's).
#[pyfunction]
#[pyo3(signature = (sources, out, fs = 128.0, window = 10.0, stride = 4.0, lead = None, input_fs = None, band = (0.5, 40.0), dtype = "float32"))]
#[allow(clippy::too_many_arguments)]
fn prepare(
    py: Python<'_>,
    sources: &Bound<'_, PyAny>,
    out: PathBuf,
    fs: f64,
    window: f64,
    stride: f64,
    lead: Option<String>,
    input_fs: Option<f64>,
    band: (f64, f64),
    dtype: &str,
) -> PyResult<Corpus> {
    let specs: Vec<String> = if let Ok(one) = sources.extract::<PathBuf>() {
        vec![one.display().to_string()]
    } else if let Ok(many) = sources.extract::<Vec<PathBuf>>() {
        many.iter().map(|p| p.display().to_string()).collect()
    } else {
        return Err(PyValueError::new_err(format!(
            "sources: expected a path or a list of paths (\"FORMAT:PATH\" or \"PATH\"), got {}",
            sources.get_type().name()?
        )));
    };
    if specs.is_empty() {
        return Err(PyValueError::new_err("sources: expected at least one path"));
    }
    if let Some(f) = input_fs {
        check_fs(f, "input_fs")?;
    }
    let dtype = match dtype {
        "float32" | "f32" => cardiaffect_corpus::Dtype::F32,
        "float16" | "f16" => cardiaffect_corpus::Dtype::F16,
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype {other:?}: expected \"float32\" or \"float16\""
            )))
        }
    };
    let mut list = Vec::new();
    for spec in &specs {
        let mut src: cardiaffect_corpus::Source = spec.parse().map_err(PyValueError::new_err)?;
        if !src.path.exists() {
            return Err(read_error_at(
                py,
                format!("{}: no such file or folder", src.path.display()),
                Some(&src.path),
                None,
            ));
        }
        src.lead = lead.clone();
        src.fs = input_fs;
        list.push(src);
    }
    let defaults = cardiaffect_corpus::PrepareConfig::default();
    let cfg = cardiaffect_corpus::PrepareConfig {
        fs,
        window_s: window,
        stride_s: stride,
        clean: cardiaffect_signal::CleanConfig {
            low_hz: band.0,
            high_hz: band.1,
            ..defaults.clean.clone()
        },
        dtype,
        ..defaults
    };
    py.allow_threads(|| cardiaffect_corpus::prepare(&list, &out, &cfg, &|_| {}))
        .map_err(|e| match e {
            // A setting out of range is a wrong value, not a failed read.
            e @ cardiaffect_corpus::CorpusError::Config { .. } => {
                PyValueError::new_err(keywords(&cardiaffect_io::artifact::chain(&e), true))
            }
            e => read_error_at(
                py,
                keywords(&cardiaffect_io::artifact::chain(&e), true),
                Some(&out),
                None,
            ),
        })?;
    Corpus::new(py, out)
}

/// One fold's window indices: (train, test).
type TrainTest<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// The folds `cardiaffect finetune` uses on a corpus (a [`Corpus`] or its folder), as
/// `(train, test)` index arrays over its windows: usable as `cv=` in scikit-learn. `train`
/// holds the fold's training and validation windows; windows without a label for `task` are in
/// neither. `protocol`: subject-independent (no person on both sides), trial-grouped or paper.
#[pyfunction]
#[pyo3(signature = (corpus, task = "arousal", protocol = "subject-independent", n_folds = 5, seed = 1, val_fraction = 0.2))]
fn folds<'py>(
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

#[pymodule]
fn cardiaffect(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ReadError", m.py().get_type::<ReadError>())?;
    m.add_class::<Recording>()?;
    m.add_class::<Recordings>()?;
    m.add_class::<Corpus>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(ecg_clean, m)?)?;
    m.add_function(wrap_pyfunction!(ecg_peaks, m)?)?;
    m.add_function(wrap_pyfunction!(hrv_time, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(folds, m)?)?;
    m.add_function(wrap_pyfunction!(prepare, m)?)?;
    Ok(())
}
