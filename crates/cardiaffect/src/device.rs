//! `--backend`, shared by every command that runs the model.

use anyhow::{bail, Result};
use burn::prelude::Device;
use clap::{Args, ValueEnum};

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU (burn-flex with the in-tree kernels).
    Flex,
    /// An NVIDIA GPU (a binary built with `--features cuda`).
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Backend: flex (pure-Rust CPU) or cuda (needs the `cuda` feature).
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    pub backend: Backend,
}

impl DeviceArgs {
    pub fn device(&self) -> Result<Device> {
        device(self.backend)
    }
}

pub fn device(b: Backend) -> Result<Device> {
    match b {
        Backend::Flex => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        Backend::Cuda => bail!("--backend cuda: this binary was built without the `cuda` feature (cargo build --release --features cuda)"),
    }
}
