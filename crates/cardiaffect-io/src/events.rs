//! Events become trials: a table of (onset, duration, label columns) cuts a continuous
//! recording into one recording per event, labeled by the event's columns.
//!
//! Events come from BIDS `*_events.tsv` (with the `*_events.json` sidecar's `Levels`,
//! `Units`, `Description`), from a file of the user's (`--events FILE.csv|tsv`: columns
//! `recording` or `subject`, `onset`, `duration`, then any label columns), or from the
//! recording's own annotations (`--events annotations`: EDF+ annotations, BrainVision markers
//! with a size). Label columns are numeric (a rating, kept on a declared or inferred scale) or
//! categorical (`trial_type`: its values become classes). An event that cannot be a trial (no
//! onset, no or negative duration, past the end of the recording) is skipped with its file,
//! row and column named, never dropped silently.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::formats::tsv;
use crate::recording::{Annotation, Label, ReadOutput, Recording, Scale, Skipped};

/// Where a recording's trials come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// The recording's own annotations (EDF+, BrainVision markers).
    Annotations,
    /// A CSV or TSV file: `recording` or `subject`, `onset`, `duration`, label columns.
    File(PathBuf),
}

impl std::str::FromStr for EventSource {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "annotations" {
            Ok(EventSource::Annotations)
        } else if s.ends_with(".csv") || s.ends_with(".tsv") {
            Ok(EventSource::File(PathBuf::from(s)))
        } else {
            Err(format!(
                "{s:?}: expected FILE.csv, FILE.tsv or `annotations` (the recording's own)"
            ))
        }
    }
}

/// Columns of an event table that are not labels (BIDS's reserved ones and the keys of an
/// `--events` file).
pub const NOT_LABELS: [&str; 10] = [
    "onset",
    "duration",
    "sample",
    "value",
    "response_time",
    "stim_file",
    "hed",
    "recording",
    "subject",
    "participant_id",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1-based data row of the file (its line is `row + 1`).
    pub row: usize,
    /// NaN where the file has `n/a`.
    pub onset_s: f64,
    pub duration_s: f64,
    pub recording: Option<String>,
    pub subject: Option<String>,
    /// Parallel to [`Events::columns`].
    pub values: Vec<Option<String>>,
}

/// What a sidecar says of one column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnInfo {
    /// `Levels` keys (sorted: a JSON object's order is not kept).
    pub levels: Vec<String>,
    pub units: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    pub path: PathBuf,
    /// Label columns, in file order.
    pub columns: Vec<String>,
    pub events: Vec<Event>,
    pub info: BTreeMap<String, ColumnInfo>,
}

fn number(path: &Path, row: usize, column: &str, v: Option<&str>) -> Result<f64> {
    match v {
        None => Ok(f64::NAN),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                IoError::layout(
                    path,
                    format!("row {row}, column `{column}`"),
                    "a number of seconds (or n/a)",
                    format!("{s:?}"),
                )
            }),
    }
}

impl Events {
    /// An events table parsed from text; `sidecar` is its JSON description, if any.
    pub fn from_table(
        path: &Path,
        t: &tsv::TextTable,
        sidecar: Option<&serde_json::Value>,
    ) -> Result<Events> {
        let need = |name: &str| {
            t.column(name).ok_or_else(|| {
                IoError::layout(
                    path,
                    name,
                    format!("a `{name}` column (seconds)"),
                    format!("columns {:?}", t.columns),
                )
            })
        };
        let (onset, duration) = (need("onset")?, need("duration")?);
        let (rec_col, subj_col) = (
            t.column("recording"),
            t.column("subject").or(t.column("participant_id")),
        );
        let label_idx: Vec<usize> = (0..t.columns.len())
            .filter(|&i| {
                !NOT_LABELS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&t.columns[i]))
            })
            .collect();
        let mut events = Vec::with_capacity(t.rows.len());
        for r in 0..t.rows.len() {
            let row = r + 1;
            events.push(Event {
                row,
                onset_s: number(path, row, "onset", t.get(r, onset))?,
                duration_s: number(path, row, "duration", t.get(r, duration))?,
                recording: rec_col.and_then(|c| t.get(r, c)).map(str::to_string),
                subject: subj_col.and_then(|c| t.get(r, c)).map(str::to_string),
                values: label_idx
                    .iter()
                    .map(|&c| t.get(r, c).map(str::to_string))
                    .collect(),
            });
        }
        let columns: Vec<String> = label_idx.iter().map(|&i| t.columns[i].clone()).collect();
        let mut info = BTreeMap::new();
        if let Some(side) = sidecar.and_then(|s| s.as_object()) {
            for c in &columns {
                if let Some(d) = side.get(c) {
                    let levels = d
                        .get("Levels")
                        .and_then(|l| l.as_object())
                        .map(|l| l.keys().cloned().collect())
                        .unwrap_or_default();
                    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_string);
                    info.insert(
                        c.clone(),
                        ColumnInfo {
                            levels,
                            units: text("Units"),
                            description: text("Description").or(text("LongName")),
                        },
                    );
                }
            }
        }
        Ok(Events {
            path: path.to_path_buf(),
            columns,
            events,
            info,
        })
    }

    /// Read an events file (`.tsv`: tab-separated, `.csv`: comma) and the JSON sidecar beside
    /// it (same name, `.json`), if there is one.
    pub fn load(path: &Path) -> Result<Events> {
        let side = path.with_extension("json");
        let sidecar = if side.exists() {
            Some(crate::error::read_json(&side)?)
        } else {
            None
        };
        Events::load_with(path, sidecar.as_ref())
    }

    /// Read an events file with the sidecar given (BIDS merges inherited ones).
    pub fn load_with(path: &Path, sidecar: Option<&serde_json::Value>) -> Result<Events> {
        let text = String::from_utf8_lossy(&crate::error::read_file(path)?).into_owned();
        let delim = if path.extension().is_some_and(|e| e == "csv") {
            ','
        } else {
            '\t'
        };
        let t = tsv::parse(&text, Some(delim)).map_err(|e| e.in_file(path, "events table"))?;
        Events::from_table(path, &t, sidecar)
    }

    /// The annotations of a recording as events, their text in the categorical column
    /// `annotation`; annotations without a duration stay (and are skipped, said, as point
    /// events).
    pub fn from_annotations(path: &Path, annotations: &[Annotation]) -> Events {
        Events {
            path: path.to_path_buf(),
            columns: vec!["annotation".into()],
            events: annotations
                .iter()
                .enumerate()
                .map(|(i, a)| Event {
                    row: i + 1,
                    onset_s: a.onset_s,
                    duration_s: a.duration_s.unwrap_or(f64::NAN),
                    recording: None,
                    subject: None,
                    values: vec![Some(a.text.trim().to_string())],
                })
                .collect(),
            info: BTreeMap::new(),
        }
    }
}

/// Scales declared by the user, `column -> (min, max)` (`--label-scale valence=1-9`).
pub type Declared = BTreeMap<String, (f64, f64)>;

/// Parse `NAME=LO-HI` (`valence=1-9`, `stress=-3-3`).
pub fn parse_label_scale(s: &str) -> std::result::Result<(String, (f64, f64)), String> {
    let bad = || format!("{s:?}: expected NAME=LO-HI, e.g. valence=1-9");
    let (name, range) = s.split_once('=').ok_or_else(bad)?;
    // The separator is the first '-' that is not a sign.
    let cut = range
        .char_indices()
        .skip(1)
        .find(|&(i, c)| c == '-' && !range[..i].ends_with(['e', 'E', '-']))
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let lo: f64 = range[..cut].trim().parse().map_err(|_| bad())?;
    let hi: f64 = range[cut + 1..].trim().parse().map_err(|_| bad())?;
    if name.trim().is_empty() || lo >= hi || !lo.is_finite() || !hi.is_finite() {
        return Err(bad());
    }
    Ok((name.trim().to_string(), (lo, hi)))
}

/// The kind and scale of every label column of `events`: numeric (every value a number) on
/// the declared scale, the sidecar's numeric `Levels`, or inferred from the values (said in
/// the scale's description); categorical (every value text, or `Levels` naming text) with its
/// classes (the sidecar's `Levels` order, else sorted). A column of both numbers and text is
/// an error naming a row of each.
pub fn label_scales(events: &Events, declared: &Declared) -> Result<Vec<(String, Scale)>> {
    let mut out = Vec::new();
    for (c, name) in events.columns.iter().enumerate() {
        let values: Vec<(usize, &str)> = events
            .events
            .iter()
            .filter_map(|e| e.values[c].as_deref().map(|v| (e.row, v)))
            .collect();
        let info = events.info.get(name).cloned().unwrap_or_default();
        let num = values.iter().find(|(_, v)| v.parse::<f64>().is_ok());
        let text = values.iter().find(|(_, v)| v.parse::<f64>().is_err());
        let levels_numeric =
            !info.levels.is_empty() && info.levels.iter().all(|l| l.parse::<f64>().is_ok());
        let categorical = match (num, text) {
            (Some(&(rn, n)), Some(&(rt, t))) => {
                return Err(IoError::layout(
                    &events.path,
                    format!("column `{name}`"),
                    "all numbers (a rating) or all text (classes)",
                    format!("a number in row {rn} ({n:?}) and text in row {rt} ({t:?})"),
                ))
            }
            (None, Some(_)) => true,
            // All numbers: categorical only if declared so by non-numeric Levels (never).
            _ => declared.get(name).is_none() && !info.levels.is_empty() && !levels_numeric,
        };
        if values.is_empty() && !declared.contains_key(name) {
            continue;
        }
        let scale = if categorical {
            let mut classes: Vec<String> = info.levels.clone();
            if classes.is_empty() {
                classes = values.iter().map(|(_, v)| v.to_string()).collect();
                classes.sort();
                classes.dedup();
            }
            if let Some((row, v)) = values.iter().find(|(_, v)| !classes.iter().any(|c| c == v)) {
                return Err(IoError::layout(
                    &events.path,
                    format!("row {row}, column `{name}`"),
                    format!(
                        "one of the Levels the sidecar declares ({})",
                        classes.join(", ")
                    ),
                    format!("{v:?}"),
                ));
            }
            Scale {
                min: 0.0,
                max: (classes.len().max(1) - 1) as f64,
                description: Cow::Owned(format!("classes of `{name}`")),
                classes,
                inferred: false,
            }
        } else {
            let nums: Vec<f64> = values.iter().filter_map(|(_, v)| v.parse().ok()).collect();
            let (lo, hi, how, inferred) = if let Some(&(lo, hi)) = declared.get(name) {
                (lo, hi, "declared (--label-scale)".to_string(), false)
            } else if levels_numeric {
                let l: Vec<f64> = info.levels.iter().filter_map(|l| l.parse().ok()).collect();
                (
                    l.iter().copied().fold(f64::INFINITY, f64::min),
                    l.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    "declared by the Levels of the events sidecar".to_string(),
                    false,
                )
            } else {
                (
                    nums.iter().copied().fold(f64::INFINITY, f64::min),
                    nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    format!("inferred from the values; declare it with --label-scale {name}=LO-HI"),
                    true,
                )
            };
            if let Some((row, v)) = values
                .iter()
                .find(|(_, v)| v.parse::<f64>().is_ok_and(|x| x < lo || x > hi))
            {
                return Err(IoError::layout(
                    &events.path,
                    format!("row {row}, column `{name}`"),
                    format!("a value on the scale {lo}-{hi} ({how})"),
                    format!("{v:?}"),
                ));
            }
            let units = info
                .units
                .map(|u| format!("; units {u}"))
                .unwrap_or_default();
            Scale {
                min: lo,
                max: hi,
                description: Cow::Owned(format!("{how}{units}")),
                classes: Vec::new(),
                inferred,
            }
        };
        out.push((name.clone(), scale));
    }
    Ok(out)
}

/// Choices for cutting trials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialOptions {
    /// Seconds before each onset kept as the trial's `baseline` segment.
    pub baseline_s: Option<f64>,
    /// The time of the recording's first sample on the events' clock (BIDS physio
    /// `StartTime`).
    pub start_s: f64,
    /// Trial names are `{prefix}{row:03}` (e.g. `task-film_run-1_event-004`).
    pub prefix: String,
}

fn skip(out: &mut ReadOutput, rec: &Recording, trial: &str, kind: &'static str, reason: String) {
    out.skipped.push(Skipped {
        source: rec.source.clone(),
        subject: rec.subject.clone(),
        trial: trial.to_string(),
        kind,
        reason,
    });
}

/// Cut `rec` into one recording per event of `events` (those at `rows`, indices into
/// `events.events`), labeled by `scales` (from [`label_scales`]).
pub fn cut_trials(
    rec: &Recording,
    events: &Events,
    rows: &[usize],
    scales: &[(String, Scale)],
    opts: &TrialOptions,
    out: &mut ReadOutput,
) {
    let file = events
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let end_s = rec.duration_s();
    out.runs.push(crate::recording::Run::of(rec, rows.len()));
    for &i in rows {
        let e = &events.events[i];
        let trial = format!("{}{:03}", opts.prefix, e.row);
        let at = |col: &str| format!("{file} row {}, column `{col}`", e.row);
        if !e.onset_s.is_finite() {
            skip(
                out,
                rec,
                &trial,
                "no onset",
                format!("{}: n/a", at("onset")),
            );
            continue;
        }
        if !e.duration_s.is_finite() || e.duration_s == 0.0 {
            skip(
                out,
                rec,
                &trial,
                "point event (no duration)",
                format!(
                    "{}: {} (a point event is not a trial)",
                    at("duration"),
                    e.duration_s
                ),
            );
            continue;
        }
        if e.duration_s < 0.0 {
            skip(
                out,
                rec,
                &trial,
                "negative duration",
                format!("{}: {} is negative", at("duration"), e.duration_s),
            );
            continue;
        }
        let (t0, t1) = (
            e.onset_s - opts.start_s,
            e.onset_s + e.duration_s - opts.start_s,
        );
        if t0 < 0.0 || t1 > end_s + 0.5 / rec.fs {
            skip(
                out,
                rec,
                &trial,
                "outside the recording",
                format!(
                    "{}: the event spans {:.3}-{:.3} s, outside the recording (0-{:.3} s{})",
                    at("onset"),
                    e.onset_s,
                    e.onset_s + e.duration_s,
                    end_s,
                    if opts.start_s != 0.0 {
                        format!(", which starts at {} s", opts.start_s)
                    } else {
                        String::new()
                    }
                ),
            );
            continue;
        }
        let b = ((t1 * rec.fs).round() as usize).min(rec.samples.len());
        let a = ((t0 * rec.fs).round() as usize).min(b);
        let mut t = piece(rec, a, b);
        t.trial = trial.clone();
        t.meta.insert("onset_s".into(), e.onset_s.to_string());
        t.meta.insert("duration_s".into(), e.duration_s.to_string());
        t.meta
            .insert("events".into(), format!("{file} row {}", e.row));
        for (name, scale) in scales {
            let Some(c) = events.columns.iter().position(|n| n == name) else {
                continue;
            };
            let v = e.values[c].as_deref();
            let value = if scale.classes.is_empty() {
                v.and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN)
            } else {
                v.and_then(|s| scale.classes.iter().position(|k| k == s))
                    .map_or(f64::NAN, |k| k as f64)
            };
            if let Some(s) = v {
                t.meta.insert(name.clone(), s.to_string());
            }
            t.labels.push(Label {
                name: name.clone(),
                value,
                scale: scale.clone(),
            });
        }
        if let Some(base) = opts.baseline_s {
            let b0 = t0 - base;
            if b0 < 0.0 {
                out.warnings.push(format!(
                    "{}: {} trial {trial}: no baseline: the {base} s before onset {} s start before the recording",
                    rec.source.display(),
                    rec.subject,
                    e.onset_s
                ));
            } else {
                let mut bl = piece(rec, ((b0 * rec.fs).round() as usize).min(a), a);
                bl.trial = trial.clone();
                bl.segment = Some("baseline".into());
                bl.meta
                    .insert("onset_s".into(), (e.onset_s - base).to_string());
                out.recordings.push(bl);
            }
        }
        out.recordings.push(t);
    }
}

/// Samples `a..b` of `rec` as a recording of their own (other channels cut alike when loaded).
fn piece(rec: &Recording, a: usize, b: usize) -> Recording {
    let mut r = Recording::new(
        &rec.dataset,
        &rec.source,
        rec.fs,
        rec.samples[a..b].to_vec(),
    );
    r.subject = rec.subject.clone();
    r.lead = rec.lead.clone();
    r.unit = rec.unit.clone();
    r.meta = rec.meta.clone();
    let (t0, t1) = (a as f64 / rec.fs, b as f64 / rec.fs);
    r.annotations = rec
        .annotations
        .iter()
        .filter(|x| x.onset_s >= t0 && x.onset_s < t1)
        .map(|x| Annotation {
            onset_s: x.onset_s - t0,
            ..x.clone()
        })
        .collect();
    r.channels = rec.channels.iter().map(|c| c.slice(t0, t1)).collect();
    r
}

/// Apply a user's events file or the recordings' annotations to what a reader returned:
/// every recording is cut into its events' trials. A recording no event names is skipped,
/// said.
pub fn apply(
    source: &EventSource,
    declared: &Declared,
    baseline_s: Option<f64>,
    out: &mut ReadOutput,
) -> Result<()> {
    let recordings = std::mem::take(&mut out.recordings);
    match source {
        EventSource::File(path) => {
            let ev = Events::load(path)?;
            if ev
                .events
                .iter()
                .all(|e| e.recording.is_none() && e.subject.is_none())
            {
                return Err(IoError::layout(
                    path,
                    "recording",
                    "a `recording` (file name) or `subject` column naming whose events they are",
                    format!("columns onset, duration, {}", ev.columns.join(", ")),
                ));
            }
            let scales = label_scales(&ev, declared)?;
            for rec in recordings {
                let file = rec
                    .source
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stem = rec
                    .source
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rows: Vec<usize> = (0..ev.events.len())
                    .filter(|&i| {
                        let e = &ev.events[i];
                        match (&e.recording, &e.subject) {
                            (Some(r), _) => *r == file || *r == stem,
                            (None, Some(s)) => *s == rec.subject,
                            _ => false,
                        }
                    })
                    .collect();
                if rows.is_empty() {
                    skip(
                        out,
                        &rec,
                        &rec.trial.clone(),
                        "no events",
                        format!(
                            "no row of {} names this recording (recording {file:?} or subject {:?})",
                            path.display(),
                            rec.subject
                        ),
                    );
                    continue;
                }
                let opts = TrialOptions {
                    baseline_s,
                    start_s: 0.0,
                    prefix: format!("{stem}_event-"),
                };
                cut_trials(&rec, &ev, &rows, &scales, &opts, out);
            }
        }
        EventSource::Annotations => {
            for rec in recordings {
                let ev = Events::from_annotations(&rec.source, &rec.annotations);
                if ev.events.is_empty() {
                    skip(
                        out,
                        &rec,
                        &rec.trial.clone(),
                        "no events",
                        "the recording has no annotations (--events annotations)".into(),
                    );
                    continue;
                }
                let scales = label_scales(&ev, declared)?;
                let stem = rec
                    .source
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let opts = TrialOptions {
                    baseline_s,
                    start_s: 0.0,
                    prefix: format!("{stem}_annotation-"),
                };
                let rows: Vec<usize> = (0..ev.events.len()).collect();
                cut_trials(&rec, &ev, &rows, &scales, &opts, out);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Events {
        let t = tsv::parse(text, None).unwrap();
        Events::from_table(Path::new("ev.tsv"), &t, None).unwrap()
    }

    fn rec(seconds: usize) -> Recording {
        let mut r = Recording::new(
            "EDF",
            "/d/s1.edf",
            10.0,
            (0..seconds * 10).map(|i| i as f32).collect(),
        );
        r.subject = "s1".into();
        r
    }

    #[test]
    fn events_become_labeled_trials_with_baselines() {
        let ev = events("onset\tduration\ttrial_type\tvalence\n2\t3\tfear\t7\n6\t2\tjoy\tn/a\n");
        let sc = label_scales(&ev, &Declared::new()).unwrap();
        assert_eq!(sc[0].1.classes, ["fear", "joy"]);
        assert!(sc[1].1.inferred && sc[1].1.description.contains("inferred"));
        let mut out = ReadOutput::default();
        let opts = TrialOptions {
            baseline_s: Some(1.0),
            prefix: "t-".into(),
            ..Default::default()
        };
        cut_trials(&rec(10), &ev, &[0, 1], &sc, &opts, &mut out);
        assert!(out.skipped.is_empty());
        assert_eq!(out.recordings.len(), 4);
        let t = &out.recordings[1];
        assert_eq!((t.trial.as_str(), t.segment.as_deref()), ("t-001", None));
        assert_eq!((t.samples.len(), t.samples[0]), (30, 20.0));
        assert_eq!(t.label("trial_type").unwrap().value, 0.0);
        assert_eq!(t.label("valence").unwrap().value, 7.0);
        let b = &out.recordings[0];
        assert_eq!(
            (b.segment.as_deref(), b.samples.len(), b.samples[0]),
            (Some("baseline"), 10, 10.0)
        );
        assert!(b.labels.is_empty());
        assert!(out.recordings[3].label("valence").unwrap().value.is_nan());
        // The whole recording is kept as a run, with its events counted.
        assert_eq!(out.runs.len(), 1);
        assert_eq!(
            (
                out.runs[0].samples,
                out.runs[0].duration_s,
                out.runs[0].events
            ),
            (100, 10.0, 2)
        );
    }

    #[test]
    fn bad_events_are_skipped_with_file_row_and_column() {
        let ev = events("onset\tduration\tarousal\n1\t-2\t3\n8\t5\t4\nn/a\t1\t5\n3\t0\t5\n");
        let sc = label_scales(&ev, &Declared::new()).unwrap();
        let mut out = ReadOutput::default();
        cut_trials(
            &rec(10),
            &ev,
            &[0, 1, 2, 3],
            &sc,
            &TrialOptions::default(),
            &mut out,
        );
        assert!(out.recordings.is_empty());
        let kinds: Vec<&str> = out.skipped.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                "negative duration",
                "outside the recording",
                "no onset",
                "point event (no duration)"
            ]
        );
        assert!(
            out.skipped[0]
                .reason
                .contains("ev.tsv row 1, column `duration`"),
            "{}",
            out.skipped[0].reason
        );
        assert!(out.skipped[1].reason.contains("row 2"));
    }

    #[test]
    fn mixed_columns_and_scales() {
        let ev = events("onset\tduration\tvalence\n1\t1\t3\n2\t1\thigh\n");
        let e = label_scales(&ev, &Declared::new()).unwrap_err().to_string();
        assert!(
            e.contains("ev.tsv")
                && e.contains("`valence`")
                && e.contains("row 1")
                && e.contains("row 2"),
            "{e}"
        );
        let ev = events("onset\tduration\tvalence\n1\t1\t3\n2\t1\t12\n");
        let d: Declared = [("valence".to_string(), (1.0, 9.0))].into();
        let e = label_scales(&ev, &d).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("1-9"), "{e}");
        assert_eq!(
            parse_label_scale("valence=1-9").unwrap(),
            ("valence".into(), (1.0, 9.0))
        );
        assert_eq!(parse_label_scale("x=-3--1").unwrap().1, (-3.0, -1.0));
        assert!(parse_label_scale("x=9-1").is_err() && parse_label_scale("x").is_err());
    }

    #[test]
    fn sidecar_levels_order_classes_and_declare_scales() {
        let t = tsv::parse("onset\tduration\ttrial_type\trating\n1\t1\tb\t2\n", None).unwrap();
        let side = serde_json::json!({
            "trial_type": {"Levels": {"c": "C", "b": "B", "a": "A"}},
            "rating": {"Levels": {"1": "low", "5": "high"}, "Units": "points"}
        });
        let ev = Events::from_table(Path::new("e.tsv"), &t, Some(&side)).unwrap();
        let sc = label_scales(&ev, &Declared::new()).unwrap();
        // The Levels' classes, sorted (JSON objects have no order to keep), "a" absent from the data.
        assert_eq!(sc[0].1.classes, ["a", "b", "c"]);
        assert_eq!(
            (sc[1].1.min, sc[1].1.max, sc[1].1.inferred),
            (1.0, 5.0, false)
        );
        assert!(
            sc[1].1.description.contains("Levels"),
            "{}",
            sc[1].1.description
        );
    }
}
