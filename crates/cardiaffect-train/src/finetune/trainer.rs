//! One model trained on one fold's training windows: batches, class-weighted loss, the
//! schedule, early stopping on the validation people, and scoring windows.

use super::*;

pub(super) struct Ctx<'a> {
    pub(super) cfg: &'a FinetuneConfig,
    pub(super) model_cfg: ModelConfig,
    pub(super) corpus: &'a Corpus,
    pub(super) labels: &'a Labels,
    pub(super) device: &'a Device,
}

impl Ctx<'_> {
    pub(super) fn batch_x(&self, idx: &[usize], device: &Device) -> Tensor<2> {
        let l = self.model_cfg.window_len;
        let x = batch::zscored(idx.iter().map(|&i| self.corpus.window(i)), l);
        batch::tensor(x, l, device)
    }

    pub(super) fn y(&self, i: usize) -> usize {
        self.labels.y[i].unwrap_or(0)
    }

    /// Class probabilities (softmax of the logits in f64).
    pub(super) fn predict(&self, model: &Model, idx: &[usize]) -> Vec<Vec<f64>> {
        let model = model.prepared();
        idx.chunks(64)
            .flat_map(|chunk| model.class_logits(self.batch_x(chunk, self.device)))
            .map(|l| cardiaffect_eval::calibration::softmax(&l))
            .collect()
    }

    /// CLS embeddings (inference).
    pub(super) fn embed(&self, model: &Model, idx: &[usize]) -> Vec<Vec<f64>> {
        let model = model.prepared();
        idx.chunks(64)
            .flat_map(|chunk| model.cls_embeddings(self.batch_x(chunk, self.device)))
            .collect()
    }

    pub(super) fn init_model(&self, method: Method, fold: usize) -> Result<Model, TrainError> {
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

    pub(super) fn lr_at(&self, step: usize, steps: usize) -> f64 {
        crate::schedule::WarmupCosine {
            lr: self.cfg.lr,
            warmup: ((self.cfg.warmup_fraction * steps as f64).round() as usize).max(1),
            steps,
        }
        .at(step)
    }

    /// Train one model on one fold; returns (kept model, steps run, best step, best val F1).
    pub(super) fn train_model(
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
                model.pooled(model.encode(x, None)).detach()
            } else {
                model.pooled(model.encode_train(x, None, rng.next_u64()))
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
pub(super) fn subsample(ctx: &Ctx, train: &[usize], fold: usize) -> Vec<usize> {
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

/// The model to train: the pre-trained weights' config (or the configured one) with a head for
/// the task's classes, checked against the corpus's rate and window.
pub(super) fn model_config(
    cfg: &FinetuneConfig,
    corpus: &Corpus,
    labels: &Labels,
    on: &mut dyn FnMut(FinetuneEvent),
) -> Result<ModelConfig, TrainError> {
    let mut model_cfg = match &cfg.pretrained {
        Some(dir) => {
            let p = dir.join(cardiaffect_bundle::CONFIG_FILE);
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
        if let Some(pp) = cardiaffect_bundle::read_preprocess(dir)? {
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
            "corpus {}: window length is {} samples ({} s at {fs} Hz), the pre-trained model ({}) expects {} samples: prepare the corpus with ‹prepare.window_s› {}s ‹prepare.fs› {fs}, or fine-tune without pre-training (‹pretrained› none)",
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
    Ok(model_cfg)
}
