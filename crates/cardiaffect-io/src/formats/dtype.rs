//! Stored numbers to f64: one decoder for every format (MAT v5, numpy in NPY and pickle),
//! and numpy's dtype strings.

/// A numpy dtype reduced to what is needed to decode a buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Dtype {
    /// 'f', 'i', 'u', 'b', 'c', 'O', 'S', 'U', 'V'...
    pub kind: char,
    pub size: usize,
    pub little_endian: bool,
}

impl Dtype {
    /// From numpy's `descr` string, e.g. `<f4`, `|u1`, `>i2`, `?`.
    pub fn from_descr(s: &str) -> Option<Dtype> {
        let mut chars = s.chars().peekable();
        let mut little = true;
        if let Some(&c) = chars.peek() {
            if matches!(c, '<' | '>' | '|' | '=') {
                little = c != '>';
                chars.next();
            }
        }
        let kind = chars.next()?;
        let rest: String = chars.collect();
        let size = if rest.is_empty() {
            match kind {
                'b' | '?' => 1,
                'O' => 8,
                _ => return None,
            }
        } else {
            rest.parse().ok()?
        };
        let kind = if kind == '?' { 'b' } else { kind };
        Some(Dtype {
            kind,
            size,
            little_endian: little,
        })
    }
}

/// A stored number type, as MAT v5, numpy and EDF-like formats name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    F32,
    F64,
}

impl Number {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Number::I8 | Number::U8 => 1,
            Number::I16 | Number::U16 | Number::F16 => 2,
            Number::I32 | Number::U32 | Number::F32 => 4,
            Number::I64 | Number::U64 | Number::F64 => 8,
        }
    }
}

/// Decode whole values of `n` (little- or big-endian) to f64; a partial value at the end is
/// left out (callers check the length first).
pub fn decode_numbers(raw: &[u8], n: Number, little_endian: bool) -> Vec<f64> {
    let le = little_endian;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                    (if le {
                        <$t>::from_le_bytes(a)
                    } else {
                        <$t>::from_be_bytes(a)
                    }) as f64
                })
                .collect()
        };
    }
    match n {
        Number::F64 => conv!(f64, 8),
        Number::F32 => conv!(f32, 4),
        Number::F16 => raw
            .chunks_exact(2)
            .map(|c| {
                let a = [c[0], c[1]];
                half::f16::from_bits(if le {
                    u16::from_le_bytes(a)
                } else {
                    u16::from_be_bytes(a)
                })
                .to_f64()
            })
            .collect(),
        Number::I8 => raw.iter().map(|&b| b as i8 as f64).collect(),
        Number::U8 => raw.iter().map(|&b| b as f64).collect(),
        Number::I16 => conv!(i16, 2),
        Number::U16 => conv!(u16, 2),
        Number::I32 => conv!(i32, 4),
        Number::U32 => conv!(u32, 4),
        Number::I64 => conv!(i64, 8),
        Number::U64 => conv!(u64, 8),
    }
}

/// Decode a raw numeric buffer of numpy dtype `dtype` to f64.
pub fn decode(raw: &[u8], dtype: &Dtype) -> Result<Vec<f64>, String> {
    let n = match (dtype.kind, dtype.size) {
        ('f', 8) => Number::F64,
        ('f', 4) => Number::F32,
        ('f', 2) => Number::F16,
        ('i', 1) => Number::I8,
        ('u', 1) | ('b', 1) => Number::U8,
        ('i', 2) => Number::I16,
        ('u', 2) => Number::U16,
        ('i', 4) => Number::I32,
        ('u', 4) => Number::U32,
        ('i', 8) => Number::I64,
        ('u', 8) => Number::U64,
        (k, s) => return Err(format!("a numeric dtype, found {k}{s}")),
    };
    Ok(decode_numbers(raw, n, dtype.little_endian))
}

/// Reorder column-major values of `shape` to row-major.
pub fn fortran_to_c(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = values.len();
    let nd = shape.len();
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; nd];
    for v in values.iter() {
        // idx iterates in Fortran order (first index fastest).
        let mut c = 0;
        for (d, &i) in idx.iter().enumerate() {
            c = c * shape[d] + i;
        }
        out[c] = *v;
        for d in 0..nd {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_in_either_byte_order() {
        assert_eq!(
            decode_numbers(&[0x01, 0x02, 0xff, 0xfe], Number::I16, true),
            vec![513.0, -257.0]
        );
        assert_eq!(
            decode_numbers(&[0x01, 0x02, 0xff, 0xfe], Number::I16, false),
            vec![258.0, -2.0]
        );
        assert_eq!(
            decode_numbers(&1.5f32.to_be_bytes(), Number::F32, false),
            vec![1.5]
        );
        let d = Dtype::from_descr(">u2").unwrap();
        assert_eq!(decode(&[0x01, 0x00], &d).unwrap(), vec![256.0]);
        assert!(decode(&[0; 4], &Dtype::from_descr("<c8").unwrap()).is_err());
    }
}
