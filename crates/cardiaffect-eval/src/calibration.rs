//! Subject calibration and the operating point.
//!
//! People differ in resting heart rate, HRV and ECG morphology far more than one person's
//! affect moves them. A classifier whose ranking of a new person's windows is right can still
//! put every one of them on one side of a threshold learned on other people (balanced accuracy
//! 0.5 at AUROC 0.9). Calibration removes each person's own offset and scale from what the
//! classifier sees, without any label: the per-subject normalisation common in affective
//! computing, applied here to the classifier's input features (HRV) or output scores (logits).
//!
//! - [`Calibration::None`]: nothing is removed.
//! - [`Calibration::Subject`]: statistics over all of a person's windows (labels never read).
//! - [`Calibration::Baseline`]: statistics over the person's rest segments only (DREAMER's
//!   baselines, WESAD's baseline condition), so the person's affect never enters them.
//!
//! The operating point (for two classes, the probability above which the second class is
//! decided) is chosen on validation people of the training fold: the threshold that maximises
//! their balanced accuracy. Test people never inform it.

use crate::EvalError;
use std::collections::BTreeMap;

pub use cardiaffect_bundle::decision::{
    apply_threshold, logits, softmax, Calibration, OperatingPoint, Standardiser,
    OPERATING_POINT_FILE,
};

/// Standardise `rows` person by person: `person[i]` names row `i`'s person and `stats` holds
/// each person's statistics (from [`Standardiser::fit`] on their reference windows). A person
/// without statistics is an error naming them, never silently left uncalibrated.
pub fn calibrate(
    rows: &mut [Vec<f64>],
    person: &[&str],
    stats: &BTreeMap<String, Standardiser>,
) -> Result<(), EvalError> {
    for (r, p) in rows.iter_mut().zip(person) {
        let s = stats.get(*p).ok_or_else(|| EvalError::Config {
            field: "calibration",
            expected: format!("reference windows for {p}"),
            found: "none".into(),
        })?;
        s.apply(r);
    }
    Ok(())
}

/// Per-person statistics of `rows`, from the rows `reference(i)` admits (e.g. all of them, or
/// only a person's baseline windows).
pub fn person_stats(
    rows: &[Vec<f64>],
    person: &[&str],
    reference: &dyn Fn(usize) -> bool,
) -> BTreeMap<String, Standardiser> {
    let mut by: BTreeMap<&str, Vec<&[f64]>> = BTreeMap::new();
    for (i, (r, p)) in rows.iter().zip(person).enumerate() {
        if reference(i) {
            by.entry(p).or_default().push(r);
        }
    }
    by.into_iter()
        .filter_map(|(p, rs)| Standardiser::fit(rs).map(|s| (p.to_string(), s)))
        .collect()
}

/// The threshold on `p1` (the second class's probability) that maximises balanced accuracy on
/// (`y`, `p1`), and that balanced accuracy. Among equally good thresholds the middle of the
/// widest plateau is taken, so that it sits between scores rather than on one. `None` when
/// `y` has a single class.
pub fn best_threshold(y: &[usize], p1: &[f64]) -> Option<(f64, f64)> {
    // Rows without a finite score take no part (they cannot be put on either side).
    let keep: Vec<usize> = (0..y.len()).filter(|&i| p1[i].is_finite()).collect();
    let npos = keep.iter().filter(|&&i| y[i] == 1).count();
    let nneg = keep.len() - npos;
    if npos == 0 || nneg == 0 {
        return None;
    }
    let mut order = keep;
    order.sort_by(|&a, &b| p1[a].total_cmp(&p1[b]));
    // Cut c: indices order[..c] decided negative, order[c..] positive.
    let (mut tn, mut fneg) = (0usize, 0usize);
    let mut cuts: Vec<(usize, f64)> = Vec::with_capacity(order.len() + 1);
    let ba = |tn: usize, fneg: usize| {
        let tpr = (npos - fneg) as f64 / npos as f64;
        let tnr = tn as f64 / nneg as f64;
        (tpr + tnr) / 2.0
    };
    cuts.push((0, ba(0, 0)));
    let mut c = 0;
    while c < order.len() {
        // Move every score equal to this one at once: a threshold cannot split ties.
        let v = p1[order[c]];
        while c < order.len() && p1[order[c]] == v {
            if y[order[c]] == 1 {
                fneg += 1;
            } else {
                tn += 1;
            }
            c += 1;
        }
        cuts.push((c, ba(tn, fneg)));
    }
    let best = cuts.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    // The widest run of consecutive best cuts, by score span.
    let score_at = |c: usize| -> (f64, f64) {
        let lo = if c == 0 {
            f64::NEG_INFINITY
        } else {
            p1[order[c - 1]]
        };
        let hi = if c == order.len() {
            f64::INFINITY
        } else {
            p1[order[c]]
        };
        (lo, hi)
    };
    let mut chosen = None;
    let mut widest = f64::NEG_INFINITY;
    let mut i = 0;
    while i < cuts.len() {
        if cuts[i].1 < best - 1e-12 {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < cuts.len() && cuts[j + 1].1 >= best - 1e-12 {
            j += 1;
        }
        let lo = score_at(cuts[i].0).0;
        let hi = score_at(cuts[j].0).1;
        let lo_f = if lo.is_finite() { lo } else { 0.0 };
        let hi_f = if hi.is_finite() { hi } else { 1.0 };
        let width = hi_f - lo_f;
        if width > widest {
            widest = width;
            // The threshold halfway between the last negative and the first positive score of
            // the plateau's middle cut.
            let mid = cuts[(i + j) / 2].0;
            let (a, b) = score_at(mid);
            let t = match (a.is_finite(), b.is_finite()) {
                (true, true) => (a + b) / 2.0,
                (false, true) => b - 1e-9,
                (true, false) => a + 1e-9,
                (false, false) => 0.5,
            };
            chosen = Some(t.clamp(1e-9, 1.0 - 1e-9));
        }
        i = j + 1;
    }
    chosen.map(|t| (t, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_maximises_balanced_accuracy_between_scores() {
        // Perfectly ranked but all above 0.5: the learned threshold sits between the classes.
        let y = [0, 0, 0, 1, 1, 1];
        let p = [0.6, 0.62, 0.65, 0.8, 0.85, 0.9];
        let (t, ba) = best_threshold(&y, &p).unwrap();
        assert!(t > 0.65 && t < 0.8, "{t}");
        assert_eq!(ba, 1.0);
        let mut probs: Vec<Vec<f64>> = p.iter().map(|&v| vec![1.0 - v, v]).collect();
        apply_threshold(&mut probs, t);
        let pred: Vec<usize> = probs.iter().map(|r| usize::from(r[1] > r[0])).collect();
        assert_eq!(pred, y);
        // Monotone: the order of p1 is kept.
        for w in probs.windows(2) {
            assert!(w[0][1] < w[1][1]);
        }
        assert!(best_threshold(&[1, 1], &[0.2, 0.3]).is_none());
        // A row without a finite score takes no part, and biases nothing.
        let (_, ba) = best_threshold(&[0, 1, 1], &[0.2, f64::NAN, 0.8]).unwrap();
        assert_eq!(ba, 1.0);
    }

    #[test]
    fn threshold_against_brute_force() {
        let mut rng = cardiaffect_signal::Rng::new(3);
        for _ in 0..50 {
            let n = 5 + rng.below(30);
            let y: Vec<usize> = (0..n).map(|_| rng.below(2)).collect();
            if y.iter().all(|&c| c == y[0]) {
                continue;
            }
            // Coarse scores, so that ties occur.
            let p: Vec<f64> = y
                .iter()
                .map(|&c| ((c as f64 * 0.3 + rng.uniform()) * 10.0).round() / 13.0)
                .collect();
            let (t, ba) = best_threshold(&y, &p).unwrap();
            let bal = |t: f64| {
                let tp = (0..n).filter(|&i| y[i] == 1 && p[i] > t).count() as f64;
                let tn = (0..n).filter(|&i| y[i] == 0 && p[i] <= t).count() as f64;
                let np = y.iter().filter(|&&c| c == 1).count() as f64;
                (tp / np + tn / (n as f64 - np)) / 2.0
            };
            let brute = (0..=1000)
                .map(|k| bal(k as f64 / 1000.0))
                .fold(0.0, f64::max);
            assert!((bal(t) - ba).abs() < 1e-12, "reported {ba}, got {}", bal(t));
            assert!((ba - brute).abs() < 1e-12, "{ba} vs brute force {brute}");
        }
    }

    #[test]
    fn subject_calibration_removes_each_persons_offset() {
        // Two people whose scores are offset by 5: pooled, one threshold fails; calibrated,
        // each person's order decides.
        let rows: Vec<Vec<f64>> = [1.0, 2.0, 3.0, 6.0, 7.0, 8.0]
            .iter()
            .map(|&v| vec![v])
            .collect();
        let person = ["a", "a", "a", "b", "b", "b"];
        let stats = person_stats(&rows, &person, &|_| true);
        let mut out = rows.clone();
        calibrate(&mut out, &person, &stats).unwrap();
        for i in 0..3 {
            assert!((out[i][0] - out[i + 3][0]).abs() < 1e-12);
        }
        assert!(out[0][0] < 0.0 && out[2][0] > 0.0);
        // Reference windows restricted (a baseline): only those inform the statistics.
        let st = person_stats(&rows, &person, &|i| i == 0 || i == 3);
        assert_eq!(st["a"].mean, vec![1.0]);
        assert_eq!(st["b"].mean, vec![6.0]);
        // A person with no reference window is an error, not a silent pass.
        let only_a = person_stats(&rows, &person, &|i| i < 3);
        assert!(calibrate(&mut out, &person, &only_a).is_err());
    }
}
