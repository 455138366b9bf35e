//! NumPy `.npy` files (format versions 1, 2 and 3), every numeric dtype, C or Fortran order.
//!
//! Reference: numpy `numpy/lib/format.py` ("A Simple File Format for NumPy Arrays", NEP 1).

use crate::error::ParseError;
use crate::formats::dtype::{decode, fortran_to_c, Dtype};

pub const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    /// Values in C (row-major) order.
    pub values: Vec<f64>,
}

/// A version-1.0 header for a C-order array of `shape` and dtype `descr`, padded to 64 bytes.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

/// Parse the header only: (descr, fortran_order, shape, data offset).
pub fn parse_header(b: &[u8]) -> Result<(String, bool, Vec<usize>, usize), ParseError> {
    if !b.starts_with(MAGIC) {
        return Err(ParseError::new(
            0,
            "magic",
            "\\x93NUMPY",
            format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(6)])),
        ));
    }
    if b.len() < 10 {
        return Err(ParseError::new(
            6,
            "version",
            "a version and header length",
            "end of file",
        ));
    }
    let major = b[6];
    let (hlen, hstart): (usize, usize) = match major {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err(ParseError::new(
                    8,
                    "header length",
                    "4 bytes",
                    "end of file",
                ));
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => return Err(ParseError::new(6, "version", "1, 2 or 3", v.to_string())),
    };
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| {
            ParseError::new(
                8,
                "header length",
                format!("{hlen} header bytes"),
                format!("{} bytes left", b.len() - hstart),
            )
        })?;
    let h = String::from_utf8_lossy(&b[hstart..hend]);
    let value_of = |key: &str| -> Option<String> {
        let k = h.find(&format!("'{key}'"))?;
        let rest = &h[k + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        if let Some(r) = rest.strip_prefix('(') {
            Some(r[..r.find(')')?].to_string())
        } else if let Some(r) = rest.strip_prefix('\'') {
            Some(r[..r.find('\'')?].to_string())
        } else {
            Some(rest.split([',', '}']).next()?.trim().to_string())
        }
    };
    let descr = value_of("descr").ok_or_else(|| {
        ParseError::new(
            hstart,
            "header 'descr'",
            "a dtype string such as '<f4'",
            h.to_string(),
        )
    })?;
    let fortran = value_of("fortran_order")
        .map(|v| v == "True")
        .unwrap_or(false);
    let shape_s = value_of("shape")
        .ok_or_else(|| ParseError::new(hstart, "header 'shape'", "a tuple", h.to_string()))?;
    let shape: Result<Vec<usize>, _> = shape_s
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect();
    let shape = shape.map_err(|_| {
        ParseError::new(
            hstart,
            "header 'shape'",
            "a tuple of non-negative integers",
            shape_s.clone(),
        )
    })?;
    Ok((descr, fortran, shape, hend))
}

pub fn parse(b: &[u8]) -> Result<Npy, ParseError> {
    let (descr, fortran_order, shape, start) = parse_header(b)?;
    let dtype = parse_descr(&descr).ok_or_else(|| {
        ParseError::new(
            8,
            "header 'descr'",
            "a numeric dtype (b1, i1-i8, u1-u8, f2, f4, f8)",
            descr.clone(),
        )
    })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            ParseError::new(
                8,
                "header 'shape'",
                "a size that fits in memory",
                format!("{shape:?}"),
            )
        })?;
    let need = n.saturating_mul(dtype.size);
    let data = &b[start..];
    if data.len() < need {
        return Err(ParseError::new(
            start,
            "data",
            format!("{need} bytes for shape {shape:?} of {descr}"),
            format!("{} bytes: the file is truncated", data.len()),
        ));
    }
    let values = decode(&data[..need], &dtype)
        .map_err(|e| ParseError::new(8, "header 'descr'", e, descr.clone()))?;
    let values = if fortran_order && shape.len() > 1 {
        fortran_to_c(&values, &shape)
    } else {
        values
    };
    Ok(Npy {
        descr,
        shape,
        fortran_order,
        values,
    })
}

fn parse_descr(d: &str) -> Option<Dtype> {
    let mut chars = d.chars();
    let order = chars.next()?;
    let (little, rest) = match order {
        '<' | '|' | '=' => (true, chars.as_str()),
        '>' => (false, chars.as_str()),
        _ => (true, d),
    };
    let kind = rest.chars().next()?;
    let size: usize = rest[1..].parse().ok()?;
    let kind = if kind == '?' { 'b' } else { kind };
    if !matches!(kind, 'f' | 'i' | 'u' | 'b') {
        return None;
    }
    Some(Dtype {
        kind,
        size,
        little_endian: little,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_writer_header_is_read_back_by_the_reader() {
        let mut b = header("<f4", &[2, 3]);
        assert_eq!(b.len() % 64, 0, "padded to 64 bytes as numpy does");
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let a = super::parse(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    use super::*;

    fn npy(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_big_endian_int16_fortran() {
        let data: Vec<u8> = [1i16, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let f = npy(">i2", "(2, 3)", true, &data);
        let a = parse(&f).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![1., 2., 3., 4., 5., 6.]);
    }

    #[test]
    fn truncated_and_oversized_shapes_are_errors() {
        let f = npy("<f8", "(1000000000000,)", false, &[0; 8]);
        assert!(parse(&f).unwrap_err().found.contains("truncated"));
        let f = npy("<f8", "(3,)", false, &[0; 8]);
        assert!(parse(&f).is_err());
        let f = npy("<U4", "(1,)", false, &[0; 16]);
        assert!(parse(&f).is_err());
    }
}
