//! The corpora as training sees them: whole subjects held out for validation, each step's
//! batch drawn from `(seed, step)`, and a batch's rows as tensors with their token masks.

use burn::prelude::*;
use burn::tensor::{Bool, TensorData};
use cardiaffect_corpus::Corpus;
use cardiaffect_model::batch;
use cardiaffect_signal::Rng;

use super::config::PretrainConfig;
use crate::TrainError;

pub(super) struct Data {
    pub(super) corpora: Vec<Corpus>,
    pub(super) weights: Vec<f64>,
    pub(super) train: Vec<Vec<usize>>,
    pub(super) val: Vec<(usize, usize)>,
    pub(super) val_subjects: Vec<String>,
}

pub(super) fn load_data(cfg: &PretrainConfig) -> Result<Data, TrainError> {
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
pub(super) fn batch_indices(cfg: &PretrainConfig, data: &Data, step: usize) -> Vec<(usize, usize)> {
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
pub(super) struct Batch {
    pub(super) input: Tensor<2>,
    pub(super) target: Tensor<2>,
    pub(super) mask: Tensor<2, Bool>,
    pub(super) xs: Vec<f32>,
    pub(super) ms: Vec<bool>,
}

pub(super) fn tensors(
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
pub(super) fn tensors_rows(
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
