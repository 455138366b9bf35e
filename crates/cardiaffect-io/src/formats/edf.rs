//! EDF, EDF+ (with its "EDF Annotations" signal) and BDF (24-bit).
//!
//! References: Kemp et al., "A simple format for exchange of digitized polygraphic
//! recordings", EEG Clin. Neurophysiol. 1992 (EDF); Kemp & Olivan, "European data format
//! 'plus' (EDF+)", Clin. Neurophysiol. 2003 (EDF+, time-stamped annotation lists).

use crate::error::ParseError;
use crate::recording::Annotation;

#[derive(Debug, Clone, PartialEq)]
pub struct EdfSignal {
    pub label: String,
    pub transducer: String,
    pub physical_dimension: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: f64,
    pub digital_max: f64,
    pub prefiltering: String,
    pub samples_per_record: usize,
}

impl EdfSignal {
    pub fn is_annotation(&self) -> bool {
        self.label.trim() == "EDF Annotations" || self.label.trim() == "BDF Annotations"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdfHeader {
    pub bdf: bool,
    /// "EDF+C", "EDF+D" or empty for plain EDF.
    pub variant: String,
    pub patient: String,
    pub recording: String,
    pub start_date: String,
    pub start_time: String,
    pub header_bytes: usize,
    pub records: usize,
    pub record_duration_s: f64,
    pub signals: Vec<EdfSignal>,
}

#[derive(Debug, Clone)]
pub struct Edf {
    pub header: EdfHeader,
    /// Physical values of each non-annotation signal, indexed like `header.signals`
    /// (annotation signals have an empty vector).
    pub data: Vec<Vec<f32>>,
    pub annotations: Vec<Annotation>,
    pub warnings: Vec<String>,
}

impl Edf {
    pub fn fs(&self, i: usize) -> f64 {
        self.header.signals[i].samples_per_record as f64 / self.header.record_duration_s
    }
}

fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn num<T: std::str::FromStr>(b: &[u8], at: usize, field: &str) -> Result<T, ParseError> {
    let s = ascii(b);
    s.parse::<T>()
        .map_err(|_| ParseError::new(at, field, "an ASCII number", format!("{s:?}")))
}

pub fn looks_like_edf(b: &[u8]) -> bool {
    b.len() >= 256 && (b.starts_with(b"0       ") || b.starts_with(b"\xFFBIOSEMI"))
}

/// The header of an EDF/BDF file from its first bytes (at least the whole header; the whole
/// file will do) and the file's length, which fixes the number of records when the header
/// says -1 and shows truncation. Warnings: bytes after the last record, EDF+D.
pub fn parse_header(bytes: &[u8], file_len: usize) -> Result<(EdfHeader, Vec<String>), ParseError> {
    if bytes.len() < 256 {
        return Err(ParseError::new(
            0,
            "header",
            "a 256-byte EDF header",
            format!("{} bytes", bytes.len()),
        ));
    }
    let bdf = bytes.starts_with(b"\xFFBIOSEMI");
    if !bdf && !bytes.starts_with(b"0       ") {
        return Err(ParseError::new(
            0,
            "version",
            "\"0       \" (EDF) or \"\\xFFBIOSEMI\" (BDF)",
            format!("{:?}", String::from_utf8_lossy(&bytes[..8])),
        ));
    }
    let header_bytes: usize = num(&bytes[184..192], 184, "number of header bytes")?;
    let reserved = ascii(&bytes[192..236]);
    let records_raw: i64 = num(&bytes[236..244], 236, "number of data records")?;
    let record_duration_s: f64 = num(&bytes[244..252], 244, "duration of a data record")?;
    let ns: usize = num(&bytes[252..256], 252, "number of signals")?;
    if ns == 0 || ns > 4096 {
        return Err(ParseError::new(
            252,
            "number of signals",
            "1 to 4096",
            ns.to_string(),
        ));
    }
    if header_bytes != 256 * (ns + 1) {
        return Err(ParseError::new(
            184,
            "number of header bytes",
            format!("{} for {ns} signals", 256 * (ns + 1)),
            header_bytes.to_string(),
        ));
    }
    if bytes.len() < header_bytes || file_len < header_bytes {
        return Err(ParseError::new(
            256,
            "signal headers",
            format!("{header_bytes} header bytes"),
            format!(
                "{} bytes in the file: it is truncated",
                file_len.min(bytes.len())
            ),
        ));
    }
    if !(record_duration_s > 0.0 && record_duration_s.is_finite()) {
        // Duration 0 is legal for annotation-only EDF+, which has no signal to read here.
        return Err(ParseError::new(
            244,
            "duration of a data record",
            "a positive number of seconds",
            record_duration_s.to_string(),
        ));
    }
    let h = &bytes[256..header_bytes];
    let col = |off: usize, width: usize, i: usize| -> &[u8] {
        let start = off * ns + i * width;
        &h[start..start + width]
    };
    let off_at = |off: usize, width: usize, i: usize| 256 + off * ns + i * width;
    let mut signals = Vec::with_capacity(ns);
    for i in 0..ns {
        let f = |name: &str| format!("signal {} {name}", i + 1);
        signals.push(EdfSignal {
            label: ascii(col(0, 16, i)),
            transducer: ascii(col(16, 80, i)),
            physical_dimension: ascii(col(96, 8, i)),
            physical_min: num(col(104, 8, i), off_at(104, 8, i), &f("physical minimum"))?,
            physical_max: num(col(112, 8, i), off_at(112, 8, i), &f("physical maximum"))?,
            digital_min: num(col(120, 8, i), off_at(120, 8, i), &f("digital minimum"))?,
            digital_max: num(col(128, 8, i), off_at(128, 8, i), &f("digital maximum"))?,
            prefiltering: ascii(col(136, 80, i)),
            samples_per_record: num(
                col(216, 8, i),
                off_at(216, 8, i),
                &f("number of samples in each data record"),
            )?,
        });
        let s = &signals[i];
        if s.digital_max <= s.digital_min && !s.is_annotation() {
            return Err(ParseError::new(
                off_at(120, 8, i),
                f("digital maximum"),
                format!("more than the digital minimum {}", s.digital_min),
                s.digital_max.to_string(),
            ));
        }
    }
    let width = if bdf { 3 } else { 2 };
    // At most 4096 signals of 8-digit counts: this sum cannot overflow.
    let record_samples: usize = signals.iter().map(|s| s.samples_per_record).sum();
    let record_bytes = record_samples.saturating_mul(width);
    if record_bytes == 0 {
        return Err(ParseError::new(
            256,
            "number of samples in each data record",
            "at least one sample per record",
            "0 for every signal",
        ));
    }
    let body_len = file_len - header_bytes;
    let mut warnings = Vec::new();
    let records = if records_raw < 0 {
        body_len / record_bytes
    } else {
        let r = records_raw as usize;
        let need = (r as u128) * (record_bytes as u128);
        if need > body_len as u128 {
            return Err(ParseError::new(
                236,
                "number of data records",
                format!("{r} records of {record_bytes} bytes"),
                format!("{body_len} bytes of data: the file is truncated"),
            ));
        }
        if body_len as u128 > need {
            warnings.push(format!(
                "{} bytes after the last data record were ignored",
                body_len as u128 - need
            ));
        }
        r
    };

    if reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D") {
        warnings.push("EDF+D (discontinuous): data records are concatenated; gaps between them are not represented".into());
    }
    Ok((
        EdfHeader {
            bdf,
            variant: reserved
                .chars()
                .take(5)
                .collect::<String>()
                .trim()
                .to_string(),
            patient: ascii(&bytes[8..88]),
            recording: ascii(&bytes[88..168]),
            start_date: ascii(&bytes[168..176]),
            start_time: ascii(&bytes[176..184]),
            header_bytes,
            records,
            record_duration_s,
            signals,
        },
        warnings,
    ))
}

/// Bytes per sample (2 for EDF, 3 for BDF) and per data record.
impl EdfHeader {
    pub fn sample_bytes(&self) -> usize {
        if self.bdf {
            3
        } else {
            2
        }
    }

    pub fn record_bytes(&self) -> usize {
        self.signals
            .iter()
            .map(|s| s.samples_per_record)
            .sum::<usize>()
            * self.sample_bytes()
    }

    /// `(k, c)`: physical = digital * k + c.
    pub fn scale(&self, i: usize) -> (f64, f64) {
        let s = &self.signals[i];
        let k = (s.physical_max - s.physical_min) / (s.digital_max - s.digital_min);
        (k, s.physical_min - k * s.digital_min)
    }
}

/// Physical values of samples stored as EDF's 16-bit or BDF's 24-bit little-endian codes,
/// `physical = code * k + c`; `out` holds one value per code in `chunk`.
pub(crate) fn decode_into(chunk: &[u8], bdf: bool, (k, c): (f64, f64), out: &mut [f32]) {
    if bdf {
        for (o, b) in out.iter_mut().zip(chunk.chunks_exact(3)) {
            let v = ((b[0] as i32) | ((b[1] as i32) << 8) | ((b[2] as i32) << 16)) << 8 >> 8;
            *o = (v as f64 * k + c) as f32;
        }
    } else {
        for (o, b) in out.iter_mut().zip(chunk.chunks_exact(2)) {
            *o = (i16::from_le_bytes([b[0], b[1]]) as f64 * k + c) as f32;
        }
    }
}

/// A whole EDF/BDF file: header, every signal in physical units, annotations.
pub fn parse(bytes: &[u8]) -> Result<Edf, ParseError> {
    let (header, warnings) = parse_header(bytes, bytes.len())?;
    let (bdf, records, signals) = (header.bdf, header.records, &header.signals);
    let width = header.sample_bytes();
    let record_bytes = header.record_bytes();
    let body = &bytes[header.header_bytes..];
    let mut data: Vec<Vec<f32>> = signals
        .iter()
        .map(|s| {
            if s.is_annotation() {
                Vec::new()
            } else {
                Vec::with_capacity(s.samples_per_record * records)
            }
        })
        .collect();
    let mut annotations = Vec::new();
    let scales: Vec<(f64, f64)> = (0..signals.len()).map(|i| header.scale(i)).collect();
    for r in 0..records {
        let mut pos = r * record_bytes;
        for (i, s) in signals.iter().enumerate() {
            let n = s.samples_per_record;
            let chunk = &body[pos..pos + n * width];
            pos += n * width;
            if s.is_annotation() {
                parse_tals(chunk, &mut annotations);
                continue;
            }
            let d = &mut data[i];
            let at = d.len();
            d.resize(at + n, 0.0);
            decode_into(chunk, bdf, scales[i], &mut d[at..]);
        }
    }
    // The first annotation of each record is its time-keeping stamp (empty text): not an event.
    annotations.retain(|a: &Annotation| !a.text.is_empty());
    Ok(Edf {
        header,
        data,
        annotations,
        warnings,
    })
}

/// Time-stamped annotation lists: `+onset[\x15duration]\x14text\x14...\x14\x00`.
fn parse_tals(chunk: &[u8], out: &mut Vec<Annotation>) {
    for tal in chunk.split(|&b| b == 0).filter(|t| !t.is_empty()) {
        let mut parts = tal.split(|&b| b == 0x14);
        let Some(time) = parts.next() else { continue };
        let time = String::from_utf8_lossy(time);
        let (onset, duration) = match time.split_once('\u{15}') {
            Some((o, d)) => (o.to_string(), d.parse::<f64>().ok()),
            None => (time.to_string(), None),
        };
        let Ok(onset_s) = onset.trim_start_matches('+').parse::<f64>() else {
            continue;
        };
        let onset_s = if onset.starts_with('-') {
            onset_s
        } else {
            onset_s.abs()
        };
        let mut any = false;
        for text in parts {
            if text.is_empty() {
                continue;
            }
            any = true;
            out.push(Annotation {
                onset_s,
                duration_s: duration,
                text: String::from_utf8_lossy(text).into_owned(),
            });
        }
        if !any {
            out.push(Annotation {
                onset_s,
                duration_s: duration,
                text: String::new(),
            });
        }
    }
}

/// One signal for [`write`]: physical values and the physical range the 16-bit codes span.
pub struct WriteSignal<'a> {
    pub label: &'a str,
    pub unit: &'a str,
    pub physical_min: f64,
    pub physical_max: f64,
    pub samples: &'a [f32],
}

/// A plain EDF file (16-bit, 1-s data records) of signals that share the integer rate `fs`.
/// Values outside the physical range are clipped; NaN becomes the lowest code. The last record
/// is padded with that code if the samples do not fill it.
pub fn write(fs: f64, signals: &[WriteSignal<'_>]) -> Result<Vec<u8>, String> {
    if !(fs >= 1.0 && fs.fract() == 0.0 && fs <= 1e6) {
        return Err(format!(
            "sampling rate {fs}: EDF stores whole samples per 1-s record, so it must be a whole number of Hz"
        ));
    }
    if signals.is_empty()
        || signals.iter().any(|s| {
            s.physical_max.partial_cmp(&s.physical_min) != Some(std::cmp::Ordering::Greater)
        })
    {
        return Err("expected at least one signal, each with physical max > min".into());
    }
    let per = fs as usize;
    let n = signals.iter().map(|s| s.samples.len()).max().unwrap_or(0);
    let records = n.div_ceil(per);
    let field = |v: &str, w: usize| -> String {
        let mut t: String = v.chars().filter(char::is_ascii).take(w).collect();
        while t.len() < w {
            t.push(' ');
        }
        t
    };
    // A number in at most 8 characters (EDF's header fields).
    let num8 = |v: f64| -> String {
        let mut t = format!("{v}");
        if t.len() > 8 {
            t = format!(
                "{v:.*}",
                8usize.saturating_sub(format!("{}", v.trunc()).len() + 1)
            );
        }
        field(&t, 8)
    };
    let ns = signals.len();
    let mut h = String::with_capacity(256 * (ns + 1));
    h += &field("0", 8);
    h += &field("X X X X", 80);
    h += &field("Startdate X X X cardiaffect", 80);
    h += "01.01.00";
    h += "00.00.00";
    h += &field(&(256 * (ns + 1)).to_string(), 8);
    h += &field("", 44);
    h += &field(&records.to_string(), 8);
    h += &field("1", 8);
    h += &field(&ns.to_string(), 4);
    let cols: [&dyn Fn(&WriteSignal) -> String; 10] = [
        &|s| field(s.label, 16),
        &|_| field("", 80),
        &|s| field(s.unit, 8),
        &|s| num8(s.physical_min),
        &|s| num8(s.physical_max),
        &|_| field("-32768", 8),
        &|_| field("32767", 8),
        &|_| field("", 80),
        &|_| field(&per.to_string(), 8),
        &|_| field("", 32),
    ];
    for c in cols {
        for s in signals {
            h += &c(s);
        }
    }
    debug_assert_eq!(h.len(), 256 * (ns + 1));
    let mut out = h.into_bytes();
    out.reserve(records * per * ns * 2);
    for r in 0..records {
        for s in signals {
            // The header's numbers as written: what a reader scales the codes back with.
            let (pmin, pmax) = (num8(s.physical_min), num8(s.physical_max));
            let pmin: f64 = pmin.trim().parse().unwrap_or(s.physical_min);
            let pmax: f64 = pmax.trim().parse().unwrap_or(s.physical_max);
            let k = 65535.0 / (pmax - pmin);
            for t in r * per..(r + 1) * per {
                let code = match s.samples.get(t) {
                    Some(&v) if v.is_finite() => ((v as f64 - pmin) * k - 32768.0)
                        .round()
                        .clamp(-32768.0, 32767.0)
                        as i16,
                    _ => i16::MIN,
                };
                out.extend_from_slice(&code.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// A one-lead 256-Hz EDF file ("ECG", mV, codes over ±5 mV), for tests.
#[cfg(test)]
pub(crate) fn write_ecg_256(samples: &[f32]) -> Vec<u8> {
    write(
        256.0,
        &[WriteSignal {
            label: "ECG",
            unit: "mV",
            physical_min: -5.0,
            physical_max: 5.0,
            samples,
        }],
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_files_read_back_within_one_code() {
        let x: Vec<f32> = (0..700).map(|i| ((i as f32) * 0.05).sin() * 1.5).collect();
        let bytes = write_ecg_256(&x);
        let e = parse(&bytes).unwrap();
        assert_eq!(e.header.signals[0].label, "ECG");
        assert_eq!(e.fs(0), 256.0);
        // Three 1-s records: the last padded.
        assert_eq!(e.data[0].len(), 768);
        let step = 10.0 / 65535.0;
        for (a, b) in x.iter().zip(&e.data[0]) {
            assert!((a - b).abs() <= step as f32, "{a} {b}");
        }
        assert!(write(250.5, &[]).is_err());
    }

    use super::*;

    #[test]
    fn tal_parsing() {
        let mut v = Vec::new();
        parse_tals(
            b"+0\x14\x14\x00+1.5\x152\x14stim\x14other\x14\x00\x00\x00",
            &mut v,
        );
        v.retain(|a| !a.text.is_empty());
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].onset_s, 1.5);
        assert_eq!(v[0].duration_s, Some(2.0));
        assert_eq!(v[1].text, "other");
    }

    #[test]
    fn huge_record_claim_in_a_tiny_file_is_an_error() {
        let mut h = vec![b' '; 256 * 3];
        h[..8].copy_from_slice(b"0       ");
        h[184..192].copy_from_slice(b"768     ");
        h[236..244].copy_from_slice(b"1       ");
        h[244..252].copy_from_slice(b"1       ");
        h[252..256].copy_from_slice(b"2   ");
        for i in 0..2 {
            let f = |off: usize| 256 + off * 2 + i * 8;
            h[f(104)..f(104) + 8].copy_from_slice(b"-1      ");
            h[f(112)..f(112) + 8].copy_from_slice(b"1       ");
            h[f(120)..f(120) + 8].copy_from_slice(b"-32768  ");
            h[f(128)..f(128) + 8].copy_from_slice(b"32767   ");
        }
        // 2 x 99,999,999 samples per record claimed, 64 bytes of data.
        h[256 + 216 * 2..256 + 216 * 2 + 8].copy_from_slice(b"99999999");
        h[256 + 216 * 2 + 8..256 + 216 * 2 + 16].copy_from_slice(b"99999999");
        h.extend_from_slice(&[0u8; 64]);
        let e = parse(&h).unwrap_err();
        assert!(e.found.contains("truncated"), "{e}");
    }

    #[test]
    fn short_input_is_an_error() {
        assert!(parse(b"0       ").is_err());
        let mut h = vec![b' '; 256];
        h[..8].copy_from_slice(b"0       ");
        assert!(parse(&h).is_err());
    }
}
