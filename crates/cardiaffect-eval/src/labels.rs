//! From a corpus's per-window ratings to class labels, with the rule named.
//!
//! Binary tasks: a rating is **high** when `rating > threshold`; the default threshold is the
//! midpoint of the dataset's scale as recorded in the corpus manifest (AMIGOS 1-9: 5, DREAMER
//! 1-5: 3). Quadrants combine both (`HAHV`, `HALV`, `LAHV`, `LALV`). WESAD's study protocol gives
//! `condition` (baseline / stress / amusement) and `stress` (stress vs the other two). Labels are
//! given per trial by the datasets; every window of a trial carries its trial's label.

use std::fmt;
use std::str::FromStr;

use cardiaffect_corpus::Corpus;
use serde::{Deserialize, Serialize};

use crate::EvalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Arousal,
    Valence,
    Quadrant,
    Condition,
    Stress,
}

impl Task {
    pub const ALL: [&'static str; 5] = ["arousal", "valence", "quadrant", "condition", "stress"];
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = *self as usize;
        f.write_str(Task::ALL[i])
    }
}

impl FromStr for Task {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Task, EvalError> {
        Ok(match s {
            "arousal" => Task::Arousal,
            "valence" => Task::Valence,
            "quadrant" => Task::Quadrant,
            "condition" => Task::Condition,
            "stress" => Task::Stress,
            _ => {
                return Err(EvalError::Config {
                    field: "task",
                    expected: Task::ALL.join(", "),
                    found: s.into(),
                })
            }
        })
    }
}

/// User thresholds; `None`: the midpoint of the dataset's scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub arousal: Option<f64>,
    pub valence: Option<f64>,
}

/// One binarised rating: `column > threshold` is high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub column: String,
    pub threshold: f64,
    pub comparison: String,
    pub scale_min: f64,
    pub scale_max: f64,
    pub scale: String,
    /// Whether the threshold is the scale's midpoint (default) or was given.
    pub default_threshold: bool,
}

impl Rule {
    pub fn describe(&self) -> String {
        format!(
            "high {c} = {c} > {t} on {lo}-{hi} ({s}){d}",
            c = self.column,
            t = self.threshold,
            lo = self.scale_min,
            hi = self.scale_max,
            s = self.scale,
            d = if self.default_threshold {
                ", the scale's midpoint"
            } else {
                ", given"
            }
        )
    }
}

/// Class labels of every corpus row (`None`: the row has no label for the task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub task: Task,
    pub classes: Vec<String>,
    #[serde(skip)]
    pub y: Vec<Option<usize>>,
    pub rules: Vec<Rule>,
    /// Where the labels come from, e.g. "self-assessment (AMIGOS labels_selfassessment)".
    pub source: String,
    /// Labeled windows per class.
    pub counts: Vec<usize>,
}

impl Labels {
    /// One line naming the rule(s), printed with every result.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            format!(
                "{}: classes {}; source: {}",
                self.task,
                self.classes.join(" / "),
                self.source
            )
        } else {
            format!(
                "{}: {}; source: {}",
                self.task,
                self.rules
                    .iter()
                    .map(Rule::describe)
                    .collect::<Vec<_>>()
                    .join("; "),
                self.source
            )
        }
    }
}

fn rule(
    corpus: &Corpus,
    task: Task,
    column: &str,
    given: Option<f64>,
) -> Result<(usize, Rule), EvalError> {
    let m = &corpus.manifest;
    let Some(col) = corpus.label_index(column) else {
        return Err(EvalError::NoLabels {
            corpus: corpus.dir.clone(),
            task: task.to_string(),
            reason: format!(
                "the corpus has no `{column}` column (its label columns: {}); prepare it from a labeled dataset (AMIGOS, DREAMER, ASCERTAIN, `synth --affect`)",
                if m.label_columns.is_empty() { "none".to_string() } else { m.label_columns.join(", ") }
            ),
        });
    };
    let scale = m.label_scales.get(column);
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
        None => {
            if scale.is_none() {
                return Err(EvalError::NoLabels {
                    corpus: corpus.dir.clone(),
                    task: task.to_string(),
                    reason: format!("the manifest records no scale for `{column}`: give the threshold explicitly"),
                });
            }
            (lo + hi) / 2.0
        }
    };
    Ok((
        col,
        Rule {
            column: column.to_string(),
            threshold,
            comparison: ">".into(),
            scale_min: lo,
            scale_max: hi,
            scale: desc,
            default_threshold: given.is_none(),
        },
    ))
}

/// Labels of every window of `corpus` for `task`.
pub fn make_labels(corpus: &Corpus, task: Task, th: &Thresholds) -> Result<Labels, EvalError> {
    let datasets: Vec<String> = {
        let mut d: Vec<String> = corpus.rows.iter().map(|r| r.dataset.clone()).collect();
        d.sort();
        d.dedup();
        d
    };
    let (classes, rules, y, source): (Vec<&str>, Vec<Rule>, Vec<Option<usize>>, String) = match task
    {
        Task::Arousal | Task::Valence => {
            let (name, given) = if task == Task::Arousal {
                ("arousal", th.arousal)
            } else {
                ("valence", th.valence)
            };
            let (c, r) = rule(corpus, task, name, given)?;
            let y = corpus
                .rows
                .iter()
                .map(|row| {
                    let v = row.labels[c];
                    v.is_finite().then_some(usize::from(v > r.threshold))
                })
                .collect();
            let classes = if task == Task::Arousal {
                vec!["low arousal", "high arousal"]
            } else {
                vec!["low valence", "high valence"]
            };
            (
                classes,
                vec![r],
                y,
                format!("self-assessment ratings ({})", datasets.join(", ")),
            )
        }
        Task::Quadrant => {
            let (ca, ra) = rule(corpus, task, "arousal", th.arousal)?;
            let (cv, rv) = rule(corpus, task, "valence", th.valence)?;
            let y = corpus
                .rows
                .iter()
                .map(|row| {
                    let (a, v) = (row.labels[ca], row.labels[cv]);
                    (a.is_finite() && v.is_finite()).then(|| {
                        // Order: LALV, LAHV, HALV, HAHV.
                        2 * usize::from(a > ra.threshold) + usize::from(v > rv.threshold)
                    })
                })
                .collect();
            (
                vec!["LALV", "LAHV", "HALV", "HAHV"],
                vec![ra, rv],
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
                .map(|r| match (task, r.condition) {
                    (Task::Condition, Some(c @ 1..=3)) => Some(c as usize - 1),
                    (Task::Stress, Some(2)) => Some(1),
                    (Task::Stress, Some(1 | 3)) => Some(0),
                    _ => None,
                })
                .collect();
            let classes = if task == Task::Condition {
                vec!["baseline", "stress", "amusement"]
            } else {
                vec!["no stress", "stress"]
            };
            (
                classes,
                vec![],
                y,
                format!("study protocol condition ({})", datasets.join(", ")),
            )
        }
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
        classes: classes.into_iter().map(String::from).collect(),
        y,
        rules,
        source,
        counts,
    })
}
