//! Helpers shared by the corpus tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's root, where `data/` and `fixtures/` are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `prepare` progress callback that says nothing.
pub fn quiet(_: cardiaffect_corpus::Progress) {}

/// Copy the folder `from` into `to`, subfolders included.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
