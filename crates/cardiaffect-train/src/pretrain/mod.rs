//! Pre-training: mask token spans, reconstruct the hidden raw signal (MSE on hidden samples).
//!
//! Every random choice of step `s` (which windows, which tokens, which dropout masks) is drawn
//! from generators seeded with `(seed, s)`, so a run resumed from a checkpoint repeats exactly
//! what the uninterrupted run would have done: a checkpoint holds the weights with their
//! parameter ids (Burn record), the optimizer state, and the step.
//!
//! Run folder: `pretrain.json` (this config, model config inside), `metrics.jsonl` (one line
//! per logged step), `checkpoint/` (completed as `checkpoint.tmp/`, then swapped in:
//! `model.safetensors` + `config.json`, the Burn record with parameter ids, the optimizer state,
//! `state.json` with the step, `checksums.json` over all of them), and at the end
//! `model.safetensors` + `config.json`, `summary.json`, `loss.svg`, `reconstructions.svg` and
//! `.png`, `preprocess.json`, and `checksums.json` (written last: its presence means the run
//! finished). One writer at a time (`.cardiaffect.lock`).
//!
//! Data-parallel ([`pretrain_group`], [`crate::distributed`]): every rank draws the step's
//! whole batch as one process would (windows, token masks, dropout keyed by the batch's row),
//! computes the gradients of its share's squared errors, and the group sums them with the
//! squared errors and the hidden-sample count; divided by the whole batch's count, the sum is
//! the gradient of the one-process loss (`--batch` B on k ranks trains as one process with
//! k·B). Rank 0 alone writes the run folder and evaluates.
//!
//! The parts: `config` (what a run is asked to do), `data` (the subject split, each step's
//! batch), `trainer` (the loop), `checkpoint` (save and resume), `eval` (the held-out loss),
//! `agreement` (what the ranks of a group compare), `finish` (final weights, summary, plots).

use std::fs;
use std::path::Path;

use burn::prelude::*;
use cardiaffect_io::artifact;

use crate::distributed::Group;
use crate::error::io_err;
use crate::TrainError;

mod agreement;
mod checkpoint;
mod config;
mod data;
mod eval;
mod finish;
mod trainer;

use agreement::agree_on_inputs;
use config::differences;
pub use config::{CorpusSpec, PretrainConfig};
pub use data::count_train_windows;
use data::load_data;
pub use eval::{evaluate_weights, CorpusVal};
pub use finish::Summary;
use trainer::{train, Job};
pub use trainer::{Event, Trained};

/// Pre-train into `run`. With `resume`, continue the run found there (its saved config must
/// equal `cfg`, or pass the saved one).
pub fn pretrain(
    cfg: &PretrainConfig,
    run: &Path,
    resume: bool,
    device: &Device,
    on: &mut dyn FnMut(Event),
) -> Result<Summary, TrainError> {
    let done = pretrain_group(cfg, run, resume, device, &mut Group::alone(), on)?;
    done.summary
        .ok_or_else(|| TrainError::Data("rank 0 returned no summary".into()))
}

/// [`pretrain`] as rank `group.rank` of a data-parallel group of `group.world_size` processes
/// (which must be `cfg.world_size`), gradients summed by `group.reducer`: the whole group
/// computes the update one process computes with all of each step's `cfg.batch` rows. Every
/// rank calls it with the same arguments; rank 0 alone takes the folder's lock and writes the
/// run folder, every rank reads the corpora and, with `resume`, the checkpoint. What the ranks
/// must agree on (config, corpora checksums, the step they resume from) is compared before
/// anything is written.
pub fn pretrain_group(
    cfg: &PretrainConfig,
    run: &Path,
    resume: bool,
    device: &Device,
    group: &mut Group,
    on: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
    cfg.model.validate()?;
    cfg.masking.validate()?;
    if cfg.steps == 0 || cfg.batch == 0 {
        return Err(TrainError::Data(
            "steps and batch must be at least 1".into(),
        ));
    }
    if group.world_size != cfg.world_size {
        return Err(TrainError::WorldSize {
            run: run.to_path_buf(),
            configured: cfg.world_size,
            group: group.world_size,
        });
    }
    if cfg.batch < group.world_size {
        return Err(TrainError::Invalid {
            field: "batch",
            value: cfg.batch.to_string(),
            expected: "at least one window per process (a batch of at least the world size)",
        });
    }
    let cfg_path = run.join("pretrain.json");
    if resume {
        let saved: PretrainConfig = serde_json::from_slice(
            &fs::read(&cfg_path).map_err(io_err(&cfg_path))?,
        )
        .map_err(|e| TrainError::Checkpoint {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;
        if &saved != cfg {
            return Err(TrainError::ResumeMismatch {
                run: run.to_path_buf(),
                differences: differences(&saved, cfg),
            });
        }
    }
    let data = load_data(cfg)?;
    if group.world_size > 1 {
        agree_on_inputs(cfg, &data, group)?;
    }
    let job = Job {
        cfg,
        data: &data,
        run,
        resume,
        device,
    };
    if group.rank != 0 {
        return train(&job, group, on);
    }
    let _lock = cardiaffect_corpus::RunLock::acquire(run, "pretrain")?;
    // What a killed run left half-written (its last complete checkpoint stays); and what this
    // one leaves if it fails.
    artifact::remove_tmp(run);
    train(&job, group, on).inspect_err(|_| {
        artifact::remove_tmp(run);
    })
}
