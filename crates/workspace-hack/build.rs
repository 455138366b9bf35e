//! Empty on purpose: it exists so that `[build-dependencies]` can turn on features of the crates
//! that proc-macros are built with (see Cargo.toml).
fn main() {}
