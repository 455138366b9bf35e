//! The unified recording: what every reader returns, whatever the file looked like.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;

/// The scale a label was rated on, kept with the value so that thresholds can be named later.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scale {
    pub min: f64,
    pub max: f64,
    /// What the numbers mean, e.g. "self-assessment manikin 1-9".
    pub description: Cow<'static, str>,
    /// A categorical label's classes: the value is an index into them (empty for a rating).
    pub classes: Vec<String>,
    /// Whether `min`/`max` were inferred from the values seen rather than declared.
    pub inferred: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub name: String,
    /// NaN where the dataset has the field but no value for this trial.
    pub value: f64,
    pub scale: Scale,
}

/// A label given per sample (WESAD's study condition), at its own rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelTrack {
    pub name: String,
    pub fs: f64,
    pub values: Vec<u8>,
    /// The meaning of each code, e.g. (2, "stress").
    pub classes: Vec<(u8, &'static str)>,
}

impl LabelTrack {
    /// The contiguous blocks of one code, `(start, end, name)` in sample order, each named as a
    /// trial: the code's meaning and its ordinal among that code's blocks ("baseline-1",
    /// "meditation-2"), so that each condition block of a session is a trial as a stimulus is
    /// in AMIGOS.
    pub fn blocks(&self) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<u8, usize> = BTreeMap::new();
        let mut i = 0;
        while i < self.values.len() {
            let code = self.values[i];
            let mut j = i;
            while j < self.values.len() && self.values[j] == code {
                j += 1;
            }
            let k = seen.entry(code).or_insert(0);
            *k += 1;
            let name = self
                .classes
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| format!("code {code}"));
            out.push((i, j, format!("{name}-{k}")));
            i = j;
        }
        out
    }

    /// Samples per class code, in code order.
    pub fn counts(&self) -> BTreeMap<u8, usize> {
        let mut counts = BTreeMap::new();
        for &v in &self.values {
            *counts.entry(v).or_insert(0) += 1;
        }
        counts
    }

    pub fn class_name(&self, code: u8) -> Option<&'static str> {
        self.classes
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| *n)
    }
}

/// A time-stamped event from the file (EDF+ annotations).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Annotation {
    pub onset_s: f64,
    pub duration_s: Option<f64>,
    pub text: String,
}

type Loader = dyn Fn() -> Result<Vec<f32>> + Send + Sync;

/// Another channel of the same recording (EDA, respiration, EEG, another lead).
///
/// Its samples are only read from disk when [`ChannelRef::load`] is called, so listing the
/// channels of a large dataset costs nothing.
#[derive(Clone)]
pub struct ChannelRef {
    pub name: String,
    pub fs: f64,
    pub unit: Option<String>,
    /// Number of samples, when known without loading.
    pub len: Option<usize>,
    source: ChannelSource,
}

#[derive(Clone)]
enum ChannelSource {
    /// Already decoded with the main signal (formats where one pass reads all channels).
    Loaded(Arc<Vec<f32>>),
    /// Re-read from the file on demand.
    Lazy(Arc<Loader>),
}

impl ChannelRef {
    pub fn loaded(
        name: impl Into<String>,
        fs: f64,
        unit: Option<String>,
        data: Arc<Vec<f32>>,
    ) -> Self {
        ChannelRef {
            name: name.into(),
            fs,
            unit,
            len: Some(data.len()),
            source: ChannelSource::Loaded(data),
        }
    }

    pub fn lazy(
        name: impl Into<String>,
        fs: f64,
        unit: Option<String>,
        len: Option<usize>,
        loader: impl Fn() -> Result<Vec<f32>> + Send + Sync + 'static,
    ) -> Self {
        ChannelRef {
            name: name.into(),
            fs,
            unit,
            len,
            source: ChannelSource::Lazy(Arc::new(loader)),
        }
    }

    /// Read the channel's samples.
    pub fn load(&self) -> Result<Vec<f32>> {
        match &self.source {
            ChannelSource::Loaded(d) => Ok(d.as_ref().clone()),
            ChannelSource::Lazy(f) => f(),
        }
    }

    /// The part from `t0` to `t1` seconds (a trial cut from a continuous recording); a lazy
    /// channel stays lazy and is cut when loaded.
    pub fn slice(&self, t0: f64, t1: f64) -> ChannelRef {
        let (a, b) = (
            (t0 * self.fs).round() as usize,
            (t1 * self.fs).round() as usize,
        );
        let cut = move |d: &[f32]| d[a.min(d.len())..b.min(d.len())].to_vec();
        let len = self.len.map(|n| b.min(n) - a.min(n));
        match &self.source {
            ChannelSource::Loaded(d) => ChannelRef::loaded(
                self.name.clone(),
                self.fs,
                self.unit.clone(),
                Arc::new(cut(d)),
            ),
            ChannelSource::Lazy(f) => {
                let f = f.clone();
                ChannelRef::lazy(
                    self.name.clone(),
                    self.fs,
                    self.unit.clone(),
                    len,
                    move || f().map(|d| cut(&d)),
                )
            }
        }
    }

    pub fn is_loaded(&self) -> bool {
        matches!(self.source, ChannelSource::Loaded(_))
    }
}

impl fmt::Debug for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelRef")
            .field("name", &self.name)
            .field("fs", &self.fs)
            .field("unit", &self.unit)
            .field("len", &self.len)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

/// One continuous single-lead ECG segment with everything known about it.
#[derive(Debug, Clone)]
pub struct Recording {
    /// "AMIGOS", "DREAMER", "WESAD", "ASCERTAIN", or the generic format ("WFDB", "EDF", ...).
    pub dataset: String,
    pub source: PathBuf,
    pub subject: String,
    pub trial: String,
    /// A part of a trial that is its own recording: DREAMER's "stimuli" and "baseline".
    pub segment: Option<String>,
    pub lead: String,
    pub fs: f64,
    /// Physical unit of `samples` as the file gives it; `None` where the file does not say.
    pub unit: Option<String>,
    /// Values as stored, in physical units where the format defines them; never filtered.
    /// Empty where `stored` holds them instead.
    pub samples: Vec<f32>,
    /// The lead as stored, f64 in place in the mapped file, where
    /// [`ReadOptions::zero_copy`](crate::ReadOptions::zero_copy)
    /// asked for it and the file allows (uncompressed doubles); `samples` is then empty.
    pub stored: Option<crate::mapped::F64s>,
    pub labels: Vec<Label>,
    pub label_track: Option<LabelTrack>,
    pub annotations: Vec<Annotation>,
    pub channels: Vec<ChannelRef>,
    /// Other facts from the file (age, gender, stimulus id, start time).
    pub meta: BTreeMap<String, String>,
}

impl Recording {
    pub fn new(dataset: &str, source: impl Into<PathBuf>, fs: f64, samples: Vec<f32>) -> Self {
        Recording {
            dataset: dataset.to_string(),
            source: source.into(),
            subject: String::new(),
            trial: String::new(),
            segment: None,
            lead: String::new(),
            fs,
            unit: None,
            samples,
            stored: None,
            labels: Vec::new(),
            label_track: None,
            annotations: Vec::new(),
            channels: Vec::new(),
            meta: BTreeMap::new(),
        }
    }

    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.fs
    }

    pub fn label(&self, name: &str) -> Option<&Label> {
        self.labels.iter().find(|l| l.name == name)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelRef> {
        self.channels
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_blocks_are_named_by_code_and_ordinal() {
        let t = LabelTrack {
            name: "condition".into(),
            fs: 1.0,
            values: vec![0, 1, 1, 2, 2, 0, 4, 4, 0, 4],
            classes: vec![
                (0, "transient"),
                (1, "baseline"),
                (2, "stress"),
                (4, "meditation"),
            ],
        };
        let b = t.blocks();
        let names: Vec<&str> = b.iter().map(|x| x.2.as_str()).collect();
        assert_eq!(
            names,
            [
                "transient-1",
                "baseline-1",
                "stress-1",
                "transient-2",
                "meditation-1",
                "transient-3",
                "meditation-2"
            ]
        );
        assert_eq!((b[1].0, b[1].1), (1, 3));
        assert_eq!(b.last().unwrap().1, 10);
    }
}

/// A trial that was in the file but not returned, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    pub source: PathBuf,
    pub subject: String,
    pub trial: String,
    /// The reason in a few words, for counts ("empty", "outside the recording").
    pub kind: &'static str,
    pub reason: String,
}

/// A continuous recording as it is in its file, before events cut it into trials: what a
/// listing shows beside the trials, which hold only the events' part of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    pub source: PathBuf,
    pub subject: String,
    pub lead: String,
    pub fs: f64,
    pub samples: usize,
    pub duration_s: f64,
    /// Its other channels' names.
    pub channels: Vec<String>,
    /// Rows of its events (0 where it has none: then it is one trial, whole).
    pub events: usize,
}

impl Run {
    pub fn of(rec: &Recording, events: usize) -> Run {
        Run {
            source: rec.source.clone(),
            subject: rec.subject.clone(),
            lead: rec.lead.clone(),
            fs: rec.fs,
            samples: rec.samples.len(),
            duration_s: rec.duration_s(),
            channels: rec.channels.iter().map(|c| c.name.clone()).collect(),
            events,
        }
    }
}

#[derive(Debug, Default)]
pub struct ReadOutput {
    pub recordings: Vec<Recording>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
    /// The continuous recordings that were cut into `recordings` at events (BIDS, or any
    /// format with ‹events›); empty where the layout's trials are its recordings.
    pub runs: Vec<Run>,
}
