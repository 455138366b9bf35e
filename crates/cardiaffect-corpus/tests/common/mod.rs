//! Helpers shared by the corpus tests (each test file uses some of them).
#![allow(dead_code)]

// Each test file uses some of them.
#[allow(unused_imports)]
pub use cardiaffect_testkit::{copy_dir, root};

/// A `prepare` progress callback that says nothing.
pub fn quiet(_: cardiaffect_corpus::Progress) {}
