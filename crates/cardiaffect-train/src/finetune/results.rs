//! What a run leaves for use: model folders (`models/fold<k>/`, `model/`) with the
//! preprocessing they record.

use super::*;

/// A model folder that `predict` can use ([`ModelBundle::save`]).
pub(super) fn save_model_dir(
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

impl Ctx<'_> {
    /// The model to use on new data (`model/`): `method` trained on every labeled window,
    /// validation for early stopping and the operating point carved by the protocol's groups.
    /// Kept when a finished one is there.
    pub(super) fn final_model(
        &self,
        method: Method,
        run: &Path,
        usable: &[usize],
        on: &mut dyn FnMut(FinetuneEvent),
    ) -> Result<(), TrainError> {
        let dir = run.join("model");
        if !dir.join(LABELS_FILE).exists() {
            let fold = cardiaffect_eval::protocol::final_split(
                &self.corpus.rows,
                usable,
                self.cfg.protocol,
                self.cfg.val_fraction,
                self.cfg.seed,
            )
            .map_err(eval_err)?;
            let steps = self
                .cfg
                .max_steps
                .unwrap_or(
                    ((self.cfg.epochs * fold.train.len() as f64) / self.cfg.batch as f64).ceil()
                        as usize,
                )
                .max(1);
            on(FinetuneEvent::FoldStart {
                fold: usize::MAX,
                method,
                steps,
                reused: false,
            });
            let (model, ..) = self.train_model(method, &fold, &fold.train, steps, on)?;
            let scored = scored_windows(self.corpus, self.cfg.calibration, &fold.val, &[]);
            let raw = self.predict(&model, &scored);
            let l = decision::calibrated_logits(
                &self.corpus.rows,
                &scored,
                &raw,
                self.cfg.calibration,
                true,
            )?;
            let val_y: Vec<usize> = fold.val.iter().map(|&i| self.y(i)).collect();
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
                &self.labels.classes,
                self.cfg.calibration,
            );
            save_model_dir(&dir, &self.model_cfg, &model, self.corpus, self.labels, &op)?;
        }
        Ok(())
    }
}

impl Ctx<'_> {
    /// Everything the run found, stated with its rules (`results.json`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn results(
        &self,
        methods: &[Method],
        n_folds: usize,
        warning: Option<&'static str>,
        fusion_of: Option<&(Method, Method)>,
        per_fold: Vec<FoldResult>,
        warnings: Vec<String>,
    ) -> Results {
        let k = self.labels.classes.len();
        let total: usize = self.labels.counts.iter().sum();
        let majority = *self.labels.counts.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64;
        let mut datasets: Vec<String> =
            self.corpus.rows.iter().map(|r| r.dataset.clone()).collect();
        datasets.sort();
        datasets.dedup();
        Results {
            cardiaffect_version: env!("CARGO_PKG_VERSION").into(),
            corpus: self.cfg.corpus.display().to_string(),
            datasets,
            task: self.cfg.task.clone(),
            label_rule: self.labels.describe(),
            labels: self.labels.clone(),
            protocol: self.cfg.protocol,
            protocol_warning: warning.map(String::from),
            folds: n_folds,
            seed: self.cfg.seed,
            pretrained: self.cfg.pretrained_label.clone(),
            model_config: serde_json::to_value(&self.model_cfg).unwrap_or_default(),
            finetune_config: serde_json::json!({
                "epochs": self.cfg.epochs, "max_steps": self.cfg.max_steps, "batch": self.cfg.batch, "lr": self.cfg.lr,
                "weight_decay": self.cfg.weight_decay, "freeze_encoder": self.cfg.freeze_encoder,
                "class_weights": self.cfg.class_weights, "val_fraction": self.cfg.val_fraction,
                "train_fraction": self.cfg.train_fraction, "eval_every": self.cfg.eval_every, "patience": self.cfg.patience,
                "input_normalisation": "z-score per window",
            }),
            calibration: self.cfg.calibration.to_string(),
            calibration_rule: self.cfg.calibration.describe().to_string(),
            operating_point_rule: if k == 2 {
                format!("{} decided when its calibrated probability is above the threshold that maximises balanced accuracy on each training fold's validation people (per fold in per_fold[].operating_point)", self.labels.classes[1])
            } else {
                "the most probable class (more than two classes: no threshold)".into()
            },
            fusion: fusion_of
                .filter(|_| methods.contains(&Method::Fusion))
                .map(|(m, h)| match self.cfg.fusion {
                    Fusion::Late => format!("late fusion: the sum of {m}'s and {h}'s per-person calibrated logits"),
                    Fusion::Early => format!("early fusion: {m}'s CLS embedding and {h}'s features, each calibrated per person, under one logistic-regression head fitted on the training people"),
                    Fusion::Auto => format!("auto: per fold, of late fusion at {m}'s shares 0.5, 0.25, 0.75, 0 ({h} alone) and 1 ({m} alone) (weighted sums of their calibrated logits) and early fusion ({m}'s embedding and {h}'s features, each calibrated per person, under one logistic-regression head fitted on the training people), the one with the highest AUROC on the fold's validation people; per_fold[].fusion says which"),
                }),
            chance: Chance {
                majority_accuracy: majority,
                balanced_accuracy: 1.0 / k as f64,
                auroc: 0.5,
            },
            summary: aggregate(&per_fold, methods),
            per_fold,
            warnings,
        }
    }
}
