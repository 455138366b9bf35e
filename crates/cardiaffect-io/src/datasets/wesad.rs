//! WESAD: `S#/S#.pkl`, or the raw `S#_respiban.txt` + `S#_quest.csv` route.
//!
//! Layout (WESAD readme; Schmidt et al., ICMI 2018). The pickle is a Python 2 dict `subject`,
//! `signal` {`chest`: ACC, ECG, EDA, EMG, Resp, Temp at 700 Hz; `wrist`: ACC 32 Hz, BVP 64 Hz,
//! EDA 4 Hz, TEMP 4 Hz}, `label` at 700 Hz: 0 transient, 1 baseline, 2 stress, 3 amusement,
//! 4 meditation, 5-7 to be ignored. One recording per subject, with the condition as a
//! per-sample [`LabelTrack`]. The RespiBAN text file holds raw 16-bit ADC values (nSeq, DI,
//! CH1-CH8; CH1 is ECG): mV = (x / 2^16 - 0.5) * 3; the quest file gives each condition's start
//! and end in minutes.seconds, from which the same label track is built.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::formats::{csv, pickle};
use crate::options::ReadOptions;
use crate::paths::{list_dir, natural_key};
use crate::recording::ReadOutput;
use crate::recording::{ChannelRef, LabelTrack, Recording};

pub const FS: f64 = 700.0;
pub const CLASSES: [(u8, &str); 8] = [
    (0, "transient"),
    (1, "baseline"),
    (2, "stress"),
    (3, "amusement"),
    (4, "meditation"),
    (5, "ignore (5)"),
    (6, "ignore (6)"),
    (7, "ignore (7)"),
];
/// Chest channels besides ECG (name in the pickle, columns).
const CHEST: [(&str, &[&str]); 6] = [
    ("ACC", &["chest ACC x", "chest ACC y", "chest ACC z"]),
    ("ECG", &["chest ECG"]),
    ("EDA", &["chest EDA"]),
    ("EMG", &["chest EMG"]),
    ("Resp", &["chest Resp"]),
    ("Temp", &["chest Temp"]),
];
const WRIST: [(&str, f64, &[&str]); 4] = [
    ("ACC", 32.0, &["wrist ACC x", "wrist ACC y", "wrist ACC z"]),
    ("BVP", 64.0, &["wrist BVP"]),
    ("EDA", 4.0, &["wrist EDA"]),
    ("TEMP", 4.0, &["wrist TEMP"]),
];

pub(crate) fn subject_dir_has_data(dir: &Path) -> bool {
    let Some(name) = dir.file_name().map(|s| s.to_string_lossy().into_owned()) else {
        return false;
    };
    name.starts_with('S')
        && (dir.join(format!("{name}.pkl")).exists()
            || dir.join(format!("{name}_respiban.txt")).exists())
}

pub fn read(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    if let Some(l) = &opts.lead {
        if !matches!(l.to_ascii_lowercase().as_str(), "ecg" | "chest ecg" | "1") {
            return Err(IoError::Option {
                path: path.to_path_buf(),
                option: "lead",
                message: format!("{l:?}: WESAD has one ECG lead, \"chest ECG\""),
            });
        }
    }
    if path.is_file() {
        return read_one(path, out);
    }
    let sources = subject_files(path)?;
    if sources.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: "no S#/S#.pkl or S#_respiban.txt".into(),
        });
    }
    for s in sources {
        read_one(&s, out)?;
    }
    Ok(())
}

/// One file per subject under a WESAD folder (the root or a subject folder): its pickle, or
/// else its RespiBAN text file.
pub(crate) fn subject_files(path: &Path) -> Result<Vec<PathBuf>> {
    let mut sources = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![path.to_path_buf()];
    dirs.extend(list_dir(path)?.into_iter().filter(|p| p.is_dir()));
    for d in dirs {
        let Some(name) = d.file_name().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let pkl = d.join(format!("{name}.pkl"));
        let txt = d.join(format!("{name}_respiban.txt"));
        if pkl.exists() {
            sources.push(pkl);
        } else if txt.exists() {
            sources.push(txt);
        } else if d == path {
            // Files directly in the folder (e.g. a folder of S#.pkl files).
            for f in list_dir(path)? {
                let n = f
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if n.starts_with('S') && (n.ends_with(".pkl") || n.ends_with("_respiban.txt")) {
                    sources.push(f);
                }
            }
        }
    }
    sources.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    sources.dedup();
    Ok(sources)
}

fn read_one(path: &Path, out: &mut ReadOutput) -> Result<()> {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with("_respiban.txt") {
        read_respiban(path, out)
    } else {
        read_pickle(path, out)
    }
}

fn layout(path: &Path, field: &str, expected: &str, found: String) -> IoError {
    IoError::layout(path, field, expected, found)
}

/// The numeric array at `signal[device][key]`, as (shape, values).
fn array_at(
    path: &Path,
    root: pickle::PyRef<'_, '_>,
    keys: &[&str],
) -> Result<(Vec<usize>, Vec<f64>)> {
    let mut cur = root;
    let mut at = String::new();
    for k in keys {
        if !cur.is_dict() {
            return Err(layout(
                path,
                if at.is_empty() { "(top level)" } else { &at },
                "a dict",
                cur.describe(),
            ));
        }
        let next = cur.get(k).ok_or_else(|| {
            layout(
                path,
                &format!("{at}['{k}']"),
                &format!("a key '{k}'"),
                format!("keys {:?}", cur.keys()),
            )
        })?;
        at.push_str(&format!("['{k}']"));
        cur = next;
    }
    cur.array_f64()
        .map_err(|e| layout(path, &at, "a numeric numpy array", e))
}

fn shape_at(root: pickle::PyRef<'_, '_>, keys: &[&str]) -> Option<Vec<usize>> {
    let mut cur = root;
    for k in keys {
        cur = cur.get(k)?;
    }
    cur.as_ndarray().map(|a| a.shape.clone())
}

fn read_pickle(path: &Path, out: &mut ReadOutput) -> Result<()> {
    let bytes = crate::error::read_file(path)?;
    let pk = pickle::parse(&bytes).map_err(|e| e.in_file(path, "Python pickle"))?;
    let root = pk.root();
    if !root.is_dict() {
        return Err(layout(
            path,
            "(top level)",
            "a dict with keys 'signal', 'label', 'subject'",
            root.describe(),
        ));
    }
    let subject = root
        .get("subject")
        .and_then(|s| s.as_str())
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let (shape, ecg) = array_at(path, root, &["signal", "chest", "ECG"])?;
    if shape.is_empty() || ecg.is_empty() || (shape.len() == 2 && shape[1] != 1) {
        return Err(layout(
            path,
            "['signal']['chest']['ECG']",
            "an (N, 1) array with N > 0",
            format!("shape {shape:?}"),
        ));
    }
    let (lshape, label) = array_at(path, root, &["label"])?;
    if label.len() != ecg.len() {
        return Err(layout(
            path,
            "['label']",
            &format!("{} values, one per chest sample", ecg.len()),
            format!("shape {lshape:?}"),
        ));
    }
    let mut rec = Recording::new("WESAD", path, FS, ecg.iter().map(|&v| v as f32).collect());
    rec.subject = subject;
    rec.trial = "session".into();
    rec.lead = "chest ECG".into();
    rec.unit = Some("mV".into());
    rec.label_track = Some(label_track(&label));
    let p = path.to_path_buf();
    // Every channel besides ECG, chest then wrist: list what the file has; a channel WESAD's
    // layout has but this file lacks is said.
    let chest = CHEST
        .iter()
        .filter(|(key, _)| *key != "ECG")
        .map(|&(key, names)| ("chest", key, FS, names));
    let wrist = WRIST
        .iter()
        .map(|&(key, fs, names)| ("wrist", key, fs, names));
    for (place, key, fs, names) in chest.chain(wrist) {
        let len = shape_at(root, &["signal", place, key]).and_then(|s| s.first().copied());
        if len.is_none() {
            out.warnings.push(format!(
                "{}: ['signal']['{place}'] has no '{key}' (WESAD's layout has it): {} not listed",
                path.display(),
                names.join(", ")
            ));
            continue;
        }
        for (c, n) in names.iter().enumerate() {
            let p = p.clone();
            rec.channels
                .push(ChannelRef::lazy(*n, fs, None, len, move || {
                    load_column(&p, &["signal", place, key], c)
                }));
        }
    }
    out.recordings.push(rec);
    Ok(())
}

fn load_column(path: &Path, keys: &[&str], col: usize) -> Result<Vec<f32>> {
    let bytes = crate::error::read_file(path)?;
    let pk = pickle::parse(&bytes).map_err(|e| e.in_file(path, "Python pickle"))?;
    let (shape, v) = array_at(path, pk.root(), keys)?;
    let cols = if shape.len() == 2 { shape[1] } else { 1 };
    Ok(v.iter()
        .skip(col)
        .step_by(cols.max(1))
        .map(|&x| x as f32)
        .collect())
}

fn label_track(values: &[f64]) -> LabelTrack {
    LabelTrack {
        name: "condition".into(),
        fs: FS,
        values: values
            .iter()
            .map(|&v| {
                if (0.0..=255.0).contains(&v) {
                    v as u8
                } else {
                    0
                }
            })
            .collect(),
        classes: CLASSES.to_vec(),
    }
}

/// "7.08" (minutes.seconds, as in WESAD's quest files) to seconds.
fn minutes_seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    let (m, sec) = match s.split_once('.') {
        Some((m, f)) => {
            let f = format!("{f:0<2}");
            (m.parse::<f64>().ok()?, f[..2].parse::<f64>().ok()?)
        }
        None => (s.parse::<f64>().ok()?, 0.0),
    };
    (sec < 60.0).then_some(m * 60.0 + sec)
}

fn condition_code(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    Some(match n.as_str() {
        "base" => 1,
        "tsst" => 2,
        "fun" => 3,
        _ if n.starts_with("medi") => 4,
        "sread" => 5,
        "fread" => 6,
        "bread" => 7,
        _ => return None,
    })
}

/// Parse `S#_quest.csv`: rows "# ORDER", "# START", "# END" (semicolon-separated).
pub fn parse_quest(path: &Path, text: &str) -> Result<Vec<(String, f64, f64)>> {
    let row = |key: &str| -> Option<Vec<String>> {
        text.lines()
            .find(|l| {
                l.trim_start_matches('#')
                    .trim()
                    .to_ascii_uppercase()
                    .starts_with(key)
            })
            .map(|l| l.split(';').skip(1).map(|s| s.trim().to_string()).collect())
    };
    let order = row("ORDER").ok_or_else(|| {
        layout(
            path,
            "# ORDER",
            "a row naming the conditions",
            "none".into(),
        )
    })?;
    let start = row("START")
        .ok_or_else(|| layout(path, "# START", "a row of start times", "none".into()))?;
    let end =
        row("END").ok_or_else(|| layout(path, "# END", "a row of end times", "none".into()))?;
    let mut v = Vec::new();
    for (i, name) in order.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let parse = |row: &[String], what: &str| -> Result<f64> {
            let s = row.get(i).map(String::as_str).unwrap_or("");
            minutes_seconds(s).ok_or_else(|| {
                layout(
                    path,
                    &format!("# {what}, column {}", i + 2),
                    "minutes.seconds such as 7.08",
                    format!("{s:?}"),
                )
            })
        };
        v.push((name.clone(), parse(&start, "START")?, parse(&end, "END")?));
    }
    Ok(v)
}

fn read_respiban(path: &Path, out: &mut ReadOutput) -> Result<()> {
    let bytes = crate::error::read_file(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let t = csv::parse(&text).map_err(|e| e.in_file(path, "OpenSignals text"))?;
    let fs = t.fs.unwrap_or(FS);
    let sensors = t
        .opensignals
        .as_ref()
        .map(|o| o.sensors.clone())
        .unwrap_or_default();
    // Data columns after nSeq and DI; the ECG one is named by the header's sensor list, else CH1.
    let first_data = t
        .columns
        .iter()
        .position(|c| c.eq_ignore_ascii_case("CH1") || c.starts_with('A'))
        .unwrap_or(2.min(t.data.len().saturating_sub(1)));
    let ecg_col = sensors
        .iter()
        .position(|s| s.eq_ignore_ascii_case("ECG"))
        .map(|i| first_data + i)
        .unwrap_or(first_data);
    let raw = t.data.get(ecg_col).ok_or_else(|| {
        layout(
            path,
            "columns",
            "nSeq, DI and channel columns",
            format!("{:?}", t.columns),
        )
    })?;
    let mv: Vec<f32> = raw
        .iter()
        .map(|&x| ((x / 65536.0 - 0.5) * 3.0) as f32)
        .collect();
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let subject = stem.split('_').next().unwrap_or("").to_string();
    let mut rec = Recording::new("WESAD", path, fs, mv);
    rec.subject = subject.clone();
    rec.trial = "session".into();
    rec.lead = "chest ECG".into();
    rec.unit = Some("mV".into());
    rec.meta.insert("source".into(), "RespiBAN raw text".into());
    let quest = path.with_file_name(format!("{subject}_quest.csv"));
    if quest.exists() {
        let qtext = String::from_utf8_lossy(&crate::error::read_file(&quest)?).into_owned();
        let mut values = vec![0u8; rec.samples.len()];
        for (name, s, e) in parse_quest(&quest, &qtext)? {
            let Some(code) = condition_code(&name) else {
                out.warnings.push(format!(
                    "{}: condition {name:?} is not one of WESAD's; left as transient",
                    quest.display()
                ));
                continue;
            };
            let (a, b) = (
                ((s * fs).round() as usize).min(values.len()),
                ((e * fs).round() as usize).min(values.len()),
            );
            if a < b {
                values[a..b].fill(code);
            }
        }
        rec.label_track = Some(LabelTrack {
            name: "condition".into(),
            fs,
            values,
            classes: CLASSES.to_vec(),
        });
    } else {
        out.warnings.push(format!(
            "{}: no {} beside it: no condition labels",
            path.display(),
            quest.display()
        ));
    }
    for (c, name) in t.columns.iter().enumerate().skip(first_data) {
        if c == ecg_col {
            continue;
        }
        rec.channels.push(ChannelRef::loaded(
            format!("RespiBAN {name} (raw)"),
            fs,
            None,
            std::sync::Arc::new(t.data[c].iter().map(|&v| v as f32).collect()),
        ));
    }
    out.recordings.push(rec);
    Ok(())
}

/// A subject's RespiBAN file and, where there is one, the quest file its labels come from.
pub fn unit_files(unit: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![unit.to_path_buf()];
    let dir = unit.parent().unwrap_or(Path::new("."));
    if let Some(subject) = crate::paths::file_name(unit).strip_suffix("_respiban.txt") {
        let q = dir.join(format!("{subject}_quest.csv"));
        if q.exists() {
            files.push(q);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quest_times_are_minutes_dot_seconds() {
        assert_eq!(minutes_seconds("7.08"), Some(428.0));
        assert_eq!(minutes_seconds("39.55"), Some(2395.0));
        assert_eq!(minutes_seconds("7.1"), Some(430.0));
        assert_eq!(minutes_seconds("12"), Some(720.0));
        assert_eq!(minutes_seconds("7.75"), None);
    }
}
