//! `fusion`: a model method and `hrv` joined, late (weighted calibrated logits) or early
//! (CLS embedding + HRV features under one logistic-regression head), chosen per fold on the
//! training fold's validation people, among candidates that include each part alone.

use super::*;

/// The two methods `fusion` combines: the first model method and `hrv`.
pub(super) fn fusion_parts(methods: &[Method]) -> Option<(Method, Method)> {
    let m = methods.iter().find(|m| m.is_model())?;
    methods.contains(&Method::Hrv).then_some((*m, Method::Hrv))
}

/// Early fusion: [CLS embedding ; HRV features] per window, the embedding calibrated per
/// person as the features are, one logistic-regression head fitted on the training people.
pub(super) fn early_fusion(
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
pub(super) fn val_auroc(
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

pub(super) fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// The model's share of the late fusion's logits that `auto` tries on the validation people
/// (HRV has the rest), in order of preference when they tie. 0 and 1 are HRV and the model
/// alone: fusion can always fall back to the better of its parts.
pub(super) const LATE_WEIGHTS: [f64; 5] = [0.5, 0.25, 0.75, 0.0, 1.0];

/// Per scored row, one method's logits.
pub(super) type Logits = Vec<Vec<f64>>;

/// The model's and HRV's logits, each calibrated per person (with `none`, as they are).
pub(super) fn late_parts(
    corpus: &Corpus,
    scored: &[usize],
    model: &[Vec<f64>],
    hrv: &[Vec<f64>],
    calibration: Calibration,
) -> Result<(Logits, Logits), TrainError> {
    Ok((
        decision::calibrated_logits(&corpus.rows, scored, model, calibration, true)?,
        decision::calibrated_logits(&corpus.rows, scored, hrv, calibration, true)?,
    ))
}

/// Late fusion with the model's share `w`: `w·model + (1−w)·hrv` (logits), as probabilities.
/// `w = 0.5` is the plain sum of the two, halved.
pub(super) fn fuse_weighted(model: &[Vec<f64>], hrv: &[Vec<f64>], w: f64) -> Vec<Vec<f64>> {
    model
        .iter()
        .zip(hrv)
        .map(|(x, y)| {
            let l: Vec<f64> = x
                .iter()
                .zip(y)
                .map(|(u, v)| w * u + (1.0 - w) * v)
                .collect();
            cardiaffect_eval::calibration::softmax(&l)
        })
        .collect()
}

/// Of the candidates (name, probabilities per `scored` row), the one with the highest AUROC on
/// the validation windows; ties keep the earlier. Returns its index and every candidate's
/// validation AUROC (`None`: a single class there, which keeps the first).
pub(super) fn choose_on_validation(
    candidates: &[(String, Vec<Vec<f64>>)],
    scored: &[usize],
    val: &[usize],
    val_y: &[usize],
    k: usize,
) -> (usize, Vec<Option<f64>>) {
    let aucs: Vec<Option<f64>> = candidates
        .iter()
        .map(|(_, p)| val_auroc(scored, p, val, val_y, k))
        .collect();
    let mut best = 0;
    for (i, a) in aucs.iter().enumerate() {
        if let (Some(a), Some(b)) = (a, aucs[best]) {
            if *a > b + 1e-12 {
                best = i;
            }
        } else if a.is_some() && aucs[best].is_none() {
            best = i;
        }
    }
    (best, aucs)
}

/// HRV features of every labeled window (and every rest window, for `baseline`), made once,
/// indexed by corpus row (empty rows elsewhere, and no features when `hrv` does not run).
pub(super) fn hrv_features(
    cfg: &FinetuneConfig,
    corpus: &Corpus,
    labels: &Labels,
    methods: &[Method],
) -> Result<Vec<Vec<f64>>, TrainError> {
    // HRV features of every labeled window (and every rest window, for `baseline`), made
    // once: standardised per person when calibrating (training people with their own
    // statistics too, since the classifier learns on calibrated features).
    let feature_idx: Vec<usize> = (0..corpus.len())
        .filter(|&i| {
            labels.y[i].is_some()
                || (cfg.calibration == Calibration::Baseline && is_rest(&corpus.rows[i]))
        })
        .collect();
    Ok(if methods.contains(&Method::Hrv) {
        let ws: Vec<Vec<f32>> = feature_idx.iter().map(|&i| corpus.window(i)).collect();
        let mut f = hrv_baseline::features_many(&ws, corpus.manifest.config.fs);
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits `[-s, s]` for 400 windows: informative (`s` = class + noise) or noise alone.
    fn logits(y: &[usize], signal: f64, rng: &mut Rng) -> Vec<Vec<f64>> {
        y.iter()
            .map(|&c| {
                let s = signal * (c as f64 - 0.5) + rng.normal();
                vec![-s, s]
            })
            .collect()
    }

    fn test_auroc(p: &[Vec<f64>], test: &[usize], y: &[usize]) -> f64 {
        let pt: Vec<Vec<f64>> = test.iter().map(|&i| p[i].clone()).collect();
        let yt: Vec<usize> = test.iter().map(|&i| y[i]).collect();
        compute(&yt, &pt, 2).auroc.unwrap()
    }

    /// On a set where one part is noise, the fusion `auto` keeps is never worse than its better
    /// part on people it did not choose on; always summing the two (the old `late`) is.
    #[test]
    fn fusion_is_never_worse_than_its_better_part() {
        let mut rng = Rng::new(3);
        let y: Vec<usize> = (0..400).map(|i| i % 2).collect();
        let scored: Vec<usize> = (0..400).collect();
        let (val, test): (Vec<usize>, Vec<usize>) = (0..400).partition(|&i| i < 200);
        let val_y: Vec<usize> = val.iter().map(|&i| y[i]).collect();
        for noisy_model in [true, false] {
            let good = logits(&y, 3.0, &mut rng);
            let noise = logits(&y, 0.0, &mut rng);
            let (model, hrv) = if noisy_model {
                (noise, good)
            } else {
                (good, noise)
            };
            let cands: Vec<(String, Vec<Vec<f64>>)> = LATE_WEIGHTS
                .iter()
                .map(|&w| (format!("{w}"), fuse_weighted(&model, &hrv, w)))
                .collect();
            let (best, aucs) = choose_on_validation(&cands, &scored, &val, &val_y, 2);
            assert!(aucs.iter().all(Option::is_some));
            let better_part = test_auroc(&model, &test, &y).max(test_auroc(&hrv, &test, &y));
            let kept = test_auroc(&cands[best].1, &test, &y);
            assert!(
                kept >= better_part - 0.01,
                "kept {kept}, better part {better_part}"
            );
            // The noise part alone is never kept.
            assert_ne!(cands[best].0, if noisy_model { "1" } else { "0" });
            let summed = test_auroc(&fuse_weighted(&model, &hrv, 0.5), &test, &y);
            assert!(
                summed < better_part - 0.01,
                "summed {summed}, better part {better_part}"
            );
        }
    }

    #[test]
    fn ties_and_single_class_validation_keep_the_first() {
        let p = vec![vec![0.4, 0.6], vec![0.6, 0.4]];
        let cands = vec![("a".to_string(), p.clone()), ("b".to_string(), p)];
        let (best, _) = choose_on_validation(&cands, &[0, 1], &[0, 1], &[1, 0], 2);
        assert_eq!(best, 0);
        let (best, aucs) = choose_on_validation(&cands, &[0, 1], &[0, 1], &[1, 1], 2);
        assert_eq!((best, aucs), (0, vec![None, None]));
    }
}
