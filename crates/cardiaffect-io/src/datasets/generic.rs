//! Generic formats (WFDB, EDF/EDF+, NPY, CSV): one recording per signal, the record's other
//! signals attached as channels. `--lead` keeps only the named (or 1-based numbered) signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoError, Result};
use crate::formats::{brainvision, csv, edf, npy, wfdb};
use crate::options::ReadOptions;
use crate::paths::files_matching;
use crate::recording::{Annotation, ChannelRef, ReadOutput, Recording};

struct Signal {
    name: String,
    fs: f64,
    unit: Option<String>,
    data: Arc<Vec<f32>>,
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The signal `--lead` names: by name (any case), else by 1-based number.
fn choose_signal(path: &Path, names: &[&str], lead: &str) -> Result<usize> {
    let by_name = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(lead.trim()));
    let by_index = || {
        lead.parse::<usize>()
            .ok()
            .filter(|&i| i >= 1 && i <= names.len())
            .map(|i| i - 1)
    };
    by_name.or_else(by_index).ok_or_else(|| IoError::Option {
        path: path.to_path_buf(),
        option: "lead",
        message: format!(
            "no signal {lead:?}: the file has {} (or use 1-{})",
            quoted(names),
            names.len()
        ),
    })
}

/// Signal names quoted and joined, for messages that list them.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turn the signals of one file into recordings, honouring `--lead`.
fn push_signals(
    dataset: &str,
    path: &Path,
    subject: &str,
    signals: Vec<Signal>,
    annotations: &[Annotation],
    opts: &ReadOptions,
    out: &mut ReadOutput,
) -> Result<()> {
    let names: Vec<&str> = signals.iter().map(|s| s.name.as_str()).collect();
    let chosen = if dataset == "WFDB" {
        chosen_wfdb_signals(path, &names, opts)?
    } else {
        chosen_signals(path, &names, opts)?
    };
    for i in chosen {
        let s = &signals[i];
        let mut rec = Recording::new(dataset, path, s.fs, s.data.as_ref().clone());
        rec.subject = subject.to_string();
        rec.trial = "1".into();
        rec.lead = s.name.clone();
        rec.unit = s.unit.clone();
        rec.annotations = annotations.to_vec();
        for (j, o) in signals.iter().enumerate() {
            if j != i {
                rec.channels.push(ChannelRef::loaded(
                    o.name.clone(),
                    o.fs,
                    o.unit.clone(),
                    o.data.clone(),
                ));
            }
        }
        out.recordings.push(rec);
    }
    Ok(())
}

/// A WFDB signal's name: its description, else its 1-based number.
pub(crate) fn wfdb_signal_name(i: usize, spec: &wfdb::SignalSpec) -> String {
    if spec.description.is_empty() {
        format!("signal {}", i + 1)
    } else {
        spec.description.clone()
    }
}

/// The subject of an EDF file: the EDF+ patient code ("code sex birthdate name", "X" where
/// unknown), else the file's name.
pub(crate) fn edf_subject(patient: &str, path: &Path) -> String {
    match patient.split_whitespace().next().unwrap_or("X") {
        "X" => stem(path),
        code => code.to_string(),
    }
}

/// What an EDF header adds to each of its recordings' `meta`.
pub(crate) fn edf_meta(h: &edf::EdfHeader, rec: &mut Recording) {
    rec.meta
        .insert("start".into(), format!("{} {}", h.start_date, h.start_time));
    if !h.variant.is_empty() {
        rec.meta.insert("variant".into(), h.variant.clone());
    }
}

pub fn read_wfdb(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let heads = if path.is_file() {
        vec![if path.extension().is_some_and(|e| e == "hea") {
            path.to_path_buf()
        } else {
            path.with_extension("hea")
        }]
    } else {
        files_matching(path, |n| n.ends_with(".hea"))?
    };
    for hea in heads {
        let rec = wfdb::read_record(&hea)?;
        out.warnings.extend(rec.warnings.iter().cloned());
        let fs = rec.header.fs;
        let signals = rec
            .header
            .signals
            .iter()
            .zip(rec.signals)
            .enumerate()
            .map(|(i, (spec, data))| Signal {
                name: wfdb_signal_name(i, spec),
                fs: fs * spec.samples_per_frame as f64,
                unit: Some(spec.units.clone().unwrap_or_else(|| "mV".into())),
                data: Arc::new(data),
            })
            .collect();
        push_signals("WFDB", &hea, &rec.header.record, signals, &[], opts, out)?;
        if let (Some(t), Some(r)) = (&rec.header.base_time, out.recordings.last_mut()) {
            r.meta.insert("base_time".into(), t.clone());
        }
    }
    Ok(())
}

pub fn read_edf(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = files_matching(path, |n| {
        let l = n.to_ascii_lowercase();
        l.ends_with(".edf") || l.ends_with(".bdf")
    })?;
    for f in files {
        let bytes = crate::error::read_file(&f)?;
        let e = edf::parse(&bytes).map_err(|err| err.in_file(&f, "EDF"))?;
        out.warnings
            .extend(e.warnings.iter().map(|w| format!("{}: {w}", f.display())));
        let mut signals = Vec::new();
        for (i, s) in e.header.signals.iter().enumerate() {
            if s.is_annotation() {
                continue;
            }
            signals.push(Signal {
                name: s.label.clone(),
                fs: e.fs(i),
                unit: (!s.physical_dimension.is_empty()).then(|| s.physical_dimension.clone()),
                data: Arc::new(e.data[i].clone()),
            });
        }
        if signals.is_empty() {
            return Err(IoError::Empty {
                path: f.clone(),
                reason: "the EDF file has only annotation signals".into(),
            });
        }
        let subject = edf_subject(&e.header.patient, &f);
        let before = out.recordings.len();
        push_signals("EDF", &f, &subject, signals, &e.annotations, opts, out)?;
        for r in &mut out.recordings[before..] {
            edf_meta(&e.header, r);
        }
    }
    Ok(())
}

fn require_fs(path: &Path, opts: &ReadOptions, what: &str) -> Result<f64> {
    match opts.fs {
        Some(f) if f > 0.0 && f.is_finite() => Ok(f),
        Some(f) => Err(IoError::Option {
            path: path.to_path_buf(),
            option: "fs",
            message: format!("{f} is not a positive sampling rate"),
        }),
        None => Err(IoError::Option {
            path: path.to_path_buf(),
            option: "fs",
            message: format!("{what} files do not store a sampling rate: pass ‹fs› HZ"),
        }),
    }
}

pub fn read_npy(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = files_matching(path, |n| n.ends_with(".npy"))?;
    for f in files {
        let fs = require_fs(&f, opts, "NPY")?;
        let bytes = crate::error::read_file(&f)?;
        let a = npy::parse(&bytes).map_err(|e| e.in_file(&f, "NPY"))?;
        let (n, c, channels_first) = match a.shape.as_slice() {
            [n] => (*n, 1, false),
            // (samples, channels) unless it is clearly (channels, samples).
            [r, k] if r >= k => (*r, *k, false),
            [r, k] => (*k, *r, true),
            s => {
                return Err(IoError::layout(
                    &f,
                    "shape",
                    "a 1-D signal or a 2-D (samples, channels) array",
                    format!("{s:?}"),
                ))
            }
        };
        if n == 0 {
            return Err(IoError::Empty {
                path: f.clone(),
                reason: "the array has no samples".into(),
            });
        }
        if channels_first {
            out.warnings.push(format!(
                "{}: shape {:?} read as (channels, samples)",
                f.display(),
                a.shape
            ));
        }
        let signals = (0..c)
            .map(|j| {
                let data: Vec<f32> = if channels_first {
                    a.values[j * n..(j + 1) * n]
                        .iter()
                        .map(|&v| v as f32)
                        .collect()
                } else {
                    a.values
                        .iter()
                        .skip(j)
                        .step_by(c)
                        .map(|&v| v as f32)
                        .collect()
                };
                Signal {
                    name: if c == 1 {
                        "signal".into()
                    } else {
                        format!("column {}", j + 1)
                    },
                    fs,
                    unit: None,
                    data: Arc::new(data),
                }
            })
            .collect();
        push_signals("NPY", &f, &stem(&f), signals, &[], opts, out)?;
    }
    Ok(())
}

pub fn read_csv(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = files_matching(path, |n| {
        n.ends_with(".csv") || n.ends_with(".tsv") || n.ends_with(".txt")
    })?;
    for f in files {
        let bytes = crate::error::read_file(&f)?;
        let text = String::from_utf8_lossy(&bytes);
        let t = csv::parse(&text).map_err(|e| e.in_file(&f, "CSV"))?;
        let fs = match (opts.fs, t.fs) {
            (Some(_), _) | (None, None) => require_fs(&f, opts, "CSV")?,
            (None, Some(fs)) => fs,
        };
        // Counters and time columns are not signals.
        let skip = |name: &str| {
            let l = name.to_ascii_lowercase();
            matches!(
                l.as_str(),
                "nseq"
                    | "di"
                    | "time"
                    | "t"
                    | "timestamp"
                    | "time_s"
                    | "time (s)"
                    | "sample"
                    | "index"
            )
        };
        let signals: Vec<Signal> = t
            .columns
            .iter()
            .zip(&t.data)
            .filter(|(n, _)| !skip(n))
            .map(|(n, d)| Signal {
                name: n.clone(),
                fs,
                unit: None,
                data: Arc::new(d.iter().map(|&v| v as f32).collect()),
            })
            .collect();
        if signals.is_empty() {
            return Err(IoError::Empty {
                path: f.clone(),
                reason: format!("no signal column among {:?}", t.columns),
            });
        }
        push_signals("CSV", &f, &stem(&f), signals, &[], opts, out)?;
    }
    Ok(())
}

/// A BrainVision recording: the header, its data file and markers (as annotations).
pub struct BrainVision {
    pub vhdr: std::path::PathBuf,
    pub data: std::path::PathBuf,
    pub header: brainvision::Header,
    pub annotations: Vec<Annotation>,
    pub samples: usize,
}

/// Open a `.vhdr`: parse it and its markers, find its data file and check its size.
pub fn open_brainvision(vhdr: &Path) -> Result<BrainVision> {
    let text = brainvision::decode_text(&crate::error::read_file(vhdr)?);
    let header =
        brainvision::parse_header(&text).map_err(|e| e.in_file(vhdr, "BrainVision header"))?;
    let dir = vhdr.parent().unwrap_or(Path::new("."));
    let data = dir.join(&header.data_file);
    let bytes = std::fs::metadata(&data)
        .map_err(|_| IoError::MissingFile {
            path: vhdr.to_path_buf(),
            field: "[Common Infos] DataFile".into(),
            missing: data.clone(),
        })?
        .len();
    let samples = header
        .samples_in(bytes)
        .map_err(|m| IoError::layout(&data, "size", "the size the header describes", m))?;
    let mut annotations = Vec::new();
    if let Some(m) = &header.marker_file {
        let mp = dir.join(m);
        let mtext = brainvision::decode_text(&crate::error::read_file(&mp).map_err(|_| {
            IoError::MissingFile {
                path: vhdr.to_path_buf(),
                field: "[Common Infos] MarkerFile".into(),
                missing: mp.clone(),
            }
        })?);
        let markers = brainvision::parse_markers(&mtext)
            .map_err(|e| e.in_file(&mp, "BrainVision markers"))?;
        for mk in markers {
            if mk.kind.eq_ignore_ascii_case("New Segment") {
                continue;
            }
            annotations.push(Annotation {
                onset_s: (mk.position - 1) as f64 / header.fs,
                duration_s: (mk.size > 1).then(|| mk.size as f64 / header.fs),
                text: format!("{}/{}", mk.kind, mk.description),
            });
        }
    }
    Ok(BrainVision {
        vhdr: vhdr.to_path_buf(),
        data,
        header,
        annotations,
        samples,
    })
}

impl BrainVision {
    /// The data and marker files the header names.
    pub fn side_files(&self) -> Vec<std::path::PathBuf> {
        let dir = self.vhdr.parent().unwrap_or(Path::new("."));
        std::iter::once(self.data.clone())
            .chain(self.header.marker_file.as_ref().map(|m| dir.join(m)))
            .collect()
    }

    /// Channel `i` read as a recording, its markers as annotations, the other channels left
    /// on disk until asked for.
    pub fn recording(&self, dataset: &str, i: usize) -> Result<Recording> {
        let c = &self.header.channels[i];
        let mut rec = Recording::new(
            dataset,
            &self.vhdr,
            self.header.fs,
            self.read(&[i])?.remove(0),
        );
        rec.lead = c.name.clone();
        rec.unit = Some(c.unit.clone());
        rec.annotations = self.annotations.clone();
        rec.channels = (0..self.header.channels.len())
            .filter(|&j| j != i)
            .map(|j| self.lazy_channel(j))
            .collect();
        Ok(rec)
    }

    /// Channels `which` in physical units.
    pub fn read(&self, which: &[usize]) -> Result<Vec<Vec<f32>>> {
        brainvision::read_channels(&self.data, &self.header, which)
            .map_err(|e| IoError::open(&self.data, e))
    }

    /// Channel `i` as a [`ChannelRef`] read from disk on demand.
    pub fn lazy_channel(&self, i: usize) -> ChannelRef {
        let c = &self.header.channels[i];
        let (data, header) = (self.data.clone(), self.header.clone());
        ChannelRef::lazy(
            c.name.clone(),
            self.header.fs,
            Some(c.unit.clone()),
            Some(self.samples),
            move || {
                brainvision::read_channels(&data, &header, &[i])
                    .map(|mut v| v.remove(0))
                    .map_err(|e| IoError::open(&data, e))
            },
        )
    }
}

pub fn read_brainvision(path: &Path, opts: &ReadOptions, out: &mut ReadOutput) -> Result<()> {
    let files = files_matching(path, |n| n.to_ascii_lowercase().ends_with(".vhdr"))?;
    for f in files {
        let bv = open_brainvision(&f)?;
        let names: Vec<&str> = bv.header.channels.iter().map(|c| c.name.as_str()).collect();
        let subject = stem(&f);
        // One channel: read it alone, the others stay on disk until asked for.
        if let Some(l) = &opts.lead {
            let mut rec = bv.recording("BrainVision", choose_signal(&f, &names, l)?)?;
            rec.subject = subject;
            rec.trial = "1".into();
            out.recordings.push(rec);
            continue;
        }
        let data = bv.read(&(0..names.len()).collect::<Vec<_>>())?;
        let signals = bv
            .header
            .channels
            .iter()
            .zip(data)
            .map(|(c, d)| Signal {
                name: c.name.clone(),
                fs: bv.header.fs,
                unit: Some(c.unit.clone()),
                data: Arc::new(d),
            })
            .collect();
        push_signals(
            "BrainVision",
            &f,
            &subject,
            signals,
            &bv.annotations,
            opts,
            out,
        )?;
    }
    Ok(())
}

/// A WFDB record's files: its header and every signal file it names.
pub fn wfdb_files(unit: &Path) -> Result<Vec<PathBuf>> {
    let dir = unit.parent().unwrap_or(Path::new("."));
    let hea = if unit.extension().is_some_and(|e| e == "hea") {
        unit.to_path_buf()
    } else {
        unit.with_extension("hea")
    };
    let text = String::from_utf8_lossy(&crate::error::read_file(&hea)?).into_owned();
    let header = crate::formats::wfdb::parse_header(&hea, &text)?;
    let mut files = vec![hea.clone()];
    for s in &header.signals {
        let f = dir.join(&s.file);
        if !files.contains(&f) {
            files.push(f);
        }
    }
    Ok(files)
}

/// A BrainVision header and its marker and data files.
pub fn brainvision_files(vhdr: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![vhdr.to_path_buf()];
    files.extend(open_brainvision(vhdr)?.side_files());
    Ok(files)
}

/// Which signals of a file become recordings: all, or the one `--lead` names.
pub(crate) fn chosen_signals(
    path: &Path,
    names: &[&str],
    opts: &ReadOptions,
) -> Result<Vec<usize>> {
    Ok(match &opts.lead {
        None => (0..names.len()).collect(),
        Some(l) => vec![choose_signal(path, names, l)?],
    })
}

/// A WFDB record's signals that become recordings: the one `--lead` names, else those whose
/// names say ECG ([`is_ecg_name`]); the rest stay other channels. Records such as drivedb's hold
/// EMG, GSR, respiration and a 15.5-Hz marker beside the ECG, which are not to be windowed as
/// ECG. A record whose signals are all unnamed is taken whole (nothing says they are not ECG);
/// one with names but none of ECG is an error listing them.
pub(crate) fn chosen_wfdb_signals(
    path: &Path,
    names: &[&str],
    opts: &ReadOptions,
) -> Result<Vec<usize>> {
    if opts.lead.is_some() {
        return chosen_signals(path, names, opts);
    }
    let ecg: Vec<usize> = (0..names.len())
        .filter(|&i| is_ecg_name(names[i]))
        .collect();
    let unnamed = |n: &str| {
        n.strip_prefix("signal ")
            .is_some_and(|k| k.parse::<usize>().is_ok())
    };
    if !ecg.is_empty() {
        Ok(ecg)
    } else if names.iter().all(|n| unnamed(n)) {
        Ok((0..names.len()).collect())
    } else {
        Err(IoError::Option {
            path: path.to_path_buf(),
            option: "lead",
            message: format!(
                "no signal named as ECG (ECG, EKG, MLII, V1-V6, I, II, III, aVR, aVL, aVF, ...): the record has {}; choose one with --lead NAME or --lead N (1-{})",
                quoted(names),
                names.len()
            ),
        })
    }
}

/// Whether a signal's name says it is an ECG lead: it contains `ECG` or `EKG`, or it is a
/// standard limb, augmented, precordial or modified (Holter, MIT-BIH) lead name, alone or after
/// `lead`.
pub fn is_ecg_name(name: &str) -> bool {
    let n = name.trim().to_ascii_uppercase();
    if n.contains("ECG") || n.contains("EKG") {
        return true;
    }
    let n = n.strip_prefix("LEAD").map(str::trim_start).unwrap_or(&n);
    let n: String = n
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .collect();
    const LEADS: [&str; 25] = [
        "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6", "MLI", "MLII",
        "MLIII", "ML5", "MV1", "MV2", "CM2", "CM4", "CM5", "CC5", "D1", "D2", "D3",
    ];
    LEADS.contains(&n.as_str())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::formats::wfdb::write_record_16;

    #[test]
    fn ecg_names() {
        for n in [
            "ECG", "EKG", "ecg left", "ECG2x", "MLII", "MLIII", "V1", "v5", "I", "II", "aVF",
            "Lead II", "lead-I", "CM5",
        ] {
            assert!(is_ecg_name(n), "{n}");
        }
        for n in [
            "EMG", "RESP", "HR", "marker", "foot GSR", "Fz", "signal 1", "IV", "V7",
        ] {
            assert!(!is_ecg_name(n), "{n}");
        }
    }

    /// A WFDB record of `names`' signals (a sine each), written under `dir`.
    pub(crate) fn record(dir: &Path, names: &[&str]) -> PathBuf {
        let x: Vec<f32> = (0..500).map(|i| (i as f32 * 0.05).sin()).collect();
        let sigs: Vec<(&str, &str, f64, &[f32])> =
            names.iter().map(|n| (*n, "mV", 200.0, &x[..])).collect();
        write_record_16(dir, "drive", 250.0, &sigs).unwrap();
        dir.join("drive.hea")
    }

    #[test]
    fn wfdb_without_an_ecg_name_lists_its_signals() {
        let tmp = tempfile::tempdir().unwrap();
        let hea = record(tmp.path(), &["EMG", "RESP"]);
        let mut out = ReadOutput::default();
        let e = read_wfdb(&hea, &ReadOptions::default(), &mut out)
            .unwrap_err()
            .to_string();
        for w in ["drive.hea", "\"EMG\"", "\"RESP\"", "--lead"] {
            assert!(e.contains(w), "{e}");
        }
        // Unnamed signals say nothing against being ECG: all are taken.
        let hea = record(tmp.path(), &["", ""]);
        let mut out = ReadOutput::default();
        read_wfdb(&hea, &ReadOptions::default(), &mut out).unwrap();
        assert_eq!(out.recordings.len(), 2);
    }
}
