//! `cardiaffect.prepare`: a corpus folder built from sources as `cardiaffect prepare` builds
//! it, with the command line's defaults.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::check_fs;
use crate::corpus::Corpus;
use crate::errors::{keywords, read_error_at};

/// Build (or bring up to date) the corpus folder `out` from `sources`, as `cardiaffect prepare`
/// does, and open it: each recording band-passed (zero phase), resampled to `fs`, cut into
/// `window`-second windows every `stride` seconds, each window checked for quality.
///
/// `sources`: one or a list of paths, each `PATH` (format detected) or `FORMAT:PATH` (e.g.
/// `"dreamer:/data/DREAMER.mat"`). `lead`: a lead's name or 1-based number; `input_fs`: the
/// rate of sources that store none (CSV, NPY); `band`: (low, high) Hz; `dtype`: "float32" or
/// "float16" windows. A second call with the same sources and settings reuses what is done.
/// The defaults are the command line's (10-s windows every 4 s: the bundled pre-trained model's).
#[pyfunction]
#[pyo3(signature = (sources, out, fs = 128.0, window = 10.0, stride = 4.0, lead = None, input_fs = None, band = (0.5, 40.0), dtype = "float32"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
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
