//! A model folder ("bundle"): what `pretrain` and `finetune` write and `predict`, `stream`,
//! `export` and `finetune --pretrained` read.
//!
//! - `config.json` ([`crate::ModelConfig`]) and `model.safetensors` (the weights), always;
//! - `preprocess.json` ([`Preprocess`]): how the inputs were prepared;
//! - `labels.json` and `operating_point.json` (a fine-tuned model: its classes, and the
//!   calibration and threshold it decides at);
//! - `checksums.json`: the files above as written (checked when read).
//!
//! A `finetune` run folder stands for its final model, `RUN/model/` ([`resolve`]). A fine-tuned
//! folder is one [`ModelBundle`]: written whole by `finetune`, read whole by `predict`/`stream`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use burn::prelude::Device;
use cardiaffect_io::artifact;

use crate::weights::{load_model, save_model};
use crate::{Model, ModelConfig, ModelError};

pub mod decision;
pub mod labels;

pub use crate::weights::{CONFIG_FILE, WEIGHTS_FILE};
pub use decision::{Calibration, OperatingPoint, OPERATING_POINT_FILE};
pub use labels::{Labels, Rule, Task};
/// The preprocessing of the model's inputs.
pub const PREPROCESS_FILE: &str = "preprocess.json";
/// The classes of a fine-tuned model.
pub const LABELS_FILE: &str = "labels.json";

/// A fine-tuned model folder as one value: what `predict` and `stream` need to apply it.
pub struct ModelBundle {
    /// The folder it was read from.
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub preprocess: Preprocess,
    pub labels: Labels,
    /// `None` for model folders written before operating points (decided at 0.5, uncalibrated).
    pub operating_point: Option<OperatingPoint>,
    pub model: Model,
}

impl ModelBundle {
    /// The files of a fine-tuned model folder, in the order `checksums.json` lists them.
    pub const FILES: [&'static str; 5] = [
        WEIGHTS_FILE,
        CONFIG_FILE,
        PREPROCESS_FILE,
        OPERATING_POINT_FILE,
        LABELS_FILE,
    ];

    /// Write a fine-tuned model folder: weights, config, preprocessing, operating point, classes
    /// and their checksums, completed as `DIR.tmp` and swapped in whole (a reader sees the old
    /// folder or the new one).
    pub fn save(
        dir: &Path,
        config: &ModelConfig,
        model: &Model,
        preprocess: &Preprocess,
        labels: &Labels,
        operating_point: &OperatingPoint,
    ) -> Result<(), ModelError> {
        artifact::write_dir(dir, &Self::FILES, |tmp| {
            save_model(tmp, config, model)?;
            artifact::write_json_atomic(&tmp.join(PREPROCESS_FILE), preprocess)?;
            artifact::write_json_atomic(&tmp.join(OPERATING_POINT_FILE), operating_point)?;
            artifact::write_json_atomic(&tmp.join(LABELS_FILE), labels)?;
            Ok::<(), ModelError>(())
        })
    }

    /// Read a fine-tuned model folder (a `finetune` run folder stands for its `model/`). Every
    /// file is checked against the folder's `checksums.json`; a folder swapped in while it is
    /// read is read again, so all files come from one version of it.
    pub fn load(dir: &Path, device: &Device) -> Result<ModelBundle, ModelError> {
        let dir = resolve(dir);
        let missing = |message: &str| ModelError::Weights {
            path: dir.clone(),
            message: message.into(),
        };
        if !dir.join(CONFIG_FILE).exists() {
            return Err(missing("no config.json: a model folder needs the config its weights were made with (a `finetune` run folder, or its model/ or models/foldK/)"));
        }
        if !dir.join(LABELS_FILE).exists() {
            return Err(missing("no labels.json: this model's classification head was never trained (a pre-training run?): fine-tune it first (`cardiaffect finetune ‹pretrained› RUN`)"));
        }
        artifact::read_consistent(&dir, || Self::load_once(&dir, device))
    }

    fn load_once(dir: &Path, device: &Device) -> Result<ModelBundle, ModelError> {
        // load_model checks config.json and the weights; the rest of the folder is checked here.
        if let Some(list) = artifact::Checksums::load(dir)? {
            for name in [PREPROCESS_FILE, LABELS_FILE, OPERATING_POINT_FILE] {
                list.check_file(dir, name)?;
            }
        }
        let preprocess: Preprocess = read_json(
            dir,
            PREPROCESS_FILE,
            "the preprocessing the model was trained with",
        )?;
        let labels: Labels = read_json(dir, LABELS_FILE, "the classes the model predicts")?;
        let (config, model) = load_model(dir, device)?;
        if config.window_len != preprocess.window_len || config.n_classes != labels.classes.len() {
            return Err(ModelError::Weights {
                path: dir.to_path_buf(),
                message: format!(
                    "config.json (window {}, {} classes) disagrees with preprocess.json (window {}) or labels.json ({} classes)",
                    config.window_len, config.n_classes, preprocess.window_len, labels.classes.len()
                ),
            });
        }
        let operating_point = if dir.join(OPERATING_POINT_FILE).exists() {
            Some(read_json(
                dir,
                OPERATING_POINT_FILE,
                "the calibration and threshold of the model's decisions",
            )?)
        } else {
            None
        };
        Ok(ModelBundle {
            dir: dir.to_path_buf(),
            config,
            preprocess,
            labels,
            operating_point,
            model,
        })
    }
}

/// `dir/name` parsed; an error names the file and says what it should hold.
fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    what: &str,
) -> Result<T, ModelError> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).map_err(|e| ModelError::Weights {
        path: p.clone(),
        message: format!("cannot read it ({e}): {what}"),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Weights {
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
/// Fields in alphabetical order: the order the file has always had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Samples per window.
    pub window_len: usize,
    /// Seconds per window.
    pub window_s: f64,
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
pub fn read_preprocess(dir: &Path) -> Result<Option<Preprocess>, ModelError> {
    let p = dir.join(PREPROCESS_FILE);
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ModelError::Io { path: p, source: e }),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| ModelError::Weights {
            path: p,
            message: format!("not a preprocessing record: {e}"),
        })
}

/// `dir/labels.json`, if the folder has one (a pre-trained model has none); a file that is
/// there but does not parse is an error naming it.
pub fn read_labels(dir: &Path) -> Result<Option<Labels>, ModelError> {
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
        assert_eq!(p.window_len, 1280);
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
    fn a_damaged_preprocess_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_preprocess(d.path()).unwrap().is_none());
        std::fs::write(d.path().join(PREPROCESS_FILE), b"{\"fs\": 128").unwrap();
        let e = read_preprocess(d.path()).unwrap_err().to_string();
        assert!(e.contains(PREPROCESS_FILE), "{e}");
    }
}
