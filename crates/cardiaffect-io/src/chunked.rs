//! One signal of a long recording read a piece at a time, so that a day-long Holter goes
//! through `predict` in bounded memory. WFDB records in a fixed-width format and EDF/BDF files
//! are read straight from the file with positioned reads, their signals chosen as the
//! whole-file readers of [`crate::datasets::generic`] choose them; [`open`] says `None` for
//! anything else, which is then read whole ([`crate::read()`]) and served from memory
//! ([`InMemory`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::datasets::generic::{
    chosen_signals, chosen_wfdb_signals, edf_meta, edf_subject, wfdb_signal_name,
};
use crate::datasets::Format;
use crate::error::{IoError, Result};
use crate::formats::{edf, wfdb};
use crate::options::ReadOptions;
use crate::read::detect;
use crate::recording::Recording;

/// Samples of one signal, in physical units (NaN where the file marks a sample invalid).
pub trait SampleSource: Send {
    /// How many samples the signal has.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `out` with samples `start..start + out.len()` (all inside `0..len()`).
    fn read_into(&mut self, start: usize, out: &mut [f32]) -> Result<()>;
}

/// Samples already in memory.
pub struct InMemory<'a>(pub &'a [f32]);

impl SampleSource for InMemory<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn read_into(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        out.copy_from_slice(&self.0[start..start + out.len()]);
        Ok(())
    }
}

/// A recording opened for streaming: everything [`crate::read()`] gives but the samples
/// (`recording.samples` is empty), and where to read them from.
pub struct Streamed {
    pub recording: Recording,
    pub source: Box<dyn SampleSource>,
}

impl Streamed {
    pub fn duration_s(&self) -> f64 {
        self.source.len() as f64 / self.recording.fs
    }
}

/// Open one WFDB record or EDF/BDF file for streaming, one [`Streamed`] per signal (or the
/// signal `opts.lead` names), with the subject, lead and unit [`crate::read()`] gives them.
/// `None` where the file cannot be streamed: another format, a folder, WFDB's
/// difference-coded format 8, or options that need the whole recording (events).
pub fn open(path: &Path, format: Format, opts: &ReadOptions) -> Result<Option<Vec<Streamed>>> {
    if !path.is_file() || opts.events.is_some() || opts.baseline_s.is_some() {
        return Ok(None);
    }
    let format = match format {
        Format::Auto => detect(path)?.0,
        f => f,
    };
    match format {
        Format::Wfdb => open_wfdb_streamed(path, opts),
        Format::Edf => open_edf_streamed(path, opts),
        _ => Ok(None),
    }
}

/// [`read_wfdb`](crate::datasets::generic::read_wfdb) of one record without its samples: each chosen signal opened for streaming,
/// or `None` where its file is difference-coded (format 8: read it whole).
fn open_wfdb_streamed(path: &Path, opts: &ReadOptions) -> Result<Option<Vec<Streamed>>> {
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

/// [`read_edf`](crate::datasets::generic::read_edf) of one file without its samples (and without EDF+ annotations): each chosen
/// signal opened for streaming.
fn open_edf_streamed(path: &Path, opts: &ReadOptions) -> Result<Option<Vec<Streamed>>> {
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

fn read_at(file: &mut File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<()> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| IoError::open(path, e))
}

/// One signal of a WFDB signal file in a fixed-width format (16, 24, 32, 61, 80, 160, 212).
pub(crate) struct WfdbSignal {
    pub file: File,
    pub path: PathBuf,
    pub format: u32,
    /// Byte offset of the first frame.
    pub offset: u64,
    /// Samples per frame of all signals of the file, and where this signal's start.
    pub frame_len: usize,
    pub slot: usize,
    pub samples_per_frame: usize,
    pub frames: usize,
    pub bits: usize,
    /// Bytes in the file (read once at open).
    pub file_len: u64,
    /// physical = (digital - baseline) / gain
    pub baseline: f64,
    pub gain: f64,
    pub buf: Vec<u8>,
}

impl WfdbSignal {
    /// Frames per byte-aligned group (format 212 packs 12 bits: an odd number of samples per
    /// frame ends mid-byte).
    fn group(&self) -> usize {
        (1..=8)
            .find(|k| (k * self.frame_len * self.bits).is_multiple_of(8))
            .unwrap_or(8)
    }
}

impl SampleSource for WfdbSignal {
    fn len(&self) -> usize {
        self.frames * self.samples_per_frame
    }

    fn read_into(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let spf = self.samples_per_frame;
        let g = self.group();
        let group_bytes = g * self.frame_len * self.bits / 8;
        let f0 = start / spf / g * g;
        let f1 = ((start + out.len()).div_ceil(spf)).min(self.frames);
        let groups = (f1 - f0).div_ceil(g);
        let offset = self.offset + (f0 / g * group_bytes) as u64;
        // The last group may run past the end of the file when the frames do not fill it.
        let want = groups * group_bytes;
        let have = (self.file_len.saturating_sub(offset) as usize).min(want);
        self.buf.resize(have, 0);
        read_at(&mut self.file, &self.path, offset, &mut self.buf)?;
        let stream_n = (f1 - f0) * self.frame_len;
        let (base, inv_gain) = (self.baseline, 1.0 / self.gain);
        let end = start + out.len();
        let mut i = 0usize;
        crate::formats::wfdb::decode_each(&self.buf, self.format, stream_n, &[], |d| {
            let (frame, pos) = (f0 + i / self.frame_len, i % self.frame_len);
            i += 1;
            if pos < self.slot || pos >= self.slot + spf {
                return;
            }
            let t = frame * spf + pos - self.slot;
            if t >= start && t < end {
                out[t - start] = if d == i32::MIN {
                    f32::NAN
                } else {
                    ((d as f64 - base) * inv_gain) as f32
                };
            }
        });
        Ok(())
    }
}

/// One signal of an EDF/BDF file.
pub(crate) struct EdfSignal {
    pub file: File,
    pub path: PathBuf,
    pub data_start: u64,
    pub record_bytes: usize,
    /// Byte offset of this signal inside a record.
    pub within: usize,
    pub samples_per_record: usize,
    pub records: usize,
    pub bdf: bool,
    /// physical = digital * k + c
    pub k: f64,
    pub c: f64,
    pub buf: Vec<u8>,
}

impl SampleSource for EdfSignal {
    fn len(&self) -> usize {
        self.records * self.samples_per_record
    }

    fn read_into(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let spr = self.samples_per_record;
        let r0 = start / spr;
        let r1 = (start + out.len()).div_ceil(spr);
        self.buf.resize((r1 - r0) * self.record_bytes, 0);
        let offset = self.data_start + (r0 * self.record_bytes) as u64;
        read_at(&mut self.file, &self.path, offset, &mut self.buf)?;
        let width = if self.bdf { 3 } else { 2 };
        let end = start + out.len();
        for r in r0..r1 {
            // This record's samples that fall in start..end.
            let (lo, hi) = (
                start.max(r * spr) - r * spr,
                end.min((r + 1) * spr) - r * spr,
            );
            let at = (r - r0) * self.record_bytes + self.within;
            let o = r * spr + lo - start;
            crate::formats::edf::decode_into(
                &self.buf[at + lo * width..at + hi * width],
                self.bdf,
                (self.k, self.c),
                &mut out[o..o + hi - lo],
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::generic::read_wfdb;
    use crate::datasets::generic::tests::record;
    use crate::recording::ReadOutput;

    fn signal(n: usize, phase: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32) * 0.031 + phase).sin() * 1.3)
            .collect()
    }

    fn all_pieces(s: &mut dyn SampleSource, whole: &[f32]) {
        assert_eq!(s.len(), whole.len());
        for (start, len) in [(0, 1), (0, 517), (3, 990), (511, 2), (whole.len() - 7, 7)] {
            let mut out = vec![0f32; len];
            s.read_into(start, &mut out).unwrap();
            for (k, (a, b)) in out.iter().zip(&whole[start..start + len]).enumerate() {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "sample {}: {a} vs {b}",
                    start + k
                );
            }
        }
    }

    #[test]
    fn wfdb_pieces_equal_the_whole_read() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, mut b) = (signal(3001, 0.0), signal(3001, 1.0));
        b[100] = f32::NAN;
        wfdb::write_record_16(
            tmp.path(),
            "r",
            250.0,
            &[("I", "mV", 200.0, &a), ("II", "mV", 200.0, &b)],
        )
        .unwrap();
        let hea = tmp.path().join("r.hea");
        let whole = wfdb::read_record(&hea).unwrap();
        let opened = open(&hea, Format::Auto, &ReadOptions::default())
            .unwrap()
            .expect("WFDB format 16 streams");
        assert_eq!(opened.len(), 2);
        assert_eq!(opened[1].recording.lead, "II");
        assert_eq!(opened[1].recording.fs, 250.0);
        for (mut s, w) in opened.into_iter().zip(&whole.signals) {
            all_pieces(s.source.as_mut(), w);
        }
        let lead = ReadOptions {
            lead: Some("2".into()),
            ..Default::default()
        };
        let one = open(&hea, Format::Wfdb, &lead).unwrap().unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].recording.lead, "II");
    }

    #[test]
    fn wfdb_212_single_signal_streams_across_byte_groups() {
        // Format 212 with one signal: two frames share three bytes.
        let tmp = tempfile::tempdir().unwrap();
        let x: Vec<i32> = (0..1001).map(|i| ((i * 37) % 4000) - 2000).collect();
        let mut bytes = Vec::new();
        for p in x.chunks(2) {
            let a = p[0] & 0xFFF;
            let b = p.get(1).copied().unwrap_or(0) & 0xFFF;
            bytes.push((a & 0xFF) as u8);
            bytes.push((((a >> 8) & 0x0F) | (((b >> 8) & 0x0F) << 4)) as u8);
            bytes.push((b & 0xFF) as u8);
        }
        std::fs::write(tmp.path().join("m.dat"), &bytes).unwrap();
        std::fs::write(
            tmp.path().join("m.hea"),
            "m 1 360 1001\nm.dat 212 200 11 0 0 0 0 MLII\n",
        )
        .unwrap();
        let hea = tmp.path().join("m.hea");
        let whole = wfdb::read_record(&hea).unwrap();
        let mut s = open(&hea, Format::Wfdb, &ReadOptions::default())
            .unwrap()
            .unwrap();
        all_pieces(s[0].source.as_mut(), &whole.signals[0]);
    }

    #[test]
    fn edf_pieces_equal_the_whole_read() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (signal(2560, 0.0), signal(1280, 2.0));
        let bytes = edf::write(
            256.0,
            &[
                edf::WriteSignal {
                    label: "ECG",
                    unit: "mV",
                    physical_min: -5.0,
                    physical_max: 5.0,
                    samples: &a,
                },
                edf::WriteSignal {
                    label: "Resp",
                    unit: "mV",
                    physical_min: -2.0,
                    physical_max: 2.0,
                    samples: &b,
                },
            ],
        )
        .unwrap();
        let path = tmp.path().join("x.edf");
        std::fs::write(&path, &bytes).unwrap();
        let whole = edf::parse(&bytes).unwrap();
        let opened = open(&path, Format::Auto, &ReadOptions::default())
            .unwrap()
            .expect("EDF streams");
        assert_eq!(opened[0].recording.lead, "ECG");
        for (mut s, w) in opened.into_iter().zip(&whole.data) {
            all_pieces(s.source.as_mut(), w);
        }
    }

    #[test]
    fn truncated_files_are_refused_at_open_with_file_and_field() {
        let tmp = tempfile::tempdir().unwrap();
        let x = signal(2560, 0.0);
        let bytes = edf::write_ecg_256(&x);
        let path = tmp.path().join("cut.edf");
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let e = open(&path, Format::Edf, &ReadOptions::default())
            .err()
            .expect("a truncated EDF is refused")
            .to_string();
        assert!(
            e.contains("cut.edf") && e.contains("number of data records"),
            "{e}"
        );
        wfdb::write_record_16(tmp.path(), "r", 250.0, &[("I", "mV", 200.0, &x)]).unwrap();
        let dat = tmp.path().join("r.dat");
        let full = std::fs::read(&dat).unwrap();
        std::fs::write(&dat, &full[..full.len() / 2]).unwrap();
        let e = open(
            &tmp.path().join("r.hea"),
            Format::Wfdb,
            &ReadOptions::default(),
        )
        .err()
        .expect("a truncated WFDB record is refused")
        .to_string();
        assert!(
            e.contains("r.dat") && e.contains("number of samples"),
            "{e}"
        );
        std::fs::remove_file(&dat).unwrap();
        let e = open(
            &tmp.path().join("r.hea"),
            Format::Wfdb,
            &ReadOptions::default(),
        )
        .err()
        .expect("a missing signal file is refused")
        .to_string();
        assert!(e.contains("r.dat"), "{e}");
        let lead = ReadOptions {
            lead: Some("V9".into()),
            ..Default::default()
        };
        let tmp2 = tempfile::tempdir().unwrap();
        wfdb::write_record_16(tmp2.path(), "r", 250.0, &[("I", "mV", 200.0, &x)]).unwrap();
        let e = open(&tmp2.path().join("r.hea"), Format::Wfdb, &lead)
            .err()
            .expect("an unknown lead is refused")
            .to_string();
        assert!(e.contains("V9") && e.contains("\"I\""), "{e}");
    }

    #[test]
    fn other_formats_are_not_streamed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.csv");
        std::fs::write(&p, "ecg\n1\n2\n").unwrap();
        assert!(open(&p, Format::Auto, &ReadOptions::default())
            .unwrap()
            .is_none());
        assert!(open(tmp.path(), Format::Auto, &ReadOptions::default())
            .unwrap()
            .is_none());
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
}
