//! BrainVision Core Data Format: a text header (`.vhdr`), a marker file (`.vmrk`) and a binary
//! data file (`.eeg`).
//!
//! Written from Brain Products' "BrainVision Core Data Format 1.0" specification (2019): the
//! header is INI-like (`[Common Infos]`, `[Binary Infos]`, `[Channel Infos]`); `Ch<n>=<name>,
//! <reference>,<resolution>,<unit>` with `\1` standing for a comma in names, physical value =
//! raw × resolution, unit µV when empty; `SamplingInterval` in µs; binary data little-endian
//! unless `UseBigEndianOrder=YES`, `MULTIPLEXED` (sample after sample, all channels each) or
//! `VECTORIZED` (channel after channel). Markers: `Mk<n>=<type>,<description>,<position>,
//! <size>,<channel>[,<date>]`, positions 1-based in samples.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryFormat {
    Int16,
    UInt16,
    Int32,
    Float32,
}

impl BinaryFormat {
    pub const NAMES: &'static str = "INT_16, UINT_16, INT_32 or IEEE_FLOAT_32";

    pub fn bytes(self) -> usize {
        match self {
            BinaryFormat::Int16 | BinaryFormat::UInt16 => 2,
            BinaryFormat::Int32 | BinaryFormat::Float32 => 4,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "INT_16" => BinaryFormat::Int16,
            "UINT_16" => BinaryFormat::UInt16,
            "INT_32" => BinaryFormat::Int32,
            "IEEE_FLOAT_32" => BinaryFormat::Float32,
            _ => return None,
        })
    }

    #[inline]
    fn decode(self, b: &[u8], big: bool) -> f32 {
        match (self, big) {
            (BinaryFormat::Int16, false) => i16::from_le_bytes([b[0], b[1]]) as f32,
            (BinaryFormat::Int16, true) => i16::from_be_bytes([b[0], b[1]]) as f32,
            (BinaryFormat::UInt16, false) => u16::from_le_bytes([b[0], b[1]]) as f32,
            (BinaryFormat::UInt16, true) => u16::from_be_bytes([b[0], b[1]]) as f32,
            (BinaryFormat::Int32, false) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            (BinaryFormat::Int32, true) => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f32,
            (BinaryFormat::Float32, false) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (BinaryFormat::Float32, true) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Multiplexed,
    Vectorized,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub reference: String,
    pub resolution: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub data_file: String,
    pub marker_file: Option<String>,
    pub format: BinaryFormat,
    pub orientation: Orientation,
    pub big_endian: bool,
    pub fs: f64,
    /// `DataPoints` where the header gives it (samples per channel).
    pub data_points: Option<usize>,
    pub channels: Vec<Channel>,
}

impl Header {
    /// Samples per channel in a data file of `bytes` bytes.
    pub fn samples_in(&self, bytes: u64) -> Result<usize, String> {
        let frame = (self.channels.len() * self.format.bytes()) as u64;
        if !bytes.is_multiple_of(frame) {
            return Err(format!(
                "{bytes} bytes, not a whole number of samples of {} channels × {} bytes",
                self.channels.len(),
                self.format.bytes()
            ));
        }
        let n = (bytes / frame) as usize;
        if let Some(d) = self.data_points {
            if d != n {
                return Err(format!(
                    "{bytes} bytes = {n} samples per channel, but the header says DataPoints={d}"
                ));
            }
        }
        Ok(n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub kind: String,
    pub description: String,
    /// 1-based sample.
    pub position: usize,
    /// Samples; 1 for a point event (0 in some writers).
    pub size: usize,
    /// 1-based channel, 0 for all.
    pub channel: usize,
}

/// Text of a header or marker file: UTF-8 where it is (`Codepage=UTF-8`, or ASCII), else
/// Latin-1 (`Codepage=ANSI`, the older writers' µ as byte 0xB5).
pub fn decode_text(bytes: &[u8]) -> String {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// Lines of an INI-like file as (byte offset, section, key, value); comments and blank lines
/// skipped.
fn entries(text: &str) -> Vec<(usize, String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let at = offset;
        offset += raw.len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((at, section.clone(), k.trim().to_string(), v.to_string()));
        }
    }
    out
}

fn first_line_is(text: &str, what: &str) -> Result<(), ParseError> {
    let first = text.lines().next().unwrap_or("").trim();
    if first.contains(what) {
        Ok(())
    } else {
        Err(ParseError::new(
            0,
            "first line",
            format!("\"Brain Vision {what} ...\""),
            format!("{:?}", first.chars().take(60).collect::<String>()),
        ))
    }
}

/// Parse a `.vhdr` header.
pub fn parse_header(text: &str) -> Result<Header, ParseError> {
    first_line_is(text, "Data Exchange Header File")?;
    let e = entries(text);
    let get = |section: &str, key: &str| {
        e.iter()
            .find(|(_, s, k, _)| s.eq_ignore_ascii_case(section) && k.eq_ignore_ascii_case(key))
            .map(|(at, _, _, v)| (*at, v.trim().to_string()))
    };
    let need = |section: &str, key: &str, expected: &str| {
        get(section, key).ok_or_else(|| {
            ParseError::new(
                text.len(),
                format!("[{section}] {key}"),
                expected.to_string(),
                "no such line".to_string(),
            )
        })
    };
    let (_, data_file) = need("Common Infos", "DataFile", "the name of the data file")?;
    let marker_file = get("Common Infos", "MarkerFile")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    if let Some((at, f)) = get("Common Infos", "DataFormat") {
        if !f.eq_ignore_ascii_case("BINARY") {
            return Err(ParseError::new(
                at,
                "[Common Infos] DataFormat",
                "BINARY (the ASCII variant is not read)",
                format!("{f:?}"),
            ));
        }
    }
    if let Some((at, t)) = get("Common Infos", "DataType") {
        if !t.eq_ignore_ascii_case("TIMEDOMAIN") {
            return Err(ParseError::new(
                at,
                "[Common Infos] DataType",
                "TIMEDOMAIN",
                format!("{t:?}"),
            ));
        }
    }
    let orientation = match get("Common Infos", "DataOrientation") {
        None => Orientation::Multiplexed,
        Some((at, o)) => match o.to_ascii_uppercase().as_str() {
            "MULTIPLEXED" => Orientation::Multiplexed,
            "VECTORIZED" => Orientation::Vectorized,
            _ => {
                return Err(ParseError::new(
                    at,
                    "[Common Infos] DataOrientation",
                    "MULTIPLEXED or VECTORIZED",
                    format!("{o:?}"),
                ))
            }
        },
    };
    let (at, n) = need("Common Infos", "NumberOfChannels", "the number of channels")?;
    let n_channels: usize = n
        .parse()
        .ok()
        .filter(|&n| (1..=65_536).contains(&n))
        .ok_or_else(|| {
            ParseError::new(
                at,
                "[Common Infos] NumberOfChannels",
                "a whole number 1-65536",
                format!("{n:?}"),
            )
        })?;
    let (at, si) = need(
        "Common Infos",
        "SamplingInterval",
        "the sampling interval in µs",
    )?;
    let interval: f64 = si
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            ParseError::new(
                at,
                "[Common Infos] SamplingInterval",
                "a positive number of µs",
                format!("{si:?}"),
            )
        })?;
    let data_points = match get("Common Infos", "DataPoints") {
        None => None,
        Some((at, d)) => Some(d.parse::<usize>().map_err(|_| {
            ParseError::new(
                at,
                "[Common Infos] DataPoints",
                "a whole number",
                format!("{d:?}"),
            )
        })?),
    };
    let (at, bf) = need(
        "Binary Infos",
        "BinaryFormat",
        &format!("the binary format ({})", BinaryFormat::NAMES),
    )?;
    let format = BinaryFormat::parse(&bf).ok_or_else(|| {
        ParseError::new(
            at,
            "[Binary Infos] BinaryFormat",
            BinaryFormat::NAMES,
            format!("{bf:?}"),
        )
    })?;
    let big_endian = get("Binary Infos", "UseBigEndianOrder")
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("YES"));
    let mut channels = Vec::with_capacity(n_channels);
    for i in 1..=n_channels {
        let key = format!("Ch{i}");
        let (at, v) = need(
            "Channel Infos",
            &key,
            "<name>,<reference>,<resolution>,<unit>",
        )?;
        let parts: Vec<&str> = v.split(',').collect();
        let name = parts[0].replace("\\1", ",").trim().to_string();
        let reference = parts.get(1).map_or("", |s| s.trim()).replace("\\1", ",");
        let res = parts.get(2).map_or("", |s| s.trim());
        let resolution = if res.is_empty() {
            1.0
        } else {
            res.parse::<f64>()
                .ok()
                .filter(|r| r.is_finite())
                .ok_or_else(|| {
                    ParseError::new(
                        at,
                        format!("[Channel Infos] {key} resolution"),
                        "a number",
                        format!("{res:?}"),
                    )
                })?
        };
        let unit = parts
            .get(3)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or("µV")
            .to_string();
        channels.push(Channel {
            name,
            reference,
            resolution,
            unit,
        });
    }
    Ok(Header {
        data_file,
        marker_file,
        format,
        orientation,
        big_endian,
        fs: 1e6 / interval,
        data_points,
        channels,
    })
}

/// Parse a `.vmrk` marker file.
pub fn parse_markers(text: &str) -> Result<Vec<Marker>, ParseError> {
    first_line_is(text, "Data Exchange Marker File")?;
    let mut out = Vec::new();
    for (at, section, key, value) in entries(text) {
        if !section.eq_ignore_ascii_case("Marker Infos")
            || !key.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("Mk"))
        {
            continue;
        }
        let parts: Vec<&str> = value.split(',').collect();
        let field = |i: usize, what: &str| -> Result<usize, ParseError> {
            let s = parts.get(i).map_or("", |s| s.trim());
            if s.is_empty() && i >= 3 {
                return Ok(if i == 3 { 1 } else { 0 });
            }
            s.parse::<usize>().map_err(|_| {
                ParseError::new(
                    at,
                    format!("[Marker Infos] {key} {what}"),
                    "a whole number",
                    format!("{s:?}"),
                )
            })
        };
        let position = field(2, "position")?;
        if position == 0 {
            return Err(ParseError::new(
                at,
                format!("[Marker Infos] {key} position"),
                "a 1-based sample number",
                "0",
            ));
        }
        out.push(Marker {
            kind: parts[0].replace("\\1", ",").trim().to_string(),
            description: parts
                .get(1)
                .map_or(String::new(), |s| s.replace("\\1", ",")),
            position,
            size: field(3, "size")?,
            channel: field(4, "channel")?,
        });
    }
    Ok(out)
}

/// Read the channels `which` (0-based) of a data file, in physical units (× resolution).
///
/// Multiplexed files are read in blocks of whole samples and only the asked channels are
/// decoded; vectorized files read each asked channel's block alone.
pub fn read_channels(data: &Path, h: &Header, which: &[usize]) -> std::io::Result<Vec<Vec<f32>>> {
    let f = std::fs::File::open(data)?;
    let bytes = f.metadata()?.len();
    decode_channels(f, bytes, h, which)
}

/// [`read_channels`] from any reader of `bytes` bytes (a file, a buffer).
pub fn decode_channels<R: Read + Seek>(
    mut f: R,
    bytes: u64,
    h: &Header,
    which: &[usize],
) -> std::io::Result<Vec<Vec<f32>>> {
    if let Some(&c) = which.iter().find(|&&c| c >= h.channels.len()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("channel {} of {}", c + 1, h.channels.len()),
        ));
    }
    let n = h
        .samples_in(bytes)
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidData, m))?;
    let bps = h.format.bytes();
    let mut out: Vec<Vec<f32>> = which.iter().map(|_| Vec::with_capacity(n)).collect();
    match h.orientation {
        Orientation::Vectorized => {
            let mut buf = vec![0u8; 1 << 22];
            for (o, &c) in out.iter_mut().zip(which) {
                let res = h.channels[c].resolution as f32;
                f.seek(SeekFrom::Start((c * n * bps) as u64))?;
                let mut left = n * bps;
                while left > 0 {
                    let take = left.min(buf.len());
                    f.read_exact(&mut buf[..take])?;
                    o.extend(
                        buf[..take]
                            .chunks_exact(bps)
                            .map(|b| h.format.decode(b, h.big_endian) * res),
                    );
                    left -= take;
                }
            }
        }
        Orientation::Multiplexed => {
            let frame = h.channels.len() * bps;
            let per_block = ((1 << 22) / frame).max(1);
            let mut buf = vec![0u8; per_block * frame];
            let res: Vec<f32> = which
                .iter()
                .map(|&c| h.channels[c].resolution as f32)
                .collect();
            let mut left = n;
            while left > 0 {
                let take = left.min(per_block);
                let block = &mut buf[..take * frame];
                f.read_exact(block)?;
                for (k, (&c, o)) in which.iter().zip(out.iter_mut()).enumerate() {
                    let at = c * bps;
                    let r = res[k];
                    o.extend(
                        block
                            .chunks_exact(frame)
                            .map(|s| h.format.decode(&s[at..at + bps], h.big_endian) * r),
                    );
                }
                left -= take;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Brain Vision Data Exchange Header File Version 1.0\r\n; comment\r\n\r\n[Common Infos]\r\nCodepage=UTF-8\r\nDataFile=rec.eeg\r\nMarkerFile=rec.vmrk\r\nDataFormat=BINARY\r\nDataOrientation=MULTIPLEXED\r\nNumberOfChannels=3\r\nSamplingInterval=1000\r\n\r\n[Binary Infos]\r\nBinaryFormat=INT_16\r\n\r\n[Channel Infos]\r\nCh1=Fp1,,0.1,µV\r\nCh2=ECG\\1chest,REF,0.5,mV\r\nCh3=EOG,,,\r\n";

    #[test]
    fn header_fields_are_read() {
        let h = parse_header(HEADER).unwrap();
        assert_eq!(h.data_file, "rec.eeg");
        assert_eq!(h.marker_file.as_deref(), Some("rec.vmrk"));
        assert_eq!(h.fs, 1000.0);
        assert_eq!(h.format, BinaryFormat::Int16);
        assert_eq!(h.orientation, Orientation::Multiplexed);
        assert_eq!(h.channels[1].name, "ECG,chest");
        assert_eq!(h.channels[1].reference, "REF");
        assert_eq!(h.channels[1].resolution, 0.5);
        assert_eq!(h.channels[1].unit, "mV");
        assert_eq!(
            (h.channels[2].resolution, h.channels[2].unit.as_str()),
            (1.0, "µV")
        );
    }

    #[test]
    fn an_undeclared_binary_format_is_named() {
        let text = HEADER.replace("BinaryFormat=INT_16\r\n", "");
        let e = parse_header(&text).unwrap_err();
        assert_eq!(e.field, "[Binary Infos] BinaryFormat");
        let text = HEADER.replace("INT_16", "INT_24");
        let e = parse_header(&text).unwrap_err();
        assert!(
            e.found.contains("INT_24") && e.expected.contains("IEEE_FLOAT_32"),
            "{e}"
        );
        let text = HEADER.replace("Ch3=EOG,,,\r\n", "");
        assert_eq!(
            parse_header(&text).unwrap_err().field,
            "[Channel Infos] Ch3"
        );
        assert!(parse_header("hello\n").is_err());
    }

    #[test]
    fn markers_are_read() {
        let text = "Brain Vision Data Exchange Marker File, Version 1.0\n[Marker Infos]\nMk1=New Segment,,1,1,0,20240101120000000000\nMk2=Stimulus,S  1,501,1,0\nMk3=Comment,a\\1b,1001,250,2\n";
        let m = parse_markers(text).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].description, "S  1");
        assert_eq!((m[1].position, m[1].size, m[1].channel), (501, 1, 0));
        assert_eq!((m[2].description.as_str(), m[2].size), ("a,b", 250));
        let bad = text.replace("501", "x");
        assert_eq!(
            parse_markers(&bad).unwrap_err().field,
            "[Marker Infos] Mk2 position"
        );
    }

    #[test]
    fn both_orientations_give_the_same_channels() {
        let dir = tempfile::tempdir().unwrap();
        let n = 1000usize;
        let raw: Vec<[i16; 3]> = (0..n)
            .map(|i| [i as i16, -(i as i16), (i % 7) as i16])
            .collect();
        let mux: Vec<u8> = raw.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let vec: Vec<u8> = (0..3)
            .flat_map(|c| raw.iter().map(move |r| r[c]))
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut h = parse_header(HEADER).unwrap();
        std::fs::write(dir.path().join("m.eeg"), mux).unwrap();
        std::fs::write(dir.path().join("v.eeg"), vec).unwrap();
        let a = read_channels(&dir.path().join("m.eeg"), &h, &[1, 0]).unwrap();
        h.orientation = Orientation::Vectorized;
        let b = read_channels(&dir.path().join("v.eeg"), &h, &[1, 0]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0][10], -5.0);
        assert!((a[1][10] - 1.0).abs() < 1e-6);
        h.data_points = Some(999);
        assert!(read_channels(&dir.path().join("v.eeg"), &h, &[0]).is_err());
    }
}
