//! The pre-trained weights shipped inside every cardiaffect build (`weights/bundled/`, see its
//! `MODEL_CARD.md`): the binary's `--pretrained bundled` and Python's `Model.load("bundled")`.

use std::path::{Path, PathBuf};

use crate::ModelError;

/// (file name, bytes) of the bundled model folder.
pub const FILES: [(&str, &[u8]); 5] = [
    (
        "config.json",
        include_bytes!("../../../weights/bundled/config.json"),
    ),
    (
        "model.safetensors",
        include_bytes!("../../../weights/bundled/model.safetensors"),
    ),
    (
        "preprocess.json",
        include_bytes!("../../../weights/bundled/preprocess.json"),
    ),
    (
        "summary.json",
        include_bytes!("../../../weights/bundled/summary.json"),
    ),
    (
        "MODEL_CARD.md",
        include_bytes!("../../../weights/bundled/MODEL_CARD.md"),
    ),
];

/// The bundled weights unpacked into the cache (rewritten where they differ from the shipped
/// bytes), as a model folder.
pub fn weights_dir() -> Result<PathBuf, ModelError> {
    weights_dir_in(&cardiaffect_io::artifact::cache_dir())
}

/// [`weights_dir`] under the cache folder `cache`.
pub fn weights_dir_in(cache: &Path) -> Result<PathBuf, ModelError> {
    let root = cache.join(format!("bundled-weights-{}", env!("CARGO_PKG_VERSION")));
    cardiaffect_io::artifact::unpack(&root, &FILES)?;
    Ok(root)
}

/// The bundled model's architecture (`config.json`), for training the same model from scratch.
pub fn weights_config() -> &'static [u8] {
    FILES[0].1
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_weights_unpack_and_load() {
        let d = tempfile::tempdir().unwrap();
        let dir = super::weights_dir_in(d.path()).unwrap();
        assert!(dir.starts_with(d.path()));
        let (cfg, _) = crate::load_model(&dir, &burn::prelude::Device::flex()).unwrap();
        let p = cardiaffect_bundle::read_preprocess(&dir).unwrap().unwrap();
        assert_eq!(cfg.window_len, p.window_len());
        // A damaged copy is replaced.
        std::fs::write(dir.join("config.json"), b"{").unwrap();
        cardiaffect_io::artifact::unpack(&dir, &super::FILES).unwrap();
        assert_eq!(
            std::fs::read(dir.join("config.json")).unwrap(),
            super::weights_config()
        );
    }
}
