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

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bool, Bytes, TensorData};
use cardiaffect_corpus::Corpus;
use cardiaffect_model::batch;
use cardiaffect_model::{masked_mse, masked_sse, save_model, Model, ModelConfig};
use cardiaffect_render::figures::training;
use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

use crate::distributed::{fingerprint, flatten, hash_bytes, unflatten, Group};
use crate::error::io_err;
use crate::{Masking, TrainError};

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

/// What the caller hears during training.
pub enum Event {
    Start {
        steps: usize,
        start_step: usize,
        train_windows: usize,
        val_windows: usize,
        params: usize,
    },
    Step {
        step: usize,
        loss: f64,
        lr: f64,
        windows_per_s: f64,
    },
    Eval {
        step: usize,
        val_loss: f64,
        baseline: f64,
    },
    Checkpoint {
        step: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub steps: usize,
    pub train_windows: usize,
    pub val_windows: usize,
    pub val_subjects: Vec<String>,
    /// Masked reconstruction MSE on the validation windows (z-scored), after training.
    pub val_loss: f64,
    /// The same, predicting each window's mean (0 after z-scoring): the loss to beat.
    pub baseline_mean_prediction: f64,
    /// The same two numbers for each corpus's held-out windows.
    #[serde(default)]
    pub val_by_corpus: Vec<CorpusVal>,
    pub val_loss_first_eval: f64,
    pub params: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusVal {
    pub corpus: String,
    pub val_windows: usize,
    pub val_loss: f64,
    pub baseline_mean_prediction: f64,
}

struct Data {
    corpora: Vec<Corpus>,
    weights: Vec<f64>,
    train: Vec<Vec<usize>>,
    val: Vec<(usize, usize)>,
    val_subjects: Vec<String>,
}

fn load_data(cfg: &PretrainConfig) -> Result<Data, TrainError> {
    if cfg.corpora.is_empty() {
        return Err(TrainError::Data(
            "no corpus: give at least one in ‹corpora›".into(),
        ));
    }
    let mut data = Data {
        corpora: Vec::new(),
        weights: Vec::new(),
        train: Vec::new(),
        val: Vec::new(),
        val_subjects: Vec::new(),
    };
    let mut rng = Rng::new(cfg.seed).fork(0x5EED_0001);
    for (ci, spec) in cfg.corpora.iter().enumerate() {
        let c = Corpus::open(&spec.path)?;
        if c.window_len() != cfg.model.window_len {
            return Err(TrainError::Mismatch {
                path: spec.path.clone(),
                field: "window length",
                expected: format!("{} samples", cfg.model.window_len),
                found: format!("{} samples", c.window_len()),
            });
        }
        if (c.manifest.config.fs - cfg.fs).abs() > 1e-9 {
            return Err(TrainError::Mismatch {
                path: spec.path.clone(),
                field: "sampling rate",
                expected: format!("{} Hz", cfg.fs),
                found: format!("{} Hz", c.manifest.config.fs),
            });
        }
        if c.is_empty() {
            return Err(TrainError::Data(format!(
                "corpus {}: no window",
                spec.path.display()
            )));
        }
        // Hold out whole subjects: no subject has windows on both sides.
        let mut subjects: Vec<String> = c
            .rows
            .iter()
            .map(|r| format!("{}/{}", r.dataset, r.subject))
            .collect();
        subjects.sort();
        subjects.dedup();
        for i in (1..subjects.len()).rev() {
            subjects.swap(i, rng.below(i + 1));
        }
        let n_val = if subjects.len() >= 2 {
            ((cfg.val_fraction * subjects.len() as f64).round() as usize)
                .clamp(1, subjects.len() - 1)
        } else {
            0
        };
        let val_set: Vec<String> = subjects[..n_val].to_vec();
        let mut train = Vec::new();
        for (i, r) in c.rows.iter().enumerate() {
            if val_set.contains(&format!("{}/{}", r.dataset, r.subject)) {
                data.val.push((ci, i));
            } else {
                train.push(i);
            }
        }
        data.val_subjects.extend(
            val_set
                .iter()
                .map(|s| format!("{}:{s}", spec.path.display())),
        );
        data.train.push(train);
        data.weights.push(spec.weight.max(0.0));
        data.corpora.push(c);
    }
    if data.val.is_empty() {
        return Err(TrainError::Data("no validation subject: each corpus has a single subject; pre-training holds out whole subjects, so give at least one corpus with two or more".into()));
    }
    // The same validation windows at every evaluation, spread over each corpus's held-out set.
    let mut val = Vec::new();
    for ci in 0..data.corpora.len() {
        let v: Vec<(usize, usize)> = data.val.iter().copied().filter(|p| p.0 == ci).collect();
        if v.len() > cfg.max_val_windows {
            let step = v.len() as f64 / cfg.max_val_windows as f64;
            val.extend((0..cfg.max_val_windows).map(|k| v[(k as f64 * step) as usize]));
        } else {
            val.extend(v);
        }
    }
    data.val = val;
    Ok(data)
}

/// Training windows after the subject split (for turning epochs into steps).
pub fn count_train_windows(cfg: &PretrainConfig) -> Result<usize, TrainError> {
    Ok(load_data(cfg)?.train.iter().map(|t| t.len()).sum())
}

/// The step's batch: corpora drawn by weight, windows uniformly within a corpus.
fn batch_indices(cfg: &PretrainConfig, data: &Data, step: usize) -> Vec<(usize, usize)> {
    let mut rng = Rng::new(cfg.seed).fork(0xBA7C_0000 ^ step as u64);
    let total: f64 = data
        .weights
        .iter()
        .zip(&data.train)
        .filter(|(_, t)| !t.is_empty())
        .map(|(w, _)| w)
        .sum();
    (0..cfg.batch)
        .map(|_| {
            let mut u = rng.uniform() * total;
            let mut c = 0;
            for (k, (w, t)) in data.weights.iter().zip(&data.train).enumerate() {
                if t.is_empty() {
                    continue;
                }
                c = k;
                if u < *w {
                    break;
                }
                u -= w;
            }
            let t = &data.train[c];
            (c, t[rng.below(t.len())])
        })
        .collect()
}

/// One batch: the model's input (hidden samples zeroed when `hide_input`), the target, the
/// token mask, and the same as plain vectors.
struct Batch {
    input: Tensor<2>,
    target: Tensor<2>,
    mask: Tensor<2, Bool>,
    xs: Vec<f32>,
    ms: Vec<bool>,
}

fn tensors(
    cfg: &PretrainConfig,
    data: &Data,
    idx: &[(usize, usize)],
    mask_seed: u64,
    device: &Device,
) -> Batch {
    tensors_rows(cfg, data, idx, mask_seed, 0..idx.len(), device)
}

/// Rows `rows` of the batch `idx`: the masks are drawn for the whole batch (a row's mask
/// does not depend on which rank takes it).
fn tensors_rows(
    cfg: &PretrainConfig,
    data: &Data,
    idx: &[(usize, usize)],
    mask_seed: u64,
    rows: std::ops::Range<usize>,
    device: &Device,
) -> Batch {
    let l = cfg.model.window_len;
    let t = cfg.model.n_tokens();
    let spt = cfg.model.samples_per_token();
    let all = cfg.masking.sample(idx.len(), t, &mut Rng::new(mask_seed));
    let m = all[rows.start * t..rows.end * t].to_vec();
    let idx = &idx[rows];
    let x = batch::zscored(idx.iter().map(|&(c, i)| data.corpora[c].window(i)), l);
    let mut input = x.clone();
    if cfg.hide_input {
        for (w, row) in input.chunks_mut(l).zip(m.chunks(t)) {
            for (tok, &hid) in row.iter().enumerate() {
                if hid {
                    w[tok * spt..(tok + 1) * spt].fill(0.0);
                }
            }
        }
    }
    Batch {
        input: batch::tensor(input, l, device),
        target: batch::tensor(x.clone(), l, device),
        mask: Tensor::from_data(TensorData::new(m.clone(), [idx.len(), t]), device),
        xs: x,
        ms: m,
    }
}

/// Per corpus: a mix's loss can hide that one corpus (synthetic ECG, say) is easy.
fn evaluate_by_corpus(
    cfg: &PretrainConfig,
    data: &Data,
    model: &Model,
    device: &Device,
) -> Vec<CorpusVal> {
    (0..data.corpora.len())
        .filter_map(|ci| {
            let v: Vec<(usize, usize)> = data.val.iter().copied().filter(|p| p.0 == ci).collect();
            if v.is_empty() {
                return None;
            }
            let (l, b) = evaluate(cfg, data, &v, model, device);
            Some(CorpusVal {
                corpus: cfg.corpora[ci].path.display().to_string(),
                val_windows: v.len(),
                val_loss: l,
                baseline_mean_prediction: b,
            })
        })
        .collect()
}

/// Other weights (any model folder with the config of `cfg.model`, e.g. the shipped ones or
/// another run) on this configuration's validation windows and masks: the same numbers a
/// run of `cfg` reports in `summary.json`, so two sets of weights compare on equal terms.
/// Returns the pooled (loss, mean baseline) and the per-corpus figures.
pub fn evaluate_weights(
    cfg: &PretrainConfig,
    weights: &Path,
    device: &Device,
) -> Result<((f64, f64), Vec<CorpusVal>), TrainError> {
    let data = load_data(cfg)?;
    let (mcfg, model) = cardiaffect_model::load_model(weights, device)?;
    if mcfg.window_len != cfg.model.window_len {
        return Err(TrainError::Mismatch {
            path: weights.to_path_buf(),
            field: "window length",
            expected: format!("{} samples (the corpora's)", cfg.model.window_len),
            found: format!("{} samples", mcfg.window_len),
        });
    }
    let pooled = evaluate(cfg, &data, &data.val, &model, device);
    Ok((pooled, evaluate_by_corpus(cfg, &data, &model, device)))
}

/// Validation loss and the mean-prediction baseline, on fixed windows and fixed masks.
fn evaluate(
    cfg: &PretrainConfig,
    data: &Data,
    val: &[(usize, usize)],
    model: &Model,
    device: &Device,
) -> (f64, f64) {
    let spt = cfg.model.samples_per_token();
    let (mut loss_sum, mut base_sum, mut n) = (0.0, 0.0, 0.0);
    for (k, chunk) in val.chunks(cfg.batch.max(1)).enumerate() {
        let Batch {
            input,
            target,
            mask,
            xs,
            ms,
            ..
        } = tensors(
            cfg,
            data,
            chunk,
            Rng::new(cfg.seed).fork(0x7A1D ^ k as u64).next_u64(),
            device,
        );
        let enc = model.encode(input, Some(mask.clone()));
        let l: f32 = masked_mse(model.reconstruct(enc.tokens), target, mask, spt).into_scalar();
        let hidden = ms.iter().filter(|&&v| v).count() as f64 * spt as f64;
        loss_sum += l as f64 * hidden;
        // Baseline: each window's mean (0 after z-scoring) as the prediction of hidden samples.
        let l_len = cfg.model.window_len;
        for (w, row) in xs.chunks(l_len).zip(ms.chunks(cfg.model.n_tokens())) {
            let mean = w.iter().map(|&v| v as f64).sum::<f64>() / l_len as f64;
            for (tok, &hid) in row.iter().enumerate() {
                if hid {
                    base_sum += w[tok * spt..(tok + 1) * spt]
                        .iter()
                        .map(|&v| (v as f64 - mean).powi(2))
                        .sum::<f64>();
                }
            }
        }
        n += hidden;
    }
    (loss_sum / n.max(1.0), base_sum / n.max(1.0))
}

use cardiaffect_io::artifact::{self, write_atomic, write_json_atomic, Checksums};
use cardiaffect_model::bundle::{CONFIG_FILE, PREPROCESS_FILE, WEIGHTS_FILE};

/// The files of a checkpoint folder.
const CHECKPOINT_FILES: [&str; 5] = [
    WEIGHTS_FILE,
    CONFIG_FILE,
    "model.bpk",
    "optimizer.bpk",
    "state.json",
];

/// What a run writes beside its checkpoint (removed when a run starts afresh in its folder, so
/// that nothing of an earlier run is taken for this one's).
const FINAL_FILES: [&str; 9] = [
    WEIGHTS_FILE,
    CONFIG_FILE,
    PREPROCESS_FILE,
    "summary.json",
    "loss.svg",
    "reconstructions.svg",
    "reconstructions.png",
    "checksums.json",
    "metrics.jsonl",
];

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    /// None before the first evaluation (JSON has no NaN).
    first_val_loss: Option<f64>,
}

/// Gives a model's parameters the ids 1, 2, 3, ... in module order. Burn draws them at random,
/// and the checkpoint's record and optimizer state are keyed by them: with fixed ids the same
/// run writes the same checkpoint bytes (the weights and their updates do not depend on ids).
struct SequentialIds(u64);

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
fn save_checkpoint(
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

fn load_checkpoint(
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

/// Differences between two configs, by JSON field, for the resume error.
fn differences(a: &PretrainConfig, b: &PretrainConfig) -> String {
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

/// What a rank of [`pretrain_group`] ends with.
pub struct Trained {
    /// The run's summary, on rank 0 (the one that evaluates and writes); `None` elsewhere.
    pub summary: Option<Summary>,
    /// The trained weights (the same on every rank).
    pub model: Model,
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
    if group.rank != 0 {
        return train(cfg, &data, run, resume, device, group, on);
    }
    let _lock = cardiaffect_corpus::RunLock::acquire(run, "pretrain")?;
    // What a killed run left half-written (its last complete checkpoint stays); and what this
    // one leaves if it fails.
    artifact::remove_tmp(run);
    train(cfg, &data, run, resume, device, group, on).inspect_err(|_| {
        artifact::remove_tmp(run);
    })
}

/// The ranks' corpora checksums and configs, compared before anything is written: ranks that
/// read other data (or were given other flags) would train on different batches without a
/// word, or wait for each other forever at the first sum of another length.
fn agree_on_inputs(cfg: &PretrainConfig, data: &Data, group: &mut Group) -> Result<(), TrainError> {
    let mut mine: Vec<u64> = data
        .corpora
        .iter()
        .map(|c| {
            let sums: Vec<String> = c
                .manifest
                .checksums
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            hash_bytes(sums.join(",").as_bytes())
        })
        .collect();
    let n_corpora = mine.len();
    mine.push(hash_bytes(
        &serde_json::to_vec(cfg).map_err(|e| TrainError::Data(e.to_string()))?,
    ));
    let all = group
        .gather(&mine)
        .map_err(|source| TrainError::Reduce { step: 0, source })?;
    for (rank, theirs) in all.iter().enumerate() {
        if theirs.iter().all(|&v| v == 0) {
            // Hashes are never all zero: this rank's values did not reach us.
            return Err(TrainError::Reduce {
                step: 0,
                source: crate::distributed::ReduceError::NotSummed { rank },
            });
        }
    }
    for (rank, theirs) in all.iter().enumerate().skip(1) {
        if theirs.len() != mine.len() {
            return Err(TrainError::RanksDisagree {
                rank,
                what: "the number of corpora".into(),
            });
        }
        for ci in 0..n_corpora {
            if theirs[ci] != all[0][ci] {
                return Err(TrainError::RanksDisagree {
                    rank,
                    what: format!(
                        "the checksums of corpus {} (its manifest's checksums of windows.npy and windows.csv)",
                        cfg.corpora[ci].path.display()
                    ),
                });
            }
        }
        if theirs[n_corpora] != all[0][n_corpora] {
            return Err(TrainError::RanksDisagree {
                rank,
                what: "the configuration (pretrain.json: flags or a resumed run's saved one)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The same `value` on every rank, or the first rank that differs.
fn agree_on(
    group: &mut Group,
    value: u64,
    step: usize,
    what: impl Fn(u64, u64) -> String,
) -> Result<(), TrainError> {
    let all = group
        .gather(&[value])
        .map_err(|source| TrainError::Reduce { step, source })?;
    match all.iter().position(|v| v[0] != all[0][0]) {
        None => Ok(()),
        Some(rank) => Err(TrainError::RanksDisagree {
            rank,
            what: what(all[rank][0], all[0][0]),
        }),
    }
}

fn train(
    cfg: &PretrainConfig,
    data: &Data,
    run: &Path,
    resume: bool,
    device: &Device,
    group: &mut Group,
    on: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
    let writer = group.rank == 0;
    let cfg_path = run.join("pretrain.json");
    if !resume && writer {
        for f in FINAL_FILES {
            let _ = fs::remove_file(run.join(f));
        }
        for d in ["checkpoint", "checkpoint.old"] {
            let _ = fs::remove_dir_all(run.join(d));
        }
        write_json_atomic(&cfg_path, cfg)?;
    }
    let ad = device.clone().autodiff();
    let mut model = {
        // The seed fixes the initial weights too: Burn draws a parameter from the device's RNG
        // (one per process) at its first use, in one process during the first step's forward.
        // In a group, that forward runs here, on one window under a lock, so that another
        // model initialised in this process (another rank's, in a group of threads) takes no
        // draw in between; the order of first uses, and so the weights, stay those of one
        // process (the tests compare them).
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _init = INIT.lock().unwrap_or_else(|p| p.into_inner());
        device.seed(cfg.seed);
        ad.seed(cfg.seed);
        let m = cfg.model.init(&ad)?.map(&mut SequentialIds(0));
        if group.world_size > 1 {
            let (l, t) = (cfg.model.window_len, cfg.model.n_tokens());
            let x = Tensor::<2>::zeros([1, l], &ad);
            let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; t], [1, t]), &ad);
            drop(m.reconstruct(m.encode_train(x, Some(mask), 0).tokens));
            // The parameters pre-training never uses (the classifier), in module order, as one
            // process draws them when it first saves the weights.
            fingerprint(&m);
        }
        m
    };
    let params = model.num_params();
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(
            cfg.grad_clip_norm as f32,
        )))
        .init();
    let mut start = 0;
    let mut first_val = f64::NAN;
    let metrics_path = run.join("metrics.jsonl");
    if resume && (run.join("checkpoint").exists() || run.join("checkpoint.old").exists()) {
        let (m, o, st) = load_checkpoint(run, model, optim)?;
        model = m;
        optim = o;
        start = st.step;
        first_val = st.first_val_loss.unwrap_or(f64::NAN);
    }
    if group.world_size > 1 {
        // Every rank from the same checkpoint (a rank that sees another run folder, or none,
        // would start elsewhere) and the same weights.
        agree_on(group, start as u64, start, |theirs, ours| {
            format!("the step it resumes from ({theirs}, rank 0: {ours}): every rank must see the same run folder")
        })?;
        same_weights(group, &model, start)?;
    }
    if writer && start > 0 {
        // Lines logged after the checkpoint are repeated by this run.
        if let Ok(text) = fs::read_to_string(&metrics_path) {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s as usize <= start)
                })
                .collect();
            write_atomic(
                &metrics_path,
                (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes(),
            )?;
        }
    }
    let train_windows: usize = data.train.iter().map(|t| t.len()).sum();
    on(Event::Start {
        steps: cfg.steps,
        start_step: start,
        train_windows,
        val_windows: data.val.len(),
        params,
    });
    let mut metrics = if writer {
        Some(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(io_err(&metrics_path))?,
        )
    } else {
        None
    };
    let spt = cfg.model.samples_per_token();
    let mut last_checkpoint = start;
    let mut t_log = Instant::now();
    // Seconds spent in the group's sums since the last log line (waiting for the slowest rank
    // included).
    let (mut in_sums, mut logged) = (0.0, start);
    for step in start..cfg.steps {
        let idx = batch_indices(cfg, data, step);
        let mask_seed = Rng::new(cfg.seed).fork(0x3A5C ^ step as u64).next_u64();
        let drop_seed = Rng::new(cfg.seed).fork(0xD20 ^ step as u64).next_u64();
        let lr = cfg.lr_at(step);
        let non_finite = |lv| TrainError::NonFinite {
            step: step + 1,
            loss: lv,
            last_checkpoint,
            run: run.to_path_buf(),
        };
        let lv = if group.world_size == 1 {
            // One process: the loss's own mean, as before there were groups.
            let b = tensors(cfg, data, &idx, mask_seed, &ad);
            let enc = model.encode_train(b.input, Some(b.mask.clone()), drop_seed);
            let loss = masked_mse(model.reconstruct(enc.tokens), b.target, b.mask, spt);
            match crate::step::step(&mut optim, lr, model, loss) {
                Ok((m, lv)) => {
                    model = m;
                    lv
                }
                Err(crate::step::NonFiniteLoss(lv)) => return Err(non_finite(lv)),
            }
        } else {
            let rows = group.rows(cfg.batch);
            let first = rows.start;
            let b = tensors_rows(cfg, data, &idx, mask_seed, rows, &ad);
            let hidden = (b.ms.iter().filter(|&&v| v).count() * spt) as f32;
            let enc = model.encode_train_rows(b.input, Some(b.mask.clone()), drop_seed, first);
            // The share's squared errors and hidden samples, summed over the group with the
            // gradients: the whole batch's mean, and its gradient, as one process has them.
            let sse = masked_sse(model.reconstruct(enc.tokens), b.target, b.mask, spt);
            let part: f32 = sse.clone().into_scalar();
            let grads = GradientsParams::from_grads(sse.backward(), &model);
            let (mut buf, layout) = flatten(&model, grads);
            let n = layout.len();
            buf.extend_from_slice(&[part, hidden]);
            let t_sum = Instant::now();
            group
                .reducer
                .sum(&mut buf)
                .map_err(|source| TrainError::Reduce {
                    step: step + 1,
                    source,
                })?;
            in_sums += t_sum.elapsed().as_secs_f64();
            // Clamped as masked_mse's count: a batch without a hidden sample gives 0, not NaN.
            let count = buf[n + 1].max(1.0);
            let lv = buf[n] / count;
            if !lv.is_finite() {
                return Err(non_finite(lv));
            }
            for g in &mut buf[..layout.values()] {
                *g /= count;
            }
            model = optim.step(lr, model, unflatten(&buf[..n], &layout, device));
            lv
        };
        let done = step + 1;
        let mut line = serde_json::json!({"step": done, "lr": lr, "train_loss": lv});
        if done % cfg.log_every.max(1) == 0 || done == cfg.steps {
            let elapsed = t_log.elapsed().as_secs_f64().max(1e-9);
            let wps = (cfg.batch * cfg.log_every.max(1)) as f64 / elapsed;
            let steps = (done - logged) as f64;
            tracing::info!(
                "rank {} of {}: steps {}..{done}: {:.1} ms a step ({:.1} windows/s), {:.1} ms of it summing gradients",
                group.rank,
                group.world_size,
                logged + 1,
                1e3 * elapsed / steps,
                (cfg.batch as f64 * steps) / elapsed,
                1e3 * in_sums / steps,
            );
            (in_sums, logged) = (0.0, done);
            t_log = Instant::now();
            on(Event::Step {
                step: done,
                loss: lv as f64,
                lr,
                windows_per_s: wps,
            });
        }
        let Some(metrics) = metrics.as_mut() else {
            // Ranks but 0 only check, at each checkpoint, that their weights are rank 0's.
            if done % cfg.checkpoint_every.max(1) == 0 || done == cfg.steps {
                same_weights(group, &model, done)?;
            }
            continue;
        };
        if done % cfg.eval_every.max(1) == 0 || done == cfg.steps {
            let (val, base) = evaluate(cfg, data, &data.val, &model.valid(), device);
            if first_val.is_nan() {
                first_val = val;
            }
            line["val_loss"] = serde_json::json!(val);
            line["baseline"] = serde_json::json!(base);
            on(Event::Eval {
                step: done,
                val_loss: val,
                baseline: base,
            });
        }
        writeln!(metrics, "{line}").map_err(io_err(&metrics_path))?;
        if done % cfg.checkpoint_every.max(1) == 0 || done == cfg.steps {
            if group.world_size > 1 {
                same_weights(group, &model, done)?;
            }
            metrics.flush().map_err(io_err(&metrics_path))?;
            save_checkpoint(
                run,
                &cfg.model,
                &model,
                &optim,
                &CheckpointState {
                    step: done,
                    first_val_loss: first_val.is_finite().then_some(first_val),
                },
            )?;
            last_checkpoint = done;
            on(Event::Checkpoint { step: done });
        }
    }
    let inference = model.valid();
    if !writer {
        return Ok(Trained {
            summary: None,
            model: inference,
        });
    }
    let summary = finish(
        cfg,
        data,
        run,
        device,
        &inference,
        &metrics_path,
        (train_windows, params, first_val),
    )?;
    Ok(Trained {
        summary: Some(summary),
        model: inference,
    })
}

/// Every rank's weights equal rank 0's (the sums gave every rank the same bits), checked at
/// each checkpoint: a reducer that did not would let the ranks drift apart silently.
fn same_weights(group: &mut Group, model: &Model, step: usize) -> Result<(), TrainError> {
    agree_on(group, fingerprint(model), step, |_, _| {
        format!("its weights after step {step} (the gradient sums differed between ranks)")
    })
}

/// Final model, summary and plots (rank 0).
fn finish(
    cfg: &PretrainConfig,
    data: &Data,
    run: &Path,
    device: &Device,
    inference: &Model,
    metrics_path: &Path,
    (train_windows, params, first_val): (usize, usize, f64),
) -> Result<Summary, TrainError> {
    let spt = cfg.model.samples_per_token();
    save_model(run, &cfg.model, inference)?;
    // The preprocessing the inputs had, for fine-tuning and prediction to check and repeat.
    write_json_atomic(
        &run.join(PREPROCESS_FILE),
        &crate::preprocess::preprocess(&data.corpora[0]),
    )?;
    let (val, base) = evaluate(cfg, data, &data.val, inference, device);
    let val_by_corpus = evaluate_by_corpus(cfg, data, inference, device);
    let summary = Summary {
        steps: cfg.steps,
        train_windows,
        val_windows: data.val.len(),
        val_subjects: data.val_subjects.clone(),
        val_loss: val,
        baseline_mean_prediction: base,
        val_by_corpus,
        val_loss_first_eval: first_val,
        params,
    };
    write_json_atomic(&run.join("summary.json"), &summary)?;
    let text = fs::read_to_string(metrics_path).unwrap_or_default();
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for l in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
            let s = v["step"].as_f64().unwrap_or(0.0);
            if let Some(x) = v["train_loss"].as_f64() {
                tr.push((s, x));
            }
            if let Some(x) = v["val_loss"].as_f64() {
                va.push((s, x));
            }
        }
    }
    write_atomic(
        &run.join("loss.svg"),
        training::loss_curve(&tr, &va, Some(base)).as_bytes(),
    )?;
    let shown: Vec<(usize, usize)> = data.val.iter().take(3).copied().collect();
    let Batch {
        input,
        mask,
        xs,
        ms,
        ..
    } = tensors(cfg, data, &shown, 0xF1605, device);
    let rec: Vec<f32> = inference
        .reconstruct(inference.encode(input, Some(mask)).tokens)
        .into_data()
        .try_to_vec()
        .unwrap_or_default();
    let l = cfg.model.window_len;
    let t = cfg.model.n_tokens();
    let rows: Vec<(Vec<f32>, Vec<bool>, Vec<f32>)> = (0..shown.len())
        .map(|k| {
            (
                xs[k * l..(k + 1) * l].to_vec(),
                ms[k * t..(k + 1) * t].to_vec(),
                rec[k * l..(k + 1) * l].to_vec(),
            )
        })
        .collect();
    write_atomic(
        &run.join("reconstructions.svg"),
        training::reconstructions(&rows, spt).as_bytes(),
    )?;
    let png_path = run.join("reconstructions.png");
    let png = cardiaffect_render::png::reconstructions(&rows, spt).map_err(|e| TrainError::Io {
        path: png_path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&png_path, &png)?;
    Checksums::write(
        run,
        &[
            "pretrain.json",
            WEIGHTS_FILE,
            CONFIG_FILE,
            PREPROCESS_FILE,
            "summary.json",
        ],
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

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
