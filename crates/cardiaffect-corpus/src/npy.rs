//! Writing `.npy` files numpy can memory-map (`np.load(path, mmap_mode='r')`).

use std::io::Write;

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
