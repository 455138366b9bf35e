//! Helpers the workspace's test crates share (each test crate is a crate of its own, so what
//! they have in common lives here rather than in each one's `tests/common`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The repository's root, where `data/`, `fixtures/` and `weights/` are.
pub fn root() -> PathBuf {
    // Read when the test runs, not when this crate is compiled: a build for another
    // checkout sharing the target directory would point there.
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest).join("../..")
}

/// Copies the folder `from` into `to`, subfolders included (`to` is created).
///
/// # Panics
/// Where a file cannot be read or written, naming it: a test's setup failing.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let dst = to.join(e.file_name());
        let kind = e
            .file_type()
            .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
        if kind.is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst)
                .unwrap_or_else(|err| panic!("{} -> {}: {err}", e.path().display(), dst.display()));
        }
    }
}

/// `max |x - y| / max |y|` over one tensor's values (`y` the reference; a zero reference
/// counts as 1e-12).
pub fn max_rel(x: &[f32], y: &[f32]) -> f64 {
    assert_eq!(x.len(), y.len(), "tensors of different sizes");
    let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let diff = x
        .iter()
        .zip(y)
        .fold(0.0f64, |m, (p, q)| m.max((p - q).abs() as f64));
    diff / scale.max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_dir_copies_files_and_subfolders() {
        let tmp = std::env::temp_dir().join(format!("cardiaffect-testkit-{}", std::process::id()));
        let (from, to) = (tmp.join("from"), tmp.join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.txt"), "a").unwrap();
        std::fs::write(from.join("sub/b.txt"), "b").unwrap();
        copy_dir(&from, &to);
        assert_eq!(std::fs::read_to_string(to.join("a.txt")).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(to.join("sub/b.txt")).unwrap(), "b");
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(root().join("Cargo.toml").is_file());
    }

    #[test]
    fn max_rel_is_relative_to_the_reference() {
        assert_eq!(max_rel(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((max_rel(&[1.0, 2.5], &[1.0, 2.0]) - 0.25).abs() < 1e-12);
    }
}
