//! From a corpus's per-window ratings to class labels, with the rule named.
//!
//! Binary tasks: a rating is **high** when `rating > threshold`; the default threshold is the
//! midpoint of the dataset's scale as recorded in the corpus manifest (AMIGOS 1-9: 5, DREAMER
//! 1-5: 3). Quadrants combine both (`HAHV`, `HALV`, `LAHV`, `LALV`). WESAD's study protocol gives
//! `condition` (baseline / stress / amusement) and `stress` (stress vs the other two). Labels are
//! given per trial by the datasets; every window of a trial carries its trial's label. A
//! corpus that mixes datasets rated on different scales splits each window at its own scale's
//! midpoint, one named rule per scale.

use std::collections::HashMap;

use cardiaffect_corpus::{Corpus, LabelScale};
use serde::{Deserialize, Serialize};

use crate::EvalError;

pub use cardiaffect_bundle::labels::{Labels, Rule, Task};

/// User thresholds; `None`: the midpoint of the dataset's scale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub arousal: Option<f64>,
    pub valence: Option<f64>,
    /// For a numeric [`Task::Column`]: high = value > this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<f64>,
    /// For a categorical [`Task::Column`]: the classes to tell apart, in this order (windows
    /// of other classes are left out); empty: all of the column's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

/// The rule(s) for `column`, its index, and each row's threshold (NaN: no scale for the row).
///
/// A corpus can mix datasets rated on different scales (AMIGOS 1-9, DREAMER 1-5). Every
/// source file's scale is in the manifest (its shard), so each window is split at its own
/// scale's midpoint and each scale gets its own named rule; one given threshold cannot mean
/// the same on two scales, so it is refused there.
fn rules(
    corpus: &Corpus,
    task: &Task,
    column: &str,
    given: Option<f64>,
) -> Result<(usize, Vec<Rule>, Vec<f64>), EvalError> {
    let m = &corpus.manifest;
    let Some(col) = corpus.label_index(column) else {
        return Err(EvalError::NoLabels {
            corpus: corpus.dir.clone(),
            task: task.to_string(),
            reason: format!(
                "the corpus has no `{column}` column (its label columns: {}); prepare it from a labeled dataset (AMIGOS, DREAMER, ASCERTAIN, a BIDS study with events, any recording with --events, `synth --affect`)",
                if m.label_columns.is_empty() { "none".to_string() } else { m.label_columns.join(", ") }
            ),
        });
    };
    // Distinct scales of the column, and which one each source file uses.
    let mut scales: Vec<&LabelScale> = Vec::new();
    let mut by_unit: HashMap<&str, usize> = HashMap::new();
    for shard in m.sources.iter().flat_map(|s| &s.shards) {
        if let Some(sc) = shard.label_scales.get(column) {
            let i = match scales.iter().position(|&k| k == sc) {
                Some(i) => i,
                None => {
                    scales.push(sc);
                    scales.len() - 1
                }
            };
            by_unit.insert(shard.unit.as_str(), i);
        }
    }
    if scales.len() > 1 {
        let names: Vec<String> = scales
            .iter()
            .map(|s| format!("{} ({}-{})", s.description, s.min, s.max))
            .collect();
        if let Some(t) = given {
            return Err(EvalError::Config {
                field: "threshold",
                expected: format!(
                    "no threshold for `{column}`: this corpus rates it on {} scales ({}), where one threshold would mean different things; leave it out (each window is split at its own scale's midpoint) or prepare one corpus per dataset",
                    scales.len(),
                    names.join("; ")
                ),
                found: t.to_string(),
            });
        }
        let rules = scales
            .iter()
            .map(|s| rule_on(column, Some(s), None))
            .collect::<Result<Vec<_>, _>>()?;
        let per_row = corpus
            .rows
            .iter()
            .map(|r| {
                by_unit
                    .get(r.source.as_str())
                    .map_or(f64::NAN, |&i| rules[i].threshold)
            })
            .collect();
        return Ok((col, rules, per_row));
    }
    // One scale (or none recorded): the manifest's.
    let scale = m.label_scales.get(column);
    if scale.is_none() && given.is_none() {
        return Err(EvalError::NoLabels {
            corpus: corpus.dir.clone(),
            task: task.to_string(),
            reason: format!(
                "the manifest records no scale for `{column}`: give the threshold explicitly"
            ),
        });
    }
    let r = rule_on(column, scale, given)?;
    let per_row = vec![r.threshold; corpus.rows.len()];
    Ok((col, vec![r], per_row))
}

/// The rule for `column` on `scale`: the given threshold (checked against the scale) or the
/// scale's midpoint.
fn rule_on(
    column: &str,
    scale: Option<&LabelScale>,
    given: Option<f64>,
) -> Result<Rule, EvalError> {
    let (lo, hi, desc) = match scale {
        Some(s) => (s.min, s.max, s.description.clone()),
        None => (f64::NAN, f64::NAN, "scale unknown".to_string()),
    };
    let threshold = match given {
        Some(t) => {
            if scale.is_some() && !(t >= lo && t < hi) {
                return Err(EvalError::Config {
                    field: "threshold",
                    expected: format!("a value in [{lo}, {hi}) for `{column}` ({desc})"),
                    found: t.to_string(),
                });
            }
            t
        }
        None => (lo + hi) / 2.0,
    };
    Ok(Rule {
        column: column.to_string(),
        threshold,
        comparison: ">".into(),
        scale_min: lo,
        scale_max: hi,
        scale: desc,
        default_threshold: given.is_none(),
    })
}

/// 1 where label column `col` > the row's threshold, 0 where not, `None` where either is
/// missing.
fn high_low(corpus: &Corpus, col: usize, thresholds: &[f64]) -> Vec<Option<usize>> {
    corpus
        .rows
        .iter()
        .zip(thresholds)
        .map(|(row, &t)| {
            let v = row.labels[col];
            (v.is_finite() && t.is_finite()).then_some(usize::from(v > t))
        })
        .collect()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

type Made = (Vec<String>, Vec<Rule>, Vec<Option<usize>>, String);

/// A label column as a task: its classes (all, or `th.classes`), or high/low at a threshold.
fn column_labels(
    corpus: &Corpus,
    task: &Task,
    name: &str,
    th: &Thresholds,
    datasets: &[String],
) -> Result<Made, EvalError> {
    let source = format!("`{name}` column ({})", datasets.join(", "));
    let scale = corpus.manifest.label_scales.get(name);
    let Some(sc) = scale.filter(|s| !s.classes.is_empty()) else {
        if !th.classes.is_empty() {
            return Err(EvalError::Config {
                field: "classes",
                expected: format!("no classes: `{name}` is numeric (a rating); split it with a threshold, or leave both out for its scale's midpoint"),
                found: th.classes.join(","),
            });
        }
        let (c, r, t) = rules(corpus, task, name, th.column)?;
        let y = high_low(corpus, c, &t);
        return Ok((
            vec![format!("low {name}"), format!("high {name}")],
            r,
            y,
            source,
        ));
    };
    if let Some(t) = th.column {
        return Err(EvalError::Config {
            field: "threshold",
            expected: format!(
                "no threshold: `{name}` holds classes ({}); choose some with classes",
                sc.classes.join(", ")
            ),
            found: t.to_string(),
        });
    }
    let classes = if th.classes.is_empty() {
        sc.classes.clone()
    } else {
        if let Some(c) = th.classes.iter().find(|c| !sc.classes.contains(c)) {
            return Err(EvalError::Config {
                field: "classes",
                expected: format!("classes of `{name}`: {}", sc.classes.join(", ")),
                found: c.clone(),
            });
        }
        th.classes.clone()
    };
    if classes.len() < 2 {
        return Err(EvalError::NoLabels {
            corpus: corpus.dir.clone(),
            task: task.to_string(),
            reason: format!(
                "`{name}` has {} class ({}): a task needs two or more",
                classes.len(),
                classes.join(", ")
            ),
        });
    }
    let map: Vec<Option<usize>> = sc
        .classes
        .iter()
        .map(|c| classes.iter().position(|k| k == c))
        .collect();
    let col = corpus.label_index(name).unwrap_or(usize::MAX);
    let y = corpus
        .rows
        .iter()
        .map(|r| {
            let v = *r.labels.get(col)?;
            (v.is_finite() && v >= 0.0)
                .then(|| map.get(v as usize).copied().flatten())
                .flatten()
        })
        .collect();
    Ok((classes, Vec::new(), y, source))
}

/// Subjects of `corpus` none of whose windows is labeled in `labels` (a task column their
/// events do not have): said with every result, never dropped silently.
pub fn unlabeled_subjects(corpus: &Corpus, labels: &Labels) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for (r, y) in corpus.rows.iter().zip(&labels.y) {
        *seen.entry(r.subject.as_str()).or_insert(false) |= y.is_some();
    }
    seen.into_iter()
        .filter(|(_, l)| !l)
        .map(|(s, _)| s.to_string())
        .collect()
}

/// Labels of every window of `corpus` for `task`.
pub fn make_labels(corpus: &Corpus, task: Task, th: &Thresholds) -> Result<Labels, EvalError> {
    let datasets: Vec<String> = {
        let mut d: Vec<String> = corpus.rows.iter().map(|r| r.dataset.clone()).collect();
        d.sort();
        d.dedup();
        d
    };
    let (classes, rules, y, source): (Vec<String>, Vec<Rule>, Vec<Option<usize>>, String) =
        match &task {
            Task::Arousal | Task::Valence => {
                let (name, given) = if task == Task::Arousal {
                    ("arousal", th.arousal)
                } else {
                    ("valence", th.valence)
                };
                let (c, r, th) = rules(corpus, &task, name, given)?;
                let y = high_low(corpus, c, &th);
                let classes = if task == Task::Arousal {
                    strings(&["low arousal", "high arousal"])
                } else {
                    strings(&["low valence", "high valence"])
                };
                (
                    classes,
                    r,
                    y,
                    format!("self-assessment ratings ({})", datasets.join(", ")),
                )
            }
            Task::Quadrant => {
                let (ca, ra, ta) = rules(corpus, &task, "arousal", th.arousal)?;
                let (cv, rv, tv) = rules(corpus, &task, "valence", th.valence)?;
                let y = corpus
                    .rows
                    .iter()
                    .zip(ta.iter().zip(&tv))
                    .map(|(row, (&ta, &tv))| {
                        let (a, v) = (row.labels[ca], row.labels[cv]);
                        [a, v, ta, tv].iter().all(|x| x.is_finite()).then(|| {
                            // Order: LALV, LAHV, HALV, HAHV.
                            2 * usize::from(a > ta) + usize::from(v > tv)
                        })
                    })
                    .collect();
                (
                    strings(&["LALV", "LAHV", "HALV", "HAHV"]),
                    ra.into_iter().chain(rv).collect(),
                    y,
                    format!("self-assessment ratings ({})", datasets.join(", ")),
                )
            }
            Task::Condition | Task::Stress => {
                if !corpus.rows.iter().any(|r| r.condition.is_some()) {
                    return Err(EvalError::NoLabels {
                    corpus: corpus.dir.clone(),
                    task: task.to_string(),
                    reason: "no window has a study condition (WESAD's baseline/stress/amusement); prepare the corpus from WESAD".into(),
                });
                }
                let y = corpus
                    .rows
                    .iter()
                    .map(|r| match (&task, r.condition) {
                        (Task::Condition, Some(c @ 1..=3)) => Some(c as usize - 1),
                        (Task::Stress, Some(2)) => Some(1),
                        (Task::Stress, Some(1 | 3)) => Some(0),
                        _ => None,
                    })
                    .collect();
                let classes = if task == Task::Condition {
                    strings(&["baseline", "stress", "amusement"])
                } else {
                    strings(&["no stress", "stress"])
                };
                (
                    classes,
                    vec![],
                    y,
                    format!("study protocol condition ({})", datasets.join(", ")),
                )
            }
            Task::Column(name) => column_labels(corpus, &task, name, th, &datasets)?,
        };
    let mut counts = vec![0; classes.len()];
    for c in y.iter().flatten() {
        counts[*c] += 1;
    }
    if counts.iter().sum::<usize>() == 0 {
        return Err(EvalError::NoLabels {
            corpus: corpus.dir.clone(),
            task: task.to_string(),
            reason: "every window's label is missing (NaN)".into(),
        });
    }
    Ok(Labels {
        task,
        classes,
        y,
        rules,
        source,
        counts,
    })
}
