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
        let msg = format!("{e:?}");
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("{msg} (a file for another config?)"),
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
