//! Generic formats (WFDB, EDF/EDF+, NPY, CSV): one recording per signal, the record's other
//! signals attached as channels. `--lead` keeps only the named (or 1-based numbered) signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoError, Result};
use crate::formats::{brainvision, csv, edf, npy, wfdb};
use crate::paths::files_matching;
use crate::recording::{Annotation, ChannelRef, Recording};
use crate::recording::{ReadOptions, ReadOutput};

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
fn wfdb_signal_name(i: usize, spec: &wfdb::SignalSpec) -> String {
    if spec.description.is_empty() {
        format!("signal {}", i + 1)
    } else {
        spec.description.clone()
    }
}

/// The subject of an EDF file: the EDF+ patient code ("code sex birthdate name", "X" where
/// unknown), else the file's name.
fn edf_subject(patient: &str, path: &Path) -> String {
    match patient.split_whitespace().next().unwrap_or("X") {
        "X" => stem(path),
        code => code.to_string(),
    }
}

/// What an EDF header adds to each of its recordings' `meta`.
fn edf_meta(h: &edf::EdfHeader, rec: &mut Recording) {
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
fn chosen_signals(path: &Path, names: &[&str], opts: &ReadOptions) -> Result<Vec<usize>> {
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
fn chosen_wfdb_signals(path: &Path, names: &[&str], opts: &ReadOptions) -> Result<Vec<usize>> {
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

/// [`read_wfdb`] of one record without its samples: each chosen signal opened for streaming,
/// or `None` where its file is difference-coded (format 8: read it whole).
pub fn open_wfdb_streamed(
    path: &Path,
    opts: &ReadOptions,
) -> Result<Option<Vec<crate::chunked::Streamed>>> {
    use crate::chunked::{Streamed, WfdbSignal};
    let hea = if path.extension().is_some_and(|e| e == "hea") {
        path.to_path_buf()
    } else {
        path.with_extension("hea")
    };
    let text = std::fs::read(&hea).map_err(|e| IoError::open(&hea, e))?;
    let header = wfdb::parse_header(&hea, &String::from_utf8_lossy(&text))?;
    let names: Vec<String> = header
        .signals
        .iter()
        .enumerate()
        .map(|(i, s)| wfdb_signal_name(i, s))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for i in chosen_wfdb_signals(&hea, &name_refs, opts)? {
        let spec = &header.signals[i];
        let Some(bits) = wfdb::bits_per_sample(spec.format).filter(|_| spec.format != 8) else {
            return Ok(None);
        };
        if spec.file == "~" {
            return Ok(None);
        }
        let same_file: Vec<usize> = (0..header.signals.len())
            .filter(|&j| header.signals[j].file == spec.file)
            .collect();
        if same_file
            .iter()
            .any(|&j| header.signals[j].format != spec.format)
        {
            return Ok(None);
        }
        let frame_len: usize = same_file
            .iter()
            .map(|&j| header.signals[j].samples_per_frame)
            .sum();
        let slot: usize = same_file
            .iter()
            .take_while(|&&j| j != i)
            .map(|&j| header.signals[j].samples_per_frame)
            .sum();
        let dat = hea.parent().unwrap_or(Path::new(".")).join(&spec.file);
        let file = std::fs::File::open(&dat).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                IoError::MissingFile {
                    path: hea.clone(),
                    field: format!("signal {} file", i + 1),
                    missing: dat.clone(),
                }
            } else {
                IoError::open(&dat, e)
            }
        })?;
        let file_len = file.metadata().map_err(|e| IoError::open(&dat, e))?.len();
        let frames = wfdb::frames_in_file(
            &dat,
            header.samples,
            file_len.saturating_sub(spec.byte_offset),
            frame_len,
            spec.format,
            bits,
        )?;
        let mut rec = Recording::new(
            "WFDB",
            &hea,
            header.fs * spec.samples_per_frame as f64,
            vec![],
        );
        rec.subject = header.record.clone();
        rec.trial = "1".into();
        rec.lead = names[i].clone();
        rec.unit = Some(spec.units.clone().unwrap_or_else(|| "mV".into()));
        if let Some(t) = &header.base_time {
            rec.meta.insert("base_time".into(), t.clone());
        }
        out.push(Streamed {
            recording: rec,
            source: Box::new(WfdbSignal {
                file,
                path: dat,
                format: spec.format,
                offset: spec.byte_offset,
                frame_len,
                slot,
                samples_per_frame: spec.samples_per_frame,
                frames,
                bits: bits as usize,
                file_len,
                baseline: spec.baseline as f64,
                gain: spec.gain,
                buf: Vec::new(),
            }),
        });
    }
    Ok(Some(out))
}

/// [`read_edf`] of one file without its samples (and without EDF+ annotations): each chosen
/// signal opened for streaming.
pub fn open_edf_streamed(
    path: &Path,
    opts: &ReadOptions,
) -> Result<Option<Vec<crate::chunked::Streamed>>> {
    use crate::chunked::{EdfSignal, Streamed};
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let len = file.metadata().map_err(|e| IoError::open(path, e))?.len() as usize;
    let mut head = vec![0u8; 256.min(len)];
    file.read_exact(&mut head)
        .map_err(|e| IoError::open(path, e))?;
    let ns: usize = String::from_utf8_lossy(head.get(252..256).unwrap_or(b""))
        .trim()
        .parse()
        .unwrap_or(0);
    if (1..=4096).contains(&ns) && len >= 256 * (ns + 1) {
        head.resize(256 * (ns + 1), 0);
        file.read_exact(&mut head[256..])
            .map_err(|e| IoError::open(path, e))?;
    }
    let (h, _warnings) = edf::parse_header(&head, len).map_err(|err| err.in_file(path, "EDF"))?;
    let signals: Vec<usize> = (0..h.signals.len())
        .filter(|&i| !h.signals[i].is_annotation())
        .collect();
    if signals.is_empty() {
        return Err(IoError::Empty {
            path: path.to_path_buf(),
            reason: "the EDF file has only annotation signals".into(),
        });
    }
    let names: Vec<&str> = signals
        .iter()
        .map(|&i| h.signals[i].label.as_str())
        .collect();
    let subject = edf_subject(&h.patient, path);
    let mut out = Vec::new();
    for c in chosen_signals(path, &names, opts)? {
        let i = signals[c];
        let s = &h.signals[i];
        let within = h.signals[..i]
            .iter()
            .map(|o| o.samples_per_record)
            .sum::<usize>()
            * h.sample_bytes();
        let fs = s.samples_per_record as f64 / h.record_duration_s;
        let mut rec = Recording::new("EDF", path, fs, vec![]);
        rec.subject = subject.clone();
        rec.trial = "1".into();
        rec.lead = s.label.clone();
        rec.unit = (!s.physical_dimension.is_empty()).then(|| s.physical_dimension.clone());
        edf_meta(&h, &mut rec);
        let (k, c0) = h.scale(i);
        let file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
        out.push(Streamed {
            recording: rec,
            source: Box::new(EdfSignal {
                file,
                path: path.to_path_buf(),
                data_start: h.header_bytes as u64,
                record_bytes: h.record_bytes(),
                within,
                samples_per_record: s.samples_per_record,
                records: h.records,
                bdf: h.bdf,
                k,
                c: c0,
                buf: Vec::new(),
            }),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
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

    fn record(dir: &Path, names: &[&str]) -> PathBuf {
        let x: Vec<f32> = (0..500).map(|i| (i as f32 * 0.05).sin()).collect();
        let sigs: Vec<(&str, &str, f64, &[f32])> =
            names.iter().map(|n| (*n, "mV", 200.0, &x[..])).collect();
        write_record_16(dir, "drive", 250.0, &sigs).unwrap();
        dir.join("drive.hea")
    }

    /// drivedb's records: ECG beside EMG, GSR, HR, a marker and respiration. Only the ECG is a
    /// recording; the rest are its other channels; `--lead` still chooses any signal.
    #[test]
    fn wfdb_takes_the_ecg_named_signals() {
        let tmp = tempfile::tempdir().unwrap();
        let hea = record(
            tmp.path(),
            &["ECG", "EMG", "foot GSR", "HR", "marker", "RESP"],
        );
        let mut out = ReadOutput::default();
        read_wfdb(&hea, &ReadOptions::default(), &mut out).unwrap();
        assert_eq!(out.recordings.len(), 1);
        assert_eq!(out.recordings[0].lead, "ECG");
        let others: Vec<&str> = out.recordings[0]
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(others, ["EMG", "foot GSR", "HR", "marker", "RESP"]);
        let streamed = open_wfdb_streamed(&hea, &ReadOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(streamed.len(), 1);
        let mut out = ReadOutput::default();
        let opts = ReadOptions {
            lead: Some("resp".into()),
            ..Default::default()
        };
        read_wfdb(&hea, &opts, &mut out).unwrap();
        assert_eq!(out.recordings[0].lead, "RESP");
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
