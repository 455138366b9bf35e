//! Weights in safetensors: Burn's own layout, or PyTorch's (for `torch.load`-free exchange with
//! `reference/model.py`). Writes are atomic; loads check every parameter's presence and shape.

use std::path::Path;

use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use crate::{Model, ModelError};

fn save(model: &Model, path: &Path, pytorch: bool) -> Result<(), ModelError> {
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp).overwrite(true);
    if pytorch {
        store = store.with_to_adapter(BurnToPyTorchAdapter);
    }
    model
        .save_into(&mut store)
        .map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Save in Burn's layout.
pub fn save_weights(model: &Model, path: &Path) -> Result<(), ModelError> {
    save(model, path, false)
}

/// Save in PyTorch's layout (Linear weights `[out, in]`, LayerNorm `weight`/`bias`).
pub fn save_weights_pytorch(model: &Model, path: &Path) -> Result<(), ModelError> {
    save(model, path, true)
}

fn check(path: &Path, r: ApplyResult) -> Result<(), ModelError> {
    if let Some(e) = r.errors.first() {
        return Err(match e {
            burn::store::ApplyError::ShapeMismatch {
                path: name,
                expected,
                found,
            } => ModelError::Shape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => ModelError::Weights {
                path: path.to_path_buf(),
                message: format!("{other:?} (a file for another config?)"),
            },
        });
    }
    if let Some((name, _)) = r.missing.first() {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            message: format!(
                "parameter `{name}` is missing ({} missing in all; a file for another config?)",
                r.missing.len()
            ),
        });
    }
    if let Some(name) = r.unused.first() {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` matches no parameter of this model ({} in all)",
                r.unused.len()
            ),
        });
    }
    Ok(())
}

fn load(model: &mut Model, path: &Path, pytorch: bool) -> Result<(), ModelError> {
    if !path.exists() {
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut store = SafetensorsStore::from_file(path)
        .allow_partial(true)
        .validate(false);
    if pytorch {
        store = store.with_from_adapter(PyTorchToBurnAdapter);
    }
    let r = model
        .load_from(&mut store)
        .map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    check(path, r)
}

/// Load weights saved by [`save_weights`] into a model built from the same config.
pub fn load_weights(model: &mut Model, path: &Path) -> Result<(), ModelError> {
    load(model, path, false)
}

/// Load weights in PyTorch's layout (from `reference/model.py` or [`save_weights_pytorch`]).
pub fn load_weights_pytorch(model: &mut Model, path: &Path) -> Result<(), ModelError> {
    load(model, path, true)
}

/// File names inside a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// Save `model` and its config beside it: `dir/model.safetensors`, `dir/config.json`.
pub fn save_model(dir: &Path, cfg: &crate::ModelConfig, model: &Model) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let cfg_path = dir.join(CONFIG_FILE);
    let tmp = cfg_path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cfg).unwrap_or_default()).map_err(|e| {
        ModelError::Io {
            path: tmp.clone(),
            source: e,
        }
    })?;
    std::fs::rename(&tmp, &cfg_path).map_err(|e| ModelError::Io {
        path: cfg_path.clone(),
        source: e,
    })?;
    save_weights(model, &dir.join(WEIGHTS_FILE))
}

/// Load a model folder written by [`save_model`]: its config, then its weights.
pub fn load_model(
    dir: &Path,
    device: &burn::prelude::Device,
) -> Result<(crate::ModelConfig, Model), ModelError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::Io {
        path: cfg_path.clone(),
        source: std::io::Error::new(
            e.kind(),
            format!("a model folder needs the config its weights were made with ({e})"),
        ),
    })?;
    let cfg: crate::ModelConfig = serde_json::from_str(&text).map_err(|e| ModelError::Weights {
        path: cfg_path.clone(),
        message: format!("not a model config: {e}"),
    })?;
    let mut model = cfg.init(device)?;
    load_weights(&mut model, &dir.join(WEIGHTS_FILE))?;
    Ok((cfg, model))
}
