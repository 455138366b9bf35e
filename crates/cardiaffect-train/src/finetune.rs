//! Fine-tuning and evaluation under a stated protocol, with baselines on the same folds.
//!
//! For every fold of the protocol ([`cardiaffect_eval::make_folds`]) and every method:
//! - `pretrained`: the pre-trained encoder with a new head on the CLS token, fully fine-tuned
//!   (or a linear probe with `freeze_encoder`);
//! - `scratch`: the same model from random initial weights, same batches, same schedule;
//! - `hrv`: HRV features + logistic regression;
//! - `fusion`: late fusion of the first model method (`pretrained`, else `scratch`) and `hrv`:
//!   the sum of their calibrated logits.
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
use cardiaffect_corpus::Corpus;
use cardiaffect_eval::metrics::{compute, trial_level};
use cardiaffect_eval::report::{aggregate, Chance, FoldResult, Results};
use cardiaffect_eval::{
    hrv_baseline, make_folds, make_labels, Calibration, Fold, Folds, Labels, Method,
    OperatingPoint, Protocol, Task, Thresholds,
};
use cardiaffect_model::batch;
use cardiaffect_model::bundle::{ModelBundle, LABELS_FILE};
use cardiaffect_model::{cross_entropy, load_model, Model, ModelConfig};
use cardiaffect_signal::Rng;
use serde::{Deserialize, Serialize};

use crate::decision::{self, is_rest};
use crate::pretrain::{io_err, write_atomic, write_json_atomic};
use cardiaffect_io::artifact::{self, Checksums};

/// The files of a finished run that `checksums.json` vouches for (written last).
pub const RESULT_FILES: [&str; 6] = [
    "finetune.json",
    "predictions.csv",
    "results.json",
    "results.md",
    "confusion.svg",
    "folds.svg",
];

/// A fold file is reused only if `folds/checksums.json` vouches for it (else it is computed
/// again: a damaged one is said, a missing entry means the run stopped right after writing it).
fn fold_file_intact(file: &Path) -> bool {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    match Checksums::load(dir) {
        Ok(Some(list)) if list.files.contains_key(name.as_ref()) => {
            match list.check_file(dir, &name) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("{e}: this fold is computed again");
                    false
                }
            }
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!("{e}: the folds are computed again");
            false
        }
    }
}

/// Record `file`'s checksum in its folder's `checksums.json` (one writer: the run's lock).
fn vouch_for_fold_file(file: &Path) -> Result<(), TrainError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut list = Checksums::load(dir).ok().flatten().unwrap_or_default();
    let sum = artifact::checksum_file(file).map_err(io_err(file))?;
    list.files.insert(name, sum);
    write_json_atomic(&dir.join(Checksums::FILE), &list)?;
    Ok(())
}
use crate::TrainError;
pub use cardiaffect_eval::calibration::OPERATING_POINT_FILE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub corpus: PathBuf,
    /// A model folder (`config.json` + `model.safetensors`, e.g. a pretrain run); `None`: only
    /// the scratch and HRV methods run.
    pub pretrained: Option<PathBuf>,
    /// How the pre-trained weights were named on the command line (`bundled`, a path, `none`).
    pub pretrained_label: String,
    /// The model when there are no pre-trained weights (otherwise their config is used).
    pub model: ModelConfig,
    pub task: Task,
    pub thresholds: Thresholds,
    pub protocol: Protocol,
    pub folds: Folds,
    pub val_fraction: f64,
    /// Keep this fraction of each training fold's trials (fewer labels); validation and test
    /// are untouched.
    pub train_fraction: f64,
    pub seed: u64,
    pub epochs: f64,
    pub max_steps: Option<usize>,
    pub batch: usize,
    pub lr: f64,
    pub warmup_fraction: f64,
    pub weight_decay: f64,
    pub freeze_encoder: bool,
    pub class_weights: bool,
    pub eval_every: usize,
    pub patience: usize,
    /// Methods, in order: any of `pretrained`, `scratch`, `hrv`, `fusion`.
    pub methods: Vec<Method>,
    /// How each person's scores are calibrated before the decision.
    #[serde(default)]
    pub calibration: Calibration,
    /// How `fusion` joins the model and HRV.
    #[serde(default)]
    pub fusion: Fusion,
    /// Without pre-trained weights, take the window length from the corpus (the CLI sets it
    /// when no `--config` names one): there is nothing else it must fit.
    #[serde(default)]
    pub window_from_corpus: bool,
    /// `folds` is the default, not the user's: with fewer subjects (or trials) than it needs,
    /// leave one out instead, and say so. An explicit number stays an error there.
    #[serde(default)]
    pub folds_is_default: bool,
    /// Train `model/` on every labeled window after cross-validation (`curve` skips it for
    /// fractions below 1: only the table is wanted there).
    #[serde(default = "yes")]
    pub final_model: bool,
}

fn yes() -> bool {
    true
}

impl FinetuneConfig {
    /// Fields outside their range, named (the CLI adds the flag).
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |field, value: f64, expected| TrainError::Invalid {
            field,
            value: value.to_string(),
            expected,
        };
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(invalid(
                "val_fraction",
                self.val_fraction,
                "a fraction in (0, 1)",
            ));
        }
        if !(self.train_fraction > 0.0 && self.train_fraction <= 1.0) {
            return Err(invalid(
                "train_fraction",
                self.train_fraction,
                "a fraction in (0, 1]",
            ));
        }
        if self.batch == 0
            || (self.epochs.is_nan() || self.epochs <= 0.0) && self.max_steps.is_none()
        {
            return Err(TrainError::Data(
                "batch and epochs (or steps) must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn new(corpus: PathBuf, task: Task) -> Self {
        FinetuneConfig {
            corpus,
            pretrained: None,
            pretrained_label: "none".into(),
            model: ModelConfig::new(),
            task,
            thresholds: Thresholds::default(),
            protocol: Protocol::SubjectIndependent,
            folds: Folds::K(5),
            val_fraction: 0.2,
            train_fraction: 1.0,
            seed: 1,
            epochs: 10.0,
            max_steps: None,
            batch: 32,
            lr: 3e-4,
            warmup_fraction: 0.1,
            weight_decay: 0.01,
            freeze_encoder: false,
            class_weights: true,
            eval_every: 20,
            patience: 5,
            methods: Method::ALL.to_vec(),
            calibration: Calibration::default(),
            fusion: Fusion::default(),
            window_from_corpus: false,
            folds_is_default: false,
            final_model: true,
        }
    }
}

/// How `fusion` joins a model method and HRV. `late`: the sum of their calibrated logits.
/// `early`: the model's CLS embedding and the HRV features, each calibrated per person, under
/// one logistic-regression head trained on the training people (the kept fold model from
/// `models/fold<k>/`). `auto` (the default): both, and per fold the one with the higher AUROC
/// on the fold's validation people (never its test people); each fold says which it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    #[default]
    Auto,
    Late,
    Early,
}

impl Fusion {
    pub const ALL: [&'static str; 3] = ["auto", "early", "late"];
}

impl std::str::FromStr for Fusion {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s {
            "auto" => Ok(Fusion::Auto),
            "late" => Ok(Fusion::Late),
            "early" => Ok(Fusion::Early),
            _ => Err(TrainError::Data(format!(
                "--fusion {s}: expected auto, early or late"
            ))),
        }
    }
}

/// What the caller hears.
pub enum FinetuneEvent<'a> {
    Start {
        folds: usize,
        methods: &'a [Method],
        labels: &'a Labels,
        warning: Option<&'static str>,
    },
    FoldStart {
        fold: usize,
        method: Method,
        steps: usize,
        reused: bool,
    },
    Step {
        step: usize,
        loss: f64,
    },
    Eval {
        step: usize,
        val_macro_f1: f64,
    },
    FoldDone {
        result: &'a FoldResult,
    },
    Warning(String),
}

fn eval_err(e: cardiaffect_eval::EvalError) -> TrainError {
    TrainError::Data(e.to_string())
}

/// Saved per fold and method: the metrics, the test probabilities at the operating point, and
/// the scores before calibration of every scored window (validation, test and, for `baseline`,
/// rest windows), which `fusion` combines.
#[derive(Serialize, Deserialize)]
struct FoldFile {
    result: FoldResult,
    test: Vec<usize>,
    probs: Vec<Vec<f64>>,
    #[serde(default)]
    scored: Vec<usize>,
    #[serde(default)]
    raw: Vec<Vec<f64>>,
}

struct Ctx<'a> {
    cfg: &'a FinetuneConfig,
    model_cfg: ModelConfig,
    corpus: &'a Corpus,
    labels: &'a Labels,
    device: &'a Device,
}

impl Ctx<'_> {
    fn batch_x(&self, idx: &[usize], device: &Device) -> Tensor<2> {
        let l = self.model_cfg.window_len;
        let x = batch::zscored(idx.iter().map(|&i| self.corpus.window(i)), l);
        batch::tensor(x, l, device)
    }

    fn y(&self, i: usize) -> usize {
        self.labels.y[i].unwrap_or(0)
    }

    /// Class probabilities (softmax of the logits in f64).
    fn predict(&self, model: &Model, idx: &[usize]) -> Vec<Vec<f64>> {
        idx.chunks(64)
            .flat_map(|chunk| model.class_logits(self.batch_x(chunk, self.device)))
            .map(|l| cardiaffect_eval::calibration::softmax(&l))
            .collect()
    }

    /// CLS embeddings (inference).
    fn embed(&self, model: &Model, idx: &[usize]) -> Vec<Vec<f64>> {
        idx.chunks(64)
            .flat_map(|chunk| model.cls_embeddings(self.batch_x(chunk, self.device)))
            .collect()
    }

    fn init_model(&self, method: Method, fold: usize) -> Result<Model, TrainError> {
        let ad = self.device.clone().autodiff();
        // Head (and, for scratch, all) weights seeded per fold, the same for both methods.
        ad.seed(
            Rng::new(self.cfg.seed)
                .fork(0x1A17 ^ fold as u64)
                .next_u64(),
        );
        let fresh = self.model_cfg.init(&ad)?;
        if method == Method::Scratch {
            return Ok(fresh);
        }
        let dir = self.cfg.pretrained.as_ref().ok_or_else(|| {
            TrainError::Data("method `pretrained` needs pre-trained weights".into())
        })?;
        let (_, mut pre) = load_model(dir, &ad)?;
        pre.cls_head = fresh.cls_head;
        Ok(pre)
    }

    fn lr_at(&self, step: usize, steps: usize) -> f64 {
        crate::schedule::WarmupCosine {
            lr: self.cfg.lr,
            warmup: ((self.cfg.warmup_fraction * steps as f64).round() as usize).max(1),
            steps,
        }
        .at(step)
    }

    /// Train one model on one fold; returns (kept model, steps run, best step, best val F1).
    fn train_model(
        &self,
        method: Method,
        fold: &Fold,
        train: &[usize],
        steps: usize,
        on: &mut dyn FnMut(FinetuneEvent),
    ) -> Result<(Model, usize, usize, f64), TrainError> {
        let ad = self.device.clone().autodiff();
        let k = self.labels.classes.len();
        let mut model = self.init_model(method, fold.index)?;
        let mut optim: ModuleOptimizer = AdamWConfig::new()
            .with_weight_decay(self.cfg.weight_decay as f32)
            .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)))
            .init();
        let weights = if self.cfg.class_weights {
            let mut n = vec![0usize; k];
            for &i in train {
                n[self.y(i)] += 1;
            }
            let present = n.iter().filter(|&&c| c > 0).count().max(1);
            let w: Vec<f32> = n
                .iter()
                .map(|&c| {
                    if c > 0 {
                        train.len() as f32 / (present * c) as f32
                    } else {
                        1.0
                    }
                })
                .collect();
            Some(Tensor::<1>::from_data(TensorData::new(w, [k]), &ad))
        } else {
            None
        };
        let val_y: Vec<usize> = fold.val.iter().map(|&i| self.y(i)).collect();
        let (mut best, mut best_step, mut best_f1, mut since) =
            (model.valid(), 0, f64::NEG_INFINITY, 0);
        let mut done = 0;
        for step in 0..steps {
            let mut rng =
                Rng::new(self.cfg.seed).fork(0xF17E ^ ((fold.index as u64) << 32) ^ step as u64);
            let idx: Vec<usize> = (0..self.cfg.batch.min(train.len()))
                .map(|_| train[rng.below(train.len())])
                .collect();
            let x = self.batch_x(&idx, &ad);
            let y: Vec<i64> = idx.iter().map(|&i| self.y(i) as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [idx.len()]), &ad);
            let cls = if self.cfg.freeze_encoder {
                model.encode(x, None).cls.detach()
            } else {
                model.encode_train(x, None, rng.next_u64()).cls
            };
            let loss = cross_entropy(model.classify(cls), y, weights.clone());
            let lv = match crate::step::step(&mut optim, self.lr_at(step, steps), model, loss) {
                Ok((m, lv)) => {
                    model = m;
                    lv
                }
                Err(crate::step::NonFiniteLoss(lv)) => {
                    return Err(TrainError::Data(format!(
                        "fine-tuning {method}, fold {}: loss became {lv} at step {}",
                        fold.index + 1,
                        step + 1
                    )));
                }
            };
            done = step + 1;
            on(FinetuneEvent::Step {
                step: done,
                loss: lv as f64,
            });
            if done % self.cfg.eval_every.max(1) == 0 || done == steps {
                let inf = model.valid();
                let p = self.predict(&inf, &fold.val);
                let f1 = compute(&val_y, &p, k).macro_f1;
                on(FinetuneEvent::Eval {
                    step: done,
                    val_macro_f1: f1,
                });
                if f1 > best_f1 {
                    best_f1 = f1;
                    best_step = done;
                    best = inf;
                    since = 0;
                } else {
                    since += 1;
                    if since >= self.cfg.patience.max(1) {
                        break;
                    }
                }
            }
        }
        Ok((best, done, best_step, best_f1))
    }
}

/// Fewer labels: keep `fraction` of the training trials (whole trials, seeded).
fn subsample(ctx: &Ctx, train: &[usize], fold: usize) -> Vec<usize> {
    if ctx.cfg.train_fraction >= 1.0 {
        return train.to_vec();
    }
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in train {
        groups
            .entry(Protocol::TrialGrouped.group(&ctx.corpus.rows[i], i))
            .or_default()
            .push(i);
    }
    let mut keys: Vec<&String> = groups.keys().collect();
    let mut rng = Rng::new(ctx.cfg.seed).fork(0x5B5A ^ fold as u64);
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i + 1));
    }
    let keep = ((ctx.cfg.train_fraction * keys.len() as f64).round() as usize).max(1);
    let mut out: Vec<usize> = keys[..keep]
        .iter()
        .flat_map(|k| groups[*k].iter().copied())
        .collect();
    out.sort_unstable();
    out
}

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
    let mut model_cfg = match &cfg.pretrained {
        Some(dir) => {
            let p = dir.join(cardiaffect_model::CONFIG_FILE);
            let text = fs::read_to_string(&p).map_err(io_err(&p))?;
            serde_json::from_str::<ModelConfig>(&text).map_err(|e| TrainError::Checkpoint {
                path: p.clone(),
                message: format!("not a model config: {e}"),
            })?
        }
        None => cfg.model.clone(),
    };
    model_cfg.n_classes = labels.classes.len();
    if cfg.pretrained.is_none()
        && cfg.window_from_corpus
        && corpus.window_len() != model_cfg.window_len
    {
        model_cfg.window_len = corpus.window_len();
        on(FinetuneEvent::Warning(format!(
            "no pre-trained weights: the model's window is the corpus's, {} samples ({} s at {} Hz)",
            corpus.window_len(),
            corpus.window_len() as f64 / corpus.manifest.config.fs,
            corpus.manifest.config.fs
        )));
    }
    model_cfg.validate()?;
    // The rate first: with it equal, the window below is the pre-trained model's in seconds.
    if let Some(dir) = &cfg.pretrained {
        if let Some(pp) = cardiaffect_model::bundle::read_preprocess(dir)? {
            if (pp.fs - corpus.manifest.config.fs).abs() > 1e-9 {
                return Err(TrainError::Mismatch {
                    path: cfg.corpus.clone(),
                    field: "sampling rate",
                    expected: format!("{} Hz (the pre-trained model's)", pp.fs),
                    found: format!("{} Hz", corpus.manifest.config.fs),
                });
            }
        }
    }
    if corpus.window_len() != model_cfg.window_len && cfg.pretrained.is_some() {
        let fs = corpus.manifest.config.fs;
        return Err(TrainError::Data(format!(
            "corpus {}: window length is {} samples ({} s at {fs} Hz), the pre-trained model ({}) expects {} samples: prepare the corpus with --window {}s --fs {fs}, or fine-tune without pre-training (--pretrained none)",
            cfg.corpus.display(),
            corpus.window_len(),
            corpus.window_len() as f64 / fs,
            cfg.pretrained_label,
            model_cfg.window_len,
            model_cfg.window_len as f64 / fs,
        )));
    }
    if corpus.window_len() != model_cfg.window_len {
        return Err(TrainError::Mismatch {
            path: cfg.corpus.clone(),
            field: "window length",
            expected: format!("{} samples (the model's)", model_cfg.window_len),
            found: format!("{} samples", corpus.window_len()),
        });
    }
    let methods: Vec<Method> = cfg
        .methods
        .iter()
        .filter(|&&m| m != Method::Pretrained || cfg.pretrained.is_some())
        .copied()
        .collect();
    // Checked on the methods that will run (`pretrained` is dropped without weights).
    if let Some(fi) = methods.iter().position(|&m| m == Method::Fusion) {
        let before = &methods[..fi];
        if !before.contains(&Method::Hrv) || !before.iter().any(|m| m.is_model()) {
            return Err(TrainError::Data(format!(
                "method `fusion` combines `hrv` with a model method (pretrained or scratch): list both before it in --methods{}",
                if cfg.pretrained.is_none() && cfg.methods.contains(&Method::Pretrained) {
                    " (`pretrained` does not run with --pretrained none: add scratch)"
                } else {
                    ""
                }
            )));
        }
    }
    if cfg.calibration == Calibration::Baseline {
        if matches!(cfg.task, Task::Condition | Task::Stress) {
            return Err(TrainError::Data(format!(
                "--calibration baseline with --task {}: the baseline condition is one of the task's classes, so calibrating on it would read the labels; use subject or none",
                cfg.task
            )));
        }
        if !corpus.rows.iter().any(is_rest) {
            return Err(TrainError::Data(format!(
                "--calibration baseline: corpus {} has no rest/baseline window (DREAMER's baseline segments or WESAD's baseline condition); use subject or none",
                cfg.corpus.display()
            )));
        }
    }
    let usable: Vec<usize> = (0..corpus.len())
        .filter(|&i| labels.y[i].is_some())
        .collect();
    let folds = match make_folds(
        &corpus.rows,
        &usable,
        cfg.protocol,
        cfg.folds,
        cfg.val_fraction,
        cfg.seed,
    ) {
        Err(cardiaffect_eval::EvalError::TooFewGroups { groups, what, .. })
            if cfg.folds_is_default && groups >= 3 =>
        {
            on(FinetuneEvent::Warning(format!(
                "{groups} {what}, fewer than the default {} folds need: leave-one-out instead ({groups} folds)",
                match cfg.folds {
                    Folds::K(k) => k.to_string(),
                    Folds::LeaveOneOut => "loso".into(),
                }
            )));
            make_folds(
                &corpus.rows,
                &usable,
                cfg.protocol,
                Folds::LeaveOneOut,
                cfg.val_fraction,
                cfg.seed,
            )
            .map_err(eval_err)?
        }
        r => r.map_err(eval_err)?,
    };

    fs::create_dir_all(run.join("folds")).map_err(io_err(run))?;
    let cfg_path = run.join("finetune.json");
    if let Ok(old) = fs::read(&cfg_path) {
        match serde_json::from_slice::<FinetuneConfig>(&old) {
            Ok(saved) if &saved == cfg => {}
            _ => {
                // Another configuration: its fold files and models must not be mixed with
                // this one's (a kept `model/` would carry the old operating point).
                let _ = fs::remove_dir_all(run.join("folds"));
                let _ = fs::remove_dir_all(run.join("models"));
                let _ = fs::remove_dir_all(run.join("model"));
                fs::create_dir_all(run.join("folds")).map_err(io_err(run))?;
            }
        }
    }
    write_json_atomic(&cfg_path, cfg)?;
    // A run's results are vouched for only once it has finished again.
    let _ = fs::remove_file(run.join(Checksums::FILE));
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
    let fs_hz = corpus.manifest.config.fs;
    let trial_key = |i: usize| Protocol::TrialGrouped.group(&corpus.rows[i], i);
    let mut per_fold = Vec::new();
    let mut warnings = Vec::new();
    let mut predictions = String::from("index,subject,trial,fold,method,true_class");
    for c in &labels.classes {
        predictions.push_str(&format!(",p_{}", c.replace([' ', ','], "_")));
    }
    predictions.push('\n');
    // HRV features of every labeled window (and every rest window, for `baseline`), made
    // once: standardised per person when calibrating (training people with their own
    // statistics too, since the classifier learns on calibrated features).
    let feature_idx: Vec<usize> = (0..corpus.len())
        .filter(|&i| {
            labels.y[i].is_some()
                || (cfg.calibration == Calibration::Baseline && is_rest(&corpus.rows[i]))
        })
        .collect();
    let feats: Vec<Vec<f64>> = if methods.contains(&Method::Hrv) {
        let ws: Vec<Vec<f32>> = feature_idx.iter().map(|&i| corpus.window(i)).collect();
        let mut f = hrv_baseline::features_many(&ws, fs_hz);
        if let Some(stats) =
            decision::reference_stats(&corpus.rows, &feature_idx, &f, cfg.calibration)
        {
            decision::apply_stats(&corpus.rows, &feature_idx, &mut f, &stats, cfg.calibration)?;
        }
        let mut all = vec![Vec::new(); corpus.len()];
        for (&i, v) in feature_idx.iter().zip(f) {
            all[i] = v;
        }
        all
    } else {
        Vec::new()
    };
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
                            TrainError::Data("method `fusion` needs `hrv` and a model method (pretrained or scratch) in --methods".into())
                        })?;
                        let (lm, lh) = match (raw_of.get(m), raw_of.get(h)) {
                            (Some(a), Some(b)) => (a, b),
                            _ => {
                                return Err(TrainError::Data(format!(
                                    "method `fusion` must come after `{m}` and `{h}` in --methods"
                                )))
                            }
                        };
                        let late = || fuse(&corpus, &scored, lm, lh, cfg.calibration);
                        // The fold model saved by the model method (trained in this run, or an
                        // earlier one whose fold files were reused).
                        let early = || -> Result<Vec<Vec<f64>>, TrainError> {
                            let dir = run.join("models").join(format!("fold{}", fold.index + 1));
                            let (_, model) = load_model(&dir, device)?;
                            early_fusion(&ctx, &model, fold.index + 1, &train, &scored, &feats)
                        };
                        let p = match cfg.fusion {
                            Fusion::Late => late()?,
                            Fusion::Early => early()?,
                            Fusion::Auto => {
                                let (e, l) = (early()?, late()?);
                                let (ae, al) = (
                                    val_auroc(&scored, &e, &fold.val, &val_y, k),
                                    val_auroc(&scored, &l, &fold.val, &val_y, k),
                                );
                                let keep_late = al > ae;
                                fusion_kept = Some(format!(
                                    "{} (validation AUROC: early {}, late {})",
                                    if keep_late { "late" } else { "early" },
                                    fmt_opt(ae),
                                    fmt_opt(al)
                                ));
                                if keep_late {
                                    l
                                } else {
                                    e
                                }
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
        let dir = run.join("model");
        if !dir.join(LABELS_FILE).exists() {
            let fold = cardiaffect_eval::protocol::final_split(
                &corpus.rows,
                &usable,
                cfg.protocol,
                cfg.val_fraction,
                cfg.seed,
            )
            .map_err(eval_err)?;
            let steps = cfg
                .max_steps
                .unwrap_or(
                    ((cfg.epochs * fold.train.len() as f64) / cfg.batch as f64).ceil() as usize,
                )
                .max(1);
            on(FinetuneEvent::FoldStart {
                fold: usize::MAX,
                method,
                steps,
                reused: false,
            });
            let (model, ..) = ctx.train_model(method, &fold, &fold.train, steps, on)?;
            let scored = scored_windows(&corpus, cfg.calibration, &fold.val, &[]);
            let raw = ctx.predict(&model, &scored);
            let l =
                decision::calibrated_logits(&corpus.rows, &scored, &raw, cfg.calibration, true)?;
            let val_y: Vec<usize> = fold.val.iter().map(|&i| ctx.y(i)).collect();
            let (_, op) = decision::decide(
                &scored,
                &l,
                &decision::Split {
                    val: &fold.val,
                    val_y: &val_y,
                    test: &[],
                    chosen_on: format!(
                        "validation people of the final split: {}",
                        fold.val_groups.join(", ")
                    ),
                },
                &labels.classes,
                cfg.calibration,
            );
            save_model_dir(&dir, &model_cfg, &model, &corpus, &labels, &op)?;
        }
    }
    if per_fold.is_empty() {
        return Err(TrainError::Data(
            "no fold could be evaluated (every training fold had a single class)".into(),
        ));
    }
    write_atomic(&run.join("predictions.csv"), predictions.as_bytes())?;
    let total: usize = labels.counts.iter().sum();
    let majority = *labels.counts.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64;
    let mut datasets: Vec<String> = corpus.rows.iter().map(|r| r.dataset.clone()).collect();
    datasets.sort();
    datasets.dedup();
    let results = Results {
        cardiaffect_version: env!("CARGO_PKG_VERSION").into(),
        corpus: cfg.corpus.display().to_string(),
        datasets,
        task: cfg.task.clone(),
        label_rule: labels.describe(),
        labels: labels.clone(),
        protocol: cfg.protocol,
        protocol_warning: warning.map(String::from),
        folds: folds.len(),
        seed: cfg.seed,
        pretrained: cfg.pretrained_label.clone(),
        model_config: serde_json::to_value(&model_cfg).unwrap_or_default(),
        finetune_config: serde_json::json!({
            "epochs": cfg.epochs, "max_steps": cfg.max_steps, "batch": cfg.batch, "lr": cfg.lr,
            "weight_decay": cfg.weight_decay, "freeze_encoder": cfg.freeze_encoder,
            "class_weights": cfg.class_weights, "val_fraction": cfg.val_fraction,
            "train_fraction": cfg.train_fraction, "eval_every": cfg.eval_every, "patience": cfg.patience,
            "input_normalisation": "z-score per window",
        }),
        calibration: cfg.calibration.to_string(),
        calibration_rule: cfg.calibration.describe().to_string(),
        operating_point_rule: if k == 2 {
            format!("{} decided when its calibrated probability is above the threshold that maximises balanced accuracy on each training fold's validation people (per fold in per_fold[].operating_point)", labels.classes[1])
        } else {
            "the most probable class (more than two classes: no threshold)".into()
        },
        fusion: fusion_of
            .as_ref()
            .filter(|_| methods.contains(&Method::Fusion))
            .map(|(m, h)| match cfg.fusion {
                Fusion::Late => format!("late fusion: the sum of {m}'s and {h}'s per-person calibrated logits"),
                Fusion::Early => format!("early fusion: {m}'s CLS embedding and {h}'s features, each calibrated per person, under one logistic-regression head fitted on the training people"),
                Fusion::Auto => format!("auto: per fold, early fusion ({m}'s CLS embedding and {h}'s features, each calibrated per person, under one logistic-regression head fitted on the training people) or late fusion (the sum of their calibrated logits), whichever has the higher AUROC on the fold's validation people; per_fold[].fusion says which"),
            }),
        chance: Chance {
            majority_accuracy: majority,
            balanced_accuracy: 1.0 / k as f64,
            auroc: 0.5,
        },
        summary: aggregate(&per_fold, &methods),
        per_fold,
        warnings,
    };
    cardiaffect_eval::report::write_all(run, &results).map_err(eval_err)?;
    Checksums::write(run, &RESULT_FILES)?;
    Ok(results)
}

/// A model folder that `predict` can use ([`ModelBundle::save`]).
fn save_model_dir(
    dir: &Path,
    cfg: &ModelConfig,
    model: &Model,
    corpus: &Corpus,
    labels: &Labels,
    op: &OperatingPoint,
) -> Result<(), TrainError> {
    Ok(ModelBundle::save(
        dir,
        cfg,
        model,
        &preprocess(corpus),
        labels,
        op,
    )?)
}

/// The two methods `fusion` combines: the first model method and `hrv`.
fn fusion_parts(methods: &[Method]) -> Option<(Method, Method)> {
    let m = methods.iter().find(|m| m.is_model())?;
    methods.contains(&Method::Hrv).then_some((*m, Method::Hrv))
}

/// The windows a fold scores: validation and test, and with `baseline` calibration the rest
/// windows of those people (their reference), sorted.
fn scored_windows(
    corpus: &Corpus,
    calibration: Calibration,
    val: &[usize],
    test: &[usize],
) -> Vec<usize> {
    let mut out: Vec<usize> = val.iter().chain(test).copied().collect();
    if calibration == Calibration::Baseline {
        let people: std::collections::BTreeSet<String> = out
            .iter()
            .map(|&i| decision::person(&corpus.rows[i]))
            .collect();
        out.extend(
            (0..corpus.len())
                .filter(|&i| is_rest(&corpus.rows[i]))
                .filter(|&i| people.contains(&decision::person(&corpus.rows[i]))),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Early fusion: [CLS embedding ; HRV features] per window, the embedding calibrated per
/// person as the features are, one logistic-regression head fitted on the training people.
fn early_fusion(
    ctx: &Ctx,
    model: &Model,
    fold: usize,
    train: &[usize],
    scored: &[usize],
    hrv: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>, TrainError> {
    let cal = ctx.cfg.calibration;
    let rows = &ctx.corpus.rows;
    // Training people are calibrated too: their windows (and rest windows) join the scored.
    let idx = scored_windows(ctx.corpus, cal, train, scored);
    let mut emb = ctx.embed(model, &idx);
    if let Some(stats) = decision::reference_stats(rows, &idx, &emb, cal) {
        decision::apply_stats(rows, &idx, &mut emb, &stats, cal)?;
    }
    let at: BTreeMap<usize, usize> = idx.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let joined = |i: usize| -> Vec<f64> { emb[at[&i]].iter().chain(&hrv[i]).copied().collect() };
    let xt: Vec<Vec<f64>> = train.iter().map(|&i| joined(i)).collect();
    let yt: Vec<usize> = train.iter().map(|&i| ctx.y(i)).collect();
    let xs: Vec<Vec<f64>> = scored.iter().map(|&i| joined(i)).collect();
    hrv_baseline::fit_predict(
        fold,
        (&xt, &yt),
        &xs,
        ctx.labels.classes.len(),
        ctx.cfg.class_weights,
    )
    .map_err(eval_err)
}

/// AUROC of `probs` (rows for `scored`) on the validation windows: what `Fusion::Auto` keeps
/// the better fusion by. `None` when validation has a single class.
fn val_auroc(
    scored: &[usize],
    probs: &[Vec<f64>],
    val: &[usize],
    val_y: &[usize],
    k: usize,
) -> Option<f64> {
    let at: BTreeMap<usize, usize> = scored.iter().enumerate().map(|(j, &i)| (i, j)).collect();
    let p: Vec<Vec<f64>> = val.iter().map(|i| probs[at[i]].clone()).collect();
    compute(val_y, &p, k).auroc
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// Late fusion: the sum of the model's and HRV's logits, each calibrated per person (with
/// `none`, as they are), returned as probabilities.
fn fuse(
    corpus: &Corpus,
    scored: &[usize],
    model: &[Vec<f64>],
    hrv: &[Vec<f64>],
    calibration: Calibration,
) -> Result<Vec<Vec<f64>>, TrainError> {
    let a = decision::calibrated_logits(&corpus.rows, scored, model, calibration, true)?;
    let b = decision::calibrated_logits(&corpus.rows, scored, hrv, calibration, true)?;
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| {
            let l: Vec<f64> = x.iter().zip(y).map(|(u, v)| u + v).collect();
            cardiaffect_eval::calibration::softmax(&l)
        })
        .collect())
}

/// The preprocessing a model's inputs went through (read by `predict` and `stream`).
pub fn preprocess(corpus: &Corpus) -> cardiaffect_model::Preprocess {
    let c = &corpus.manifest.config;
    cardiaffect_model::Preprocess {
        fs: c.fs,
        window_s: c.window_s,
        window_len: corpus.window_len(),
        band_hz: [c.clean.low_hz, c.clean.high_hz],
        filter_order: c.clean.order,
        notch_hz: c.clean.notch_hz,
        normalisation: cardiaffect_model::bundle::NORMALISATION.into(),
    }
}
