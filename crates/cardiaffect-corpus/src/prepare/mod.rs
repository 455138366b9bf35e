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
//!
//! Here [`prepare()`] runs the steps: `sources` expands the sources into units, `hashing`
//! hashes their files, `shards` builds or reuses a shard per unit, `assemble` writes the corpus
//! files from the shards; `manifest` holds what the manifest records.

mod assemble;
mod hashing;
pub(crate) mod manifest;
mod shards;
mod sources;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cardiaffect_io::artifact;
use cardiaffect_io::{read, unit_files, EventSource};
use rayon::prelude::*;

pub use hashing::FileHash;
pub use manifest::{
    Counts, LabelScale, Manifest, ShardInfo, SourceEntry, Unreadable, CORPUS_FILES,
};
pub use sources::Source;

use crate::{CorpusError, PrepareConfig, FORMAT_VERSION};

use assemble::assemble;
use hashing::{sha256_file, HashCache};
use manifest::merge_scales;
use shards::{build_shard, read_shard_info, shard_key};
use sources::{units_of, unreadable_reason};

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
    let (formats, units) = units_of(sources)?;
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
