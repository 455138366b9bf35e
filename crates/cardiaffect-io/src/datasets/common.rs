//! What several dataset readers share: MAT variables and fields that must exist (errors name
//! the file and the field path), leads kept as stored or converted, labels on one scale, the
//! user's `--lead` among a dataset's leads, a trial skipped because its value is empty.

use std::path::Path;

use crate::error::{IoError, Result};
use crate::formats::mat::{MatFile, MatValue};
use crate::recording::{ReadOutput, Skipped};

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

/// Skip the trial whose MAT value `field` holds no samples (the dataset's own gaps: not an
/// error), saying so in `out`.
pub(crate) fn skip_empty(
    out: &mut ReadOutput,
    path: &Path,
    subject: String,
    trial: String,
    field: &str,
) {
    out.skipped.push(Skipped {
        source: path.to_path_buf(),
        subject,
        trial,
        kind: "empty",
        reason: format!("{field} is empty"),
    });
}
