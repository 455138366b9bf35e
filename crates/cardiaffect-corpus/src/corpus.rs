//! Opening a corpus for training: the manifest is checked, windows are memory-mapped (memory
//! does not grow with the corpus), the metadata table is parsed, and (unless told not to) the
//! files are verified: their checksums against the manifest's, every value finite.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use cardiaffect_io::artifact::checksum;
use memmap2::Mmap;
use rayon::prelude::*;

use crate::prepare::manifest::Manifest;
use crate::window::WindowMeta;
use crate::{CorpusError, Dtype, FORMAT_VERSION};

/// One row of `windows.csv` as read back: label values in the order of
/// `Manifest::label_columns`, NaN where absent.
pub type Row = WindowMeta<Vec<f64>>;

pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub rows: Vec<Row>,
    mmap: Mmap,
    data_offset: usize,
}

/// Split one CSV line (RFC 4180 quoting, no embedded newlines).
pub fn split_csv(line: &str) -> Vec<String> {
    cardiaffect_io::formats::csv::split_fields(line, ',')
}

/// The column of `windows.csv` that names the class of categorical label `column`
/// (`trial_type_name` beside `trial_type`'s indices), where the corpus has one: a numeric
/// label has none, nor one whose name another column already has.
pub fn class_name_column(manifest: &Manifest, column: &str) -> Option<String> {
    let name = format!("{column}_name");
    let taken = name == "index"
        || crate::META_COLUMNS.contains(&name.as_str())
        || manifest.label_columns.contains(&name);
    let categorical = manifest
        .label_scales
        .get(column)
        .is_some_and(|s| !s.classes.is_empty());
    (categorical && !taken).then_some(name)
}

/// The class a categorical label's value (an index into `classes`) stands for.
pub fn class_of(classes: &[String], value: f64) -> Option<&str> {
    (value >= 0.0 && value.fract() == 0.0)
        .then(|| classes.get(value as usize))
        .flatten()
        .map(String::as_str)
}

static VERIFY_BY_DEFAULT: AtomicBool = AtomicBool::new(true);

/// Whether [`Corpus::open`] verifies (the CLI's `--no-verify` turns it off for the process).
pub fn set_verify_by_default(verify: bool) {
    VERIFY_BY_DEFAULT.store(verify, Ordering::Relaxed);
}

/// How a corpus is opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenOptions {
    /// Check `windows.npy` and `windows.csv` against the manifest's checksums and refuse
    /// windows with NaN or infinite values (about 0.2 s per GB here).
    pub verify: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify: VERIFY_BY_DEFAULT.load(Ordering::Relaxed),
        }
    }
}

/// Up to this many indices are named in the error for non-finite windows.
const SHOWN_BAD: usize = 10;

/// Indices of windows holding a NaN or an infinity (an exponent of all ones).
fn non_finite_windows(data: &[u8], dtype: Dtype, window_len: usize) -> Vec<usize> {
    let bytes = window_len * dtype.size();
    let mut bad: Vec<usize> = data
        .par_chunks(bytes.max(1))
        .enumerate()
        .filter(|(_, w)| match dtype {
            Dtype::F32 => w
                .chunks_exact(4)
                .any(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000 == 0x7f80_0000),
            Dtype::F16 => w
                .chunks_exact(2)
                .any(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00),
        })
        .map(|(i, _)| i)
        .collect();
    bad.sort_unstable();
    bad
}

fn verify_checksum(
    manifest: &Manifest,
    mpath: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<(), CorpusError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let expected = manifest
        .checksums
        .get(&name)
        .ok_or_else(|| CorpusError::Corrupt {
            path: mpath.to_path_buf(),
            reason: format!("no checksum for {name}"),
        })?;
    let found = checksum(bytes);
    if &found != expected {
        return Err(CorpusError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "its checksum is {found}, {} says {expected}: the file changed after `cardiaffect prepare` wrote it; run prepare again (or pass ‹no_verify› to use it as it is)",
                mpath.display()
            ),
        });
    }
    Ok(())
}

impl Corpus {
    /// Open and (by default) verify the corpus in `dir`.
    pub fn open(dir: &Path) -> Result<Corpus, CorpusError> {
        Corpus::open_with(dir, OpenOptions::default())
    }

    pub fn open_with(dir: &Path, opts: OpenOptions) -> Result<Corpus, CorpusError> {
        let mpath = dir.join("manifest.json");
        let text = fs::read_to_string(&mpath).map_err(|e| CorpusError::Io {
            path: mpath.clone(),
            source: e,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CorpusError::Corrupt {
                path: mpath.clone(),
                reason: e.to_string(),
            })?;
        let version = v["format_version"].as_u64().unwrap_or(0) as u32;
        if version != FORMAT_VERSION {
            return Err(CorpusError::Version {
                path: mpath,
                found: version,
                expected: FORMAT_VERSION,
                created_by: v["created_by"].as_str().unwrap_or("?").to_string(),
            });
        }
        if opts.verify {
            // The manifest holds the other files' checksums; `checksums.json` holds its own.
            if let Some(list) = cardiaffect_io::artifact::Checksums::load(dir)? {
                list.check_bytes(dir, "manifest.json", text.as_bytes())?;
            }
        }
        let manifest: Manifest = serde_json::from_value(v).map_err(|e| CorpusError::Corrupt {
            path: mpath.clone(),
            reason: e.to_string(),
        })?;
        // The window is held by the config (seconds and rate); the file's `window_len` repeats
        // it for readers of the file alone and must agree.
        let derived = manifest.config.window_len();
        if manifest.window_len != derived {
            return Err(CorpusError::Corrupt {
                path: mpath,
                reason: format!(
                    "field window_len: expected {derived} samples ({} s at {} Hz, field config), found {}",
                    manifest.config.window_s, manifest.config.fs, manifest.window_len
                ),
            });
        }
        let npy_path = dir.join("windows.npy");
        let file = fs::File::open(&npy_path).map_err(|e| CorpusError::Io {
            path: npy_path.clone(),
            source: e,
        })?;
        // SAFETY: a read-only mapping, sound while no one writes the file: the corpus files are
        // only ever replaced by rename, never written in place, so this mapping keeps the inode
        // it opened (a file truncated by another program under it is the risk every mapping has).
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CorpusError::Io {
            path: npy_path.clone(),
            source: e,
        })?;
        let (descr, fortran, shape, offset) = cardiaffect_io::formats::npy::parse_header(&mmap)
            .map_err(|e| CorpusError::Corrupt {
                path: npy_path.clone(),
                reason: e.to_string(),
            })?;
        let n = manifest.counts.windows;
        if descr != manifest.config.dtype.descr() || fortran || shape != [n, manifest.window_len] {
            return Err(CorpusError::Corrupt {
                path: npy_path,
                reason: format!(
                    "header {descr} {shape:?}, the manifest says {} ({n}, {})",
                    manifest.config.dtype.descr(),
                    manifest.window_len
                ),
            });
        }
        if mmap.len() < offset + n * manifest.window_len * manifest.config.dtype.size() {
            return Err(CorpusError::Corrupt {
                path: npy_path,
                reason: "the file is shorter than its header says".into(),
            });
        }
        if opts.verify {
            verify_checksum(&manifest, &mpath, &npy_path, &mmap)?;
            let end = offset + n * manifest.window_len * manifest.config.dtype.size();
            let bad = non_finite_windows(
                &mmap[offset..end],
                manifest.config.dtype,
                manifest.window_len,
            );
            if !bad.is_empty() {
                return Err(CorpusError::NonFinite {
                    path: npy_path,
                    count: bad.len(),
                    more: if bad.len() > SHOWN_BAD { ", ..." } else { "" },
                    indices: bad.into_iter().take(SHOWN_BAD).collect(),
                });
            }
        }
        let csv_path = dir.join("windows.csv");
        let text = fs::read_to_string(&csv_path).map_err(|e| CorpusError::Io {
            path: csv_path.clone(),
            source: e,
        })?;
        if opts.verify {
            verify_checksum(&manifest, &mpath, &csv_path, text.as_bytes())?;
        }
        let mut lines = text.lines();
        let header = split_csv(lines.next().unwrap_or(""));
        let col = |name: &str| header.iter().position(|h| h == name);
        let idx: Vec<usize> = crate::META_COLUMNS
            .iter()
            .map(|n| {
                col(n).ok_or_else(|| CorpusError::Corrupt {
                    path: csv_path.clone(),
                    reason: format!("no column {n}"),
                })
            })
            .collect::<Result<_, _>>()?;
        let label_idx: Vec<Option<usize>> = manifest.label_columns.iter().map(|c| col(c)).collect();
        // Categorical labels' name columns: absent from corpora written before them; where
        // present, each name must be the class its index stands for.
        let name_idx: Vec<Option<(String, usize)>> = manifest
            .label_columns
            .iter()
            .map(|c| class_name_column(&manifest, c).and_then(|n| col(&n).map(|i| (n, i))))
            .collect();
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        let mut rows = Vec::with_capacity(n);
        for line in lines.filter(|l| !l.is_empty()) {
            let f = split_csv(line);
            let get = |i: usize| f.get(idx[i]).cloned().unwrap_or_default();
            let labels: Vec<f64> = label_idx
                .iter()
                .map(|i| i.and_then(|i| f.get(i)).map(|s| num(s)).unwrap_or(f64::NAN))
                .collect();
            for (k, named) in name_idx.iter().enumerate() {
                let Some((name, i)) = named else { continue };
                let column = &manifest.label_columns[k];
                let classes = &manifest.label_scales[column].classes;
                let expected = class_of(classes, labels[k]).unwrap_or("");
                let found = f.get(*i).map(String::as_str).unwrap_or("");
                if found != expected {
                    return Err(CorpusError::Cell {
                        path: csv_path,
                        row: rows.len(),
                        column: name.clone(),
                        expected: if expected.is_empty() {
                            format!("empty, as `{column}` is")
                        } else {
                            format!("`{expected}`, the class `{column}` = {} stands for in the manifest", labels[k])
                        },
                        found: found.to_string(),
                    });
                }
            }
            rows.push(Row {
                dataset: get(0),
                source: get(1),
                subject: get(2),
                trial: get(3),
                segment: get(4),
                lead: get(5),
                start_s: num(&get(6)),
                hr_bpm: num(&get(7)),
                condition: get(8).parse().ok(),
                labels,
            });
        }
        if rows.len() != n {
            return Err(CorpusError::Corrupt {
                path: csv_path,
                reason: format!("{} rows, the manifest says {n} windows", rows.len()),
            });
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            manifest,
            rows,
            mmap,
            data_offset: offset,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn window_len(&self) -> usize {
        self.manifest.window_len
    }

    /// Copy window `i` (as f32) into `out`.
    pub fn window_into(&self, i: usize, out: &mut [f32]) {
        let l = self.window_len();
        match self.manifest.config.dtype {
            Dtype::F32 => {
                let start = self.data_offset + i * l * 4;
                for (o, c) in out
                    .iter_mut()
                    .zip(self.mmap[start..start + l * 4].chunks_exact(4))
                {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Dtype::F16 => {
                let start = self.data_offset + i * l * 2;
                for (o, c) in out
                    .iter_mut()
                    .zip(self.mmap[start..start + l * 2].chunks_exact(2))
                {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        }
    }

    pub fn window(&self, i: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.window_len()];
        self.window_into(i, &mut v);
        v
    }

    /// The class name of window `i`'s categorical label `k` (in `label_columns`' order);
    /// `None` for a numeric label or a window without that label.
    pub fn class_name(&self, i: usize, k: usize) -> Option<&str> {
        let scale = self
            .manifest
            .label_scales
            .get(self.manifest.label_columns.get(k)?)?;
        class_of(&scale.classes, *self.rows[i].labels.get(k)?)
    }

    /// The column index of a label name.
    pub fn label_index(&self, name: &str) -> Option<usize> {
        self.manifest.label_columns.iter().position(|c| c == name)
    }
}
