//! Dataset layouts: each file turns one dataset's original files into [`crate::Recording`]s,
//! and [`LAYOUTS`] says, per format, how it is read, which files are its units (read one at a
//! time, for bounded memory) and which files each unit's reading depends on (for the cache).
//! Adding a dataset: its file here, one row of the table, a fixture and a test.

pub mod amigos;
pub mod ascertain;
pub mod bids;
mod common;
pub mod dreamer;
pub mod generic;
pub mod wesad;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::Result;
use crate::options::ReadOptions;
use crate::paths::files_matching;
use crate::recording::ReadOutput;

/// The layout a source is in: the key of [`LAYOUTS`], or `auto` until detection resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Auto,
    Amigos,
    Dreamer,
    Wesad,
    Ascertain,
    Wfdb,
    Edf,
    Npy,
    Csv,
    Bids,
    BrainVision,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::Auto,
        Format::Amigos,
        Format::Dreamer,
        Format::Wesad,
        Format::Ascertain,
        Format::Wfdb,
        Format::Edf,
        Format::Npy,
        Format::Csv,
        Format::Bids,
        Format::BrainVision,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Amigos => "amigos",
            Format::Dreamer => "dreamer",
            Format::Wesad => "wesad",
            Format::Ascertain => "ascertain",
            Format::Wfdb => "wfdb",
            Format::Edf => "edf",
            Format::Npy => "npy",
            Format::Csv => "csv",
            Format::Bids => "bids",
            Format::BrainVision => "brainvision",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| {
                f.name() == s
                    || (s == "tsv" && *f == Format::Csv)
                    || (s == "bdf" && *f == Format::Edf)
            })
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?}: expected one of {}",
                    Format::ALL.map(|f| f.name()).join(", ")
                )
            })
    }
}

/// One dataset layout.
pub struct Layout {
    pub format: Format,
    /// Every recording under a path (a folder, or one unit).
    pub read: fn(&Path, &ReadOptions, &mut ReadOutput) -> Result<()>,
    /// The units under a folder, in any order.
    pub units: fn(&Path) -> Result<Vec<PathBuf>>,
    /// Every file that reading a unit depends on, the unit's own first.
    pub files: fn(&Path) -> Result<Vec<PathBuf>>,
}

fn itself(unit: &Path) -> Result<Vec<PathBuf>> {
    Ok(vec![unit.to_path_buf()])
}

/// Every format's layout (all but `auto`, which detection resolves first).
pub static LAYOUTS: [Layout; 10] = [
    Layout {
        format: Format::Amigos,
        read: amigos::read,
        units: |p| {
            files_matching(p, |n| {
                n.starts_with("Data_Preprocessed_P") && n.ends_with(".mat")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Dreamer,
        read: dreamer::read,
        units: |p| files_matching(p, |n| n == "DREAMER.mat"),
        files: itself,
    },
    Layout {
        format: Format::Wesad,
        read: wesad::read,
        units: wesad::subject_files,
        files: wesad::unit_files,
    },
    Layout {
        format: Format::Ascertain,
        read: ascertain::read,
        units: ascertain::find_clip_files,
        files: ascertain::unit_files,
    },
    Layout {
        format: Format::Wfdb,
        read: generic::read_wfdb,
        units: |p| files_matching(p, |n| n.ends_with(".hea")),
        files: generic::wfdb_files,
    },
    Layout {
        format: Format::Edf,
        read: generic::read_edf,
        units: |p| {
            files_matching(p, |n| {
                let l = n.to_ascii_lowercase();
                l.ends_with(".edf") || l.ends_with(".bdf")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Npy,
        read: generic::read_npy,
        units: |p| files_matching(p, |n| n.ends_with(".npy")),
        files: itself,
    },
    Layout {
        format: Format::Csv,
        read: generic::read_csv,
        units: |p| {
            files_matching(p, |n| {
                n.ends_with(".csv") || n.ends_with(".tsv") || n.ends_with(".txt")
            })
        },
        files: itself,
    },
    Layout {
        format: Format::Bids,
        read: bids::read,
        units: bids::data_files,
        files: bids::unit_files,
    },
    Layout {
        format: Format::BrainVision,
        read: generic::read_brainvision,
        units: |p| files_matching(p, |n| n.to_ascii_lowercase().ends_with(".vhdr")),
        files: generic::brainvision_files,
    },
];

/// The layout of `format`; `auto` has none (detect it first).
pub fn layout(format: Format) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| l.format == format)
}
