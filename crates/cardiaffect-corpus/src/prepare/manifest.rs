//! The corpus's manifest (`manifest.json`): the config, the counts, the label scales, and every
//! source with its shards and their files' hashes. `prepare` writes it last; [`crate::Corpus`]
//! reads it first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hashing::FileHash;
use crate::{CorpusError, PrepareConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub key: String,
    pub unit: String,
    pub windows: usize,
    pub recordings: usize,
    pub skipped_trials: usize,
    /// Skipped trials by reason ("outside the recording", "empty").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
    pub label_scales: BTreeMap<String, LabelScale>,
    pub files: Vec<FileHash>,
    /// Seconds of signal read from the unit (every recording, before windows are dropped).
    /// `None` in shards written before it was recorded: such a shard is built again.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// XXH3-128 of the shard's `windows.f32`, `meta.jsonl`, `dropped.jsonl`.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScale {
    pub min: f64,
    pub max: f64,
    pub description: String,
    /// A categorical column's classes: its values are indices into them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// `min`/`max` were inferred from the values seen (the corpus's: the union over sources).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

impl LabelScale {
    /// One phrase for listings: "1-9 (AMIGOS self-assessment 1-9)", "classes fear, joy".
    pub fn describe(&self) -> String {
        if self.classes.is_empty() {
            format!("{}-{} ({})", self.min, self.max, self.description)
        } else {
            format!("classes {}", self.classes.join(", "))
        }
    }
}

/// One scale per label column for the whole corpus. Declared scales: the first source's (a
/// corpus may mix scales: labels split each window at its own). Inferred scales: the union of
/// the ranges seen. Categorical columns: the sorted union of the classes (each shard's codes
/// are mapped onto it when the corpus is assembled).
pub(super) fn merge_scales(
    infos: &[ShardInfo],
) -> Result<BTreeMap<String, LabelScale>, CorpusError> {
    let mut out: BTreeMap<String, (LabelScale, String)> = BTreeMap::new();
    for i in infos {
        for (k, v) in &i.label_scales {
            let Some((m, first)) = out.get_mut(k) else {
                out.insert(k.clone(), (v.clone(), i.unit.clone()));
                continue;
            };
            if m.classes.is_empty() != v.classes.is_empty() {
                let first: &str = first;
                return Err(CorpusError::LabelColumn {
                    column: k.clone(),
                    reason: format!(
                        "it holds classes in {} and numbers in {}: make it one or the other in every source",
                        if m.classes.is_empty() { &i.unit } else { first },
                        if m.classes.is_empty() { first } else { &i.unit },
                    ),
                });
            }
            if !v.classes.is_empty() {
                for c in &v.classes {
                    if !m.classes.contains(c) {
                        m.classes.push(c.clone());
                    }
                }
                m.classes.sort();
                m.max = (m.classes.len().max(1) - 1) as f64;
            } else if m.inferred && v.inferred {
                m.min = m.min.min(v.min);
                m.max = m.max.max(v.max);
                m.description = format!(
                    "inferred from the values of all sources; declare it with --label-scale {k}=LO-HI"
                );
            }
        }
    }
    Ok(out.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub spec: String,
    pub format: String,
    /// Hours of signal read from this source's readable units.
    #[serde(default)]
    pub hours: f64,
    /// Windows kept from this source.
    #[serde(default)]
    pub windows: usize,
    pub shards: Vec<ShardInfo>,
    /// Units of this source that could not be read, each with why: the rest are prepared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
}

/// A unit (a file or record) of a source that could not be read or used, named with the
/// reason it is counted under and the reader's whole message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unreadable {
    pub unit: String,
    pub reason: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub windows: usize,
    pub recordings: usize,
    pub units: usize,
    pub skipped_trials: usize,
    /// Skipped trials by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    /// Units that could not be read, by reason (each named in its source's `unreadable`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub created_by: String,
    pub config: PrepareConfig,
    pub window_len: usize,
    pub counts: Counts,
    pub label_columns: Vec<String>,
    pub label_scales: BTreeMap<String, LabelScale>,
    pub sources: Vec<SourceEntry>,
    /// XXH3-128 of `windows.npy`, `windows.csv` and `dropped.csv` as written.
    pub checksums: BTreeMap<String, String>,
}

/// The corpus files the manifest's checksums cover.
pub const CORPUS_FILES: [&str; 3] = ["windows.npy", "windows.csv", "dropped.csv"];
