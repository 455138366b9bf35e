//! What a fine-tuned model recognises (`labels.json`): the task, its classes and the rule that
//! made them from a corpus's label columns. Made by `cardiaffect_eval::make_labels`; kept here,
//! with the model folder format, so that inference reads them without the evaluation crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::InvalidChoice;

/// What to recognise. The named tasks have fixed rules; any other label column of the corpus
/// is a task too ([`Task::Column`]): a categorical one gives its classes, a numeric one is
/// split at a threshold (given, or its scale's midpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Task {
    Arousal,
    Valence,
    Quadrant,
    Condition,
    Stress,
    /// A label column by name (`trial_type`, a rating from `*_events.tsv`).
    Column(String),
}

impl Task {
    pub const ALL: [&'static str; 5] = ["arousal", "valence", "quadrant", "condition", "stress"];
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Arousal => "arousal",
            Task::Valence => "valence",
            Task::Quadrant => "quadrant",
            Task::Condition => "condition",
            Task::Stress => "stress",
            Task::Column(c) => c,
        })
    }
}

impl FromStr for Task {
    type Err = InvalidChoice;
    fn from_str(s: &str) -> Result<Task, InvalidChoice> {
        Ok(match s {
            "arousal" => Task::Arousal,
            "valence" => Task::Valence,
            "quadrant" => Task::Quadrant,
            "condition" => Task::Condition,
            "stress" => Task::Stress,
            c if !c.trim().is_empty() && !c.contains(',') => Task::Column(c.trim().to_string()),
            _ => {
                return Err(InvalidChoice {
                    field: "task",
                    expected: format!("{} or a label column of the corpus", Task::ALL.join(", ")),
                    found: s.into(),
                })
            }
        })
    }
}

// A task is written as its name ("arousal", "trial_type") wherever it is saved.
impl Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Task, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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
