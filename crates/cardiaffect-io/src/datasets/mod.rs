//! Dataset layouts: each file turns one dataset's original files into [`crate::Recording`]s,
//! and [`LAYOUTS`] says, per format, how it is read, which files are its units (read one at a
//! time, for bounded memory) and which files each unit's reading depends on (for the cache).
//! Adding a dataset: its file here, one row of the table, a fixture and a test.

pub mod amigos;
pub mod ascertain;
pub mod bids;
pub mod dreamer;
pub mod generic;
pub mod wesad;

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::formats::mat::{MatFile, MatValue};
use crate::paths::files_matching;
use crate::read::Format;
use crate::recording::{ReadOptions, ReadOutput};

/// One dataset layout.
pub struct Layout {
    pub format: Format,
    /// Every recording under a path (a folder, or one unit).
    pub read: fn(&Path, &ReadOptions, &mut ReadOutput) -> Result<()>,
    /// The units under a folder, in any order.
    pub units: fn(&Path) -> Result<Vec<PathBuf>>,
    /// Every file that reading a unit depends on, the unit's own first.
    pub files: fn(&Path) -> Result<Vec<PathBuf>>,
}

fn itself(unit: &Path) -> Result<Vec<PathBuf>> {
    Ok(vec![unit.to_path_buf()])
}

/// Every format's layout (all but `auto`, which detection resolves first).
pub static LAYOUTS: [Layout; 10] = [
    Layout {
        format: Format::Amigos,
        read: amigos::read,
        units: |p| {
            files_matching(p, |n| {
                n.starts_with("Data_Preprocessed_P") && n.ends_with(".mat")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Dreamer,
        read: dreamer::read,
        units: |p| files_matching(p, |n| n == "DREAMER.mat"),
        files: itself,
    },
    Layout {
        format: Format::Wesad,
        read: wesad::read,
        units: wesad::subject_files,
        files: wesad::unit_files,
    },
    Layout {
        format: Format::Ascertain,
        read: ascertain::read,
        units: ascertain::find_clip_files,
        files: ascertain::unit_files,
    },
    Layout {
        format: Format::Wfdb,
        read: generic::read_wfdb,
        units: |p| files_matching(p, |n| n.ends_with(".hea")),
        files: generic::wfdb_files,
    },
    Layout {
        format: Format::Edf,
        read: generic::read_edf,
        units: |p| {
            files_matching(p, |n| {
                let l = n.to_ascii_lowercase();
                l.ends_with(".edf") || l.ends_with(".bdf")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Npy,
        read: generic::read_npy,
        units: |p| files_matching(p, |n| n.ends_with(".npy")),
        files: itself,
    },
    Layout {
        format: Format::Csv,
        read: generic::read_csv,
        units: |p| {
            files_matching(p, |n| {
                n.ends_with(".csv") || n.ends_with(".tsv") || n.ends_with(".txt")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Bids,
        read: bids::read,
        units: bids::data_files,
        files: bids::unit_files,
    },
    Layout {
        format: Format::BrainVision,
        read: generic::read_brainvision,
        units: |p| files_matching(p, |n| n.to_ascii_lowercase().ends_with(".vhdr")),
        files: generic::brainvision_files,
    },
];

/// The layout of `format`; `auto` has none (detect it first).
pub fn layout(format: Format) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| l.format == format)
}

/// Parse a MAT file, naming it in errors.
/// The file mapped, its uncompressed doubles left in place (views that keep the mapping alive).
pub(crate) fn load_mat(path: &Path) -> Result<MatFile> {
    let bytes = crate::mapped::map_file(path).map_err(|e| IoError::open(path, e))?;
    crate::formats::mat::parse_shared(&bytes).map_err(|e| e.in_file(path, "MAT v5"))
}

/// A lead stored as doubles, as a recording holds it: converted into `samples`, or with
/// [`ReadOptions::zero_copy`](crate::ReadOptions::zero_copy) and a view, left in place as
/// `stored` (and `samples` empty).
pub(crate) fn lead_samples(
    x: crate::mapped::F64s,
    zero_copy: bool,
) -> (Vec<f32>, Option<crate::mapped::F64s>) {
    if zero_copy && x.is_view() {
        (Vec::new(), Some(x))
    } else {
        (x.iter().map(|&v| v as f32).collect(), None)
    }
}

/// A variable that must exist.
pub(crate) fn mat_var<'a>(path: &Path, m: &'a MatFile, name: &str) -> Result<&'a MatValue> {
    m.get(name).ok_or_else(|| {
        IoError::layout(
            path,
            name,
            format!("a variable `{name}`"),
            format!("variables {:?}", m.names()),
        )
    })
}

/// A struct field that must exist; `at` is the field path so far, for the message.
pub(crate) fn mat_field<'a>(
    path: &Path,
    v: &'a MatValue,
    at: &str,
    name: &str,
) -> Result<&'a MatValue> {
    match v {
        MatValue::Struct { fields, .. } => v.field(name).ok_or_else(|| {
            IoError::layout(
                path,
                format!("{at}.{name}"),
                format!("a field `{name}`"),
                format!("a struct with fields {fields:?}"),
            )
        }),
        other => Err(IoError::layout(path, at, "a struct", other.describe())),
    }
}

/// A cell array that must be one; `at` names it.
pub(crate) fn mat_cell<'a>(path: &Path, v: &'a MatValue, at: &str) -> Result<&'a [MatValue]> {
    v.as_cell()
        .ok_or_else(|| IoError::layout(path, at, "a cell array", v.describe()))
}

/// A numeric array with exactly `n` elements, as a flat vector.
pub(crate) fn mat_vector(path: &Path, v: &MatValue, at: &str, n: usize) -> Result<Vec<f64>> {
    match v.as_numeric() {
        Some(a) if a.real.len() == n => Ok(a.real.to_vec()),
        _ => Err(IoError::layout(
            path,
            at,
            format!("a numeric array of {n} values"),
            v.describe(),
        )),
    }
}

/// Build a label list from names, values and one scale.
pub(crate) fn labels(names: &[&str], values: &[f64], scale: &crate::Scale) -> Vec<crate::Label> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| crate::Label {
            name: n.to_string(),
            value: *v,
            scale: scale.clone(),
        })
        .collect()
}

/// Choose an ECG lead among `choices` (canonical name, accepted aliases) from the user's
/// `--lead`; `default` when none was given.
pub(crate) fn choose_lead(
    path: &Path,
    lead: Option<&str>,
    choices: &[(&str, &[&str])],
    default: usize,
) -> Result<usize> {
    let Some(want) = lead else { return Ok(default) };
    let w = want.trim().to_ascii_lowercase();
    if let Ok(i) = w.parse::<usize>() {
        if i >= 1 && i <= choices.len() {
            return Ok(i - 1);
        }
    }
    choices
        .iter()
        .position(|(name, aliases)| {
            name.eq_ignore_ascii_case(&w) || aliases.iter().any(|a| a.eq_ignore_ascii_case(&w))
        })
        .ok_or_else(|| IoError::Option {
            path: path.to_path_buf(),
            option: "lead",
            message: format!(
                "{want:?} is not a lead of this dataset: expected one of {} (or 1-{})",
                choices
                    .iter()
                    .map(|(n, _)| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                choices.len()
            ),
        })
}

/// Count NaNs; decide whether a trial is usable.
pub(crate) fn nan_count(x: &[f64]) -> usize {
    x.iter().filter(|v| v.is_nan()).count()
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn every_format_but_auto_has_one_layout() {
        for f in Format::ALL {
            let n = LAYOUTS.iter().filter(|l| l.format == f).count();
            assert_eq!(n, usize::from(f != Format::Auto), "{f}");
        }
        // A unit whose format is not resolved yet depends on itself alone (no panic).
        let unit = Path::new("rec.hea");
        assert_eq!(
            crate::read::unit_files(unit, Format::Auto).unwrap(),
            vec![unit.to_path_buf()]
        );
    }
}
