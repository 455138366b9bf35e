//! Weights in safetensors: Burn's own layout, or PyTorch's (for `torch.load`-free exchange with
//! `reference/model.py`). Writes are atomic and byte-reproducible (the header's keys sorted: the
//! same weights give the same file); loads check the folder's checksums, every parameter's
//! presence and shape.

use std::path::Path;

use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use cardiaffect_bundle::{CONFIG_FILE, WEIGHTS_FILE};

use crate::{Model, ModelError};

/// The same safetensors file with its JSON header's keys in sorted order (Burn writes the
/// `__metadata__` map in hash order, different in every run) and padded to 8 bytes.
pub fn canonical_safetensors(bytes: &[u8]) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let map: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).ok()?;
    let mut map = map;
    if let Some(meta) = map.get_mut("__metadata__") {
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_value(meta.take()).ok()?;
        *meta = serde_json::to_value(sorted).ok()?;
    }
    let mut text = serde_json::to_vec(&map).ok()?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Some(out)
}

fn save(model: &Model, path: &Path, pytorch: bool) -> Result<(), ModelError> {
    let bytes = safetensors_bytes(model, pytorch).map_err(|message| ModelError::Weights {
        path: path.to_path_buf(),
        message,
    })?;
    cardiaffect_io::artifact::write_atomic(path, &bytes)?;
    Ok(())
}

/// The safetensors file's bytes, in PyTorch's layout or Burn's (what the save functions write).
pub fn safetensors_bytes(model: &Model, pytorch: bool) -> Result<Vec<u8>, String> {
    let mut store = SafetensorsStore::from_bytes(None);
    if pytorch {
        store = store.with_to_adapter(BurnToPyTorchAdapter);
    }
    model.save_into(&mut store).map_err(|e| e.to_string())?;
    let bytes = store.get_bytes().map_err(|e| e.to_string())?;
    canonical_safetensors(&bytes)
        .ok_or_else(|| "Burn wrote a safetensors header that does not parse".into())
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

/// Save `model` and its config beside it: `dir/model.safetensors`, `dir/config.json`.
pub fn save_model(dir: &Path, cfg: &crate::ModelConfig, model: &Model) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    cardiaffect_io::artifact::write_json_atomic(&dir.join(CONFIG_FILE), cfg)?;
    save_weights(model, &dir.join(WEIGHTS_FILE))
}

/// Load a model folder written by [`save_model`]: its config, then its weights (after checking
/// them against the folder's `checksums.json`, where it has one). A folder swapped in while it
/// is read is read again.
pub fn load_model(
    dir: &Path,
    device: &burn::prelude::Device,
) -> Result<(crate::ModelConfig, Model), ModelError> {
    cardiaffect_io::artifact::read_consistent(dir, || load_model_once(dir, device))
}

fn load_model_once(
    dir: &Path,
    device: &burn::prelude::Device,
) -> Result<(crate::ModelConfig, Model), ModelError> {
    if let Some(list) = cardiaffect_io::artifact::Checksums::load(dir)? {
        list.check_file(dir, CONFIG_FILE)?;
        list.check_file(dir, WEIGHTS_FILE)?;
    }
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
