//! What a pre-training run is asked to do (`pretrain.json`), and how two such requests differ
//! (a resumed run must be asked the same).

use std::path::PathBuf;

use cardiaffect_model::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::Masking;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSpec {
    pub path: PathBuf,
    /// Relative sampling weight when several corpora are mixed.
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub model: ModelConfig,
    pub corpora: Vec<CorpusSpec>,
    /// Sampling rate the corpora must have (the model's input rate).
    pub fs: f64,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub grad_clip_norm: f64,
    pub masking: Masking,
    /// Also zero the hidden samples in the input signal, not only their token embeddings: the
    /// conv encoder's receptive field (23 samples by default) would otherwise let neighbouring
    /// tokens see part of what is to be reconstructed.
    #[serde(default = "yes")]
    pub hide_input: bool,
    pub seed: u64,
    /// Processes the run trains on (data-parallel); `batch` is the whole step's rows, shared
    /// among them. Absent from `pretrain.json` when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
    /// Fraction of each corpus's subjects held out for validation.
    pub val_fraction: f64,
    pub checkpoint_every: usize,
    pub eval_every: usize,
    pub log_every: usize,
    /// Validation windows used at most per corpus (the same ones at every evaluation; per
    /// corpus, so that a small real corpus mixed with a large synthetic one keeps its share).
    pub max_val_windows: usize,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl PretrainConfig {
    pub fn new(model: ModelConfig, corpora: Vec<CorpusSpec>) -> Self {
        PretrainConfig {
            model,
            corpora,
            fs: 128.0,
            steps: 1000,
            batch: 32,
            lr: 3e-4,
            warmup_steps: 100,
            weight_decay: 0.01,
            grad_clip_norm: 1.0,
            masking: Masking::default(),
            hide_input: true,
            seed: 1,
            world_size: 1,
            val_fraction: 0.2,
            checkpoint_every: 100,
            eval_every: 100,
            log_every: 10,
            max_val_windows: 256,
        }
    }

    /// The warm-up `pretrain` takes when none is given: a twentieth of the steps, at least one.
    /// ([`PretrainConfig::new`] keeps 100, which library callers and saved configs rely on.)
    pub fn warmup_for(steps: usize) -> usize {
        (steps / 20).max(1)
    }

    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay to 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        crate::schedule::WarmupCosine {
            lr: self.lr,
            warmup: self.warmup_steps,
            steps: self.steps,
        }
        .at(step)
    }
}

/// Differences between two configs, by JSON field, for the resume error.
pub(super) fn differences(a: &PretrainConfig, b: &PretrainConfig) -> String {
    let (va, vb) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut out = Vec::new();
    if let (Some(oa), Some(ob)) = (va.as_object(), vb.as_object()) {
        for (k, x) in oa {
            if ob.get(k) != Some(x) {
                out.push(format!(
                    "{k}: {} (saved) vs {} (now)",
                    x,
                    ob.get(k).cloned().unwrap_or_default()
                ));
            }
        }
    }
    out.join("; ")
}
