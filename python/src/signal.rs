//! The signal functions under NeuroKit2's and SciPy's names: cleaning, R-peaks, HRV and
//! resampling of one lead, float64 in and out.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{check_fs, f64_array, one_lead};
use crate::errors::value_error;

/// Band-pass (and optionally notch) an ECG with zero phase, as NeuroKit2's `ecg_clean`
/// (Butterworth order 4, 0.5-40 Hz by default). Returns float64.
#[pyfunction]
#[pyo3(signature = (ecg_signal, sampling_rate = 1000.0, lowcut = 0.5, highcut = 40.0, order = 4, powerline = None))]
pub(crate) fn ecg_clean<'py>(
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
pub(crate) fn ecg_peaks<'py>(
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
pub(crate) fn hrv_time(
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
pub(crate) fn resample<'py>(
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
