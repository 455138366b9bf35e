//! Readers for every ECG source an affective-computing researcher has on disk.
//!
//! - Byte-level formats in [`formats`]: MAT v5, Python pickle (with numpy arrays), WFDB, EDF/EDF+,
//!   NPY, delimited text.
//! - Dataset layouts in [`datasets`]: AMIGOS, DREAMER, WESAD, ASCERTAIN, and the generic formats.
//! - One entry point, [`read()`], returns [`Recording`]s: one continuous single-lead segment each,
//!   with its labels and the other channels addressable without loading them.
//!
//! ```no_run
//! use cardiaffect_io::{read, Format, ReadOptions};
//! let cardiaffect_io::ReadResult { format, output: out, .. } = read(std::path::Path::new("Data_Preprocessed_P01.mat"), Format::Auto, &ReadOptions::default())?;
//! for r in &out.recordings {
//!     println!("{format} {} {} {} Hz {} samples", r.subject, r.trial, r.fs, r.samples.len());
//! }
//! # Ok::<(), cardiaffect_io::IoError>(())
//! ```
// Unsafe code only in the items marked `#[allow(unsafe_code)]`: the file mapping and its f64
// view (mapped.rs) and renameat2 (artifact.rs).
#![deny(unsafe_code)]

pub mod artifact;
pub mod chunked;
pub mod datasets;
pub mod error;
pub mod events;
pub mod formats;
pub mod mapped;
pub mod options;
mod paths;
pub mod read;
pub mod recording;
pub mod setting;

pub use datasets::Format;
pub use error::{IoError, ParseError, Result};
pub use events::EventSource;
pub use options::ReadOptions;
pub use read::{detect, read, read_units, unit_files, ReadResult};
pub use recording::{
    Annotation, ChannelRef, Label, LabelTrack, ReadOutput, Recording, Run, Scale, Skipped,
};
