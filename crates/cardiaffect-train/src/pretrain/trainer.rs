//! The training loop: from the seeded initial weights (or a checkpoint) to the last step, one
//! process or a rank of a group, logging, evaluating and checkpointing as configured.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Bool, TensorData};
use cardiaffect_bundle::{CONFIG_FILE, PREPROCESS_FILE, WEIGHTS_FILE};
use cardiaffect_io::artifact::{write_atomic, write_json_atomic};
use cardiaffect_model::{masked_mse, masked_sse, Model};
use cardiaffect_signal::Rng;

use super::agreement::{agree_on, same_weights};
use super::checkpoint::{load_checkpoint, save_checkpoint, CheckpointState, SequentialIds};
use super::config::PretrainConfig;
use super::data::{batch_indices, tensors, tensors_rows, Data};
use super::eval::evaluate;
use super::finish::{finish, Summary};
use crate::distributed::{fingerprint, flatten, unflatten, Group};
use crate::error::io_err;
use crate::TrainError;

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

/// What a rank of [`super::pretrain_group`] ends with.
pub struct Trained {
    /// The run's summary, on rank 0 (the one that evaluates and writes); `None` elsewhere.
    pub summary: Option<Summary>,
    /// The trained weights (the same on every rank).
    pub model: Model,
}

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

/// One call of [`super::pretrain_group`]: the same on every rank of a group.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) cfg: &'a PretrainConfig,
    pub(super) data: &'a Data,
    pub(super) run: &'a Path,
    pub(super) resume: bool,
    pub(super) device: &'a Device,
}

pub(super) fn train(
    job: &Job,
    group: &mut Group,
    on: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
    let Job {
        cfg,
        data,
        run,
        resume,
        device,
    } = *job;
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
