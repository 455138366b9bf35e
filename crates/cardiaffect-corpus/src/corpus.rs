//! Opening a corpus for training: the manifest is checked, windows are memory-mapped (memory
//! does not grow with the corpus), the metadata table is parsed.

use std::fs;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::prepare::Manifest;
use crate::{CorpusError, Dtype, FORMAT_VERSION};

/// One row of `windows.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub dataset: String,
    pub source: String,
    pub subject: String,
    pub trial: String,
    pub segment: String,
    pub lead: String,
    pub start_s: f64,
    pub hr_bpm: f64,
    pub condition: Option<u8>,
    /// Values in the order of `Manifest::label_columns`; NaN where absent.
    pub labels: Vec<f64>,
}

pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub rows: Vec<Row>,
    mmap: Mmap,
    data_offset: usize,
}

/// Split one CSV line (RFC 4180 quoting, no embedded newlines).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl Corpus {
    pub fn open(dir: &Path) -> Result<Corpus, CorpusError> {
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
        let manifest: Manifest = serde_json::from_value(v).map_err(|e| CorpusError::Corrupt {
            path: mpath.clone(),
            reason: e.to_string(),
        })?;
        let npy_path = dir.join("windows.npy");
        let file = fs::File::open(&npy_path).map_err(|e| CorpusError::Io {
            path: npy_path.clone(),
            source: e,
        })?;
        // Safety: the corpus files are only ever replaced by rename, never written in place.
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
        let csv_path = dir.join("windows.csv");
        let text = fs::read_to_string(&csv_path).map_err(|e| CorpusError::Io {
            path: csv_path.clone(),
            source: e,
        })?;
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
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        let mut rows = Vec::with_capacity(n);
        for line in lines.filter(|l| !l.is_empty()) {
            let f = split_csv(line);
            let get = |i: usize| f.get(idx[i]).cloned().unwrap_or_default();
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
                labels: label_idx
                    .iter()
                    .map(|i| i.and_then(|i| f.get(i)).map(|s| num(s)).unwrap_or(f64::NAN))
                    .collect(),
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

    /// The column index of a label name.
    pub fn label_index(&self, name: &str) -> Option<usize> {
        self.manifest.label_columns.iter().position(|c| c == name)
    }
}
