//! One entry point for every source: pick (or detect) the format, read, report.

use std::path::{Path, PathBuf};

use crate::datasets;
pub use crate::datasets::Format;
use crate::error::{IoError, Result};
use crate::formats::{edf, mat, npy};
pub use crate::options::ReadOptions;
use crate::paths::{file_name, list_dir, natural_key};
pub use crate::recording::{ReadOutput, Skipped};

/// What [`read()`] found: the format it read (detected or given), why it was detected (`None`
/// when given), and the recordings.
#[derive(Debug)]
pub struct ReadResult {
    pub format: Format,
    pub detected: Option<String>,
    pub output: ReadOutput,
}

/// Read every recording under `path` in `format` (or the detected format).
///
/// Returns the format used, and how it was detected when `format` was [`Format::Auto`].
pub fn read(path: &Path, format: Format, opts: &ReadOptions) -> Result<ReadResult> {
    if !path.exists() {
        return Err(IoError::open(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    let (format, why) = match format {
        Format::Auto => {
            let (f, why) = detect(path)?;
            (f, Some(why))
        }
        f => (f, None),
    };
    let mut out = ReadOutput::default();
    // Cutting trials at events needs the samples.
    let unzero;
    let opts = if opts.zero_copy && opts.events.is_some() {
        unzero = ReadOptions {
            zero_copy: false,
            ..opts.clone()
        };
        &unzero
    } else {
        opts
    };
    (resolved(format).read)(path, opts, &mut out)?;
    match (&opts.events, format) {
        (_, Format::Bids) => {}
        (Some(source), _) => {
            crate::events::apply(source, &opts.label_scales, opts.baseline_s, &mut out)?
        }
        (None, _) if opts.baseline_s.is_some() => {
            return Err(IoError::Option {
                path: path.to_path_buf(),
                option: "baseline_s",
                message: format!("a baseline is cut before events: {format} has none of its own; give ‹events› FILE or ‹events› annotations"),
            })
        }
        (None, _) => {}
    }
    if out.recordings.is_empty() {
        let reason = if out.skipped.is_empty() {
            format!("nothing in {format} layout was found")
        } else {
            format!(
                "all {} trials were skipped (first: {})",
                out.skipped.len(),
                out.skipped[0].reason
            )
        };
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(ReadResult {
        format,
        detected: why,
        output: out,
    })
}

fn read_prefix(path: &Path, n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let mut buf = Vec::with_capacity(n);
    f.by_ref()
        .take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| IoError::open(path, e))?;
    Ok(buf)
}

/// Guess the format from file names and magic bytes; says what it relied on.
pub fn detect(path: &Path) -> Result<(Format, String)> {
    if path.is_dir() {
        return detect_dir(path);
    }
    let name = file_name(path);
    let lower = name.to_ascii_lowercase();
    if datasets::bids::is_data_file(&name) && datasets::bids::root_of(path).is_some() {
        return Ok((
            Format::Bids,
            format!("{name}: a BIDS data file under a dataset_description.json"),
        ));
    }
    if lower.ends_with(".vhdr") {
        return Ok((Format::BrainVision, format!("{name}: BrainVision header")));
    }
    let head = read_prefix(path, 512)?;
    if head.starts_with(npy::MAGIC) {
        return Ok((Format::Npy, format!("{name}: NumPy magic bytes")));
    }
    if edf::looks_like_edf(&head) {
        return Ok((Format::Edf, format!("{name}: EDF/BDF version field")));
    }
    if lower.ends_with(".hea") || (lower.ends_with(".dat") && path.with_extension("hea").exists()) {
        return Ok((Format::Wfdb, format!("{name}: WFDB header")));
    }
    if mat::looks_like_mat(&head) {
        return detect_mat(path, &name);
    }
    if lower.ends_with(".pkl") || lower.ends_with(".pickle") || head.first() == Some(&0x80) {
        return Ok((
            Format::Wesad,
            format!("{name}: Python pickle (WESAD layout)"),
        ));
    }
    if lower.ends_with("_respiban.txt") {
        return Ok((Format::Wesad, format!("{name}: WESAD RespiBAN text file")));
    }
    if [".csv", ".tsv", ".txt"].iter().any(|e| lower.ends_with(e)) {
        return Ok((Format::Csv, format!("{name}: delimited text")));
    }
    Err(IoError::UnknownFormat {
        path: path.to_path_buf(),
        reason: "no known extension or magic bytes (MAT, pickle, WFDB .hea, EDF, NPY, CSV); pass ‹format›".into(),
    })
}

fn detect_mat(path: &Path, name: &str) -> Result<(Format, String)> {
    let bytes = crate::mapped::map_file(path).map_err(|e| IoError::open(path, e))?;
    let names = mat::variable_names((*bytes).as_ref()).map_err(|e| e.in_file(path, "MAT v5"))?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let f = if names.contains(&"joined_data") {
        Format::Amigos
    } else if names.contains(&"DREAMER") {
        Format::Dreamer
    } else if names.contains(&"Data_ECG") {
        Format::Ascertain
    } else {
        return Err(IoError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!(
                "a MAT file with variables {names:?}: none of AMIGOS (joined_data), DREAMER (DREAMER) or ASCERTAIN (Data_ECG)"
            ),
        });
    };
    Ok((
        f,
        format!(
            "{name}: MAT file with the {} variables",
            f.name().to_uppercase()
        ),
    ))
}

fn detect_dir(dir: &Path) -> Result<(Format, String)> {
    let entries = list_dir(dir)?;
    let names: Vec<String> = entries.iter().map(|p| file_name(p)).collect();
    let has = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(n));
    let d = dir.display();
    if datasets::bids::is_root(dir) {
        return Ok((
            Format::Bids,
            format!("{d}: dataset_description.json (BIDS)"),
        ));
    }
    if dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("sub-"))
        && datasets::bids::root_of(dir).is_some()
    {
        return Ok((Format::Bids, format!("{d}: a BIDS subject folder")));
    }
    if has(&|n| n.starts_with("Data_Preprocessed_P") && n.ends_with(".mat")) {
        return Ok((
            Format::Amigos,
            format!("{d}: Data_Preprocessed_P##.mat files"),
        ));
    }
    if has(&|n| n == "DREAMER.mat") {
        return Ok((Format::Dreamer, format!("{d}: DREAMER.mat")));
    }
    if has(&|n| n.starts_with('S') && (n.ends_with(".pkl") || n.ends_with("_respiban.txt")))
        || entries
            .iter()
            .any(|p| p.is_dir() && datasets::wesad::subject_dir_has_data(p))
    {
        return Ok((Format::Wesad, format!("{d}: WESAD S#/S#.pkl layout")));
    }
    if datasets::ascertain::find_clip_files(dir)
        .map(|v| !v.is_empty())
        .unwrap_or(false)
    {
        return Ok((
            Format::Ascertain,
            format!("{d}: ASCERTAIN Movie_P##/ECG_Clip##.mat files"),
        ));
    }
    if has(&|n| n.ends_with(".hea")) {
        return Ok((Format::Wfdb, format!("{d}: WFDB .hea headers")));
    }
    if has(&|n| {
        n.to_ascii_lowercase().ends_with(".edf") || n.to_ascii_lowercase().ends_with(".bdf")
    }) {
        return Ok((Format::Edf, format!("{d}: .edf files")));
    }
    if has(&|n| n.to_ascii_lowercase().ends_with(".vhdr")) {
        return Ok((Format::BrainVision, format!("{d}: .vhdr files")));
    }
    if has(&|n| n.ends_with(".npy")) {
        return Ok((Format::Npy, format!("{d}: .npy files")));
    }
    if has(&|n| n.ends_with(".csv") || n.ends_with(".tsv")) {
        return Ok((Format::Csv, format!("{d}: .csv files")));
    }
    Err(IoError::UnknownFormat {
        path: dir.to_path_buf(),
        reason: "a folder with no file of a known layout; pass ‹format›".into(),
    })
}

/// The files under `path` that the reader of `format` can read one at a time (a participant's
/// MAT file, a WESAD subject, a WFDB record, an ASCERTAIN clip), so that a large dataset can be
/// processed in pieces with bounded memory. Reading each unit gives the same recordings as
/// reading `path` whole.
pub fn read_units(path: &Path, format: Format) -> Result<(Format, Vec<PathBuf>)> {
    let format = match format {
        Format::Auto => detect(path)?.0,
        f => f,
    };
    if path.is_file() {
        return Ok((format, vec![path.to_path_buf()]));
    }
    let mut units = (resolved(format).units)(path)?;
    units.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    if units.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: format!("no file in {format} layout"),
        });
    }
    Ok((format, units))
}

/// Every file that reading `unit` depends on: the unit itself, and its side files (a WFDB
/// record's signal files, WESAD's quest file, ASCERTAIN's self-reports). A cache keyed on their
/// contents is invalidated by any change that would change what is read.
pub fn unit_files(unit: &Path, format: Format) -> Result<Vec<PathBuf>> {
    match datasets::layout(format) {
        Some(l) => (l.files)(unit),
        // Not detected yet: the unit alone, as its reader will see it.
        None => Ok(vec![unit.to_path_buf()]),
    }
}

/// The layout of a format that detection has resolved (it never resolves to `auto`).
fn resolved(format: Format) -> &'static datasets::Layout {
    datasets::layout(format).expect("detection resolves auto to a format with a layout")
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::datasets::LAYOUTS;

    #[test]
    fn every_format_but_auto_has_one_layout() {
        for f in Format::ALL {
            let n = LAYOUTS.iter().filter(|l| l.format == f).count();
            assert_eq!(n, usize::from(f != Format::Auto), "{f}");
        }
        // A unit whose format is not resolved yet depends on itself alone (no panic).
        let unit = Path::new("rec.hea");
        assert_eq!(
            unit_files(unit, Format::Auto).unwrap(),
            vec![unit.to_path_buf()]
        );
    }
}
