//! Folders and file names as the dataset readers walk them: sorted listings, natural order
//! ("P2" before "P10"), subject numbers in file names.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};

/// The last component of `p` as text (empty for none).
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Entries of a folder, sorted by name so that every run sees the same order.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| IoError::open(dir, e))?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Files directly in `dir` whose name satisfies `keep`, in natural order; or `path` itself.
pub(crate) fn files_matching(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = list_dir(path)?
        .into_iter()
        .filter(|p| p.is_file() && keep(&file_name(p)))
        .collect();
    // Natural order everywhere ("rec80" before "rec212", "P2" before "P10").
    v.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    Ok(v)
}

/// Natural order for names with numbers ("P2" before "P10").
pub(crate) fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((std::mem::take(&mut text), num.parse().unwrap_or(0)));
                num.clear();
            }
            text.push(c);
        }
    }
    out.push((text, num.parse().unwrap_or(0)));
    out
}

/// Digits following `prefix` in `name` ("Data_Preprocessed_P07.mat", "P" -> "07").
/// The first occurrence followed by a digit counts ("_Preprocessed_P07": the second "_P").
pub(crate) fn number_after(name: &str, prefix: &str) -> Option<String> {
    name.match_indices(prefix).find_map(|(i, _)| {
        let digits: String = name[i + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        (!digits.is_empty()).then_some(digits)
    })
}
