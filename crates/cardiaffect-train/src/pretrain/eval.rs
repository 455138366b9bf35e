//! The held-out loss: masked reconstruction on fixed validation windows with fixed masks,
//! beside the mean-prediction baseline, pooled and per corpus.

use std::path::Path;

use burn::prelude::*;
use cardiaffect_model::{masked_mse, Model};
use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

use super::config::PretrainConfig;
use super::data::{load_data, tensors, Batch, Data};
use crate::TrainError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusVal {
    pub corpus: String,
    pub val_windows: usize,
    pub val_loss: f64,
    pub baseline_mean_prediction: f64,
}

/// Per corpus: a mix's loss can hide that one corpus (synthetic ECG, say) is easy.
pub(super) fn evaluate_by_corpus(
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
pub(super) fn evaluate(
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
