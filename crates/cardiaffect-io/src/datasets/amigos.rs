//! AMIGOS preprocessed data: `Data_Preprocessed_P##.mat`, one per participant.
//!
//! Layout (AMIGOS readme; Miranda-Correa et al., IEEE TAFFC 2021): `joined_data` is a 1x20 cell,
//! one T x 17 matrix per trial at 128 Hz — columns 1-14 EEG, 15 ECG Right, 16 ECG Left, 17 GSR
//! (0-based 14, 15, 16); `labels_selfassessment` is a 1x20 cell of 1x12 rows: arousal, valence,
//! dominance, liking, familiarity (1-9), then neutral, disgust, happiness, surprise, anger, fear,
//! sadness (0/1). Trials 17-20 are the long videos. Empty or all-NaN trials are reported in
//! [`crate::ReadOutput::skipped`] and not returned; trials with some NaN are returned with a
//! warning (quality checks downstream drop the affected windows).
//!
//! Files that `cardiaffect synth --affect` wrote in this layout carry a [`SYNTHETIC_MARK`]
//! variable: their recordings are named [`SYNTHETIC_DATASET`], never AMIGOS, so that no result
//! on them is reported under a real dataset's name.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::common::{choose_lead, labels, lead_samples, load_mat, mat_cell, mat_var, nan_count};
use crate::error::{IoError, Result};
use crate::formats::mat::MatValue;
use crate::options::ReadOptions;
use crate::paths::{files_matching, natural_key, number_after};
use crate::recording::{ChannelRef, Recording, Scale};
use crate::recording::{ReadOutput, Skipped};

pub const FS: f64 = 128.0;
/// The variable `synth --affect` adds to each file it writes (text: what wrote it).
pub const SYNTHETIC_MARK: &str = "cardiaffect_synthetic";
/// The dataset name of a marked file's recordings.
pub const SYNTHETIC_DATASET: &str = "synthetic (AMIGOS layout)";
pub const COLUMNS: [&str; 17] = [
    "AF3",
    "F7",
    "F3",
    "FC5",
    "T7",
    "P7",
    "O1",
    "O2",
    "P8",
    "T8",
    "FC6",
    "F4",
    "F8",
    "AF4",
    "ECG Right",
    "ECG Left",
    "GSR",
];
const ECG_RIGHT: usize = 14;
const ECG_LEFT: usize = 15;
pub const LABELS: [&str; 12] = [
    "arousal",
    "valence",
    "dominance",
    "liking",
    "familiarity",
    "neutral",
    "disgust",
    "happiness",
    "surprise",
    "anger",
    "fear",
    "sadness",
];
pub const RATING_SCALE: Scale = Scale {
    min: 1.0,
    max: 9.0,
    description: Cow::Borrowed("AMIGOS self-assessment 1-9"),
    classes: Vec::new(),
    inferred: false,
};
pub const EMOTION_SCALE: Scale = Scale {
    min: 0.0,
    max: 1.0,
    description: Cow::Borrowed("AMIGOS basic emotion chosen (0/1)"),
    classes: Vec::new(),
    inferred: false,
};

pub fn read(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let mut files = files_matching(path, |n| {
        n.starts_with("Data_Preprocessed_P") && n.ends_with(".mat")
    })?;
    files.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    if files.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: "no Data_Preprocessed_P##.mat file".into(),
        });
    }
    let lead = choose_lead(
        path,
        opts.lead.as_deref(),
        &[("ECG Left", &["left", "l"]), ("ECG Right", &["right", "r"])],
        0,
    )?;
    let col = if lead == 0 { ECG_LEFT } else { ECG_RIGHT };
    for f in files {
        read_file(&f, col, opts.zero_copy, out)?;
    }
    Ok(())
}

fn read_file(path: &Path, ecg_col: usize, zero_copy: bool, out: &mut ReadOutput) -> Result<()> {
    let m = load_mat(path)?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let subject = number_after(&name, "_P")
        .map(|d| format!("P{d}"))
        .unwrap_or_else(|| name.clone());
    let trials = mat_cell(path, mat_var(path, &m, "joined_data")?, "joined_data")?;
    let label_cell = mat_cell(
        path,
        mat_var(path, &m, "labels_selfassessment")?,
        "labels_selfassessment",
    )?;
    if label_cell.len() != trials.len() {
        return Err(IoError::layout(
            path,
            "labels_selfassessment",
            format!("{} cells, one per trial of joined_data", trials.len()),
            format!("{} cells", label_cell.len()),
        ));
    }
    let video_ids = m.get("VideoIDs").and_then(|v| v.as_cell());
    let synthetic = m
        .get(SYNTHETIC_MARK)
        .map(|v| v.as_text().unwrap_or("").to_string());
    let dataset = if synthetic.is_some() {
        SYNTHETIC_DATASET
    } else {
        "AMIGOS"
    };
    for (t, trial) in trials.iter().enumerate() {
        let trial_id = (t + 1).to_string();
        let field = format!("joined_data{{{}}}", t + 1);
        let skip = |kind: &'static str, reason: String, out: &mut ReadOutput| {
            out.skipped.push(Skipped {
                source: path.to_path_buf(),
                subject: subject.clone(),
                trial: trial_id.clone(),
                kind,
                reason,
            });
        };
        let a = match trial {
            MatValue::Empty => {
                skip("empty", format!("{field} is empty"), out);
                continue;
            }
            MatValue::Numeric(a) => a,
            other => {
                return Err(IoError::layout(
                    path,
                    &field,
                    "a T x 17 numeric matrix",
                    other.describe(),
                ))
            }
        };
        if a.rows() == 0 || a.cols() == 0 {
            skip(
                "empty",
                format!("{field} is empty ({}x{})", a.rows(), a.cols()),
                out,
            );
            continue;
        }
        if a.dims.len() != 2 || a.cols() != COLUMNS.len() {
            return Err(IoError::layout(
                path,
                &field,
                "a T x 17 matrix (14 EEG, ECG Right, ECG Left, GSR)",
                format!("{:?}", a.dims),
            ));
        }
        let ecg = a.column_values(ecg_col).unwrap_or_default();
        let nans = nan_count(&ecg);
        if nans == ecg.len() {
            skip(
                "all NaN",
                format!("{field}: {} is all NaN", COLUMNS[ecg_col]),
                out,
            );
            continue;
        }
        if nans > 0 {
            out.warnings.push(format!(
                "{}: {subject} trial {trial_id}: {nans} of {} {} samples are NaN (kept as NaN)",
                path.display(),
                ecg.len(),
                COLUMNS[ecg_col]
            ));
        }
        let lab = match &label_cell[t] {
            MatValue::Numeric(l) if l.real.len() >= 5 => l.real.to_vec(),
            MatValue::Empty => Vec::new(),
            other => {
                return Err(IoError::layout(
                    path,
                    format!("labels_selfassessment{{{}}}", t + 1),
                    "a 1x12 numeric row",
                    other.describe(),
                ))
            }
        };
        let (samples, stored) = lead_samples(ecg, zero_copy);
        let mut rec = Recording::new(dataset, path, FS, samples);
        if let Some(t) = &synthetic {
            rec.meta.insert("synthetic".into(), t.clone());
        }
        rec.stored = stored;
        rec.subject = subject.clone();
        rec.trial = trial_id.clone();
        rec.lead = COLUMNS[ecg_col].to_string();
        rec.labels = labels(&LABELS[..5], &lab[..lab.len().min(5)], &RATING_SCALE);
        if lab.len() > 5 {
            rec.labels
                .extend(labels(&LABELS[5..], &lab[5..], &EMOTION_SCALE));
        }
        if lab.is_empty() {
            out.warnings.push(format!(
                "{}: {subject} trial {trial_id}: no self-assessment labels",
                path.display()
            ));
        }
        if let Some(v) = video_ids.and_then(|c| c.get(t)).and_then(|v| {
            v.as_text()
                .map(str::to_string)
                .or_else(|| v.as_scalar().map(|x| x.to_string()))
        }) {
            rec.meta.insert("video_id".into(), v);
        }
        rec.meta.insert(
            "video".into(),
            if t >= 16 {
                "long".into()
            } else {
                "short".into()
            },
        );
        let rows = a.rows();
        for (c, cname) in COLUMNS.iter().enumerate() {
            if c == ecg_col {
                continue;
            }
            let p: PathBuf = path.to_path_buf();
            let tt = t;
            rec.channels
                .push(ChannelRef::lazy(*cname, FS, None, Some(rows), move || {
                    load_column(&p, tt, c)
                }));
        }
        out.recordings.push(rec);
    }
    Ok(())
}

/// Re-read one column of one trial (for the channels not loaded with the ECG).
fn load_column(path: &Path, trial: usize, col: usize) -> Result<Vec<f32>> {
    let m = load_mat(path)?;
    let trials = mat_cell(path, mat_var(path, &m, "joined_data")?, "joined_data")?;
    let field = format!("joined_data{{{}}}", trial + 1);
    trials
        .get(trial)
        .and_then(|v| v.as_numeric())
        .and_then(|a| a.column(col))
        .map(|c| c.iter().map(|&v| v as f32).collect())
        .ok_or_else(|| {
            IoError::layout(
                path,
                field,
                format!("a matrix with column {}", col + 1),
                "none",
            )
        })
}
