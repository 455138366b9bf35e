//! The real ECG shipped inside the binary (see data/README.md for sources and licences), so
//! that `prepare` and the demo have real data on any machine, with no download.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// (relative path, bytes)
const FILES: [(&str, &[u8]); 7] = [
    (
        "mitdb208/208.hea",
        include_bytes!("../../../data/mitdb208/208.hea"),
    ),
    (
        "mitdb208/208.dat",
        include_bytes!("../../../data/mitdb208/208.dat"),
    ),
    (
        "biosignalsnotebooks/ecg_5min.hea",
        include_bytes!("../../../data/biosignalsnotebooks/ecg_5min.hea"),
    ),
    (
        "biosignalsnotebooks/ecg_5min.dat",
        include_bytes!("../../../data/biosignalsnotebooks/ecg_5min.dat"),
    ),
    (
        "biosignalsnotebooks/ecg_7min.hea",
        include_bytes!("../../../data/biosignalsnotebooks/ecg_7min.hea"),
    ),
    (
        "biosignalsnotebooks/ecg_7min.dat",
        include_bytes!("../../../data/biosignalsnotebooks/ecg_7min.dat"),
    ),
    (
        "biosignalsnotebooks/supine_1min.edf",
        include_bytes!("../../../data/biosignalsnotebooks/supine_1min.edf"),
    ),
];

pub use cardiaffect_io::artifact::cache_dir;

/// Unpack the bundled recordings (once; atomically) and return their folder.
pub fn unpack() -> Result<PathBuf> {
    let root = cache_dir().join(format!("bundled-{}", env!("CARGO_PKG_VERSION")));
    cardiaffect_io::artifact::unpack(&root, &FILES)?;
    Ok(root)
}

/// `bundled:NAME` (e.g. `bundled:biosignalsnotebooks/ecg_7min`) to the unpacked file; any
/// other path as it is.
pub fn resolve_recording(arg: &Path) -> Result<PathBuf> {
    let Some(name) = arg.to_str().and_then(|s| s.strip_prefix("bundled:")) else {
        return Ok(arg.to_path_buf());
    };
    let root = unpack()?;
    for (rel, _) in FILES {
        let stem = Path::new(rel).with_extension("");
        if stem == Path::new(name) && (rel.ends_with(".hea") || rel.ends_with(".edf")) {
            return Ok(root.join(rel));
        }
    }
    let names: Vec<String> = FILES
        .iter()
        .filter(|(r, _)| r.ends_with(".hea") || r.ends_with(".edf"))
        .map(|(r, _)| format!("bundled:{}", Path::new(r).with_extension("").display()))
        .collect();
    anyhow::bail!(
        "{}: no such bundled recording (bundled: {})",
        arg.display(),
        names.join(", ")
    )
}

/// How a recording is named in shared outputs: `bundled:NAME` for a bundled one (not its cache
/// path, which differs between machines), else the path as given.
pub fn display_name(path: &Path) -> String {
    let root = cache_dir().join(format!("bundled-{}", env!("CARGO_PKG_VERSION")));
    match path.strip_prefix(&root) {
        Ok(rel) => format!("bundled:{}", rel.with_extension("").display()),
        Err(_) => path.display().to_string(),
    }
}

/// The bundled recordings as prepare sources (WFDB and EDF folders).
pub fn sources() -> Result<Vec<cardiaffect_corpus::Source>> {
    let root = unpack()?;
    Ok(vec![
        format!("wfdb:{}", root.join("mitdb208").display())
            .parse()
            .map_err(anyhow::Error::msg)?,
        format!("wfdb:{}", root.join("biosignalsnotebooks").display())
            .parse()
            .map_err(anyhow::Error::msg)?,
        format!("edf:{}", root.join("biosignalsnotebooks").display())
            .parse()
            .map_err(anyhow::Error::msg)?,
    ])
}

/// The shipped pre-trained weights unpacked into the cache, as a model folder for
/// `finetune --pretrained` ([`cardiaffect_model::bundled`]).
pub fn weights_dir() -> Result<PathBuf> {
    Ok(cardiaffect_model::bundled::weights_dir()?)
}

/// The shipped model's architecture (for training the same model from scratch).
pub fn weights_config() -> &'static [u8] {
    cardiaffect_model::bundled::weights_config()
}

/// The window and rate the shipped weights expect (their `preprocess.json`, read from the
/// bytes inside the binary: nothing is unpacked).
pub fn weights_preprocess() -> Result<cardiaffect_model::bundle::Preprocess> {
    let name = cardiaffect_model::bundle::PREPROCESS_FILE;
    let (_, bytes) = cardiaffect_model::bundled::FILES
        .iter()
        .find(|(n, _)| *n == name)
        .with_context(|| format!("the bundled weights have no {name}"))?;
    serde_json::from_slice(bytes)
        .with_context(|| format!("the bundled weights' {name}: not a preprocessing record"))
}
