//! File bytes shared without copying, and f64 values that are a view into them: what lets the
//! MAT readers hand out a lead stored as doubles without decoding it (the Python package's
//! `read` returns such leads as numpy arrays over the mapped file).

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// Bytes several values share: a memory-mapped file, or a buffer in memory.
pub type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The whole file, memory-mapped copy-on-write (writes through a view stay in this process and
/// never reach the file). Empty files and files that cannot be mapped are read instead.
/// As with any mapping, a file truncated by another program while mapped faults on access.
#[allow(unsafe_code)]
pub fn map_file(path: &Path) -> std::io::Result<Bytes> {
    let f = std::fs::File::open(path)?;
    if f.metadata()?.len() > 0 {
        // SAFETY: a private (copy-on-write) mapping: this process's writes never reach the
        // file; another program changing the file under it is the documented risk above.
        if let Ok(m) = unsafe { memmap2::MmapOptions::new().map_copy(&f) } {
            return Ok(Arc::new(m));
        }
    }
    Ok(Arc::new(std::fs::read(path)?))
}

/// f64 values: decoded into memory, or a view of native f64 inside shared bytes.
#[derive(Clone)]
pub enum F64s {
    Owned(Vec<f64>),
    View {
        bytes: Bytes,
        /// Byte offset of the first value.
        start: usize,
        len: usize,
    },
}

impl F64s {
    /// A view of `len` values at byte `start`, where they can be read in place: stored
    /// little-endian on a little-endian machine, 8-byte aligned, inside the bytes.
    pub fn view(bytes: &Bytes, start: usize, len: usize) -> Option<F64s> {
        let b = (**bytes).as_ref();
        let end = start.checked_add(len.checked_mul(8)?)?;
        let ok = cfg!(target_endian = "little")
            && end <= b.len()
            && (b.as_ptr() as usize + start).is_multiple_of(std::mem::align_of::<f64>());
        ok.then(|| F64s::View {
            bytes: bytes.clone(),
            start,
            len,
        })
    }

    #[allow(unsafe_code)]
    pub fn as_slice(&self) -> &[f64] {
        match self {
            F64s::Owned(v) => v,
            F64s::View { bytes, start, len } => {
                let b = &(**bytes).as_ref()[*start..*start + *len * 8];
                // SAFETY: `view` checked bounds, alignment and byte order; every bit pattern is
                // a valid f64.
                unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f64>(), *len) }
            }
        }
    }

    /// Whether the values are read in place from shared bytes.
    pub fn is_view(&self) -> bool {
        matches!(self, F64s::View { .. })
    }

    /// The part `range` of the values (a view stays a view).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Option<F64s> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(match self {
            F64s::Owned(v) => F64s::Owned(v[range].to_vec()),
            F64s::View { bytes, start, .. } => F64s::View {
                bytes: bytes.clone(),
                start: start + range.start * 8,
                len: range.len(),
            },
        })
    }
}

impl Deref for F64s {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        self.as_slice()
    }
}

impl Default for F64s {
    fn default() -> Self {
        F64s::Owned(Vec::new())
    }
}

impl From<Vec<f64>> for F64s {
    fn from(v: Vec<f64>) -> Self {
        F64s::Owned(v)
    }
}

impl PartialEq for F64s {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for F64s {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_view() {
            write!(f, "view ")?;
        }
        f.debug_list()
            .entries(self.as_slice().iter().take(8))
            .finish()?;
        if self.len() > 8 {
            write!(f, " ({} values)", self.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_reads_the_values_in_place_and_refuses_what_it_cannot() {
        let mut raw = vec![0u8; 8];
        for v in [1.5f64, -2.0, 3.25] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, &raw).unwrap();
        let bytes = map_file(&p).unwrap();
        let v = F64s::view(&bytes, 8, 3).unwrap();
        assert!(v.is_view());
        assert_eq!(&*v, &[1.5, -2.0, 3.25]);
        assert_eq!(&*v.slice(1..3).unwrap(), &[-2.0, 3.25]);
        assert!(v.slice(2..4).is_none());
        // Past the end, or not 8-byte aligned: no view.
        assert!(F64s::view(&bytes, 8, 4).is_none());
        assert!(F64s::view(&bytes, 4, 1).is_none());
        assert_eq!(v, F64s::Owned(vec![1.5, -2.0, 3.25]));
    }
}
