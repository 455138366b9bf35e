//! No code: this crate only turns dependency features on, so that the default build and the
//! `--features wgpu` build share their dependencies (see Cargo.toml for why).
#![forbid(unsafe_code)]
