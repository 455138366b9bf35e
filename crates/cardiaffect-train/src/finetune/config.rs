//! What a fine-tuning run is asked to do (`finetune.json`), checked before it starts.

use super::*;

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
/// `models/fold<k>/`). `auto` (the default): per fold, whichever of late fusion at the model's
/// shares 0.5, 0.25, 0.75, 0 (HRV alone) and 1 (the model alone) and early fusion has the
/// highest AUROC on the fold's validation people (never its test people); each fold says
/// which it kept. Its parts are candidates, so it falls back to the better of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
                "‹fusion› {s}: expected auto, early or late"
            ))),
        }
    }
}

impl FinetuneConfig {
    /// The methods that will run, in order (`pretrained` is dropped without weights), with
    /// `fusion` after both of its parts.
    pub fn methods_to_run(&self) -> Result<Vec<Method>, TrainError> {
        let methods: Vec<Method> = self
            .methods
            .iter()
            .filter(|&&m| m != Method::Pretrained || self.pretrained.is_some())
            .copied()
            .collect();
        // Checked on the methods that will run (`pretrained` is dropped without weights).
        if let Some(fi) = methods.iter().position(|&m| m == Method::Fusion) {
            let before = &methods[..fi];
            if !before.contains(&Method::Hrv) || !before.iter().any(|m| m.is_model()) {
                return Err(TrainError::Data(format!(
                    "method `fusion` combines `hrv` with a model method (pretrained or scratch): list both before it in ‹methods›{}",
                    if self.pretrained.is_none() && self.methods.contains(&Method::Pretrained) {
                        " (`pretrained` does not run with ‹pretrained› none: add scratch)"
                    } else {
                        ""
                    }
                )));
            }
        }
        Ok(methods)
    }
}

/// `baseline` calibration needs rest windows that are not one of the task's classes.
pub(super) fn check_calibration(cfg: &FinetuneConfig, corpus: &Corpus) -> Result<(), TrainError> {
    if cfg.calibration == Calibration::Baseline {
        if matches!(cfg.task, Task::Condition | Task::Stress) {
            return Err(TrainError::Data(format!(
                "‹calibration› baseline with ‹task› {}: the baseline condition is one of the task's classes, so calibrating on it would read the labels; use subject or none",
                cfg.task
            )));
        }
        if !corpus.rows.iter().any(is_rest) {
            return Err(TrainError::Data(format!(
                "‹calibration› baseline: corpus {} has no rest/baseline window (DREAMER's baseline segments or WESAD's baseline condition); use subject or none",
                cfg.corpus.display()
            )));
        }
    }
    Ok(())
}
