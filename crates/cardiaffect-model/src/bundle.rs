//! A fine-tuned model folder read and written whole, with its model: [`ModelBundle`]. The
//! folder's format (file names, preprocessing, classes, operating point) is
//! `cardiaffect_bundle`'s; this half holds the Burn model, so it lives with it.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use cardiaffect_bundle::{
    read_json, resolve, Labels, OperatingPoint, Preprocess, CONFIG_FILE, LABELS_FILE,
    OPERATING_POINT_FILE, PREPROCESS_FILE, WEIGHTS_FILE,
};
use cardiaffect_io::artifact;

use crate::weights::{load_model, save_model};
use crate::{Model, ModelConfig, ModelError};

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
        if config.window_len != preprocess.window_len() || config.n_classes != labels.classes.len()
        {
            return Err(ModelError::Weights {
                path: dir.to_path_buf(),
                message: format!(
                    "config.json (window {}, {} classes) disagrees with preprocess.json (window {}) or labels.json ({} classes)",
                    config.window_len, config.n_classes, preprocess.window_len(), labels.classes.len()
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
