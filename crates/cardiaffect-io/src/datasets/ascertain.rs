//! ASCERTAIN: `ECGData/Movie_P##/ECG_Clip##.mat`, ratings in `Dt_SelfReports.mat`.
//!
//! Layout relied on (ASCERTAIN readme, Subramanian et al., IEEE TAFFC 2018, and the public
//! ARDT loader): each clip file holds `Data_ECG`, N x 6 at 256 Hz, column 1 the time in ms from
//! the start, left-arm and right-arm ECG in columns 5 and 6 (0-based 4 and 5); files with fewer
//! columns have them in columns 2 and 3. `timeECG` is the 1x6 date vector of the start.
//! Self-reports come from `ASCERTAIN_Features/Dt_SelfReports.mat`, variable `Ratings` of size
//! 5 x 58 x 36 (arousal, valence, engagement, liking, familiarity; participant; clip), found by
//! looking in the given folder and up to three parent folders (also in an
//! `ASCERTAIN_Features` subfolder of each). Ratings are kept as stored: arousal 0-6 and valence
//! -3..3 on ASCERTAIN's 7-point scales.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::common::{choose_lead, labels, load_mat, mat_var, nan_count, skip_empty};
use crate::error::{IoError, Result};
use crate::formats::mat::{MatValue, NumericArray};
use crate::options::ReadOptions;
use crate::paths::{list_dir, natural_key, number_after};
use crate::recording::{ReadOutput, Skipped};
use crate::recording::{Recording, Scale};

pub const FS: f64 = 256.0;
pub const RATINGS: [&str; 5] = ["arousal", "valence", "engagement", "liking", "familiarity"];
pub const AROUSAL_SCALE: Scale = Scale {
    min: 0.0,
    max: 6.0,
    description: Cow::Borrowed("ASCERTAIN arousal 0-6"),
    classes: Vec::new(),
    inferred: false,
};
pub const VALENCE_SCALE: Scale = Scale {
    min: -3.0,
    max: 3.0,
    description: Cow::Borrowed("ASCERTAIN valence -3..3"),
    classes: Vec::new(),
    inferred: false,
};
pub const OTHER_SCALE: Scale = Scale {
    min: 0.0,
    max: 6.0,
    description: Cow::Borrowed("ASCERTAIN rating (as stored)"),
    classes: Vec::new(),
    inferred: false,
};

fn is_clip(name: &str) -> bool {
    name.starts_with("ECG_Clip") && name.ends_with(".mat")
}

/// Every ECG clip file under `path` (a clip file, a Movie_P## folder, ECGData, or the root).
pub(crate) fn find_clip_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(path.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in list_dir(&d)? {
            let name = e
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if e.is_dir() && depth < 3 {
                stack.push((e, depth + 1));
            } else if is_clip(&name) {
                out.push(e);
            }
        }
    }
    out.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    Ok(out)
}

pub(crate) fn find_self_reports(start: &Path) -> Option<PathBuf> {
    let mut dir = if start.is_file() {
        start.parent()?
    } else {
        start
    };
    for _ in 0..4 {
        for cand in [
            dir.join("Dt_SelfReports.mat"),
            dir.join("ASCERTAIN_Features").join("Dt_SelfReports.mat"),
        ] {
            if cand.exists() {
                return Some(cand);
            }
        }
        dir = dir.parent()?;
    }
    None
}

pub fn read(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = find_clip_files(path)?;
    if files.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: "no Movie_P##/ECG_Clip##.mat file".into(),
        });
    }
    let lead = choose_lead(
        path,
        opts.lead.as_deref(),
        &[
            ("ECG left arm", &["left", "la", "l"]),
            ("ECG right arm", &["right", "ra", "r"]),
        ],
        0,
    )?;
    let ratings = match find_self_reports(path) {
        Some(p) => {
            let m = load_mat(&p)?;
            let r = mat_var(&p, &m, "Ratings")?;
            match r.as_numeric() {
                Some(a) if a.dims.len() == 3 && a.dims[0] >= 2 => Some((p.clone(), a.clone())),
                _ => {
                    return Err(IoError::layout(
                        &p,
                        "Ratings",
                        "a 5 x participants x clips numeric array",
                        r.describe(),
                    ))
                }
            }
        }
        None => {
            out.warnings.push(format!(
                "{}: no Dt_SelfReports.mat found nearby: recordings have no ratings",
                path.display()
            ));
            None
        }
    };
    for f in files {
        read_clip(&f, lead, ratings.as_ref(), out)?;
    }
    Ok(())
}

fn rating(r: &NumericArray, kind: usize, participant: usize, clip: usize) -> Option<f64> {
    let (d0, d1, d2) = (r.dims[0], r.dims[1], r.dims[2]);
    if kind >= d0 || participant >= d1 || clip >= d2 {
        return None;
    }
    r.real.get(kind + d0 * (participant + d1 * clip)).copied()
}

fn read_clip(
    path: &Path,
    lead: usize,
    ratings: Option<&(PathBuf, NumericArray)>,
    out: &mut ReadOutput,
) -> Result<()> {
    let m = load_mat(path)?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let participant: Option<usize> = number_after(&folder, "_P").and_then(|d| d.parse().ok());
    let clip: Option<usize> = number_after(&name, "Clip").and_then(|d| d.parse().ok());
    let subject = participant
        .map(|p| format!("P{p:02}"))
        .unwrap_or(folder.clone());
    let trial = clip.map(|c| c.to_string()).unwrap_or(name.clone());
    let data = mat_var(path, &m, "Data_ECG")?;
    let a = match data {
        MatValue::Numeric(a) if a.dims.len() == 2 && a.rows() > 0 && a.cols() >= 3 => a,
        v @ (MatValue::Empty | MatValue::Numeric(_))
            if v.as_numeric().is_none_or(|a| a.rows() == 0) =>
        {
            skip_empty(out, path, subject, trial, "Data_ECG");
            return Ok(());
        }
        other => {
            return Err(IoError::layout(
                path,
                "Data_ECG",
                "an N x 6 (or N x 3+) numeric array: time, ..., ECG left arm, ECG right arm",
                other.describe(),
            ))
        }
    };
    let (left, right) = if a.cols() >= 6 { (4, 5) } else { (1, 2) };
    let col = if lead == 0 { left } else { right };
    let x = a.column(col).unwrap_or(&[]);
    if nan_count(x) == x.len() {
        out.skipped.push(Skipped {
            source: path.to_path_buf(),
            subject,
            trial,
            kind: "all NaN",
            reason: format!("Data_ECG column {} is all NaN", col + 1),
        });
        return Ok(());
    }
    let mut rec = Recording::new("ASCERTAIN", path, FS, x.iter().map(|&v| v as f32).collect());
    rec.subject = subject;
    rec.trial = trial;
    rec.lead = if lead == 0 {
        "ECG left arm"
    } else {
        "ECG right arm"
    }
    .into();
    if let Some(t) = m.get("timeECG").and_then(|v| v.as_numeric()) {
        rec.meta.insert(
            "start".into(),
            t.real
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let other = if lead == 0 { right } else { left };
    let other_name = if lead == 0 {
        "ECG right arm"
    } else {
        "ECG left arm"
    };
    rec.channels.push(crate::ChannelRef::loaded(
        other_name,
        FS,
        None,
        std::sync::Arc::new(
            a.column(other)
                .unwrap_or(&[])
                .iter()
                .map(|&v| v as f32)
                .collect(),
        ),
    ));
    if let (Some((rp, r)), Some(p), Some(c)) = (ratings, participant, clip) {
        let vals: Vec<Option<f64>> = (0..RATINGS.len())
            .map(|k| rating(r, k, p - 1, c - 1))
            .collect();
        if vals.iter().all(|v| v.is_none()) {
            out.warnings.push(format!(
                "{}: Ratings has no entry for participant {p}, clip {c}",
                rp.display()
            ));
        } else {
            let v: Vec<f64> = vals.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            rec.labels = labels(&RATINGS[..1], &v[..1], &AROUSAL_SCALE);
            rec.labels
                .extend(labels(&RATINGS[1..2], &v[1..2], &VALENCE_SCALE));
            rec.labels
                .extend(labels(&RATINGS[2..], &v[2..], &OTHER_SCALE));
        }
    }
    out.recordings.push(rec);
    Ok(())
}

/// A clip's file and the self-report file its labels come from.
pub fn unit_files(unit: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![unit.to_path_buf()];
    files.extend(find_self_reports(unit));
    Ok(files)
}
