//! BIDS: a lab's own study, as OpenNeuro and the BIDS physio and EEG extensions lay it out.
//!
//! The root holds `dataset_description.json` and `participants.tsv` (its columns are kept as
//! each subject's attributes, in `meta`). Under `sub-<s>[/ses-<x>]/<datatype>/`:
//! - `*_physio.tsv.gz` (gzipped TSV, no header row) with `*_physio.json`
//!   (`SamplingFrequency`, `StartTime`, `Columns`): ECG is the `cardiac` column (or `--lead`);
//! - `*_eeg.edf`, `*_eeg.bdf`, `*_eeg.vhdr` (+ `.vmrk`, `.eeg`): the ECG channel is the one
//!   `*_channels.tsv` types `ECG` (or `EKG`), or `--lead`;
//! - `*_events.tsv` (+ `*_events.json`, here or inherited from the root as
//!   `task-<t>_events.json`): each event is a trial, see [`crate::events`].
//!
//! Every other channel is listed with its recording (EDA, respiration, EEG), read on demand.
//! Units are data files: reading one gives what reading the dataset gives for it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::datasets::generic::open_brainvision;
use crate::error::{IoError, Result};
use crate::events::{self, Events, TrialOptions};
use crate::formats::{edf, tsv};
use crate::options::ReadOptions;
use crate::paths::{file_name, list_dir, natural_key};
use crate::recording::{ChannelRef, ReadOutput, Recording, Run};

/// The data files BIDS names, by suffix.
const DATA_SUFFIXES: [&str; 4] = ["_physio.tsv.gz", "_eeg.vhdr", "_eeg.edf", "_eeg.bdf"];
/// Channel types (in `*_channels.tsv`) that are an ECG.
const ECG_TYPES: [&str; 2] = ["ECG", "EKG"];

pub fn is_root(dir: &Path) -> bool {
    dir.join("dataset_description.json").is_file()
}

/// The dataset root above (or at) `path`.
pub fn root_of(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| is_root(p)).map(Path::to_path_buf)
}

/// Whether a file name is a BIDS data file this reader reads.
pub fn is_data_file(name: &str) -> bool {
    name.starts_with("sub-") && data_suffix(name).is_some()
}

fn data_suffix(name: &str) -> Option<&'static str> {
    DATA_SUFFIXES.iter().copied().find(|s| name.ends_with(s))
}

/// Every data file under `path` (a root, a subject or session folder, or one data file), in
/// natural order; `derivatives/`, `sourcedata/` and `code/` are not data.
pub fn data_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in list_dir(&d)? {
            let name = file_name(&p);
            if p.is_dir() {
                if !["derivatives", "sourcedata", "code"].contains(&name.as_str())
                    && !name.starts_with('.')
                {
                    stack.push(p);
                }
            } else if name.starts_with("sub-") && data_suffix(&name).is_some() {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    Ok(out)
}

/// `sub-01_ses-02_task-film_run-1_recording-ecg` as key-value pairs, in order.
fn entities(prefix: &str) -> Vec<(String, String)> {
    prefix
        .split('_')
        .filter_map(|e| e.split_once('-'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Names {
    dir: PathBuf,
    /// The file name up to its suffix (`sub-01_task-film_run-1_recording-ecg`).
    prefix: String,
    suffix: &'static str,
    subject: String,
    task: Option<String>,
}

impl Names {
    fn of(data: &Path) -> Result<Names> {
        let name = file_name(data);
        let suffix = data_suffix(&name).ok_or_else(|| {
            IoError::layout(
                data,
                "file name",
                format!("a BIDS data file ({})", DATA_SUFFIXES.join(", ")),
                format!("{name:?}"),
            )
        })?;
        let prefix = name[..name.len() - suffix.len()].to_string();
        let ent = entities(&prefix);
        let subject = ent
            .iter()
            .find(|(k, _)| k == "sub")
            .map(|(_, v)| format!("sub-{v}"))
            .ok_or_else(|| {
                IoError::layout(
                    data,
                    "file name",
                    "a sub-<label> entity",
                    format!("{name:?}"),
                )
            })?;
        let task = ent
            .iter()
            .find(|(k, _)| k == "task")
            .map(|(_, v)| v.clone());
        Ok(Names {
            dir: data.parent().unwrap_or(Path::new(".")).to_path_buf(),
            prefix,
            suffix,
            subject,
            task,
        })
    }

    /// A side file of the same recording (`_channels.tsv`, `_physio.json`).
    fn side(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.prefix))
    }

    /// The events file: the recording's name without `_recording-<l>` (physio streams share
    /// their run's events).
    fn events(&self) -> PathBuf {
        let p: Vec<&str> = self
            .prefix
            .split('_')
            .filter(|e| !e.starts_with("recording-"))
            .collect();
        self.dir.join(format!("{}_events.tsv", p.join("_")))
    }

    /// The events sidecars that apply, most general first (BIDS inheritance): the root's
    /// `task-<t>_events.json`, then the one beside the events file.
    fn events_json(&self, root: Option<&Path>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let (Some(root), Some(task)) = (root, self.task.as_deref()) {
            out.push(root.join(format!("task-{task}_events.json")));
        }
        out.push(self.events().with_extension("json"));
        out.retain(|p| p.is_file());
        out
    }

    /// Trials are named by the recording without its subject (`task-film_run-1_event-004`).
    fn trial_key(&self) -> String {
        let p: Vec<&str> = self
            .prefix
            .split('_')
            .filter(|e| !e.starts_with("sub-") && !e.starts_with("recording-"))
            .collect();
        if p.is_empty() {
            "recording".into()
        } else {
            p.join("_")
        }
    }
}

/// Every file reading `data` depends on, that exists.
pub fn unit_files(data: &Path) -> Result<Vec<PathBuf>> {
    let n = Names::of(data)?;
    let root = root_of(data);
    let mut files = vec![data.to_path_buf()];
    if n.suffix == "_eeg.vhdr" {
        if let Ok(bv) = open_brainvision(data) {
            files.extend(bv.side_files());
        }
    }
    for p in [
        n.side("_physio.json"),
        n.side("_channels.tsv"),
        n.side("_eeg.json"),
        n.events(),
    ] {
        files.push(p);
    }
    files.extend(n.events_json(root.as_deref()));
    if let Some(r) = &root {
        files.push(r.join("participants.tsv"));
        files.push(r.join("dataset_description.json"));
    }
    files.retain(|p| p.is_file());
    files.dedup();
    Ok(files)
}

/// The dataset's `Name` in `dataset_description.json` (what results tables are headed with),
/// if it has one; else recordings are of dataset `BIDS`.
fn dataset_name(root: &Path) -> Option<String> {
    let text = std::fs::read(root.join("dataset_description.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let name = v.get("Name")?.as_str()?.trim();
    // MNE-BIDS writes `[Unspecified]` where the author gave none.
    (!name.is_empty() && !name.starts_with('[') && name != "n/a").then(|| name.to_string())
}

/// `participants.tsv` as participant_id -> (column, value).
fn participants(root: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let p = root.join("participants.tsv");
    let mut out = BTreeMap::new();
    if !p.is_file() {
        return Ok(out);
    }
    let text = String::from_utf8_lossy(&crate::error::read_file(&p)?).into_owned();
    let t = tsv::parse(&text, Some('\t')).map_err(|e| e.in_file(&p, "BIDS TSV"))?;
    let id = t.column("participant_id").ok_or_else(|| {
        IoError::layout(
            &p,
            "participant_id",
            "a participant_id column",
            format!("columns {:?}", t.columns),
        )
    })?;
    for r in 0..t.rows.len() {
        let Some(sub) = t.get(r, id) else { continue };
        let attrs = (0..t.columns.len())
            .filter(|&c| c != id)
            .filter_map(|c| t.get(r, c).map(|v| (t.columns[c].clone(), v.to_string())))
            .collect();
        out.insert(sub.to_string(), attrs);
    }
    Ok(out)
}

/// Channel names and types from `*_channels.tsv` (empty when there is none).
fn channel_types(path: &Path) -> Result<Vec<(String, String)>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&crate::error::read_file(path)?).into_owned();
    let t = tsv::parse(&text, Some('\t')).map_err(|e| e.in_file(path, "BIDS TSV"))?;
    let (Some(name), Some(ty)) = (t.column("name"), t.column("type")) else {
        return Err(IoError::layout(
            path,
            "name, type",
            "`name` and `type` columns",
            format!("columns {:?}", t.columns),
        ));
    };
    Ok((0..t.rows.len())
        .map(|r| {
            (
                t.get(r, name).unwrap_or("").to_string(),
                t.get(r, ty).unwrap_or("").to_ascii_uppercase(),
            )
        })
        .collect())
}

/// Which of `names` is the ECG: `--lead`, else the channel typed ECG/EKG, else one whose name
/// says ECG/EKG/cardiac.
fn choose_ecg(
    path: &Path,
    names: &[String],
    types: &[(String, String)],
    lead: Option<&str>,
) -> Result<usize> {
    if let Some(l) = lead {
        return names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(l.trim()))
            .ok_or_else(|| IoError::Option {
                path: path.to_path_buf(),
                option: "lead",
                message: format!("no channel {l:?}: the recording has {names:?}"),
            });
    }
    let typed = types
        .iter()
        .find(|(_, t)| ECG_TYPES.contains(&t.as_str()))
        .and_then(|(n, _)| names.iter().position(|m| m == n));
    let named = || {
        names.iter().position(|n| {
            let l = n.to_ascii_lowercase();
            l.contains("ecg") || l.contains("ekg") || l == "cardiac"
        })
    };
    typed.or_else(named).ok_or_else(|| IoError::Layout {
        path: path.to_path_buf(),
        field: "ECG channel".into(),
        expected: "a channel typed ECG or EKG in *_channels.tsv, or named so (or give ‹lead› NAME)"
            .into(),
        found: if types.is_empty() {
            format!("channels {names:?} and no channels.tsv")
        } else {
            format!(
                "channels {}",
                types
                    .iter()
                    .map(|(n, t)| format!("{n} ({t})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    })
}

/// A gzipped headerless physio TSV as columns, one per name of its sidecar's `Columns` (a
/// first line of another width is the sidecar's error).
fn read_physio(path: &Path, side: &Path, names: &[String]) -> Result<Vec<Vec<f32>>> {
    let n_columns = names.len();
    let raw = crate::error::read_file(path)?;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .map_err(|e| IoError::open(path, e))?;
    let width = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .map_or(0, |l| l.split('\t').count());
    if width != n_columns {
        return Err(IoError::layout(
            side,
            "Columns",
            format!("{width} names, as {} has {width} columns", file_name(path)),
            format!("{n_columns} names {names:?}"),
        ));
    }
    let mut cols: Vec<Vec<f32>> = vec![Vec::new(); n_columns];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut k = 0;
        for f in line.split('\t') {
            if k >= n_columns {
                k += 1;
                break;
            }
            let f = f.trim();
            let v = if f == "n/a" {
                f32::NAN
            } else {
                f.parse::<f32>().map_err(|_| {
                    IoError::layout(
                        path,
                        format!("line {}, column {}", i + 1, k + 1),
                        "a number or n/a",
                        format!("{f:?}"),
                    )
                })?
            };
            cols[k].push(v);
            k += 1;
        }
        if k != n_columns {
            return Err(IoError::layout(
                path,
                format!("line {}", i + 1),
                format!("{n_columns} values, one per name in the sidecar's Columns"),
                format!("{} values", line.split('\t').count()),
            ));
        }
    }
    Ok(cols)
}

/// One recording of a data file (ECG first, the rest as channels) and the time of its first
/// sample on the events' clock.
fn read_data(
    path: &Path,
    n: &Names,
    opts: &ReadOptions,
    warnings: &mut Vec<String>,
) -> Result<(Recording, f64)> {
    let types = channel_types(&n.side("_channels.tsv"))?;
    let lead = opts.lead.as_deref();
    match n.suffix {
        "_physio.tsv.gz" => {
            let side = n.side("_physio.json");
            if !side.is_file() {
                return Err(IoError::MissingFile {
                    path: path.to_path_buf(),
                    field: "sidecar".into(),
                    missing: side,
                });
            }
            let j = crate::error::read_json(&side)?;
            let fs = j["SamplingFrequency"]
                .as_f64()
                .filter(|f| *f > 0.0 && f.is_finite())
                .ok_or_else(|| {
                    IoError::layout(
                        &side,
                        "SamplingFrequency",
                        "a positive number (Hz)",
                        j["SamplingFrequency"].to_string(),
                    )
                })?;
            let start = match &j["StartTime"] {
                serde_json::Value::Null => 0.0,
                v => v.as_f64().ok_or_else(|| {
                    IoError::layout(&side, "StartTime", "a number of seconds", v.to_string())
                })?,
            };
            let names: Vec<String> = j["Columns"]
                .as_array()
                .and_then(|a| a.iter().map(|c| c.as_str().map(str::to_string)).collect())
                .ok_or_else(|| {
                    IoError::layout(
                        &side,
                        "Columns",
                        "a list of column names",
                        j["Columns"].to_string(),
                    )
                })?;
            let mut cols = read_physio(path, &side, &names)?;
            // BIDS's name for the ECG column comes first, unless a lead is asked for.
            let i = match names.iter().position(|c| c == "cardiac") {
                Some(i) if lead.is_none() => i,
                _ => choose_ecg(path, &names, &types, lead)?,
            };
            let mut rec = Recording::new("BIDS", path, fs, std::mem::take(&mut cols[i]));
            rec.lead = names[i].clone();
            for (j, c) in cols.into_iter().enumerate() {
                if j != i {
                    rec.channels
                        .push(ChannelRef::loaded(names[j].clone(), fs, None, Arc::new(c)));
                }
            }
            Ok((rec, start))
        }
        "_eeg.vhdr" => {
            let bv = open_brainvision(path)?;
            let names: Vec<String> = bv.header.channels.iter().map(|c| c.name.clone()).collect();
            let i = choose_ecg(path, &names, &types, lead)?;
            Ok((bv.recording("BIDS", i)?, 0.0))
        }
        _ => {
            let bytes = crate::error::read_file(path)?;
            let e = edf::parse(&bytes).map_err(|err| err.in_file(path, "EDF"))?;
            warnings.extend(
                e.warnings
                    .iter()
                    .map(|w| format!("{}: {w}", path.display())),
            );
            let sig: Vec<usize> = (0..e.header.signals.len())
                .filter(|&k| !e.header.signals[k].is_annotation())
                .collect();
            let names: Vec<String> = sig
                .iter()
                .map(|&k| e.header.signals[k].label.clone())
                .collect();
            let i = choose_ecg(path, &names, &types, lead)?;
            let unit = |k: usize| {
                let d = &e.header.signals[k].physical_dimension;
                (!d.is_empty()).then(|| d.clone())
            };
            let k = sig[i];
            let mut rec = Recording::new("BIDS", path, e.fs(k), e.data[k].clone());
            rec.lead = names[i].clone();
            rec.unit = unit(k);
            rec.annotations = e.annotations.clone();
            for (j, &k) in sig.iter().enumerate() {
                if j != i {
                    rec.channels.push(ChannelRef::loaded(
                        names[j].clone(),
                        e.fs(k),
                        unit(k),
                        Arc::new(e.data[k].clone()),
                    ));
                }
            }
            Ok((rec, 0.0))
        }
    }
}

/// The events sidecar of a recording, inherited ones merged: a key of a nearer sidecar
/// replaces (or, for a column's object, extends) the same key of a farther one.
fn events_sidecar(n: &Names, root: Option<&Path>) -> Result<Option<serde_json::Value>> {
    use serde_json::Value;
    let mut sidecar: Option<Value> = None;
    for p in n.events_json(root) {
        match (&mut sidecar, crate::error::read_json(&p)?) {
            (Some(Value::Object(acc)), Value::Object(m)) => {
                for (k, v) in m {
                    let merged = match (acc.remove(&k), v) {
                        (Some(Value::Object(mut a)), Value::Object(b)) => {
                            a.extend(b);
                            Value::Object(a)
                        }
                        (_, v) => v,
                    };
                    acc.insert(k, merged);
                }
            }
            (_, j) => sidecar = Some(j),
        }
    }
    Ok(sidecar)
}

pub fn read(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    if opts.events.is_some() {
        return Err(IoError::Option {
            path: path.to_path_buf(),
            option: "events",
            message:
                "a BIDS dataset's events are its *_events.tsv files; ‹events› is for other formats"
                    .into(),
        });
    }
    let root = root_of(path);
    let people = match &root {
        Some(r) => participants(r)?,
        None => BTreeMap::new(),
    };
    let name = root.as_deref().and_then(dataset_name);
    let files = data_files(path)?;
    if files.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: format!("no BIDS data file ({}) under it", DATA_SUFFIXES.join(", ")),
        });
    }
    for f in files {
        let n = Names::of(&f)?;
        let (mut rec, start) = read_data(&f, &n, opts, &mut out.warnings)?;
        rec.subject = n.subject.clone();
        if let Some(name) = &name {
            rec.dataset = name.clone();
        }
        for (k, v) in entities(&n.prefix) {
            if k != "sub" {
                rec.meta.insert(k, v);
            }
        }
        if let Some(attrs) = people.get(&n.subject) {
            for (k, v) in attrs {
                rec.meta.insert(format!("participant {k}"), v.clone());
            }
        }
        let ev_path = n.events();
        if !ev_path.is_file() {
            rec.trial = n.trial_key();
            out.warnings.push(format!(
                "{}: no {} beside it: the whole recording is one unlabeled trial",
                f.display(),
                file_name(&ev_path)
            ));
            out.runs.push(Run::of(&rec, 0));
            out.recordings.push(rec);
            continue;
        }
        let sidecar = events_sidecar(&n, root.as_deref())?;
        let ev = Events::load_with(&ev_path, sidecar.as_ref())?;
        let scales = events::label_scales(&ev, &opts.label_scales)?;
        let trial_opts = TrialOptions {
            baseline_s: opts.baseline_s,
            start_s: start,
            prefix: format!("{}_event-", n.trial_key()),
        };
        let rows: Vec<usize> = (0..ev.events.len()).collect();
        events::cut_trials(&rec, &ev, &rows, &scales, &trial_opts, out);
    }
    Ok(())
}
