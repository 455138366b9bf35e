//! Classification metrics, defined as scikit-learn defines them, so that numbers compare:
//! accuracy; macro-F1 = unweighted mean of per-class F1 over the classes present in the truth
//! or the predictions; balanced accuracy = mean recall over the classes present in the truth;
//! AUROC = the Mann-Whitney statistic (ties count half), one-vs-rest and macro-averaged for more
//! than two classes, undefined (None, with a warning) when the test set has a single class.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub balanced_accuracy: f64,
    pub auroc: Option<f64>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub warnings: Vec<String>,
}

pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

/// Area under the ROC curve of `scores` for `positive` labels (Mann-Whitney U / (n+ n-)).
pub fn auroc_binary(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let np = positive.iter().filter(|&&p| p).count();
    let nn = positive.len() - np;
    if np == 0 || nn == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            if positive[o] {
                rank_sum_pos += avg;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (np * (np + 1)) as f64 / 2.0;
    Some(u / (np as f64 * nn as f64))
}

/// Metrics of class probabilities `probs` (one row per example) against `y`.
#[allow(clippy::needless_range_loop)] // a confusion matrix reads best by (true, predicted)
pub fn compute(y: &[usize], probs: &[Vec<f64>], n_classes: usize) -> Metrics {
    let n = y.len();
    let mut confusion = vec![vec![0usize; n_classes]; n_classes];
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    for (&t, &p) in y.iter().zip(&pred) {
        confusion[t][p] += 1;
    }
    let mut warnings = Vec::new();
    if n == 0 {
        warnings.push("no test example: metrics undefined".into());
        return Metrics {
            n,
            accuracy: f64::NAN,
            macro_f1: f64::NAN,
            balanced_accuracy: f64::NAN,
            auroc: None,
            confusion,
            warnings,
        };
    }
    let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
    let (mut f1s, mut recalls) = (Vec::new(), Vec::new());
    for c in 0..n_classes {
        let tp = confusion[c][c] as f64;
        let actual: usize = confusion[c].iter().sum();
        let predicted: usize = (0..n_classes).map(|t| confusion[t][c]).sum();
        if actual > 0 {
            recalls.push(tp / actual as f64);
        }
        if actual + predicted > 0 {
            f1s.push(2.0 * tp / (actual + predicted) as f64);
        }
    }
    let present: Vec<usize> = (0..n_classes)
        .filter(|&c| confusion[c].iter().sum::<usize>() > 0)
        .collect();
    if present.len() < 2 {
        warnings.push(format!(
            "the test set has a single class ({} examples): AUROC undefined, balanced accuracy is that class's recall",
            n
        ));
    }
    let auroc = if n_classes == 2 {
        auroc_binary(
            &probs.iter().map(|p| p[1]).collect::<Vec<_>>(),
            &y.iter().map(|&t| t == 1).collect::<Vec<_>>(),
        )
    } else {
        let per: Vec<f64> = present
            .iter()
            .filter_map(|&c| {
                auroc_binary(
                    &probs.iter().map(|p| p[c]).collect::<Vec<_>>(),
                    &y.iter().map(|&t| t == c).collect::<Vec<_>>(),
                )
            })
            .collect();
        (!per.is_empty() && present.len() >= 2).then(|| per.iter().sum::<f64>() / per.len() as f64)
    };
    Metrics {
        n,
        accuracy: correct as f64 / n as f64,
        macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        balanced_accuracy: recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        auroc,
        confusion,
        warnings,
    }
}

/// Trial-level examples: the mean probability over each trial's windows. `keys` names each
/// example's trial; returns (labels, probabilities) in key order.
pub fn trial_level(
    keys: &[String],
    y: &[usize],
    probs: &[Vec<f64>],
) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut acc: BTreeMap<&str, (usize, Vec<f64>, usize)> = BTreeMap::new();
    for ((k, &t), p) in keys.iter().zip(y).zip(probs) {
        let e = acc.entry(k.as_str()).or_insert((t, vec![0.0; p.len()], 0));
        for (s, v) in e.1.iter_mut().zip(p) {
            *s += v;
        }
        e.2 += 1;
    }
    let mut ys = Vec::with_capacity(acc.len());
    let mut ps = Vec::with_capacity(acc.len());
    for (_, (t, s, n)) in acc {
        ys.push(t);
        ps.push(s.into_iter().map(|v| v / n as f64).collect());
    }
    (ys, ps)
}

/// Mean and sample standard deviation of the finite values.
pub fn mean_std(v: &[f64]) -> (f64, f64, usize) {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = f.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let m = f.iter().sum::<f64>() / n as f64;
    let s = if n > 1 {
        (f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (m, s, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p2(v: &[f64]) -> Vec<Vec<f64>> {
        v.iter().map(|&x| vec![1.0 - x, x]).collect()
    }

    #[test]
    fn matches_scikit_learn_by_hand() {
        // sklearn: y=[0,0,1,1,1], scores=[.1,.6,.4,.8,.9] -> auc 0.8333, pred=[0,1,0,1,1]
        // accuracy 0.6, f1 per class (0.5, 0.6667) -> macro 0.5833, balanced (0.5+0.6667)/2.
        let y = [0, 0, 1, 1, 1];
        let m = compute(&y, &p2(&[0.1, 0.6, 0.4, 0.8, 0.9]), 2);
        assert!((m.auroc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.macro_f1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((m.balanced_accuracy - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(m.confusion, vec![vec![1, 1], vec![1, 2]]);
    }

    #[test]
    fn ties_count_half_and_single_class_has_no_auroc() {
        assert_eq!(auroc_binary(&[0.5, 0.5], &[true, false]), Some(0.5));
        let m = compute(&[1, 1], &p2(&[0.7, 0.2]), 2);
        assert_eq!(m.auroc, None);
        assert!(!m.warnings.is_empty());
        assert_eq!(m.balanced_accuracy, 0.5);
    }

    #[test]
    fn trial_level_averages_probabilities() {
        let keys = ["a", "a", "b"].map(String::from);
        let (y, p) = trial_level(&keys, &[1, 1, 0], &p2(&[0.2, 0.9, 0.3]));
        assert_eq!(y, vec![1, 0]);
        assert!((p[0][1] - 0.55).abs() < 1e-12);
    }
}
