//! The end of a run (rank 0): final weights with their preprocessing, `summary.json`, the loss
//! curve and reconstructions, and `checksums.json` last.

use std::fs;
use std::path::Path;

use burn::prelude::*;
use cardiaffect_bundle::{CONFIG_FILE, PREPROCESS_FILE, WEIGHTS_FILE};
use cardiaffect_io::artifact::{write_atomic, write_json_atomic, Checksums};
use cardiaffect_model::{save_model, Model};
use cardiaffect_render::figures::training;
use serde::{Deserialize, Serialize};

use super::config::PretrainConfig;
use super::data::{tensors, Batch, Data};
use super::eval::{evaluate, evaluate_by_corpus, CorpusVal};
use crate::TrainError;

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

/// Final model, summary and plots (rank 0).
pub(super) fn finish(
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
