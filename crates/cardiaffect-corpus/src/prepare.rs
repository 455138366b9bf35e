//! `prepare`: sources -> shards (one per readable unit, reused when nothing changed) -> corpus.
//!
//! Layout of a corpus folder:
//! - `windows.npy`  (N, L) f32 or f16, C order: numpy opens it with `mmap_mode='r'`;
//! - `windows.csv`  one row per window (pandas/polars): index, dataset, source, subject, trial,
//!   segment, lead, start_s, hr_bpm, condition, then one column per label (a categorical
//!   label's class index, followed by `LABEL_name`, the class's name: see
//!   [`crate::corpus::class_name_column`]; corpora written before it lack that column);
//! - `dropped.csv`  windows that failed a check, with the reason;
//! - `manifest.json` config, counts, label scales, every source file with its SHA-256, and the
//!   XXH3-128 checksums of `windows.npy`, `windows.csv` and `dropped.csv` (checked on open);
//! - `shards/`      the per-unit results the next run reuses (each with the checksums of its
//!   files: a damaged shard is rebuilt, not reused);
//! - `.cardiaffect.lock` the writer's lock (one `prepare` at a time per folder).
//!
//! Every file is written to a temporary name and renamed, the manifest last: a corpus folder
//! holds a complete corpus or none (a reader that catches the files changing under it gets a
//! checksum error, never a mix), and an interrupted run keeps its finished shards.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cardiaffect_io::artifact::{self, Hasher};
use cardiaffect_io::{read, read_units, unit_files, EventSource, Format, ReadOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::window::{window_recording, Dropped, WindowMeta};
use crate::{npy, CorpusError, PrepareConfig, FORMAT_VERSION};

/// `FORMAT:PATH` (or a bare path, detected), as given to `--source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub format: Format,
    pub path: PathBuf,
    pub lead: Option<String>,
    pub fs: Option<f64>,
    /// Cut recordings into trials at these events (`--events`).
    #[serde(default)]
    pub events: Option<EventSource>,
    /// Seconds before each event kept as its baseline segment (`--baseline`).
    #[serde(default)]
    pub baseline_s: Option<f64>,
    /// Declared label scales (`--label-scale NAME=LO-HI`).
    #[serde(default)]
    pub label_scales: BTreeMap<String, (f64, f64)>,
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (format, path) = match s.split_once(':') {
            Some((f, p)) if f.parse::<Format>().is_ok() && !p.is_empty() => {
                (f.parse::<Format>()?, p)
            }
            _ => (Format::Auto, s),
        };
        Ok(Source {
            format,
            path: PathBuf::from(path),
            lead: None,
            fs: None,
            events: None,
            baseline_s: None,
            label_scales: BTreeMap::new(),
        })
    }
}

impl Source {
    pub fn spec(&self) -> String {
        format!("{}:{}", self.format, self.path.display())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Modification time (ns since the epoch) when hashed; lets a later run skip re-hashing.
    pub modified_ns: u128,
}

fn modified_ns(path: &Path) -> u128 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Hashes of files from earlier runs, valid while size and modification time are unchanged.
struct HashCache(BTreeMap<String, FileHash>);

impl HashCache {
    const FILE: &'static str = "file-hashes.json";

    fn load(shards: &Path) -> HashCache {
        let v: Vec<FileHash> = fs::read_to_string(shards.join(Self::FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        HashCache(v.into_iter().map(|f| (f.path.clone(), f)).collect())
    }

    fn get(&self, path: &Path) -> Option<FileHash> {
        let f = self.0.get(&path.display().to_string())?;
        let size = fs::metadata(path).ok()?.len();
        (f.bytes == size && f.modified_ns != 0 && f.modified_ns == modified_ns(path))
            .then(|| f.clone())
    }

    fn save<'a>(shards: &Path, files: impl Iterator<Item = &'a FileHash>) {
        let v: Vec<&FileHash> = files.collect();
        // A cache: losing it only costs re-hashing, so a failed write is not an error.
        let _ = artifact::write_json_atomic(&shards.join(Self::FILE), &v);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub key: String,
    pub unit: String,
    pub windows: usize,
    pub recordings: usize,
    pub skipped_trials: usize,
    /// Skipped trials by reason ("outside the recording", "empty").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
    pub label_scales: BTreeMap<String, LabelScale>,
    pub files: Vec<FileHash>,
    /// Seconds of signal read from the unit (every recording, before windows are dropped).
    /// `None` in shards written before it was recorded: such a shard is built again.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// XXH3-128 of the shard's `windows.f32`, `meta.jsonl`, `dropped.jsonl`.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScale {
    pub min: f64,
    pub max: f64,
    pub description: String,
    /// A categorical column's classes: its values are indices into them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// `min`/`max` were inferred from the values seen (the corpus's: the union over sources).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

impl LabelScale {
    /// One phrase for listings: "1-9 (AMIGOS self-assessment 1-9)", "classes fear, joy".
    pub fn describe(&self) -> String {
        if self.classes.is_empty() {
            format!("{}-{} ({})", self.min, self.max, self.description)
        } else {
            format!("classes {}", self.classes.join(", "))
        }
    }
}

/// One scale per label column for the whole corpus. Declared scales: the first source's (a
/// corpus may mix scales: labels split each window at its own). Inferred scales: the union of
/// the ranges seen. Categorical columns: the sorted union of the classes (each shard's codes
/// are mapped onto it when the corpus is assembled).
fn merge_scales(infos: &[ShardInfo]) -> Result<BTreeMap<String, LabelScale>, CorpusError> {
    let mut out: BTreeMap<String, (LabelScale, String)> = BTreeMap::new();
    for i in infos {
        for (k, v) in &i.label_scales {
            let Some((m, first)) = out.get_mut(k) else {
                out.insert(k.clone(), (v.clone(), i.unit.clone()));
                continue;
            };
            if m.classes.is_empty() != v.classes.is_empty() {
                let first: &str = first;
                return Err(CorpusError::LabelColumn {
                    column: k.clone(),
                    reason: format!(
                        "it holds classes in {} and numbers in {}: make it one or the other in every source",
                        if m.classes.is_empty() { &i.unit } else { first },
                        if m.classes.is_empty() { first } else { &i.unit },
                    ),
                });
            }
            if !v.classes.is_empty() {
                for c in &v.classes {
                    if !m.classes.contains(c) {
                        m.classes.push(c.clone());
                    }
                }
                m.classes.sort();
                m.max = (m.classes.len().max(1) - 1) as f64;
            } else if m.inferred && v.inferred {
                m.min = m.min.min(v.min);
                m.max = m.max.max(v.max);
                m.description = format!(
                    "inferred from the values of all sources; declare it with --label-scale {k}=LO-HI"
                );
            }
        }
    }
    Ok(out.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub spec: String,
    pub format: String,
    /// Hours of signal read from this source's readable units.
    #[serde(default)]
    pub hours: f64,
    /// Windows kept from this source.
    #[serde(default)]
    pub windows: usize,
    pub shards: Vec<ShardInfo>,
    /// Units of this source that could not be read, each with why: the rest are prepared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
}

/// A unit (a file or record) of a source that could not be read or used, named with the
/// reason it is counted under and the reader's whole message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unreadable {
    pub unit: String,
    pub reason: String,
    pub error: String,
}

/// A text table or sidecar (`events.tsv`, `.json`, `.csv`), as opposed to a recording's data.
fn is_table(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        ["tsv", "json", "csv"]
            .iter()
            .any(|t| e.eq_ignore_ascii_case(t))
    })
}

/// The short reason an unreadable unit is counted under (`Counts::unreadable`).
fn unreadable_reason(e: &CorpusError) -> Option<&'static str> {
    use cardiaffect_io::IoError as E;
    Some(match e {
        CorpusError::Read(e) => match e {
            E::Open { .. } => "cannot open",
            E::Parse { .. } => "not a valid file (truncated or damaged)",
            // Events, sidecars and label tables are the study's own words: a value there
            // that does not fit is an error to fix, not a recording to leave out.
            E::Layout { path, .. } if is_table(path) => return None,
            E::Layout { .. } => "unexpected layout (truncated, or fields missing)",
            E::Unsupported { .. } => "unsupported",
            E::MissingFile { .. } => "a file it names is missing",
            E::UnknownFormat { .. } => "unknown format",
            E::Empty { .. } => "no recording",
            E::Option { .. } => "an option does not apply",
        },
        CorpusError::RateTooLow { .. } => "sampling rate too low for the band",
        // Hashing a unit's files before reading them: a file its header names is absent.
        CorpusError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "a file it names is missing"
        }
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub windows: usize,
    pub recordings: usize,
    pub units: usize,
    pub skipped_trials: usize,
    /// Skipped trials by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    pub dropped: BTreeMap<String, usize>,
    /// Units that could not be read, by reason (each named in its source's `unreadable`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub created_by: String,
    pub config: PrepareConfig,
    pub window_len: usize,
    pub counts: Counts,
    pub label_columns: Vec<String>,
    pub label_scales: BTreeMap<String, LabelScale>,
    pub sources: Vec<SourceEntry>,
    /// XXH3-128 of `windows.npy`, `windows.csv` and `dropped.csv` as written.
    pub checksums: BTreeMap<String, String>,
}

/// What a caller hears while `prepare` runs.
pub enum Progress<'a> {
    Units(usize),
    UnitDone {
        unit: &'a Path,
        windows: usize,
        reused: bool,
    },
    Assembling,
}

#[derive(Debug)]
pub struct PrepareReport {
    pub manifest: Manifest,
    pub reused_units: usize,
    pub up_to_date: bool,
    pub warnings: Vec<String>,
}

fn sha256_file(path: &Path) -> Result<FileHash, CorpusError> {
    let io = |e| CorpusError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileHash {
        path: path.display().to_string(),
        bytes,
        sha256: hex(&h.finalize()),
        modified_ns: modified_ns(path),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) use cardiaffect_io::artifact::write_atomic;

/// A writer that hashes what passes through it (the checksum of a file as it is written).
struct Hashing<W: Write> {
    inner: W,
    hash: Hasher,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Hasher::default(),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The files of a shard folder that its `checksums` cover.
const SHARD_FILES: [&str; 3] = ["windows.f32", "meta.jsonl", "dropped.jsonl"];

fn csv_field(s: &str) -> String {
    cardiaffect_io::formats::csv::field(s).into_owned()
}

fn fmt_num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        String::new()
    }
}

struct Unit {
    source: usize,
    format: Format,
    path: PathBuf,
    opts: ReadOptions,
}

fn shard_key(unit: &Unit, cfg: &PrepareConfig, files: &[FileHash]) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "cardiaffect corpus v{FORMAT_VERSION} {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    h.update(serde_json::to_string(cfg).unwrap_or_default());
    h.update(format!(
        "\n{} {:?} {:?}\n",
        unit.format, unit.opts.lead, unit.opts.fs
    ));
    // Only when given, so that shards of sources without events keep their keys.
    if unit.opts.events.is_some()
        || unit.opts.baseline_s.is_some()
        || !unit.opts.label_scales.is_empty()
    {
        h.update(format!(
            "events {:?} baseline {:?} scales {:?}\n",
            unit.opts.events, unit.opts.baseline_s, unit.opts.label_scales
        ));
    }
    for f in files {
        h.update(format!(
            "{} {} {}\n",
            Path::new(&f.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            f.bytes,
            f.sha256
        ));
    }
    hex(&h.finalize())[..24].to_string()
}

/// Process one unit into its shard folder; returns the shard's info.
fn build_shard(
    unit: &Unit,
    out: cardiaffect_io::ReadOutput,
    key: &str,
    files: Vec<FileHash>,
    cfg: &PrepareConfig,
    shards: &Path,
) -> Result<ShardInfo, CorpusError> {
    let mut info = ShardInfo {
        key: key.to_string(),
        unit: unit.path.display().to_string(),
        windows: 0,
        recordings: out.recordings.len(),
        skipped_trials: out.skipped.len(),
        skipped: BTreeMap::new(),
        dropped: BTreeMap::new(),
        warnings: out.warnings.clone(),
        label_scales: BTreeMap::new(),
        files,
        seconds: Some(out.recordings.iter().map(|r| r.duration_s()).sum()),
        checksums: BTreeMap::new(),
    };
    for s in &out.skipped {
        *info.skipped.entry(s.kind.to_string()).or_insert(0) += 1;
        info.warnings.push(format!(
            "{}: {} trial {} skipped: {}",
            s.source.display(),
            s.subject,
            s.trial,
            s.reason
        ));
    }
    let tmp = shards.join(format!("{key}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| CorpusError::Io {
            path: p.clone(),
            source: e,
        }
    };
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let create = |name: &str| -> Result<Hashing<BufWriter<fs::File>>, CorpusError> {
        let p = tmp.join(name);
        Ok(Hashing::new(BufWriter::new(
            fs::File::create(&p).map_err(io(&p))?,
        )))
    };
    let mut data = create(SHARD_FILES[0])?;
    let mut meta = create(SHARD_FILES[1])?;
    let mut dropped = create(SHARD_FILES[2])?;
    for rec in &out.recordings {
        for l in &rec.labels {
            info.label_scales
                .entry(l.name.clone())
                .or_insert(LabelScale {
                    min: l.scale.min,
                    max: l.scale.max,
                    description: l.scale.description.to_string(),
                    classes: l.scale.classes.clone(),
                    inferred: l.scale.inferred,
                });
        }
    }
    // Recordings of one file in parallel too (DREAMER is a single file); written in order.
    let windowed: Vec<Result<crate::Windows, CorpusError>> = out
        .recordings
        .par_iter()
        .map(|rec| window_recording(rec, cfg))
        .collect();
    for w in windowed {
        let w = w?;
        npy::write_values(&mut data, &w.data, crate::Dtype::F32).map_err(io(&tmp))?;
        for m in &w.meta {
            serde_json::to_writer(&mut meta, m).map_err(|e| CorpusError::Io {
                path: tmp.clone(),
                source: e.into(),
            })?;
            meta.write_all(b"\n").map_err(io(&tmp))?;
        }
        for d in &w.dropped {
            *info.dropped.entry(d.reason.clone()).or_insert(0) += 1;
            serde_json::to_writer(&mut dropped, d).map_err(|e| CorpusError::Io {
                path: tmp.clone(),
                source: e.into(),
            })?;
            dropped.write_all(b"\n").map_err(io(&tmp))?;
        }
        info.windows += w.meta.len();
        info.warnings.extend(w.warnings);
    }
    for (name, mut f) in SHARD_FILES.into_iter().zip([data, meta, dropped]) {
        f.flush().map_err(io(&tmp))?;
        f.inner.get_ref().sync_all().map_err(io(&tmp))?;
        info.checksums.insert(name.to_string(), f.hash.finish());
    }
    artifact::write_json_atomic(&tmp.join("shard.json"), &info)?;
    let dst = shards.join(key);
    let _ = fs::remove_dir_all(&dst);
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    Ok(info)
}

/// A finished shard, if `dir` holds one whose files still have their checksums (a damaged or
/// unverifiable shard is built again, and said so).
fn read_shard_info(dir: &Path) -> Option<ShardInfo> {
    let text = fs::read_to_string(dir.join("shard.json")).ok()?;
    let info: ShardInfo = match serde_json::from_str(&text) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                "{}: damaged shard record ({e}): building it again",
                dir.display()
            );
            return None;
        }
    };
    let list = artifact::Checksums {
        files: info.checksums.clone(),
    };
    let complete = list.covers(&SHARD_FILES) && info.seconds.is_some();
    match list.check(dir) {
        Ok(()) if complete => Some(info),
        Ok(()) => None,
        Err(e) => {
            tracing::warn!("{e}: building the shard again");
            None
        }
    }
}

pub fn validate(cfg: &PrepareConfig) -> Result<(), CorpusError> {
    let bad = |field: &'static str, expected: &str, found: String| {
        Err(CorpusError::Config {
            field,
            expected: expected.into(),
            found,
        })
    };
    if !(cfg.fs > 0.0 && cfg.fs.is_finite()) {
        return bad("prepare.fs", "a positive rate in Hz", cfg.fs.to_string());
    }
    if cfg.window_s.is_nan() || cfg.window_s <= 0.0 || cfg.window_len() < 16 {
        return bad(
            "prepare.window_s",
            "at least 16 samples at the target rate",
            format!("{} s", cfg.window_s),
        );
    }
    if cfg.stride_s.is_nan() || cfg.stride_s <= 0.0 {
        return bad(
            "prepare.stride_s",
            "a positive duration",
            format!("{} s", cfg.stride_s),
        );
    }
    if !(cfg.clean.low_hz > 0.0
        && cfg.clean.low_hz < cfg.clean.high_hz
        && cfg.clean.high_hz < cfg.fs / 2.0)
    {
        return bad(
            "prepare.clean",
            &format!(
                "a band 0 < low < high < {} Hz (half the target rate)",
                cfg.fs / 2.0
            ),
            format!("{},{}", cfg.clean.low_hz, cfg.clean.high_hz),
        );
    }
    Ok(())
}

/// Build (or bring up to date) the corpus in `out` from `sources`.
pub fn prepare(
    sources: &[Source],
    out: &Path,
    cfg: &PrepareConfig,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<PrepareReport, CorpusError> {
    validate(cfg)?;
    if sources.is_empty() {
        return Err(CorpusError::Config {
            field: "source",
            expected: "at least one FORMAT:PATH".into(),
            found: "none".into(),
        });
    }
    let _lock = crate::RunLock::acquire(out, "prepare")?;
    let shards_dir = out.join("shards");
    fs::create_dir_all(&shards_dir).map_err(|e| CorpusError::Io {
        path: shards_dir.clone(),
        source: e,
    })?;
    // What a killed run left half-written (its finished shards are kept and reused).
    artifact::remove_tmp(out);
    artifact::remove_tmp(&shards_dir);
    // Expand sources into units that can be read one at a time.
    let mut units = Vec::new();
    let mut formats = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let (format, paths) = read_units(&s.path, s.format)?;
        formats.push(format);
        for p in paths {
            units.push(Unit {
                source: i,
                format,
                path: p,
                opts: ReadOptions {
                    fs: s.fs,
                    lead: s.lead.clone(),
                    events: s.events.clone(),
                    baseline_s: s.baseline_s,
                    label_scales: s.label_scales.clone(),
                    zero_copy: false,
                },
            });
        }
    }
    progress(Progress::Units(units.len()));
    // Hash inputs and build or reuse shards, in parallel (one unit per worker: bounded memory).
    let known = HashCache::load(&shards_dir);
    let results: Vec<Result<(ShardInfo, bool), CorpusError>> = units
        .par_iter()
        .map(|u| -> Result<(ShardInfo, bool), CorpusError> {
            let mut paths = unit_files(&u.path, u.format)?;
            if let Some(EventSource::File(p)) = &u.opts.events {
                paths.push(p.clone());
            }
            // Files unchanged since the last run (same size and modification time) keep their hash.
            if let Some(files) = paths
                .iter()
                .map(|p| known.get(p))
                .collect::<Option<Vec<FileHash>>>()
            {
                let key = shard_key(u, cfg, &files);
                if let Some(info) = read_shard_info(&shards_dir.join(&key)) {
                    progress(Progress::UnitDone {
                        unit: &u.path,
                        windows: info.windows,
                        reused: true,
                    });
                    return Ok((info, true));
                }
            }
            // Hash and read at the same time: both are a pass over the same bytes.
            let (files, out) = rayon::join(
                || {
                    paths
                        .iter()
                        .map(|f| sha256_file(f))
                        .collect::<Result<Vec<_>, _>>()
                },
                || read(&u.path, u.format, &u.opts),
            );
            let files = files?;
            let key = shard_key(u, cfg, &files);
            let (info, reused) = match read_shard_info(&shards_dir.join(&key)) {
                Some(info) => (info, true),
                None => (
                    build_shard(u, out?.output, &key, files, cfg, &shards_dir)?,
                    false,
                ),
            };
            progress(Progress::UnitDone {
                unit: &u.path,
                windows: info.windows,
                reused,
            });
            Ok((info, reused))
        })
        .collect();
    let mut infos = Vec::with_capacity(results.len());
    let mut read_units_of = Vec::with_capacity(results.len());
    let mut unreadable: Vec<(usize, Unreadable)> = Vec::new();
    let mut reused_units = 0;
    if results.iter().any(|r| r.is_err()) {
        // The shards that failed half-way; the finished ones stay for the next run.
        artifact::remove_tmp(&shards_dir);
    }
    let mut first_err = None;
    for (u, r) in units.iter().zip(results) {
        match r {
            Ok((info, reused)) => {
                reused_units += reused as usize;
                infos.push(info);
                read_units_of.push(u);
            }
            // A unit that cannot be read is named and counted; the rest are prepared.
            Err(e) => match unreadable_reason(&e) {
                Some(reason) => {
                    unreadable.push((
                        u.source,
                        Unreadable {
                            unit: u.path.display().to_string(),
                            reason: reason.into(),
                            error: e.to_string(),
                        },
                    ));
                    first_err.get_or_insert(e);
                }
                None => return Err(e),
            },
        }
    }
    // Nothing readable at all: the reader's own error says best what is wrong.
    if infos.is_empty() {
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    HashCache::save(&shards_dir, infos.iter().flat_map(|i| i.files.iter()));
    // Manifest contents.
    let mut counts = Counts {
        windows: 0,
        recordings: 0,
        units: infos.len(),
        skipped_trials: 0,
        skipped: BTreeMap::new(),
        dropped: BTreeMap::new(),
        unreadable: BTreeMap::new(),
    };
    let label_scales = merge_scales(&infos)?;
    let mut warnings = Vec::new();
    for (_, u) in &unreadable {
        *counts.unreadable.entry(u.reason.clone()).or_insert(0) += 1;
        warnings.push(format!("{}: unreadable, not prepared: {}", u.unit, u.error));
    }
    for i in &infos {
        counts.windows += i.windows;
        counts.recordings += i.recordings;
        counts.skipped_trials += i.skipped_trials;
        for (k, v) in &i.skipped {
            *counts.skipped.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &i.dropped {
            *counts.dropped.entry(k.clone()).or_insert(0) += v;
        }
        warnings.extend(i.warnings.iter().cloned());
    }
    if counts.windows == 0 {
        return Err(CorpusError::Empty {
            recordings: counts.recordings,
            dropped: counts.dropped,
            skipped: counts.skipped_trials,
        });
    }
    let mut sources_out: Vec<SourceEntry> = sources
        .iter()
        .zip(&formats)
        .map(|(s, f)| SourceEntry {
            spec: s.spec(),
            format: f.name().into(),
            hours: 0.0,
            windows: 0,
            shards: Vec::new(),
            unreadable: Vec::new(),
        })
        .collect();
    for (source, u) in unreadable {
        sources_out[source].unreadable.push(u);
    }
    for (u, info) in read_units_of.iter().zip(&infos) {
        let mut info = info.clone();
        // Inferred and categorical scales are the corpus's, not each source file's.
        for (k, v) in info.label_scales.iter_mut() {
            if v.inferred || !v.classes.is_empty() {
                *v = label_scales[k].clone();
            }
        }
        let entry = &mut sources_out[u.source];
        entry.hours += info.seconds.unwrap_or(0.0) / 3600.0;
        entry.windows += info.windows;
        entry.shards.push(info);
    }
    let mut label_columns: Vec<String> = Vec::new();
    for i in &infos {
        for k in i.label_scales.keys() {
            if !label_columns.contains(k) {
                label_columns.push(k.clone());
            }
        }
    }
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        created_by: format!("cardiaffect {}", env!("CARGO_PKG_VERSION")),
        config: cfg.clone(),
        window_len: cfg.window_len(),
        counts,
        label_columns,
        label_scales,
        sources: sources_out,
        checksums: BTreeMap::new(),
    };
    // Up to date: the same manifest is already there, with files that match its checksums.
    let manifest_path = out.join("manifest.json");
    if let Some(old) = fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
    {
        let same = Manifest {
            checksums: BTreeMap::new(),
            ..old.clone()
        } == manifest;
        let intact = || {
            let list = artifact::Checksums {
                files: old.checksums.clone(),
            };
            list.covers(&CORPUS_FILES) && list.check(out).is_ok()
        };
        if same && intact() {
            // An earlier run may have stopped between the manifest and its checksum.
            artifact::Checksums::write(out, &["manifest.json"])?;
            return Ok(PrepareReport {
                manifest: old,
                reused_units,
                up_to_date: true,
                warnings,
            });
        }
    }
    progress(Progress::Assembling);
    manifest.checksums = assemble(out, &shards_dir, &infos, &manifest).inspect_err(|_| {
        artifact::remove_tmp(out);
    })?;
    artifact::write_json_atomic(&manifest_path, &manifest)?;
    // The manifest vouches for the corpus files; this list for the manifest.
    artifact::Checksums::write(out, &["manifest.json"])?;
    // Shards no longer part of this corpus are a stale cache.
    if let Ok(rd) = fs::read_dir(&shards_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !infos.iter().any(|i| i.key == name) && name != HashCache::FILE {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(PrepareReport {
        manifest,
        reused_units,
        up_to_date: false,
        warnings,
    })
}

/// The corpus files the manifest's checksums cover.
pub const CORPUS_FILES: [&str; 3] = ["windows.npy", "windows.csv", "dropped.csv"];

/// Stream the shards into `windows.npy`, `windows.csv` and `dropped.csv` (temporary names, then
/// renamed); returns their checksums.
fn assemble(
    out: &Path,
    shards_dir: &Path,
    infos: &[ShardInfo],
    m: &Manifest,
) -> Result<BTreeMap<String, String>, CorpusError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| CorpusError::Io {
            path: p.clone(),
            source: e,
        }
    };
    let npy_tmp = out.join("windows.npy.tmp");
    let csv_tmp = out.join("windows.csv.tmp");
    let drop_tmp = out.join("dropped.csv.tmp");
    let mut npy_w = Hashing::new(BufWriter::new(
        fs::File::create(&npy_tmp).map_err(io(&npy_tmp))?,
    ));
    npy_w
        .write_all(&npy::header(
            m.config.dtype.descr(),
            &[m.counts.windows, m.window_len],
        ))
        .map_err(io(&npy_tmp))?;
    let mut csv_w = Hashing::new(BufWriter::new(
        fs::File::create(&csv_tmp).map_err(io(&csv_tmp))?,
    ));
    let mut header: Vec<String> = std::iter::once("index")
        .chain(crate::META_COLUMNS)
        .map(str::to_string)
        .collect();
    for col in &m.label_columns {
        header.push(col.clone());
        header.extend(crate::corpus::class_name_column(m, col));
    }
    writeln!(
        csv_w,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    )
    .map_err(io(&csv_tmp))?;
    let mut drop_w = Hashing::new(BufWriter::new(
        fs::File::create(&drop_tmp).map_err(io(&drop_tmp))?,
    ));
    writeln!(drop_w, "source,subject,trial,start_s,reason").map_err(io(&drop_tmp))?;
    let mut index = 0usize;
    let mut buf = Vec::new();
    for info in infos {
        let dir = shards_dir.join(&info.key);
        // Windows: copy f32 or convert to f16, in blocks.
        let mut f = fs::File::open(dir.join("windows.f32")).map_err(io(&dir))?;
        let block = 4 * m.window_len * 256;
        loop {
            buf.resize(block, 0);
            let n = read_full(&mut f, &mut buf).map_err(io(&dir))?;
            if n == 0 {
                break;
            }
            // A corpus never holds a non-finite value (windowing drops them): a shard that
            // does is damaged, and is not copied on.
            if let Some(k) = buf[..n]
                .chunks_exact(4)
                .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
            {
                return Err(CorpusError::Corrupt {
                    path: dir.join("windows.f32"),
                    reason: format!("value {k} of a block is not finite"),
                });
            }
            match m.config.dtype {
                crate::Dtype::F32 => npy_w.write_all(&buf[..n]).map_err(io(&npy_tmp))?,
                crate::Dtype::F16 => {
                    let vals: Vec<f32> = buf[..n]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    npy::write_values(&mut npy_w, &vals, crate::Dtype::F16)
                        .map_err(io(&npy_tmp))?;
                }
            }
        }
        // This shard's class codes -> the corpus's.
        let remap: BTreeMap<&str, Vec<f64>> = info
            .label_scales
            .iter()
            .filter(|(_, s)| !s.classes.is_empty())
            .map(|(k, s)| {
                let all = &m.label_scales[k].classes;
                let codes = s
                    .classes
                    .iter()
                    .map(|c| {
                        all.iter()
                            .position(|g| g == c)
                            .map_or(f64::NAN, |p| p as f64)
                    })
                    .collect();
                (k.as_str(), codes)
            })
            .collect();
        let meta = fs::read_to_string(dir.join("meta.jsonl")).map_err(io(&dir))?;
        for line in meta.lines().filter(|l| !l.is_empty()) {
            let w: WindowMeta = serde_json::from_str(line).map_err(|e| CorpusError::Corrupt {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
            let mut row = vec![
                index.to_string(),
                csv_field(&w.dataset),
                csv_field(&w.source),
                csv_field(&w.subject),
                csv_field(&w.trial),
                csv_field(&w.segment),
                csv_field(&w.lead),
                fmt_num(w.start_s),
                fmt_num(w.hr_bpm),
                w.condition.map(|c| c.to_string()).unwrap_or_default(),
            ];
            for col in &m.label_columns {
                let value = w.labels.iter().find(|(n, _)| n == col).map(|(_, v)| {
                    match remap.get(col.as_str()) {
                        Some(codes) => codes.get(*v as usize).map_or(f64::NAN, |c| *c),
                        None => *v,
                    }
                });
                row.push(value.map(fmt_num).unwrap_or_default());
                // The class's name beside its index, for readers without the manifest.
                if crate::corpus::class_name_column(m, col).is_some() {
                    let classes = &m.label_scales[col].classes;
                    row.push(
                        value
                            .and_then(|v| crate::corpus::class_of(classes, v))
                            .map(csv_field)
                            .unwrap_or_default(),
                    );
                }
            }
            writeln!(csv_w, "{}", row.join(",")).map_err(io(&csv_tmp))?;
            index += 1;
        }
        let dropped = fs::read_to_string(dir.join("dropped.jsonl")).map_err(io(&dir))?;
        for line in dropped.lines().filter(|l| !l.is_empty()) {
            let d: Dropped = serde_json::from_str(line).map_err(|e| CorpusError::Corrupt {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
            writeln!(
                drop_w,
                "{},{},{},{},{}",
                csv_field(&d.source),
                csv_field(&d.subject),
                csv_field(&d.trial),
                fmt_num(d.start_s),
                d.reason
            )
            .map_err(io(&drop_tmp))?;
        }
    }
    if index != m.counts.windows {
        return Err(CorpusError::Corrupt {
            path: shards_dir.to_path_buf(),
            reason: format!(
                "shards hold {index} windows, their records say {}",
                m.counts.windows
            ),
        });
    }
    let mut sums = BTreeMap::new();
    for (mut w, tmp, name) in [
        (npy_w, npy_tmp, CORPUS_FILES[0]),
        (csv_w, csv_tmp, CORPUS_FILES[1]),
        (drop_w, drop_tmp, CORPUS_FILES[2]),
    ] {
        w.flush().map_err(io(&tmp))?;
        w.inner.get_ref().sync_all().map_err(io(&tmp))?;
        sums.insert(name.to_string(), w.hash.finish());
        drop(w);
        fs::rename(&tmp, out.join(name)).map_err(io(&tmp))?;
    }
    Ok(sums)
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Re-check a corpus folder: every checksum of its manifest, every window finite, the table
/// consistent (`prepare --verify DIR`). Returns the opened corpus.
pub fn verify(dir: &Path) -> Result<crate::Corpus, CorpusError> {
    let corpus = crate::Corpus::open_with(dir, crate::OpenOptions { verify: true })?;
    artifact::Checksums {
        files: corpus.manifest.checksums.clone(),
    }
    .check_file(dir, CORPUS_FILES[2])?;
    Ok(corpus)
}
