//! PhysioNet WFDB records: a `.hea` header and one or more signal files.
//!
//! Formats 8, 16, 24, 32, 61, 80, 160 and 212, several signals per file (interleaved in
//! frames), several samples per frame, byte offsets, gain/baseline to physical units, and the
//! header's checksum (a mismatch is a warning, as in the WFDB library). Multi-segment records
//! are refused with a clear message.
//!
//! Reference: G. Moody, "WFDB header file format" (`header(5)`) and "signal(5)", PhysioNet.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    pub file: String,
    pub format: u32,
    pub samples_per_frame: usize,
    pub byte_offset: u64,
    pub gain: f64,
    pub baseline: i64,
    pub units: Option<String>,
    pub adc_resolution: u32,
    pub adc_zero: i64,
    pub initial_value: Option<i64>,
    pub checksum: Option<i64>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub record: String,
    pub fs: f64,
    pub samples: Option<u64>,
    pub signals: Vec<SignalSpec>,
    pub base_time: Option<String>,
    pub base_date: Option<String>,
    pub comments: Vec<String>,
}

/// A decoded record: one vector per signal, physical units; invalid samples are NaN.
#[derive(Debug, Clone)]
pub struct Record {
    pub header: Header,
    pub signals: Vec<Vec<f32>>,
    pub warnings: Vec<String>,
}

fn field_err(path: &Path, field: &str, expected: &str, found: &str) -> IoError {
    IoError::layout(path, field, expected, found)
}

/// Parse the text of a `.hea` file.
pub fn parse_header(path: &Path, text: &str) -> Result<Header> {
    let mut comments = Vec::new();
    let mut lines = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if let Some(c) = t.strip_prefix('#') {
            comments.push(c.trim().to_string());
        } else if !t.is_empty() {
            // A comment may also follow fields on the same line.
            lines.push(t.split('#').next().unwrap_or("").trim().to_string());
        }
    }
    let record_line = lines
        .first()
        .ok_or_else(|| field_err(path, "record line", "\"name nsig fs nsamp\"", "no line"))?;
    let f: Vec<&str> = record_line.split_whitespace().collect();
    let name = f[0];
    if name.contains('/') {
        return Err(IoError::Unsupported {
            path: path.to_path_buf(),
            feature: "multi-segment WFDB records".into(),
            hint: "read each segment's own .hea".into(),
        });
    }
    let nsig: usize = f
        .get(1)
        .ok_or_else(|| {
            field_err(
                path,
                "record line: number of signals",
                "an integer",
                "nothing",
            )
        })?
        .parse()
        .map_err(|_| field_err(path, "record line: number of signals", "an integer", f[1]))?;
    let fs = match f.get(2) {
        None => 250.0,
        Some(s) => {
            let v = s.split(['/', '(']).next().unwrap_or("");
            v.parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0 && x.is_finite())
                .ok_or_else(|| {
                    field_err(
                        path,
                        "record line: sampling frequency",
                        "a positive number",
                        s,
                    )
                })?
        }
    };
    let samples = match f.get(3) {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            field_err(
                path,
                "record line: number of samples",
                "a non-negative integer",
                s,
            )
        })?),
    };
    // Compared without adding to nsig: a corrupt header can hold any integer here.
    if nsig > lines.len() - 1 {
        return Err(field_err(
            path,
            "signal lines",
            &format!("{nsig} signal lines (as the record line says)"),
            &format!("{}", lines.len() - 1),
        ));
    }
    let mut signals = Vec::with_capacity(nsig);
    for (i, line) in lines[1..=nsig].iter().enumerate() {
        signals.push(parse_signal_line(path, i, line)?);
    }
    Ok(Header {
        record: name.to_string(),
        fs,
        samples,
        signals,
        base_time: f.get(4).map(|s| s.to_string()),
        base_date: f.get(5).map(|s| s.to_string()),
        comments,
    })
}

fn parse_signal_line(path: &Path, i: usize, line: &str) -> Result<SignalSpec> {
    let fld = |name: &str| format!("signal {} {name}", i + 1);
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 2 {
        return Err(field_err(path, &fld("line"), "\"file format ...\"", line));
    }
    // Format field: fmt[xsamp][:skew][+offset]
    let fmt_field = f[1];
    let (fmt_part, offset) = match fmt_field.split_once('+') {
        Some((a, b)) => (
            a,
            b.parse::<u64>()
                .map_err(|_| field_err(path, &fld("byte offset"), "an integer", b))?,
        ),
        None => (fmt_field, 0),
    };
    let fmt_part = fmt_part.split(':').next().unwrap_or(fmt_part);
    let (fmt_s, spf) = match fmt_part.split_once('x') {
        Some((a, b)) => (
            a,
            b.parse::<usize>()
                .map_err(|_| field_err(path, &fld("samples per frame"), "an integer", b))?,
        ),
        None => (fmt_part, 1),
    };
    let format: u32 = fmt_s
        .parse()
        .map_err(|_| field_err(path, &fld("format"), "a number such as 16 or 212", fmt_s))?;
    if spf == 0 || spf > 1 << 16 {
        return Err(field_err(
            path,
            &fld("samples per frame"),
            "1 to 65536",
            &spf.to_string(),
        ));
    }
    // gain[(baseline)][/units]
    let adc_zero: i64 = f.get(4).map(|s| s.parse().unwrap_or(0)).unwrap_or(0);
    let (mut gain, mut baseline, mut units) = (200.0, None, None);
    if let Some(g) = f.get(2) {
        let (g, u) = match g.split_once('/') {
            Some((a, b)) => (a, Some(b.to_string())),
            None => (*g, None),
        };
        units = u;
        let (g, b) = match g.split_once('(') {
            Some((a, b)) => (a, Some(b.trim_end_matches(')'))),
            None => (g, None),
        };
        gain = g
            .parse::<f64>()
            .map_err(|_| field_err(path, &fld("gain"), "a number", g))?;
        if gain == 0.0 {
            gain = 200.0; // WFDB: zero gain means "uncalibrated", use the default
        }
        if let Some(b) = b {
            baseline = Some(
                b.parse::<i64>()
                    .map_err(|_| field_err(path, &fld("baseline"), "an integer", b))?,
            );
        }
    }
    let adc_resolution = f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(SignalSpec {
        file: f[0].to_string(),
        format,
        samples_per_frame: spf,
        byte_offset: offset,
        gain,
        baseline: baseline.unwrap_or(adc_zero),
        units,
        adc_resolution,
        adc_zero,
        initial_value: f.get(5).and_then(|s| s.parse().ok()),
        checksum: f.get(6).and_then(|s| s.parse().ok()),
        description: if f.len() > 8 {
            f[8..].join(" ")
        } else {
            String::new()
        },
    })
}

/// Frames of a signal file holding `body_len` bytes after its byte offset: the header's number
/// of samples, refused where the file is shorter, else every whole frame the file holds
/// (`bits`: [`bits_per_sample`] of `format`).
pub(crate) fn frames_in_file(
    dat: &Path,
    header_samples: Option<u64>,
    body_len: u64,
    frame_len: usize,
    format: u32,
    bits: u64,
) -> Result<usize> {
    let available_samples = (body_len * 8 / bits) as usize;
    Ok(match header_samples {
        Some(n) => {
            let need = n.saturating_mul(frame_len as u64);
            if need > available_samples as u64 {
                return Err(IoError::layout(
                    dat,
                    "number of samples (from the header)",
                    format!(
                        "{n} frames = {} bytes of format {format}",
                        need.saturating_mul(bits).div_ceil(8)
                    ),
                    format!("{body_len} bytes: the file is truncated or the header is wrong"),
                ));
            }
            n as usize
        }
        None => available_samples / frame_len.max(1),
    })
}

/// Bits per sample of a storage format (for size checks).
pub(crate) fn bits_per_sample(format: u32) -> Option<u64> {
    Some(match format {
        8 | 80 => 8,
        212 => 12,
        16 | 61 | 160 => 16,
        24 => 24,
        32 => 32,
        _ => return None,
    })
}

/// Decode `n` samples of one signal file's sample stream, calling `emit` with each integer in
/// stream order; `i32::MIN` marks an invalid sample. `slot_init` gives the starting values of
/// format 8's differences, per slot of the frame.
#[inline]
pub(crate) fn decode_each(
    data: &[u8],
    format: u32,
    n: usize,
    slot_init: &[i64],
    mut emit: impl FnMut(i32),
) {
    const INVALID: i32 = i32::MIN;
    match format {
        16 => data.chunks_exact(2).take(n).for_each(|c| {
            let v = i16::from_le_bytes([c[0], c[1]]);
            emit(if v == i16::MIN { INVALID } else { v as i32 })
        }),
        61 => data.chunks_exact(2).take(n).for_each(|c| {
            let v = i16::from_be_bytes([c[0], c[1]]);
            emit(if v == i16::MIN { INVALID } else { v as i32 })
        }),
        160 => data.chunks_exact(2).take(n).for_each(|c| {
            let v = u16::from_le_bytes([c[0], c[1]]) as i32 - 32768;
            emit(if v == -32768 { INVALID } else { v })
        }),
        80 => data.iter().take(n).for_each(|&b| {
            let v = b as i32 - 128;
            emit(if v == -128 { INVALID } else { v })
        }),
        24 => data.chunks_exact(3).take(n).for_each(|c| {
            let v = ((c[0] as i32) | ((c[1] as i32) << 8) | ((c[2] as i32) << 16)) << 8 >> 8;
            emit(if v == -(1 << 23) { INVALID } else { v })
        }),
        32 => data.chunks_exact(4).take(n).for_each(|c| {
            let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            emit(if v == i32::MIN { INVALID } else { v })
        }),
        212 => {
            // Two 12-bit samples in three bytes: low byte of each, then the high nibbles.
            let pairs = n / 2;
            for c in data.chunks_exact(3).take(pairs) {
                let a = (c[0] as i32 | ((c[1] as i32 & 0x0F) << 8)) << 20 >> 20;
                let b = (c[2] as i32 | ((c[1] as i32 & 0xF0) << 4)) << 20 >> 20;
                emit(if a == -2048 { INVALID } else { a });
                emit(if b == -2048 { INVALID } else { b });
            }
            if n % 2 == 1 {
                if let Some(c) = data.get(pairs * 3..pairs * 3 + 2) {
                    let a = (c[0] as i32 | ((c[1] as i32 & 0x0F) << 8)) << 20 >> 20;
                    emit(if a == -2048 { INVALID } else { a });
                }
            }
        }
        8 => {
            // First differences; each slot of the frame accumulates on its own.
            let mut acc: Vec<i64> = slot_init.to_vec();
            let slots = acc.len().max(1);
            for (i, &b) in data.iter().take(n).enumerate() {
                if let Some(a) = acc.get_mut(i % slots) {
                    *a += b as i8 as i64;
                    emit(*a as i32);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
fn decode_stream(data: &[u8], format: u32, n: usize, slot_init: &[i64]) -> Vec<i32> {
    let mut v = Vec::new();
    decode_each(data, format, n, slot_init, |d| v.push(d));
    v
}

/// Read a record from its `.hea` path (or the record path without extension).
pub fn read_record(hea: &Path) -> Result<Record> {
    let hea = if hea.extension().is_some_and(|e| e == "hea") {
        hea.to_path_buf()
    } else {
        hea.with_extension("hea")
    };
    let text = std::fs::read(&hea).map_err(|e| IoError::open(&hea, e))?;
    let text = String::from_utf8_lossy(&text).into_owned();
    let dir = hea.parent().unwrap_or(Path::new(".")).to_path_buf();
    decode_record(&hea, &text, |file, field| {
        let dat: PathBuf = dir.join(file);
        if !dat.exists() {
            return Err(IoError::MissingFile {
                path: hea.clone(),
                field: field.to_string(),
                missing: dat,
            });
        }
        let bytes = std::fs::read(&dat).map_err(|e| IoError::open(&dat, e))?;
        Ok((dat, bytes))
    })
}

/// Decode a record from its header text, fetching each signal file's bytes through `load`
/// (file name, header field naming it) -> (path for messages, bytes). No file system needed,
/// which is what the fuzz target uses.
pub fn decode_record(
    hea: &Path,
    text: &str,
    mut load: impl FnMut(&str, &str) -> Result<(PathBuf, Vec<u8>)>,
) -> Result<Record> {
    let hea = hea.to_path_buf();
    let header = parse_header(&hea, text)?;
    let mut warnings = Vec::new();
    let mut signals: Vec<Vec<f32>> = vec![Vec::new(); header.signals.len()];

    // Group signals by file, in header order (signals of one file are interleaved).
    let mut files: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, s) in header.signals.iter().enumerate() {
        match files.iter_mut().find(|(f, _)| *f == s.file) {
            Some((_, v)) => v.push(i),
            None => files.push((s.file.clone(), vec![i])),
        }
    }
    for (file, idx) in &files {
        let first = &header.signals[idx[0]];
        let field = format!("signal {} file", idx[0] + 1);
        if file == "~" {
            return Err(IoError::Unsupported {
                path: hea.clone(),
                feature: "null signal files (\"~\")".into(),
                hint: "the record has no samples for this signal".into(),
            });
        }
        let format = first.format;
        let bits = bits_per_sample(format).ok_or_else(|| IoError::Unsupported {
            path: hea.clone(),
            feature: format!("WFDB format {format} ({field})"),
            hint: "supported formats are 8, 16, 24, 32, 61, 80, 160 and 212".into(),
        })?;
        if idx.iter().any(|&i| header.signals[i].format != format) {
            return Err(IoError::layout(
                &hea,
                &field,
                "one format for all signals of a file",
                "several",
            ));
        }
        let (dat, bytes) = load(file, &field)?;
        let offset = first.byte_offset as usize;
        if offset > bytes.len() {
            return Err(IoError::layout(
                &dat,
                "byte offset",
                format!("at most {} (the file size)", bytes.len()),
                offset.to_string(),
            ));
        }
        let body = &bytes[offset..];
        let frame_len: usize = idx
            .iter()
            .map(|&i| header.signals[i].samples_per_frame)
            .sum();
        let frames = frames_in_file(
            &dat,
            header.samples,
            body.len() as u64,
            frame_len,
            format,
            bits,
        )?;
        let n = frames * frame_len;
        let slot_init: Vec<i64> = idx
            .iter()
            .flat_map(|&i| {
                let s = &header.signals[i];
                std::iter::repeat_n(s.initial_value.unwrap_or(0), s.samples_per_frame)
            })
            .collect();
        // One pass: each decoded sample goes straight to its signal, in physical units, and
        // into that signal's checksum.
        let slot_signal: Vec<usize> = idx
            .iter()
            .enumerate()
            .flat_map(|(k, &i)| std::iter::repeat_n(k, header.signals[i].samples_per_frame))
            .collect();
        let scale: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| {
                (
                    header.signals[i].baseline as f64,
                    1.0 / header.signals[i].gain,
                )
            })
            .collect();
        let mut outs: Vec<Vec<f32>> = idx
            .iter()
            .map(|&i| Vec::with_capacity(frames * header.signals[i].samples_per_frame))
            .collect();
        let mut sums = vec![0i64; idx.len()];
        let invalid = invalid_code(format);
        let mut slot = 0;
        decode_each(body, format, n, &slot_init, |d| {
            let k = slot_signal[slot];
            slot += 1;
            if slot == frame_len {
                slot = 0;
            }
            let (base, inv_gain) = scale[k];
            if d == i32::MIN {
                sums[k] = sums[k].wrapping_add(invalid);
                outs[k].push(f32::NAN);
            } else {
                sums[k] = sums[k].wrapping_add(d as i64);
                outs[k].push(((d as f64 - base) * inv_gain) as f32);
            }
        });
        for (k, (&i, v)) in idx.iter().zip(outs).enumerate() {
            let s = &header.signals[i];
            if let Some(expected) = s.checksum {
                let got = (sums[k] as i16) as i64;
                if got != (expected as i16) as i64 && header.samples.is_some() {
                    warnings.push(format!(
                        "{}: signal {} ({}): checksum {} does not match the header's {}",
                        dat.display(),
                        i + 1,
                        s.description,
                        got,
                        expected
                    ));
                }
            }
            signals[i] = v;
        }
    }
    Ok(Record {
        header,
        signals,
        warnings,
    })
}

fn invalid_code(format: u32) -> i64 {
    match format {
        212 => -2048,
        80 => -128,
        24 => -(1 << 23),
        32 => i32::MIN as i64,
        _ => -32768,
    }
}

/// Write signals (physical units) as a WFDB record in format 16: `dir/name.hea` + `name.dat`.
/// Each signal is `(description, units, gain in adu per unit, samples)`; NaN becomes the
/// invalid-sample code, values beyond the 16-bit range are clipped.
pub fn write_record_16(
    dir: &Path,
    name: &str,
    fs: f64,
    signals: &[(&str, &str, f64, &[f32])],
) -> std::io::Result<()> {
    let n = signals.iter().map(|s| s.3.len()).max().unwrap_or(0);
    let digital: Vec<Vec<i16>> = signals
        .iter()
        .map(|(_, _, gain, x)| {
            x.iter()
                .map(|&v| {
                    if v.is_finite() {
                        (v as f64 * gain).round().clamp(-32767.0, 32767.0) as i16
                    } else {
                        i16::MIN
                    }
                })
                .collect()
        })
        .collect();
    let mut dat = Vec::with_capacity(n * signals.len() * 2);
    for t in 0..n {
        for d in &digital {
            dat.extend_from_slice(&d.get(t).copied().unwrap_or(i16::MIN).to_le_bytes());
        }
    }
    let mut hea = format!("{name} {} {fs} {n}\n", signals.len());
    for ((desc, units, gain, _), d) in signals.iter().zip(&digital) {
        let checksum = d.iter().fold(0i16, |acc, &v| acc.wrapping_add(v));
        let init = d.first().copied().unwrap_or(0);
        hea.push_str(&format!(
            "{name}.dat 16 {gain}(0)/{units} 16 0 {init} {checksum} 0 {desc}\n"
        ));
    }
    // The signal file first, its header last: a header names a complete record.
    crate::artifact::write_atomic(&dir.join(format!("{name}.dat")), &dat).map_err(|e| e.source)?;
    crate::artifact::write_atomic(&dir.join(format!("{name}.hea")), hea.as_bytes())
        .map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_212_pairs() {
        // samples 1, -1 -> bytes 0x01, 0xF0, 0xFF
        let v = decode_stream(&[0x01, 0xF0, 0xFF], 212, 2, &[]);
        assert_eq!(v, vec![1, -1]);
        let v = decode_stream(&[0xFF, 0x07, 0x00], 212, 2, &[]);
        assert_eq!(v, vec![2047, 0]);
    }

    #[test]
    fn absurd_signal_count_is_an_error() {
        // Found by the wfdb fuzz target: 2^64-1 signals overflowed the capacity computation.
        let e = parse_header(Path::new("x.hea"), "re.dat 18446744073709551615\n").unwrap_err();
        assert!(e.to_string().contains("signal lines"), "{e}");
    }

    #[test]
    fn written_records_read_back_with_their_checksums() {
        let dir = std::env::temp_dir().join(format!("cardiaffect-wfdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.1).sin()).collect();
        let b: Vec<f32> = (0..100)
            .map(|i| if i == 5 { f32::NAN } else { i as f32 * 0.01 })
            .collect();
        write_record_16(
            &dir,
            "w",
            250.0,
            &[("ECG I", "mV", 1000.0, &a), ("ECG II", "mV", 500.0, &b)],
        )
        .unwrap();
        let r = read_record(&dir.join("w.hea")).unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.header.fs, 250.0);
        assert!((r.signals[0][17] - a[17]).abs() < 1e-3);
        assert!(r.signals[1][5].is_nan());
        assert_eq!(r.header.signals[1].description, "ECG II");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_fields() {
        let h = parse_header(
            Path::new("x.hea"),
            "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200(5)/uV 11 1024 1011 20052 0 V5\n# age 69\n",
        )
        .unwrap();
        assert_eq!(h.fs, 360.0);
        assert_eq!(h.samples, Some(650000));
        assert_eq!(h.signals[0].baseline, 1024);
        assert_eq!(h.signals[1].baseline, 5);
        assert_eq!(h.signals[1].units.as_deref(), Some("uV"));
        assert_eq!(h.signals[1].description, "V5");
        assert_eq!(h.comments, vec!["age 69"]);
    }
}
