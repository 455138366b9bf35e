//! `cardiaffect finetune` and `cardiaffect evaluate`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cardiaffect_eval::{Calibration, Folds, Method, Protocol, Task};
use cardiaffect_train::{finetune, FinetuneConfig, FinetuneEvent};
use clap::Args;
use indicatif::ProgressBar;

/// The library's defaults, which the flags show (one place for each).
fn defaults() -> FinetuneConfig {
    FinetuneConfig::new(PathBuf::new(), Task::Arousal)
}

#[derive(Args)]
pub struct FinetuneArgs {
    /// A labeled corpus folder written by `cardiaffect prepare`.
    #[arg(long, value_name = "DIR")]
    pub corpus: PathBuf,
    /// Pre-trained weights: `bundled` (the default: the weights shipped with cardiaffect, for
    /// 10 s windows at 128 Hz, see weights/bundled/MODEL_CARD.md), a pretrain run folder (or any
    /// folder with config.json and model.safetensors, such as its checkpoint/), or `none`
    /// (scratch and HRV only, the model from --config).
    #[arg(long, value_name = "RUN_DIR|bundled|none", default_value = "bundled")]
    pub pretrained: String,
    /// What to recognise: arousal, valence (high/low), quadrant (4 classes), condition (WESAD
    /// baseline/stress/amusement), stress (WESAD stress vs not), or any label column of the
    /// corpus (`prepare` lists them): a categorical one's classes (`trial_type`), a numeric one
    /// split at --threshold (default: its scale's midpoint).
    #[arg(long)]
    pub task: String,
    /// For a numeric column task: high = value > this (default: the scale's midpoint).
    #[arg(long, value_name = "VALUE")]
    pub threshold: Option<f64>,
    /// For a categorical column task: the classes to tell apart, in order (others are left
    /// out), e.g. --classes fear,joy.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub classes: Vec<String>,
    /// subject-independent (no subject in both train and test; the default), trial-grouped
    /// (no trial in both), or paper (k-fold over windows, as the seed paper: leaks).
    #[arg(long, value_enum, default_value_t = defaults().protocol)]
    pub protocol: Protocol,
    /// Number of folds, or `loso` (leave one subject, or trial, out). Default 5, or leave-one-out
    /// (said) when there are fewer subjects or trials than 5 folds need.
    #[arg(long)]
    pub folds: Option<String>,
    /// High arousal = rating > this (default: the scale's midpoint, e.g. 5 on AMIGOS's 1-9).
    #[arg(long, value_name = "RATING")]
    pub arousal_threshold: Option<f64>,
    /// High valence = rating > this (default: the scale's midpoint).
    #[arg(long, value_name = "RATING")]
    pub valence_threshold: Option<f64>,
    /// Run folder (created; a re-run with the same options reuses its finished folds).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Passes over each training fold.
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: f64,
    /// Training steps per fold (instead of --epochs).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = defaults().batch)]
    pub batch: usize,
    #[arg(long, default_value_t = defaults().lr)]
    pub lr: f64,
    /// Linear probe: train the head only, the encoder stays as pre-trained.
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Plain cross-entropy and HRV probabilities (by default classes are weighted by inverse
    /// training frequency, and the HRV baseline's probabilities corrected to equal priors).
    #[arg(long)]
    pub no_class_weights: bool,
    /// Fraction of each training fold's subjects (or trials) held out for early stopping.
    #[arg(long, default_value_t = defaults().val_fraction)]
    pub val_fraction: f64,
    /// Keep only this fraction of each training fold's trials (to study few labels).
    #[arg(long, default_value_t = defaults().train_fraction)]
    pub train_fraction: f64,
    /// Validation every N steps; stop after --patience evaluations without a better macro-F1.
    #[arg(long, default_value_t = defaults().eval_every)]
    pub eval_every: usize,
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    /// Methods compared on the same folds (comma-separated): pretrained, scratch, hrv, fusion
    /// (late fusion of the first model method and hrv; list it after both).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = defaults().methods)]
    pub methods: Vec<Method>,
    /// How each person's scores are calibrated before the decision: subject (z-scored with
    /// statistics of all of the person's windows, no label read), baseline (of the person's
    /// rest/baseline windows: DREAMER, WESAD), or none.
    #[arg(long, value_enum, default_value_t = defaults().calibration)]
    pub calibration: Calibration,
    /// How `fusion` joins the model and HRV: early (CLS embedding + HRV features, each
    /// calibrated per person, under one logistic-regression head), late (the sum of their
    /// calibrated logits), or auto (both; per fold the one with the higher AUROC on the
    /// fold's validation people).
    #[arg(long, value_enum, default_value_t = defaults().fusion)]
    pub fusion: cardiaffect_train::Fusion,
    /// Model config (JSON or TOML) for `--pretrained none`; with weights, theirs is the model
    /// (a --config that contradicts it is refused).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

pub fn run(a: FinetuneArgs) -> Result<()> {
    let device = a.device.device()?;
    let cfg = config(&a)?;
    run_config(&cfg, &a.out, &device)
}

/// The library configuration the flags describe.
pub fn config(a: &FinetuneArgs) -> Result<FinetuneConfig> {
    let task: Task = a.task.parse()?;
    let mut cfg = FinetuneConfig::new(a.corpus.clone(), task.clone());
    cfg.pretrained_label = a.pretrained.clone();
    cfg.pretrained = match a.pretrained.as_str() {
        "none" => None,
        "bundled" => Some(crate::bundled::weights_dir()?),
        p => {
            let p = PathBuf::from(p);
            if !p.join(cardiaffect_bundle::WEIGHTS_FILE).exists() {
                bail!("--pretrained {}: no model.safetensors there (expected a pretrain run folder, `bundled` or `none`)", p.display());
            }
            Some(p)
        }
    };
    cfg.model = crate::pretrain::model_config(&a.config)?;
    if let (Some(dir), Some(given)) = (&cfg.pretrained, &a.config) {
        config_agrees_with_weights(given, dir)?;
    }
    cfg.protocol = a.protocol;
    cfg.folds = a.folds.as_deref().unwrap_or("5").parse::<Folds>()?;
    cfg.folds_is_default = a.folds.is_none();
    cfg.window_from_corpus = cfg.pretrained.is_none()
        && match &a.config {
            None => true,
            Some(p) => crate::pretrain::config_fields(p)?
                .get("window_len")
                .is_none(),
        };
    cfg.thresholds.arousal = a.arousal_threshold;
    cfg.thresholds.valence = a.valence_threshold;
    cfg.thresholds.column = a.threshold;
    cfg.thresholds.classes = a.classes.clone();
    if !matches!(task, Task::Column(_)) && (a.threshold.is_some() || !a.classes.is_empty()) {
        bail!("--threshold and --classes are for a label-column task; --task {task} has its own rule (--arousal-threshold, --valence-threshold)");
    }
    cfg.epochs = a.epochs;
    cfg.max_steps = a.steps;
    cfg.batch = a.batch;
    cfg.lr = a.lr;
    cfg.freeze_encoder = a.freeze_encoder;
    cfg.class_weights = !a.no_class_weights;
    cfg.val_fraction = a.val_fraction;
    cfg.train_fraction = a.train_fraction;
    cfg.eval_every = a.eval_every;
    cfg.patience = a.patience;
    cfg.methods = a.methods.clone();
    cfg.calibration = a.calibration;
    cfg.fusion = a.fusion;
    cfg.seed = a.seed;
    cfg.validate()?;
    Ok(cfg)
}

#[derive(Args)]
pub struct CurveArgs {
    /// Fractions of each training fold's labeled trials, in (0, 1] (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.25,0.5,1")]
    pub fractions: Vec<f64>,
    #[command(flatten)]
    pub finetune: FinetuneArgs,
}

/// `cardiaffect curve`: the label-efficiency curve (one finetune run per fraction).
pub fn curve(a: CurveArgs) -> Result<()> {
    if a.finetune.train_fraction != 1.0 {
        bail!("--train-fraction {}: `curve` sets the fraction itself; give the fractions with --fractions", a.finetune.train_fraction);
    }
    let device = a.finetune.device.device()?;
    let cfg = config(&a.finetune)?;
    cardiaffect_train::curve::check_fractions(&a.fractions)?;
    let out = &a.finetune.out;
    let bar = progress_bar("{spinner} {prefix} [{bar:25}] {pos}/{len} {msg}");
    let c = cardiaffect_train::curve(&cfg, &a.fractions, out, &device, &mut |f, e| match e {
        FinetuneEvent::FoldStart {
            fold,
            method,
            steps,
            ..
        } => {
            bar.set_prefix(if fold == usize::MAX {
                format!("fraction {f}: final model ({method})")
            } else {
                format!("fraction {f}: fold {} {method}", fold + 1)
            });
            bar.set_length(steps.max(1) as u64);
            bar.set_position(0);
        }
        FinetuneEvent::Step { step, .. } => bar.set_position(step as u64),
        FinetuneEvent::Warning(w) => {
            crate::output::say(&bar, format!("warning (fraction {f}): {w}"))
        }
        _ => {}
    })?;
    bar.finish_and_clear();
    println!("{}", cardiaffect_train::curve::markdown(&c));
    println!(
        "wrote {}/curve.json, curve.md, curve.svg, frac-*/ (one finetune run per fraction)",
        out.display()
    );
    Ok(())
}

/// With pre-trained weights their own config is the model; a `--config` that says otherwise
/// (other than `n_classes`, which the task sets) would be silently ignored, so it is refused.
fn config_agrees_with_weights(given: &Path, weights: &Path) -> Result<()> {
    let g = crate::pretrain::config_fields(given)?;
    let wp = weights.join(cardiaffect_bundle::CONFIG_FILE);
    let w: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&wp).with_context(|| format!("reading {}", wp.display()))?,
    )
    .with_context(|| format!("{}: not a model config", wp.display()))?;
    let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    for (k, v) in g.as_object().into_iter().flatten() {
        let theirs = w.get(k).unwrap_or(&serde_json::Value::Null);
        let equal = match (v.as_array(), theirs.as_array()) {
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
            _ => same(v, theirs),
        };
        if k != "n_classes" && !equal {
            bail!(
                "--config {}: `{k}` is {v} there but {theirs} in the pre-trained weights' {}; the weights' own config is the model that gets fine-tuned: leave --config out, or train that config from scratch with --pretrained none",
                given.display(),
                wp.display()
            );
        }
    }
    Ok(())
}

/// The fold/step bar of `finetune` and `curve`.
fn progress_bar(template: &str) -> ProgressBar {
    crate::pretrain::styled_bar(ProgressBar::new(1), template, Duration::from_millis(250))
}

/// Run a fine-tuning configuration with progress bars and print the table.
pub fn run_config(
    cfg: &FinetuneConfig,
    out: &std::path::Path,
    device: &burn::prelude::Device,
) -> Result<()> {
    let bar = progress_bar("{spinner} {prefix} [{bar:25}] {pos}/{len} {msg} (ETA {eta})");
    let mut n_folds = 0;
    let mut last_f1 = String::new();
    let mut training = String::new();
    let results = finetune(cfg, out, device, &mut |e| {
        match e {
        FinetuneEvent::Start { folds, methods, labels, warning } => {
            n_folds = folds;
            crate::output::say(&bar, format!("labels: {}", labels.describe()));
            crate::output::say(&bar, format!("protocol: {} ({folds} folds), methods: {}", cfg.protocol, methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")));
            if let Some(w) = warning {
                crate::output::say(&bar, format!("WARNING: {w}"));
            }
        }
        FinetuneEvent::FoldStart { fold, method, steps, reused } => {
            training = if fold == usize::MAX {
                format!("final model ({method}, all subjects)")
            } else {
                format!("fold {}/{n_folds} {method}", fold + 1)
            };
            bar.set_prefix(training.clone());
            bar.set_length(steps.max(1) as u64);
            bar.set_position(0);
            last_f1.clear();
            if reused {
                bar.set_message("reused from an earlier run");
            }
        }
        FinetuneEvent::Step { step, loss } => {
            // Each step's loss for -vv (the bar shows only the last).
            tracing::debug!(model = %training, step, loss, "fine-tuning step");
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.3}{last_f1}"));
        }
        FinetuneEvent::Eval { val_macro_f1, .. } => last_f1 = format!(" val macro-F1 {val_macro_f1:.3}"),
        FinetuneEvent::FoldDone { result } => crate::output::say(&bar, format!(
            "fold {} {:<10} accuracy {:.3}  macro-F1 {:.3}  balanced {:.3}  AUROC {}  ({} test windows, {:.1} s)",
            result.fold + 1,
            result.method,
            result.window.accuracy,
            result.window.macro_f1,
            result.window.balanced_accuracy,
            result.window.auroc.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into()),
            result.window.n,
            result.seconds
        ) + &result.fusion.as_ref().map(|f| format!(" — kept {f}")).unwrap_or_default()),
        FinetuneEvent::Warning(w) => crate::output::say(&bar, format!("warning: {w}")),
    }
    });
    bar.finish_and_clear();
    let r = results?;
    println!("{}", cardiaffect_eval::report::markdown(&r));
    println!(
        "wrote {}/results.json, results.md, confusion.svg, folds.svg, predictions.csv, models/ (per fold), model/ (final, for `predict`)",
        out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// A finetune run folder.
    pub run: PathBuf,
}

/// Re-write the tables and plots of a finished run from its results.json, and print the table.
pub fn evaluate(a: EvaluateArgs) -> Result<()> {
    let _lock = cardiaffect_corpus::RunLock::acquire(&a.run, "evaluate")?;
    cardiaffect_io::artifact::Checksums::verify(&a.run)?;
    let p = a.run.join("results.json");
    let bytes = std::fs::read(&p).with_context(|| {
        format!(
            "{}: no results.json: is it a finished finetune run?",
            a.run.display()
        )
    })?;
    let r: cardiaffect_eval::report::Results = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a results file", p.display()))?;
    cardiaffect_eval::report::write_all(&a.run, &r)?;
    println!("{}", cardiaffect_eval::report::markdown(&r));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_to_the_librarys_config() {
        let a: FinetuneArgs = crate::pretrain::parse_flags(&[
            "t", "--corpus", "c", "--task", "arousal", "--out", "o",
        ]);
        let d = defaults();
        assert_eq!(a.methods, d.methods);
        assert_eq!(
            (a.fusion, a.protocol, a.calibration),
            (d.fusion, d.protocol, d.calibration)
        );
        assert_eq!(
            (a.epochs, a.batch, a.lr, a.seed),
            (d.epochs, d.batch, d.lr, d.seed)
        );
        assert_eq!(
            (a.val_fraction, a.train_fraction, a.eval_every, a.patience),
            (d.val_fraction, d.train_fraction, d.eval_every, d.patience)
        );
    }
}
