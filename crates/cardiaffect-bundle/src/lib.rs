//! The model folder format ("bundle"): what `pretrain` and `finetune` write and `predict`,
//! `stream`, `export` and `finetune --pretrained` read.
//!
//! - `config.json` (`cardiaffect_model::ModelConfig`) and `model.safetensors` (the weights),
//!   always;
//! - `preprocess.json` ([`Preprocess`]): how the inputs were prepared;
//! - `labels.json` and `operating_point.json` (a fine-tuned model: its classes, and the
//!   calibration and threshold it decides at);
//! - `checksums.json`: the files above as written (checked when read).
//!
//! A `finetune` run folder stands for its final model, `RUN/model/` ([`resolve`]).
//!
//! This crate owns the folder's file names and its plain records (serde types and the few
//! functions that apply them); the model and its weights, which need Burn, stay in
//! `cardiaffect-model` (`ModelBundle`). Kept apart so that the statistics crates
//! (`cardiaffect-eval`) read and write these records without compiling Burn.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod decision;
pub mod labels;

pub use decision::{Calibration, OperatingPoint, OPERATING_POINT_FILE};
pub use labels::{Labels, Rule, Task};

/// The weights, in safetensors.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The model's config (architecture).
pub const CONFIG_FILE: &str = "config.json";
/// The preprocessing of the model's inputs.
pub const PREPROCESS_FILE: &str = "preprocess.json";
/// The classes of a fine-tuned model.
pub const LABELS_FILE: &str = "labels.json";

/// A model folder's file that cannot be read or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file is there but is not what it should be (the text says what).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `dir/name` parsed; an error names the file and says what it should hold.
pub fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    what: &str,
) -> Result<T, BundleError> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).map_err(|e| BundleError::Invalid {
        path: p.clone(),
        message: format!("cannot read it ({e}): {what}"),
    })?;
    serde_json::from_str(&text).map_err(|e| BundleError::Invalid {
        path: p,
        message: format!("not a valid {name}: {e}"),
    })
}

/// A name outside a closed set of choices (a task, a calibration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("option ‹{field}›: expected {expected}, found {found}")]
pub struct InvalidChoice {
    pub field: &'static str,
    pub expected: String,
    pub found: String,
}

/// The preprocessing of a model's inputs (written beside it by `pretrain` and `finetune`).
/// The window is held once, as seconds and rate ([`Preprocess::window_len`] derives the
/// samples); the file keeps its shape ([`PreprocessFile`]: `window_len` written too, and
/// checked against the two when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "PreprocessFile", try_from = "PreprocessFile")]
pub struct Preprocess {
    /// Band-pass edges, Hz.
    pub band_hz: [f64; 2],
    /// Butterworth order of the band-pass (zero phase in training data).
    pub filter_order: usize,
    /// Sampling rate of the windows, Hz.
    pub fs: f64,
    /// How each window is normalised before the model (`z-score per window`).
    pub normalisation: String,
    /// Powerline notch, Hz, if any.
    pub notch_hz: Option<f64>,
    /// Seconds per window.
    pub window_s: f64,
}

impl Preprocess {
    /// Samples per window: `window_s * fs`, rounded (as `prepare` cuts them).
    pub fn window_len(&self) -> usize {
        window_len(self.window_s, self.fs)
    }
}

/// Samples in a window of `window_s` seconds at `fs` Hz, rounded as `prepare` counts them
/// (`PrepareConfig::window_len`, which the corpus crate cannot share: it does not depend on
/// this one).
fn window_len(window_s: f64, fs: f64) -> usize {
    (window_s * fs).round() as usize
}

/// `preprocess.json` as written: [`Preprocess`] with the window's samples too, fields in
/// alphabetical order (the order the file has always had).
#[derive(Serialize, Deserialize)]
struct PreprocessFile {
    band_hz: [f64; 2],
    filter_order: usize,
    fs: f64,
    normalisation: String,
    notch_hz: Option<f64>,
    window_len: usize,
    window_s: f64,
}

impl From<Preprocess> for PreprocessFile {
    fn from(p: Preprocess) -> PreprocessFile {
        PreprocessFile {
            window_len: p.window_len(),
            band_hz: p.band_hz,
            filter_order: p.filter_order,
            fs: p.fs,
            normalisation: p.normalisation,
            notch_hz: p.notch_hz,
            window_s: p.window_s,
        }
    }
}

impl TryFrom<PreprocessFile> for Preprocess {
    type Error = String;

    fn try_from(f: PreprocessFile) -> Result<Preprocess, String> {
        let derived = window_len(f.window_s, f.fs);
        if f.window_len != derived {
            return Err(format!(
                "field window_len: expected {derived} samples ({} s at {} Hz), found {}",
                f.window_s, f.fs, f.window_len
            ));
        }
        Ok(Preprocess {
            band_hz: f.band_hz,
            filter_order: f.filter_order,
            fs: f.fs,
            normalisation: f.normalisation,
            notch_hz: f.notch_hz,
            window_s: f.window_s,
        })
    }
}

/// How every window is normalised.
pub const NORMALISATION: &str = "z-score per window";

/// The model folder `dir` names: itself, or the final `model/` of a `finetune` run folder.
pub fn resolve(dir: &Path) -> PathBuf {
    if !dir.join(CONFIG_FILE).exists() && dir.join("model").join(CONFIG_FILE).exists() {
        dir.join("model")
    } else {
        dir.to_path_buf()
    }
}

/// `dir/preprocess.json`, if the folder has one (weights made by hand may not); a file that is
/// there but does not parse is an error naming it.
pub fn read_preprocess(dir: &Path) -> Result<Option<Preprocess>, BundleError> {
    let p = dir.join(PREPROCESS_FILE);
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BundleError::Io { path: p, source: e }),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| BundleError::Invalid {
            path: p,
            message: format!("not a preprocessing record: {e}"),
        })
}

/// `dir/labels.json`, if the folder has one (a pre-trained model has none); a file that is
/// there but does not parse is an error naming it.
pub fn read_labels(dir: &Path) -> Result<Option<Labels>, BundleError> {
    let p = dir.join(LABELS_FILE);
    match std::fs::metadata(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_json(dir, LABELS_FILE, "the classes the model predicts").map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_reads_and_writes_the_bundled_file_unchanged() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/bundled");
        let text = std::fs::read_to_string(dir.join(PREPROCESS_FILE)).unwrap();
        let p = read_preprocess(&dir).unwrap().unwrap();
        assert_eq!(p.window_len(), 1280);
        assert_eq!(serde_json::to_string_pretty(&p).unwrap(), text.trim_end());
    }

    #[test]
    fn labels_are_optional_but_a_damaged_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_labels(d.path()).unwrap().is_none());
        std::fs::write(d.path().join(LABELS_FILE), b"{\"task\": ").unwrap();
        let e = read_labels(d.path()).unwrap_err().to_string();
        assert!(e.contains(LABELS_FILE), "{e}");
    }

    #[test]
    fn a_preprocess_file_whose_window_disagrees_with_itself_is_an_error_naming_the_field() {
        let d = tempfile::tempdir().unwrap();
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/bundled");
        let text = std::fs::read_to_string(bundled.join(PREPROCESS_FILE)).unwrap();
        let text = text.replace("\"window_len\": 1280", "\"window_len\": 1000");
        std::fs::write(d.path().join(PREPROCESS_FILE), text).unwrap();
        let e = read_preprocess(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(PREPROCESS_FILE) && e.contains("window_len"),
            "{e}"
        );
        assert!(
            e.contains("expected 1280 samples") && e.contains("found 1000"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_preprocess_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_preprocess(d.path()).unwrap().is_none());
        std::fs::write(d.path().join(PREPROCESS_FILE), b"{\"fs\": 128").unwrap();
        let e = read_preprocess(d.path()).unwrap_err().to_string();
        assert!(e.contains(PREPROCESS_FILE), "{e}");
    }
}
