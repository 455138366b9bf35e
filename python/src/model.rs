//! `cardiaffect.Model`: a model folder (pre-trained or fine-tuned) for embeddings, class
//! probabilities, its weights in PyTorch's layout, and `predict`'s timeline on one recording.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{check_fs, one_lead, table};
use crate::errors::chain;

/// A model folder: pre-trained (`pretrain`'s output, or "bundled") or fine-tuned (`finetune`'s
/// `model/`), for CLS embeddings (features for scikit-learn) and, fine-tuned, class
/// probabilities.
///
/// The device and what holds one are boxed: Burn's `Device` is 64-byte aligned, and pyo3
/// places a class's Rust value in Python's object memory, which guarantees 16.
#[pyclass(module = "cardiaffect", unsendable)]
pub struct Model {
    dir: PathBuf,
    config: cardiaffect_model::ModelConfig,
    /// The model with its weights prepared for inference once.
    model: Box<cardiaffect_model::PreparedModel>,
    labels: Option<cardiaffect_bundle::Labels>,
    preprocess: Option<cardiaffect_bundle::Preprocess>,
    /// A fine-tuned model's bundle with its decision (calibration, operating point).
    predictor: Option<Box<cardiaffect_infer::Predictor>>,
    device: Box<burn::prelude::Device>,
}

// The reason for the boxes above, checked when this compiles.
const _: () = assert!(std::mem::align_of::<Model>() <= 16);

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
            model: Box::new(model.prepared()),
            labels,
            preprocess,
            predictor: predictor.map(Box::new),
            device: Box::new(device),
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
        let bytes = cardiaffect_model::safetensors_bytes(self.model.model(), true)
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
        let models = std::slice::from_ref(&**p);
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
