//! `--backend`, shared by every command that runs the model.

use anyhow::Result;
use burn::prelude::Device;
use clap::{Args, ValueEnum};

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU (burn-flex with the in-tree kernels).
    Flex,
    /// An NVIDIA GPU (a binary built with `--features cuda`).
    Cuda,
    /// A GPU through wgpu: Vulkan, Metal, DirectX 12 or OpenGL (a binary built with
    /// `--features wgpu`); Burn's own kernels, none of the in-tree flex ones.
    Wgpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Cuda => "cuda",
            Backend::Wgpu => "wgpu",
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
    /// Backend: flex (pure-Rust CPU), cuda or wgpu (binaries built with that feature).
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
        Backend::Cuda => anyhow::bail!("--backend cuda: this binary was built without the `cuda` feature (cargo build --release --features cuda); --backend flex (the default) runs on the CPU"),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => wgpu(),
        #[cfg(not(feature = "wgpu"))]
        Backend::Wgpu => anyhow::bail!("--backend wgpu: this binary was built without the `wgpu` feature (cargo build --release --features wgpu); --backend flex (the default) runs on the CPU"),
    }
}

/// The wgpu device, acquired once per process ([`cardiaffect_model::wgpu_device`]), its
/// absence an error that says what to do.
#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    cardiaffect_model::wgpu_device().map_err(|e| {
        anyhow::anyhow!("--backend wgpu: {e}. Install a driver (on Debian: mesa-vulkan-drivers for the CPU one), or run on the CPU with --backend flex (the default)")
    })
}
