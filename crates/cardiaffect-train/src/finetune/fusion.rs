//! `fusion`: a model method and `hrv` joined, late (summed calibrated logits) or early
//! (CLS embedding + HRV features under one logistic-regression head), chosen per fold.

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

/// Late fusion: the sum of the model's and HRV's logits, each calibrated per person (with
/// `none`, as they are), returned as probabilities.
pub(super) fn fuse(
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
