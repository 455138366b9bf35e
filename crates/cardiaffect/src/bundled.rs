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

/// Where the bundled files are unpacked: `$CARDIAFFECT_CACHE` or `~/.cache/cardiaffect`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARDIAFFECT_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("cardiaffect")
}

/// Unpack the bundled recordings (once; atomically) and return their folder.
pub fn unpack() -> Result<PathBuf> {
    let root = cache_dir().join(format!("bundled-{}", env!("CARGO_PKG_VERSION")));
    for (rel, bytes) in FILES {
        let p = root.join(rel);
        // The same bytes as shipped, not only the same size: a damaged copy is replaced.
        if std::fs::read(&p).is_ok_and(|b| b == *bytes) {
            continue;
        }
        let dir = p.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        put(&p, bytes)?;
    }
    Ok(root)
}

/// Write a shipped file into the cache atomically. The cache is shared by every cardiaffect
/// process, so the temporary name is this process's own.
fn put(p: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = p.with_file_name(name);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))
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

/// The shipped pre-trained weights (see weights/bundled/MODEL_CARD.md).
const WEIGHTS: [(&str, &[u8]); 5] = [
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

/// The shipped pre-trained weights, unpacked into the cache (rewritten when they differ from
/// the ones in this binary), as a model folder for `finetune --pretrained`.
pub fn weights_dir() -> Result<PathBuf> {
    let root = cache_dir().join(format!("bundled-weights-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for (rel, bytes) in WEIGHTS {
        let p = root.join(rel);
        if std::fs::read(&p).map(|b| b == bytes).unwrap_or(false) {
            continue;
        }
        put(&p, bytes)?;
    }
    Ok(root)
}

/// The shipped model's architecture (for training the same model from scratch).
pub fn weights_config() -> &'static [u8] {
    WEIGHTS[0].1
}
