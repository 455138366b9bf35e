//! The checkpoint folder (`checkpoint/`): written whole or not at all, read back only when its
//! checksums hold, with the same bytes for the same run (a bit-for-bit resume).

use std::fs;
use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bool, Bytes};
use cardiaffect_bundle::{CONFIG_FILE, WEIGHTS_FILE};
use cardiaffect_io::artifact::{self, write_atomic, write_json_atomic, Checksums};
use cardiaffect_model::{save_model, Model, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::TrainError;

/// The files of a checkpoint folder.
const CHECKPOINT_FILES: [&str; 5] = [
    WEIGHTS_FILE,
    CONFIG_FILE,
    "model.bpk",
    "optimizer.bpk",
    "state.json",
];

#[derive(Serialize, Deserialize)]
pub(super) struct CheckpointState {
    pub(super) step: usize,
    /// None before the first evaluation (JSON has no NaN).
    pub(super) first_val_loss: Option<f64>,
}

/// Gives a model's parameters the ids 1, 2, 3, ... in module order. Burn draws them at random,
/// and the checkpoint's record and optimizer state are keyed by them: with fixed ids the same
/// run writes the same checkpoint bytes (the weights and their updates do not depend on ids).
pub(super) struct SequentialIds(pub(super) u64);

impl SequentialIds {
    fn next(&mut self) -> burn::module::ParamId {
        self.0 += 1;
        burn::module::ParamId::from(self.0)
    }
}

impl burn::module::ModuleMapper for SequentialIds {
    fn map_float<const D: usize>(
        &mut self,
        mut p: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        p.id = self.next();
        p
    }
    fn map_int<const D: usize>(
        &mut self,
        mut p: burn::module::Param<Tensor<D, Int>>,
    ) -> burn::module::Param<Tensor<D, Int>> {
        p.id = self.next();
        p
    }
    fn map_bool<const D: usize>(
        &mut self,
        mut p: burn::module::Param<Tensor<D, Bool>>,
    ) -> burn::module::Param<Tensor<D, Bool>> {
        p.id = self.next();
        p
    }
}

/// The same burnpack with its tensors in name order (Burn writes the optimizer state in hash
/// order, different in every run).
fn canonical_burnpack(bytes: Bytes) -> Result<Bytes, burn_pack::Error> {
    let reader = burn_pack::Reader::from_bytes(bytes)?;
    let scalars = reader.scalars().clone();
    let metadata = reader.metadata().clone();
    let mut parts = Vec::new();
    for t in reader.into_tensors()? {
        parts.push(t.into_parts()?);
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors = parts
        .into_iter()
        .map(|(name, dtype, shape, id, data)| burn_pack::Tensor::new(name, dtype, shape, id, data))
        .collect();
    let mut w = burn_pack::Writer::new(tensors);
    for (k, v) in &scalars {
        w = w.with_scalar(k, *v);
    }
    for (k, v) in &metadata {
        w = w.with_metadata(k, v);
    }
    w.into_bytes()
}

/// Write `run/checkpoint` atomically: a new folder is completed, then swapped in.
pub(super) fn save_checkpoint(
    run: &Path,
    cfg: &ModelConfig,
    model: &Model,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    artifact::write_dir(&run.join("checkpoint"), &CHECKPOINT_FILES, |tmp| {
        // The weights in safetensors with their config (usable by any tool, e.g. `finetune
        // --pretrained RUN_DIR/checkpoint`), and as a Burn record that keeps the parameter ids
        // the optimizer state is keyed by (for a bit-for-bit resume).
        save_model(tmp, cfg, &model.valid())?;
        let failed = |m: String| TrainError::Checkpoint {
            path: tmp.to_path_buf(),
            message: m,
        };
        let mb = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| failed(e.to_string()))?;
        let mb = canonical_burnpack(mb).map_err(|e| failed(e.to_string()))?;
        write_atomic(&tmp.join("model.bpk"), &mb[..])?;
        let ob = optim.into_bytes().map_err(|e| failed(e.to_string()))?;
        let ob = canonical_burnpack(ob).map_err(|e| failed(e.to_string()))?;
        write_atomic(&tmp.join("optimizer.bpk"), &ob[..])?;
        write_json_atomic(&tmp.join("state.json"), state)?;
        Ok(())
    })
}

pub(super) fn load_checkpoint(
    run: &Path,
    model: Model,
    optim: ModuleOptimizer,
) -> Result<(Model, ModuleOptimizer, CheckpointState), TrainError> {
    // A crash between the two renames leaves only checkpoint.old: use it.
    let dir = if run.join("checkpoint").exists() {
        run.join("checkpoint")
    } else {
        run.join("checkpoint.old")
    };
    let bad = |m: String| TrainError::Checkpoint {
        path: dir.clone(),
        message: m,
    };
    // A flipped byte in the optimizer state would resume a different run without a word.
    match Checksums::load(&dir)? {
        Some(list) => list.check(&dir)?,
        None => return Err(bad("no checksums.json: not a complete checkpoint".into())),
    }
    let state: CheckpointState =
        serde_json::from_slice(&fs::read(dir.join("state.json")).map_err(io_err(&dir))?)
            .map_err(|e| bad(e.to_string()))?;
    let record = ModuleRecord::load(dir.join("model.bpk")).map_err(|e| bad(e.to_string()))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| bad(e.to_string()))?;
    let ob = fs::read(dir.join("optimizer.bpk")).map_err(io_err(&dir))?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(ob))
        .map_err(|e| bad(e.to_string()))?;
    Ok((model, optim, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamWConfig;

    /// A checkpoint write that fails (here: `checkpoint.tmp` cannot be created, as on a full
    /// disk) returns an error and leaves the previous checkpoint whole and loadable.
    #[test]
    fn failed_checkpoint_write_keeps_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let mut cfg = ModelConfig::new();
        cfg.window_len = 64;
        cfg.conv_channels = vec![4, 4, 4];
        cfg.d_model = 8;
        cfg.n_heads = 2;
        cfg.n_layers = 1;
        cfg.d_ff = 8;
        let ad = Device::flex().autodiff();
        let model = cfg.init(&ad).unwrap();
        let optim: ModuleOptimizer = AdamWConfig::new().init();
        let state = |step| CheckpointState {
            step,
            first_val_loss: None,
        };
        save_checkpoint(run, &cfg, &model, &optim, &state(4)).unwrap();
        // Block the next write: a file where the new checkpoint folder must be made.
        fs::write(run.join("checkpoint.tmp"), b"in the way").unwrap();
        let e = save_checkpoint(run, &cfg, &model, &optim, &state(8)).unwrap_err();
        assert!(e.to_string().contains("checkpoint.tmp"), "{e}");
        let (_, _, s) =
            load_checkpoint(run, cfg.init(&ad).unwrap(), AdamWConfig::new().init()).unwrap();
        assert_eq!(s.step, 4, "the previous checkpoint survives");
        assert!(run.join("checkpoint/model.safetensors").exists());
        assert!(run.join("checkpoint/config.json").exists());
    }
}
