//! What `prepare` reads: the sources as given (`--source FORMAT:PATH`), the units each one
//! expands to (read one at a time, each into its own shard), and the reason a unit that cannot
//! be read is counted under.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cardiaffect_io::{read_units, EventSource, Format, ReadOptions};
use serde::{Deserialize, Serialize};

use crate::CorpusError;

/// `FORMAT:PATH` (or a bare path, detected), as given to `--source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub format: Format,
    pub path: PathBuf,
    pub lead: Option<String>,
    pub fs: Option<f64>,
    /// Cut recordings into trials at these events (`--events`).
    #[serde(default)]
    pub events: Option<EventSource>,
    /// Seconds before each event kept as its baseline segment (`--baseline`).
    #[serde(default)]
    pub baseline_s: Option<f64>,
    /// Declared label scales (`--label-scale NAME=LO-HI`).
    #[serde(default)]
    pub label_scales: BTreeMap<String, (f64, f64)>,
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, path) = match s.split_once(':') {
            Some((f, p)) if f.parse::<Format>().is_ok() && !p.is_empty() => {
                (f.parse::<Format>()?, p)
            }
            _ => (Format::Auto, s),
        };
        Ok(Source {
            format,
            path: PathBuf::from(path),
            lead: None,
            fs: None,
            events: None,
            baseline_s: None,
            label_scales: BTreeMap::new(),
        })
    }
}

impl Source {
    pub fn spec(&self) -> String {
        format!("{}:{}", self.format, self.path.display())
    }
}

/// One readable unit of a source (`source` is its index), with the options it is read with.
pub(super) struct Unit {
    pub(super) source: usize,
    pub(super) format: Format,
    pub(super) path: PathBuf,
    pub(super) opts: ReadOptions,
}

/// Every source's format (detected where not given) and readable units, in order.
pub(super) fn units_of(sources: &[Source]) -> Result<(Vec<Format>, Vec<Unit>), CorpusError> {
    let mut units = Vec::new();
    let mut formats = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let (format, paths) = read_units(&s.path, s.format)?;
        formats.push(format);
        for p in paths {
            units.push(Unit {
                source: i,
                format,
                path: p,
                opts: ReadOptions {
                    fs: s.fs,
                    lead: s.lead.clone(),
                    events: s.events.clone(),
                    baseline_s: s.baseline_s,
                    label_scales: s.label_scales.clone(),
                    zero_copy: false,
                },
            });
        }
    }
    Ok((formats, units))
}

/// A text table or sidecar (`events.tsv`, `.json`, `.csv`), as opposed to a recording's data.
fn is_table(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        ["tsv", "json", "csv"]
            .iter()
            .any(|t| e.eq_ignore_ascii_case(t))
    })
}

/// The short reason an unreadable unit is counted under (`Counts::unreadable`).
pub(super) fn unreadable_reason(e: &CorpusError) -> Option<&'static str> {
    use cardiaffect_io::IoError as E;
    Some(match e {
        CorpusError::Read(e) => match e {
            E::Open { .. } => "cannot open",
            E::Parse { .. } => "not a valid file (truncated or damaged)",
            // Events, sidecars and label tables are the study's own words: a value there
            // that does not fit is an error to fix, not a recording to leave out.
            E::Layout { path, .. } if is_table(path) => return None,
            E::Layout { .. } => "unexpected layout (truncated, or fields missing)",
            E::Unsupported { .. } => "unsupported",
            E::MissingFile { .. } => "a file it names is missing",
            E::UnknownFormat { .. } => "unknown format",
            E::Empty { .. } => "no recording",
            E::Option { .. } => "an option does not apply",
        },
        CorpusError::RateTooLow { .. } => "sampling rate too low for the band",
        // Hashing a unit's files before reading them: a file its header names is absent.
        CorpusError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "a file it names is missing"
        }
        _ => return None,
    })
}
