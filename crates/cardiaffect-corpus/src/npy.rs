//! Writing `.npy` files numpy can memory-map (`np.load(path, mmap_mode='r')`): the header
//! (beside the reader, in `cardiaffect_io::formats::npy`) and the corpus's value types.

use std::io::Write;

pub use cardiaffect_io::formats::npy::header;

/// Append f32 values in the corpus dtype.
pub fn write_values(
    w: &mut impl Write,
    values: &[f32],
    dtype: crate::Dtype,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * dtype.size());
    match dtype {
        crate::Dtype::F32 => values
            .iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
        crate::Dtype::F16 => values
            .iter()
            .for_each(|v| buf.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
    }
    w.write_all(&buf)
}
