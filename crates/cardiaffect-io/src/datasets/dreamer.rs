//! DREAMER: one `DREAMER.mat` holding every subject.
//!
//! Layout (DREAMER readme; Katsigiannis & Ramzan, IEEE JBHI 2018): struct `DREAMER` with `Data`
//! (1x23 cell of subject structs), `ECG_SamplingRate` (256), `EEG_SamplingRate` (128),
//! `noOfSubjects`, `noOfVideoSequences` (18). A subject struct has `Age`, `Gender`, `EEG`, `ECG`,
//! `ScoreValence`, `ScoreArousal`, `ScoreDominance` (18x1 on 1-5). `ECG.baseline` and
//! `ECG.stimuli` are 18x1 cells of T x 2 arrays (two leads); `EEG` likewise with 14 channels.
//!
//! Each stimulus and each baseline is its own recording (segment "stimuli" / "baseline", same
//! trial id); the ratings belong to the stimulus and are attached to it only.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::common::{
    choose_lead, labels, lead_samples, load_mat, mat_cell, mat_field, mat_var, mat_vector,
    nan_count, skip_empty,
};
use crate::error::{IoError, Result};
use crate::formats::mat::{MatFile, MatValue};
use crate::options::ReadOptions;
use crate::paths::files_matching;
use crate::recording::{ChannelRef, Recording, Scale};
use crate::recording::{ReadOutput, Skipped};

pub const SCALE: Scale = Scale {
    min: 1.0,
    max: 5.0,
    description: Cow::Borrowed("DREAMER self-assessment 1-5"),
    classes: Vec::new(),
    inferred: false,
};
pub const LEADS: [&str; 2] = ["ECG 1", "ECG 2"];
pub const EEG_CHANNELS: [&str; 14] = [
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
];

pub fn read(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = files_matching(path, |n| n == "DREAMER.mat")?;
    let file = files.first().ok_or_else(|| IoError::Empty {
        path: path.to_path_buf(),
        reason: "no DREAMER.mat".into(),
    })?;
    let lead = choose_lead(
        path,
        opts.lead.as_deref(),
        &[
            (LEADS[0], &["1", "lead 1", "ecg1"]),
            (LEADS[1], &["2", "lead 2", "ecg2"]),
        ],
        0,
    )?;
    read_file(file, lead, opts.zero_copy, out)
}

/// The `DREAMER` struct of a loaded `DREAMER.mat` and its `Data` cell (one struct a subject).
fn dreamer_data<'m>(path: &Path, m: &'m MatFile) -> Result<(&'m MatValue, &'m [MatValue])> {
    let root = mat_var(path, m, "DREAMER")?;
    let data = mat_cell(
        path,
        mat_field(path, root, "DREAMER", "Data")?,
        "DREAMER.Data",
    )?;
    Ok((root, data))
}

fn read_file(path: &Path, lead: usize, zero_copy: bool, out: &mut ReadOutput) -> Result<()> {
    let m = load_mat(path)?;
    let (root, data) = dreamer_data(path, &m)?;
    let fs = match root.field("ECG_SamplingRate").and_then(|v| v.as_scalar()) {
        Some(f) if f > 0.0 => f,
        _ => {
            out.warnings.push(format!(
                "{}: DREAMER.ECG_SamplingRate missing; assuming 256 Hz",
                path.display()
            ));
            256.0
        }
    };
    let eeg_fs = root
        .field("EEG_SamplingRate")
        .and_then(|v| v.as_scalar())
        .unwrap_or(128.0);
    for (s, subj) in data.iter().enumerate() {
        let at = format!("DREAMER.Data{{{}}}", s + 1);
        let subject = format!("S{:02}", s + 1);
        let ecg = mat_field(path, subj, &at, "ECG")?;
        let stimuli = mat_cell(
            path,
            mat_field(path, ecg, &format!("{at}.ECG"), "stimuli")?,
            &format!("{at}.ECG.stimuli"),
        )?;
        let baseline = mat_cell(
            path,
            mat_field(path, ecg, &format!("{at}.ECG"), "baseline")?,
            &format!("{at}.ECG.baseline"),
        )?;
        let n = stimuli.len();
        if baseline.len() != n {
            return Err(IoError::layout(
                path,
                format!("{at}.ECG.baseline"),
                format!("{n} cells like ECG.stimuli"),
                format!("{}", baseline.len()),
            ));
        }
        let score = |name: &str| -> Result<Vec<f64>> {
            mat_vector(
                path,
                mat_field(path, subj, &at, name)?,
                &format!("{at}.{name}"),
                n,
            )
        };
        let (val, aro, dom) = (
            score("ScoreValence")?,
            score("ScoreArousal")?,
            score("ScoreDominance")?,
        );
        let age = subj.field("Age").and_then(|v| {
            v.as_scalar()
                .map(|x| x.to_string())
                .or_else(|| v.as_text().map(str::to_string))
        });
        let gender = subj
            .field("Gender")
            .and_then(|v| v.as_text().map(str::to_string));
        for v in 0..n {
            for (segment, cell) in [("stimuli", &stimuli[v]), ("baseline", &baseline[v])] {
                let field = format!("{at}.ECG.{segment}{{{}}}", v + 1);
                let trial = (v + 1).to_string();
                let a = match cell {
                    MatValue::Numeric(a) if a.rows() > 0 && a.cols() == 2 => a,
                    v @ (MatValue::Empty | MatValue::Numeric(_))
                        if v.as_numeric()
                            .is_none_or(|a| a.rows() == 0 || a.cols() == 0) =>
                    {
                        skip_empty(out, path, subject.clone(), trial, &field);
                        continue;
                    }
                    other => {
                        return Err(IoError::layout(
                            path,
                            &field,
                            "a T x 2 numeric array (two ECG leads)",
                            other.describe(),
                        ))
                    }
                };
                let x = a.column_values(lead).unwrap_or_default();
                let nans = nan_count(&x);
                if nans == x.len() {
                    out.skipped.push(Skipped {
                        source: path.to_path_buf(),
                        subject: subject.clone(),
                        trial,
                        kind: "all NaN",
                        reason: format!("{field}: {} is all NaN", LEADS[lead]),
                    });
                    continue;
                }
                if nans > 0 {
                    out.warnings.push(format!(
                        "{}: {subject} video {trial} {segment}: {nans} NaN samples kept",
                        path.display()
                    ));
                }
                let (samples, stored) = lead_samples(x, zero_copy);
                let mut rec = Recording::new("DREAMER", path, fs, samples);
                rec.stored = stored;
                rec.subject = subject.clone();
                rec.trial = trial;
                rec.segment = Some(segment.to_string());
                rec.lead = LEADS[lead].to_string();
                if segment == "stimuli" {
                    rec.labels = labels(
                        &["valence", "arousal", "dominance"],
                        &[val[v], aro[v], dom[v]],
                        &SCALE,
                    );
                }
                if let Some(a) = &age {
                    rec.meta.insert("age".into(), a.clone());
                }
                if let Some(g) = &gender {
                    rec.meta.insert("gender".into(), g.clone());
                }
                let other = 1 - lead;
                let other_data = a.column_values(other).unwrap_or_default();
                let f32s = |x: &[f64]| -> Vec<f32> { x.iter().map(|&v| v as f32).collect() };
                rec.channels.push(if zero_copy && other_data.is_view() {
                    // Converted when asked for, from the mapped file.
                    ChannelRef::lazy(LEADS[other], fs, None, Some(other_data.len()), move || {
                        Ok(f32s(&other_data))
                    })
                } else {
                    ChannelRef::loaded(LEADS[other], fs, None, Arc::new(f32s(&other_data)))
                });
                for (c, name) in EEG_CHANNELS.iter().enumerate() {
                    let p: PathBuf = path.to_path_buf();
                    rec.channels.push(ChannelRef::lazy(
                        format!("EEG {name}"),
                        eeg_fs,
                        None,
                        None,
                        move || load_eeg(&p, s, v, segment, c),
                    ));
                }
                out.recordings.push(rec);
            }
        }
    }
    Ok(())
}

fn load_eeg(path: &Path, s: usize, v: usize, segment: &str, c: usize) -> Result<Vec<f32>> {
    let m = load_mat(path)?;
    let (_, data) = dreamer_data(path, &m)?;
    let at = format!("DREAMER.Data{{{}}}.EEG.{segment}{{{}}}", s + 1, v + 1);
    let subj = data
        .get(s)
        .ok_or_else(|| IoError::layout(path, &at, "a subject", "none"))?;
    let eeg = mat_field(path, subj, "EEG", "EEG")?;
    let cell = mat_cell(path, mat_field(path, eeg, "EEG", segment)?, &at)?;
    cell.get(v)
        .and_then(|x| x.as_numeric())
        .and_then(|a| a.column(c))
        .map(|col| col.iter().map(|&x| x as f32).collect())
        .ok_or_else(|| {
            IoError::layout(
                path,
                at,
                format!("a T x 14 array with column {}", c + 1),
                "none",
            )
        })
}
