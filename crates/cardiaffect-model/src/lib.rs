//! The cardiaffect model (after Vazquez-Rodriguez et al., "Transformer-Based Self-Supervised
//! Learning for Emotion Recognition", ICPR 2022): a convolutional signal encoder turns a raw
//! single-lead ECG window into a sequence of embeddings, a learned CLS token is prepended,
//! positional encodings are added, a pre-LN Transformer encoder contextualises the sequence,
//! and heads reconstruct the (masked) raw signal per token or classify from the CLS token.
//!
//! Model code carries no backend type: Burn 0.22 tensors take their backend from their
//! `Device` (flex, the pure-Rust CPU backend, by default; CUDA with the `cuda` feature).
//!
//! Parameter names (safetensors, PyTorch layout with `BurnToPyTorchAdapter`) are documented on
//! [`Model`]; `reference/model.py` is the same model in PyTorch.
// Unsafe code (SIMD intrinsics, raw pointers shared between threads) only in the modules
// marked `#[allow(unsafe_code)]`: `kernels` (with its vectorised maths, `kernels::fastmath`).
#![deny(unsafe_code)]

pub mod batch;
mod bundle;
pub mod bundled;
mod config;
#[allow(unsafe_code)]
pub mod kernels;
pub mod loss;
mod model;
pub mod ops;
pub mod transformer;
mod weights;

pub use bundle::ModelBundle;
pub use config::{ModelConfig, Pooling, Positional};
pub use kernels::Workspace;
pub use loss::{cross_entropy, masked_mse, masked_sse};
pub use model::{Encoded, Model, PreparedModel};
pub use ops::{KernelMode, Kernels};
pub use weights::{
    canonical_safetensors, load_model, load_weights, load_weights_pytorch, safetensors_bytes,
    save_model, save_weights, save_weights_pytorch,
};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model config: {field}: expected {expected}, found {found}")]
    Config {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: parameter `{name}`: the model expects shape {expected:?}, the file has {found:?} (weights made with another config?)")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(transparent)]
    Write(#[from] cardiaffect_io::artifact::WriteError),
    #[error(transparent)]
    Verify(#[from] cardiaffect_io::artifact::VerifyError),
    /// A file of the model folder other than the weights (`preprocess.json`, `labels.json`, ...).
    #[error(transparent)]
    Bundle(#[from] cardiaffect_bundle::BundleError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No graphics adapter for the wgpu backend.
    #[error("no usable graphics adapter: wgpu looked for {looked_for} through Vulkan, Metal, DirectX 12 or OpenGL (a software adapter such as Mesa's lavapipe counts), and said: {reason}")]
    NoAdapter { looked_for: String, reason: String },
}

/// The wgpu device, acquired once per process (a second `init` of the runtime is refused, so
/// every caller shares the first's): Burn's lazy `Device::wgpu` would panic deep in the engine
/// at the first tensor if no adapter exists, so the adapter is asked for here, where its
/// absence is an error that says what was looked for.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Result<burn::tensor::Device, ModelError> {
    use std::sync::OnceLock;
    static DEVICE: OnceLock<Result<burn::tensor::Device, (String, String)>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            burn::tensor::Device::wgpu_options().init().map_err(|e| {
                let looked_for = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE")
                    .map(|v| format!("the adapter CUBECL_WGPU_DEFAULT_DEVICE={v} names"))
                    .unwrap_or_else(|_| "its default selection (a GPU preferred)".into());
                (looked_for, e.to_string())
            })
        })
        .clone()
        .map_err(|(looked_for, reason)| ModelError::NoAdapter { looked_for, reason })
}
