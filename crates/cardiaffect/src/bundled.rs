//! The real ECG shipped inside the binary (see data/README.md for sources and licences), so
//! that `prepare` and the demo have real data on any machine, with no download.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

// `FILES`: every file of data/mitdb208, data/biosignalsnotebooks and data/eegmat (build.rs).
include!(concat!(env!("OUT_DIR"), "/bundled_files.rs"));

/// Bundled data sets read as a whole (a folder, by `bundled:NAME`): name, `--source` format,
/// what they are.
const SETS: [(&str, &str, &str); 1] = [(
    "eegmat",
    "bids",
    "PhysioNet eegmat, 12 people: ECG at rest and during mental arithmetic (EEG-BIDS, real labels)",
)];

/// The set `name` (`eegmat`, `eegmat/sub-03`) belongs to, if any.
fn set_of(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    SETS.iter()
        .find(|(set, _, _)| name == *set || name.starts_with(&format!("{set}/")))
}

pub use cardiaffect_io::artifact::cache_dir;

/// Unpack the bundled recordings (once; atomically) and return their folder.
pub fn unpack() -> Result<PathBuf> {
    let root = cache_dir().join(format!("bundled-{}", env!("CARGO_PKG_VERSION")));
    cardiaffect_io::artifact::unpack(&root, &FILES)?;
    Ok(root)
}

/// `bundled:NAME` to the unpacked file or folder: a recording (e.g.
/// `bundled:biosignalsnotebooks/ecg_7min`), a data set (`bundled:eegmat`) or a folder or file
/// inside one (`bundled:eegmat/sub-03`); any other path as it is.
pub fn resolve_recording(arg: &Path) -> Result<PathBuf> {
    let Some(name) = arg.to_str().and_then(|s| s.strip_prefix("bundled:")) else {
        return Ok(arg.to_path_buf());
    };
    let name = name.trim_end_matches('/');
    let root = unpack()?;
    for (rel, _) in FILES {
        let stem = Path::new(rel).with_extension("");
        if stem == Path::new(name) && (rel.ends_with(".hea") || rel.ends_with(".edf")) {
            return Ok(root.join(rel));
        }
    }
    // A set, or a folder or file inside one.
    if set_of(name).is_some() && !name.split('/').any(|c| c == "..") && root.join(name).exists() {
        return Ok(root.join(name));
    }
    anyhow::bail!(
        "{}: no such bundled data (bundled: {})",
        arg.display(),
        names().join(", ")
    )
}

/// Every `bundled:NAME` there is: the sets, then the single recordings.
pub fn names() -> Vec<String> {
    SETS.iter()
        .map(|(set, _, what)| format!("bundled:{set} ({what})"))
        .chain(
            FILES
                .iter()
                .filter(|(r, _)| {
                    (r.ends_with(".hea") || r.ends_with(".edf")) && set_of(r).is_none()
                })
                .map(|(r, _)| format!("bundled:{}", Path::new(r).with_extension("").display())),
        )
        .collect()
}

/// A `--source` spec naming bundled data (`bundled:eegmat` -> `bids:<its unpacked folder>`),
/// else `None`.
pub fn source_spec(spec: &str) -> Result<Option<String>> {
    let Some(name) = spec.strip_prefix("bundled:") else {
        return Ok(None);
    };
    let path = resolve_recording(Path::new(spec))?;
    let format = if let Some((_, format, _)) = set_of(name) {
        format
    } else if path.extension().is_some_and(|e| e == "edf") {
        "edf"
    } else {
        "wfdb"
    };
    Ok(Some(format!("{format}:{}", path.display())))
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
pub fn weights_preprocess() -> Result<cardiaffect_bundle::Preprocess> {
    let name = cardiaffect_bundle::PREPROCESS_FILE;
    let (_, bytes) = cardiaffect_model::bundled::FILES
        .iter()
        .find(|(n, _)| *n == name)
        .with_context(|| format!("the bundled weights have no {name}"))?;
    serde_json::from_slice(bytes)
        .with_context(|| format!("the bundled weights' {name}: not a preprocessing record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every eegmat file is bundled (12 people x 2 runs x 4 files, and the root's README, description and participants), and a
    /// damaged cached copy is replaced by the shipped bytes.
    #[test]
    fn eegmat_is_bundled_and_a_damaged_copy_is_replaced() {
        let eegmat: Vec<&str> = FILES
            .iter()
            .map(|(r, _)| *r)
            .filter(|r| r.starts_with("eegmat/"))
            .collect();
        assert_eq!(eegmat.len(), 12 * 2 * 4 + 3, "{eegmat:?}");
        let tmp = tempfile::tempdir().unwrap();
        cardiaffect_io::artifact::unpack(tmp.path(), &FILES).unwrap();
        let edf = tmp
            .path()
            .join("eegmat/sub-03/eeg/sub-03_task-arithmetic_run-2_eeg.edf");
        let good = std::fs::read(&edf).unwrap();
        std::fs::write(&edf, &good[..100]).unwrap();
        cardiaffect_io::artifact::unpack(tmp.path(), &FILES).unwrap();
        assert_eq!(std::fs::read(&edf).unwrap(), good);
        assert!(names().iter().any(|n| n.starts_with("bundled:eegmat ")));
    }
}
