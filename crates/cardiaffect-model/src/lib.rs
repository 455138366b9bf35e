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
}
