//! Fine-tuning and evaluation under a stated protocol, with baselines on the same folds.
//!
//! For every fold of the protocol ([`cardiaffect_eval::make_folds`]) and every method:
//! - `pretrained`: the pre-trained encoder with a new head on the CLS token, fully fine-tuned
//!   (or a linear probe with `freeze_encoder`);
//! - `scratch`: the same model from random initial weights, same batches, same schedule;
//! - `hrv`: HRV features + logistic regression;
//! - `fusion`: the first model method (`pretrained`, else `scratch`) and `hrv` joined: with
//!   `auto` (the default) per fold the best on the validation people of late fusion at model
//!   shares 0.5, 0.25, 0.75, 0 (HRV alone), 1 (the model alone) and early fusion, so fusion
//!   never chooses blindly against its better part.
//!
//! Every method's scores then go through the same decision ([`crate::decision`]): with
//! `calibration` `subject` (the default) or `baseline`, each validation and test person's
//! logits are z-scored with statistics of their own windows (no label read; for `hrv` the
//! features are standardised per person instead, training people included); the operating
//! point is the threshold that maximises balanced accuracy on the fold's validation people.
//!
//! Models train with class-weighted cross-entropy (weights from the training fold), AdamW with
//! warm-up and cosine decay, and keep the weights of the step with the best validation
//! macro-F1 (validation carved from the training fold; early stopping after `patience`
//! evaluations without improvement). Inputs are z-scored per window, as in pre-training, so no
//! statistic is shared across windows. Every random choice derives from `seed`.
//!
//! Run folder: `finetune.json` (config), `folds/<method>-fold<k>.json` (written as each fold
//! ends; a re-run with the same config reuses them, so an interrupted run resumes),
//! `predictions.csv` (test probabilities at each fold's operating point), `models/fold<k>/`
//! (the first model method's kept weights per fold, with its config, preprocessing and
//! `operating_point.json`), `model/` (the same method trained on every labeled window after
//! cross-validation, its operating point chosen on the final split's validation people: the
//! one to use on new data), `results.json`, `results.md`, `confusion.svg`, `folds.svg`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cardiaffect_bundle::LABELS_FILE;
use cardiaffect_corpus::Corpus;
use cardiaffect_eval::metrics::{compute, trial_level};
use cardiaffect_eval::report::{aggregate, Chance, FoldResult, Results};
use cardiaffect_eval::{
    hrv_baseline, make_folds, make_labels, Calibration, Fold, Folds, Labels, Method,
    OperatingPoint, Protocol, Task, Thresholds,
};
use cardiaffect_model::batch;
use cardiaffect_model::{cross_entropy, load_model, Model, ModelBundle, ModelConfig};
use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

use crate::decision::{self, is_rest};
use crate::error::{eval_err, io_err};
use crate::TrainError;
pub use cardiaffect_eval::calibration::OPERATING_POINT_FILE;
use cardiaffect_io::artifact::{self, write_atomic, write_json_atomic, Checksums};

mod config;
mod event;
mod folds;
mod fusion;
mod results;
mod trainer;

pub use crate::preprocess::preprocess;
use config::check_calibration;
pub use config::{FinetuneConfig, Fusion};
pub use event::FinetuneEvent;
pub use folds::RESULT_FILES;
use folds::*;
use fusion::*;
use results::*;
use trainer::*;

/// Run the protocol in `run` and write the results there.
pub fn finetune(
    cfg: &FinetuneConfig,
    run: &Path,
    device: &Device,
    on: &mut dyn FnMut(FinetuneEvent),
) -> Result<Results, TrainError> {
    let _lock = cardiaffect_corpus::RunLock::acquire(run, "finetune")?;
    // What a killed run left half-written (its finished folds are reused); and what this one
    // leaves if it fails.
    let clean = || {
        for d in [run.to_path_buf(), run.join("folds"), run.join("models")] {
            artifact::remove_tmp(&d);
        }
    };
    clean();
    finetune_locked(cfg, run, device, on).inspect_err(|_| clean())
}

fn finetune_locked(
    cfg: &FinetuneConfig,
    run: &Path,
    device: &Device,
    on: &mut dyn FnMut(FinetuneEvent),
) -> Result<Results, TrainError> {
    cfg.validate()?;
    let corpus = Corpus::open(&cfg.corpus)?;
    let labels = make_labels(&corpus, cfg.task.clone(), &cfg.thresholds).map_err(eval_err)?;
    let unlabeled = cardiaffect_eval::unlabeled_subjects(&corpus, &labels);
    if !unlabeled.is_empty() {
        on(FinetuneEvent::Warning(format!(
            "task {}: {} subject(s) have no labeled window and are left out: {} (their events lack the column, or its value is n/a)",
            cfg.task,
            unlabeled.len(),
            unlabeled.join(", ")
        )));
    }
    let model_cfg = model_config(cfg, &corpus, &labels, on)?;
    let methods = cfg.methods_to_run()?;
    check_calibration(cfg, &corpus)?;
    let usable: Vec<usize> = (0..corpus.len())
        .filter(|&i| labels.y[i].is_some())
        .collect();
    let folds = run_folds(cfg, &corpus, &usable, on)?;

    open_run_folder(cfg, run)?;
    let warning = (cfg.protocol == Protocol::Paper).then_some(Protocol::PAPER_WARNING);
    on(FinetuneEvent::Start {
        folds: folds.len(),
        methods: &methods,
        labels: &labels,
        warning,
    });

    let ctx = Ctx {
        cfg,
        model_cfg: model_cfg.clone(),
        corpus: &corpus,
        labels: &labels,
        device,
    };
    let k = labels.classes.len();
    let trial_key = |i: usize| Protocol::TrialGrouped.group(&corpus.rows[i], i);
    let mut per_fold = Vec::new();
    let mut warnings = Vec::new();
    let mut predictions = String::from("index,subject,trial,fold,method,true_class");
    for c in &labels.classes {
        predictions.push_str(&format!(",p_{}", c.replace([' ', ','], "_")));
    }
    predictions.push('\n');
    let feats = hrv_features(cfg, &corpus, &labels, &methods)?;
    let fusion_of = fusion_parts(&methods);
    for fold in &folds {
        let train = subsample(&ctx, &fold.train, fold.index);
        let mut train_classes: Vec<usize> = train.iter().map(|&i| ctx.y(i)).collect();
        train_classes.sort_unstable();
        train_classes.dedup();
        if train_classes.len() < 2 {
            let w = format!(
                "fold {}: the training set has a single class: skipped (no metric computed on it)",
                fold.index + 1
            );
            on(FinetuneEvent::Warning(w.clone()));
            warnings.push(w);
            continue;
        }
        let test_y: Vec<usize> = fold.test.iter().map(|&i| ctx.y(i)).collect();
        let val_y: Vec<usize> = fold.val.iter().map(|&i| ctx.y(i)).collect();
        let scored = scored_windows(&corpus, cfg.calibration, &fold.val, &fold.test);
        let chosen_on = format!(
            "validation people of training fold {}: {}",
            fold.index + 1,
            fold.val_groups.join(", ")
        );
        let steps = cfg
            .max_steps
            .unwrap_or(((cfg.epochs * train.len() as f64) / cfg.batch as f64).ceil() as usize)
            .max(1);
        // Raw scores of this fold's methods, for `fusion`.
        let mut raw_of: BTreeMap<Method, Vec<Vec<f64>>> = BTreeMap::new();
        for (mi, &method) in methods.iter().enumerate() {
            let file = run
                .join("folds")
                .join(format!("{method}-fold{}.json", fold.index + 1));
            let saved = fold_file_intact(&file)
                .then(|| fs::read(&file).ok())
                .flatten()
                .and_then(|b| serde_json::from_slice::<FoldFile>(&b).ok());
            let mut ff = match saved {
                Some(ff) if ff.test == fold.test && ff.scored == scored => {
                    on(FinetuneEvent::FoldStart {
                        fold: fold.index,
                        method,
                        steps,
                        reused: true,
                    });
                    ff
                }
                _ => {
                    let is_model = method.is_model();
                    on(FinetuneEvent::FoldStart {
                        fold: fold.index,
                        method,
                        steps: if is_model { steps } else { 0 },
                        reused: false,
                    });
                    let t0 = Instant::now();
                    let mut kept: Option<Model> = None;
                    let mut fusion_kept: Option<String> = None;
                    let (raw, steps_run, best_step, best_f1) = if method == Method::Hrv {
                        let xt: Vec<Vec<f64>> = train.iter().map(|&i| feats[i].clone()).collect();
                        let yt: Vec<usize> = train.iter().map(|&i| ctx.y(i)).collect();
                        let xs: Vec<Vec<f64>> = scored.iter().map(|&i| feats[i].clone()).collect();
                        let p = hrv_baseline::fit_predict(
                            fold.index + 1,
                            (&xt, &yt),
                            &xs,
                            k,
                            ctx.cfg.class_weights,
                        )
                        .map_err(eval_err)?;
                        (p, None, None, None)
                    } else if method == Method::Fusion {
                        let (m, h) = fusion_of.as_ref().ok_or_else(|| {
                            TrainError::Data("method `fusion` needs `hrv` and a model method (pretrained or scratch) in ‹methods›".into())
                        })?;
                        let (lm, lh) = match (raw_of.get(m), raw_of.get(h)) {
                            (Some(a), Some(b)) => (a, b),
                            _ => {
                                return Err(TrainError::Data(format!(
                                    "method `fusion` must come after `{m}` and `{h}` in ‹methods›"
                                )))
                            }
                        };
                        let parts = late_parts(&corpus, &scored, lm, lh, cfg.calibration)?;
                        // The fold model saved by the model method (trained in this run, or an
                        // earlier one whose fold files were reused).
                        let early = || -> Result<Vec<Vec<f64>>, TrainError> {
                            let dir = run.join("models").join(format!("fold{}", fold.index + 1));
                            let (_, model) = load_model(&dir, device)?;
                            early_fusion(&ctx, &model, fold.index + 1, &train, &scored, &feats)
                        };
                        let p = match cfg.fusion {
                            Fusion::Late => fuse_weighted(&parts.0, &parts.1, 0.5),
                            Fusion::Early => early()?,
                            Fusion::Auto => {
                                // Late fusion at each weight (HRV alone and the model alone
                                // among them) and early fusion: the best on validation people.
                                let mut cands: Vec<(String, Vec<Vec<f64>>)> = LATE_WEIGHTS
                                    .iter()
                                    .map(|&w| {
                                        let name = match w {
                                            0.0 => format!("{h} alone"),
                                            1.0 => format!("{m} alone"),
                                            _ => format!("late {w:.2}·{m} + {:.2}·{h}", 1.0 - w),
                                        };
                                        (name, fuse_weighted(&parts.0, &parts.1, w))
                                    })
                                    .collect();
                                cands.push(("early".into(), early()?));
                                let (best, aucs) =
                                    choose_on_validation(&cands, &scored, &fold.val, &val_y, k);
                                fusion_kept = Some(format!(
                                    "{} (validation AUROC: {})",
                                    cands[best].0,
                                    cands
                                        .iter()
                                        .zip(&aucs)
                                        .map(|((n, _), a)| format!("{n} {}", fmt_opt(*a)))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ));
                                cands.swap_remove(best).1
                            }
                        };
                        (p, None, None, None)
                    } else {
                        let (model, s, bs, bf) =
                            ctx.train_model(method, fold, &train, steps, on)?;
                        let raw = ctx.predict(&model, &scored);
                        kept = Some(model);
                        (raw, Some(s), Some(bs), Some(bf))
                    };
                    // Scores to decisions: the same for every method. HRV features and fusion
                    // were calibrated before; model logits are calibrated here.
                    let l = decision::calibrated_logits(
                        &corpus.rows,
                        &scored,
                        &raw,
                        cfg.calibration,
                        is_model,
                    )?;
                    let (probs, op) = decision::decide(
                        &scored,
                        &l,
                        &decision::Split {
                            val: &fold.val,
                            val_y: &val_y,
                            test: &fold.test,
                            chosen_on: chosen_on.clone(),
                        },
                        &labels.classes,
                        cfg.calibration,
                    );
                    // The first model method's kept weights, with the point they decide at.
                    if let Some(model) = kept
                        .filter(|_| mi == methods.iter().position(|m| m.is_model()).unwrap_or(0))
                    {
                        let dir = run.join("models").join(format!("fold{}", fold.index + 1));
                        save_model_dir(&dir, &model_cfg, &model, &corpus, &labels, &op)?;
                    }
                    let keys: Vec<String> = fold.test.iter().map(|&i| trial_key(i)).collect();
                    let (ty, tp) = trial_level(&keys, &test_y, &probs);
                    let result = FoldResult {
                        method,
                        fold: fold.index,
                        n_train: train.len(),
                        n_val: fold.val.len(),
                        test_groups: fold.test_groups.clone(),
                        window: compute(&test_y, &probs, k),
                        trial: compute(&ty, &tp, k),
                        steps: steps_run,
                        best_step,
                        best_val_macro_f1: best_f1,
                        seconds: t0.elapsed().as_secs_f64(),
                        operating_point: Some(op),
                        fusion: fusion_kept,
                    };
                    let ff = FoldFile {
                        result,
                        test: fold.test.clone(),
                        probs,
                        scored: scored.clone(),
                        raw,
                    };
                    let bytes = serde_json::to_vec(&ff)
                        .map_err(|e| artifact::WriteError::new(&file, std::io::Error::other(e)))?;
                    write_atomic(&file, &bytes)?;
                    vouch_for_fold_file(&file)?;
                    ff
                }
            };
            raw_of.insert(method, std::mem::take(&mut ff.raw));
            for w in &ff.result.window.warnings {
                let w = format!("fold {}, {method}: {w}", fold.index + 1);
                if !warnings.contains(&w) {
                    on(FinetuneEvent::Warning(w.clone()));
                    warnings.push(w);
                }
            }
            for (&i, p) in ff.test.iter().zip(&ff.probs) {
                let r = &corpus.rows[i];
                predictions.push_str(&format!(
                    "{i},{},{},{},{method},{}",
                    cardiaffect_io::formats::csv::field(&r.subject),
                    cardiaffect_io::formats::csv::field(&r.trial),
                    fold.index + 1,
                    ctx.y(i)
                ));
                for v in p {
                    predictions.push_str(&format!(",{v:.6}"));
                }
                predictions.push('\n');
            }
            on(FinetuneEvent::FoldDone { result: &ff.result });
            per_fold.push(ff.result);
        }
    }
    // The model to use on new data: the first model method trained on every labeled window
    // (validation for early stopping and the operating point carved by the protocol's
    // groups), after the folds.
    if let Some(method) = methods
        .iter()
        .find(|m| m.is_model())
        .copied()
        .filter(|_| cfg.final_model)
    {
        ctx.final_model(method, run, &usable, on)?;
    }
    if per_fold.is_empty() {
        return Err(TrainError::Data(
            "no fold could be evaluated (every training fold had a single class)".into(),
        ));
    }
    write_atomic(&run.join("predictions.csv"), predictions.as_bytes())?;
    let results = ctx.results(
        &methods,
        folds.len(),
        warning,
        fusion_of.as_ref(),
        per_fold,
        warnings,
    );
    cardiaffect_eval::report::write_all(run, &results).map_err(eval_err)?;
    Checksums::write(run, &RESULT_FILES)?;
    Ok(results)
}
