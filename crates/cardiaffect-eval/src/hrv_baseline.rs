//! The classic baseline: heart-rate-variability features per window (R-peaks by NeuroKit2's
//! method, time-domain HRV after the ESC/NASPE Task Force, 1996; frequency domain only for
//! windows of a minute or more, where LF is defined) and L2-regularised multinomial logistic
//! regression (linfa-logistic). Features are standardised with training-fold statistics; a
//! window whose peaks give no HRV gets the training means (imputation from training data too).
//! With `balanced`, the probabilities are corrected for the training fold's class priors
//! (divided by each class's training frequency, renormalised: the decision a model fitted
//! with inverse-frequency class weights approximates), as the Transformer trains with
//! class-weighted cross-entropy; linfa-logistic takes no sample weights.

use cardiaffect_signal::{ecg_peaks_neurokit, hrv};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use rayon::prelude::*;

use crate::EvalError;

/// Feature names, in column order, for a window of `window_s` seconds.
pub fn feature_names(window_s: f64) -> Vec<&'static str> {
    let mut v = vec!["mean_hr_bpm", "sdnn_ms", "rmssd_ms", "pnn50_pct"];
    if window_s >= 60.0 {
        v.extend(["lf_ms2", "hf_ms2", "lf_hf"]);
    }
    v
}

/// HRV features of one band-passed window (NaN where undefined).
pub fn features(window: &[f32], fs: f64) -> Vec<f64> {
    let n = feature_names(window.len() as f64 / fs).len();
    let peaks = ecg_peaks_neurokit(window, fs);
    match hrv(&peaks, fs) {
        Some(h) => h
            .to_vec()
            .into_iter()
            .take(n)
            .map(|v| if v.is_finite() { v } else { f64::NAN })
            .collect(),
        None => vec![f64::NAN; n],
    }
}

/// Features of many windows, in parallel.
pub fn features_many(windows: &[Vec<f32>], fs: f64) -> Vec<Vec<f64>> {
    windows.par_iter().map(|w| features(w, fs)).collect()
}

/// Train on `(x_train, y_train)`, return class probabilities of `x_test` (`n_classes` wide),
/// corrected to equal class priors when `balanced`.
pub fn fit_predict(
    fold: usize,
    (x_train, y_train): (&[Vec<f64>], &[usize]),
    x_test: &[Vec<f64>],
    n_classes: usize,
    balanced: bool,
) -> Result<Vec<Vec<f64>>, EvalError> {
    let bad = |m: String| EvalError::Baseline { fold, message: m };
    let d = x_train.first().map(|r| r.len()).unwrap_or(0);
    if x_train.is_empty() || d == 0 {
        return Err(bad("no training window".into()));
    }
    // Training statistics: mean (imputation and centring) and std, over finite values.
    let mut mean = vec![0.0; d];
    let mut std = vec![1.0; d];
    for j in 0..d {
        let col: Vec<f64> = x_train
            .iter()
            .map(|r| r[j])
            .filter(|v| v.is_finite())
            .collect();
        if col.is_empty() {
            continue;
        }
        let m = col.iter().sum::<f64>() / col.len() as f64;
        let s = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        mean[j] = m;
        std[j] = if s > 1e-12 { s } else { 1.0 };
    }
    let to_array = |x: &[Vec<f64>]| {
        Array2::from_shape_fn((x.len(), d), |(i, j)| {
            let v = x[i][j];
            if v.is_finite() {
                (v - mean[j]) / std[j]
            } else {
                0.0
            }
        })
    };
    let classes_present = {
        let mut c: Vec<usize> = y_train.to_vec();
        c.sort_unstable();
        c.dedup();
        c
    };
    if classes_present.len() < 2 {
        return Err(bad(format!(
            "the training fold has a single class ({}): nothing to learn",
            classes_present.first().copied().unwrap_or(0)
        )));
    }
    let ds = Dataset::new(to_array(x_train), Array1::from(y_train.to_vec()));
    let model = MultiLogisticRegression::default()
        .alpha(1.0)
        .max_iterations(200)
        .fit(&ds)
        .map_err(|e| bad(format!("logistic regression: {e}")))?;
    let p = model.predict_probabilities(&to_array(x_test));
    let classes = model.classes().to_vec();
    let mut prior = vec![0.0; n_classes];
    for &c in y_train {
        if c < n_classes {
            prior[c] += 1.0 / y_train.len() as f64;
        }
    }
    Ok(p.rows()
        .into_iter()
        .map(|row| {
            let mut out = vec![0.0; n_classes];
            for (c, v) in classes.iter().zip(row.iter()) {
                out[*c] = if balanced { *v / prior[*c] } else { *v };
            }
            let z: f64 = out.iter().sum();
            if balanced && z > 0.0 {
                out.iter_mut().for_each(|v| *v /= z);
            }
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_features_are_learned() {
        let x: Vec<Vec<f64>> = (0..40)
            .map(|i| vec![60.0 + i as f64, f64::NAN, 1.0, 2.0])
            .collect();
        let y: Vec<usize> = (0..40).map(|i| usize::from(i >= 20)).collect();
        let p = fit_predict(
            0,
            (&x, &y),
            &[vec![62.0, 0.0, 1.0, 2.0], vec![98.0, 0.0, 1.0, 2.0]],
            2,
            false,
        )
        .unwrap();
        assert!(p[0][0] > 0.8 && p[1][1] > 0.8, "{p:?}");
        assert!(fit_predict(0, (&x, &vec![1; 40]), &x, 2, false).is_err());
    }

    #[test]
    fn balanced_probabilities_undo_the_training_priors() {
        // One noisy feature, 90 % class 0: the plain model calls almost everything 0.
        let mut rng = cardiaffect_signal::Rng::new(5);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let c = usize::from(i % 10 == 0);
            x.push(vec![c as f64 + 1.2 * rng.normal()]);
            y.push(c);
        }
        let recall = |balanced: bool| {
            let p = fit_predict(0, (&x, &y), &x, 2, balanced).unwrap();
            for r in &p {
                assert!((r[0] + r[1] - 1.0).abs() < 1e-9, "{r:?}");
            }
            let hit = |c: usize| {
                let n = y.iter().filter(|&&t| t == c).count() as f64;
                p.iter()
                    .zip(&y)
                    .filter(|(r, &t)| t == c && usize::from(r[1] > r[0]) == c)
                    .count() as f64
                    / n
            };
            (hit(0), hit(1))
        };
        let (plain0, plain1) = recall(false);
        let (bal0, bal1) = recall(true);
        assert!(plain1 < 0.2 && plain0 > 0.95, "{plain0} {plain1}");
        // Prior-corrected: the minority class is found about as often as the majority.
        assert!(bal1 > 0.5 && bal0 > 0.5, "{bal0} {bal1}");
        assert!(
            (bal0 + bal1) / 2.0 > (plain0 + plain1) / 2.0,
            "balanced accuracy"
        );
    }
}
