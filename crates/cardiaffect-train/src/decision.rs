//! From a method's scores on one fold to its decisions: each person's scores calibrated
//! ([`cardiaffect_eval::calibration`]), then the operating point chosen on the fold's
//! validation people and applied to its test people. No label of a test person is read here:
//! labels enter only through `val_y`.

use std::collections::{BTreeMap, BTreeSet};

use cardiaffect_corpus::Row;
use cardiaffect_eval::calibration::{
    apply_threshold, best_threshold, calibrate, logits, person_stats, softmax, Standardiser,
};
use cardiaffect_eval::{Calibration, OperatingPoint};

use crate::TrainError;

/// Whom a window belongs to, across datasets.
pub fn person(row: &Row) -> String {
    format!("{}/{}", row.dataset, row.subject)
}

/// A rest window: DREAMER's baseline segments, WESAD's baseline condition.
pub fn is_rest(row: &Row) -> bool {
    row.segment == "baseline" || row.condition == Some(1)
}

/// Per-person statistics of `values` (one row per index in `idx`), from the windows that
/// `calibration` takes as reference: all of them (`subject`) or the rest windows (`baseline`).
/// `None` for `Calibration::None`.
pub fn reference_stats(
    rows: &[Row],
    idx: &[usize],
    values: &[Vec<f64>],
    calibration: Calibration,
) -> Option<BTreeMap<String, Standardiser>> {
    let persons: Vec<String> = idx.iter().map(|&i| person(&rows[i])).collect();
    let p: Vec<&str> = persons.iter().map(|s| s.as_str()).collect();
    match calibration {
        Calibration::None => None,
        Calibration::Subject => Some(person_stats(values, &p, &|_| true)),
        Calibration::Baseline => Some(person_stats(values, &p, &|k| is_rest(&rows[idx[k]]))),
    }
}

/// Standardise `values` (rows for `idx`) person by person with `stats`.
pub fn apply_stats(
    rows: &[Row],
    idx: &[usize],
    values: &mut [Vec<f64>],
    stats: &BTreeMap<String, Standardiser>,
    calibration: Calibration,
) -> Result<(), TrainError> {
    let persons: Vec<String> = idx.iter().map(|&i| person(&rows[i])).collect();
    let p: Vec<&str> = persons.iter().map(|s| s.as_str()).collect();
    calibrate(values, &p, stats).map_err(|_| {
        let missing: BTreeSet<&str> = p
            .iter()
            .filter(|q| !stats.contains_key(**q))
            .copied()
            .collect();
        TrainError::Data(format!(
            "‹calibration› {calibration}: no reference window for {} (baseline calibration needs each person's rest/baseline windows in the corpus)",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Logits of `probs` for `scored`, calibrated per person where `calibrate_output`.
pub fn calibrated_logits(
    rows: &[Row],
    scored: &[usize],
    probs: &[Vec<f64>],
    calibration: Calibration,
    calibrate_output: bool,
) -> Result<Vec<Vec<f64>>, TrainError> {
    let mut l = logits(probs);
    if calibrate_output {
        if let Some(stats) = reference_stats(rows, scored, &l, calibration) {
            apply_stats(rows, scored, &mut l, &stats, calibration)?;
        }
    }
    Ok(l)
}

/// Whom a decision is chosen on and applied to.
pub struct Split<'a> {
    /// Validation windows (their classes in `val_y`, same order): the threshold is chosen here.
    pub val: &'a [usize],
    pub val_y: &'a [usize],
    /// Test windows: decided at that threshold, their labels never seen.
    pub test: &'a [usize],
    /// Named in the operating point, e.g. "validation people of training fold 2: d/P03".
    pub chosen_on: String,
}

/// The operating point from the validation rows of `scored`, and the probabilities of the
/// test rows at that point. `logits` are per `scored`.
pub fn decide(
    scored: &[usize],
    logits: &[Vec<f64>],
    split: &Split,
    classes: &[String],
    calibration: Calibration,
) -> (Vec<Vec<f64>>, OperatingPoint) {
    let Split {
        val, val_y, test, ..
    } = *split;
    let chosen_on = split.chosen_on.clone();
    let at: BTreeMap<usize, usize> = scored.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let probs_of =
        |idx: &[usize]| -> Vec<Vec<f64>> { idx.iter().map(|i| softmax(&logits[at[i]])).collect() };
    let mut test_p = probs_of(test);
    let mut op = OperatingPoint {
        calibration,
        threshold: None,
        positive_class: None,
        chosen_on,
        val_balanced_accuracy: None,
    };
    if classes.len() == 2 {
        let vp: Vec<f64> = probs_of(val).iter().map(|p| p[1]).collect();
        let (t, ba) = match best_threshold(val_y, &vp) {
            Some((t, ba)) => (t, Some(ba)),
            // A single class among the validation people: nothing to choose from.
            None => (0.5, None),
        };
        apply_threshold(&mut test_p, t);
        op.threshold = Some(t);
        op.positive_class = Some(classes[1].clone());
        op.val_balanced_accuracy = ba;
    }
    (test_p, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, segment: &str) -> Row {
        Row {
            dataset: "d".into(),
            source: "s".into(),
            subject: subject.into(),
            trial: "1".into(),
            segment: segment.into(),
            lead: "ECG".into(),
            start_s: 0.0,
            hr_bpm: 60.0,
            condition: None,
            labels: vec![],
        }
    }

    #[test]
    fn decisions_do_not_depend_on_test_labels() {
        // Validation person v, test person t whose scores are all offset upward: with subject
        // calibration, the test decisions follow t's own order, and shuffling t's labels
        // (which `decide` never sees) cannot change them.
        let rows: Vec<Row> = (0..8)
            .map(|i| row(if i < 4 { "v" } else { "t" }, "stimuli"))
            .collect();
        let scored: Vec<usize> = (0..8).collect();
        let probs: Vec<Vec<f64>> = [0.1, 0.2, 0.6, 0.7, 0.8, 0.85, 0.95, 0.97]
            .iter()
            .map(|&p| vec![1.0 - p, p])
            .collect();
        let classes = vec!["low".to_string(), "high".to_string()];
        let run = |cal: Calibration| {
            let l = calibrated_logits(&rows, &scored, &probs, cal, true).unwrap();
            let split = Split {
                val: &[0, 1, 2, 3],
                val_y: &[0, 0, 1, 1],
                test: &[4, 5, 6, 7],
                chosen_on: "v".into(),
            };
            decide(&scored, &l, &split, &classes, cal)
        };
        let (p_none, op_none) = run(Calibration::None);
        let pred =
            |p: &[Vec<f64>]| -> Vec<usize> { p.iter().map(|r| usize::from(r[1] > r[0])).collect() };
        // Uncalibrated: every test window above the validation threshold: one class.
        assert_eq!(pred(&p_none), vec![1, 1, 1, 1]);
        assert!(op_none.threshold.unwrap() > 0.2 && op_none.threshold.unwrap() < 0.6);
        let (p_sub, op) = run(Calibration::Subject);
        assert_eq!(pred(&p_sub), vec![0, 0, 1, 1]);
        assert_eq!(op.val_balanced_accuracy, Some(1.0));
        assert_eq!(op.positive_class.as_deref(), Some("high"));
    }

    #[test]
    fn baseline_needs_rest_windows_for_every_person() {
        let rows = vec![
            row("a", "baseline"),
            row("a", "stimuli"),
            row("b", "stimuli"),
        ];
        let probs = vec![vec![0.5, 0.5], vec![0.2, 0.8], vec![0.3, 0.7]];
        let err = calibrated_logits(&rows, &[0, 1, 2], &probs, Calibration::Baseline, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("d/b") && err.contains("baseline"), "{err}");
        let ok =
            calibrated_logits(&rows, &[0, 1], &probs[..2], Calibration::Baseline, true).unwrap();
        // a's rest window is the zero point.
        assert!(ok[0][1].abs() < 1e-12 && ok[1][1] > 0.0);
    }
}
