//! Byte-level file formats. Each parser works on bytes or text and knows nothing of datasets.

pub mod brainvision;
pub mod csv;
pub mod dtype;
pub mod edf;
pub mod mat;
pub mod npy;
pub mod pickle;
pub mod tsv;
pub mod wfdb;
