//! One shard per readable unit: its key (the config, the unit's reading options and its files'
//! hashes), built into `shards/<key>/` (windows, metadata, dropped windows, their checksums) or
//! reused where an intact shard with that key is already there.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use cardiaffect_io::artifact;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::hashing::{hex, FileHash, Hashing};
use super::manifest::{LabelScale, ShardInfo};
use super::sources::Unit;
use crate::window::window_recording;
use crate::{npy, CorpusError, PrepareConfig, FORMAT_VERSION};

/// The files of a shard folder that its `checksums` cover.
const SHARD_FILES: [&str; 3] = ["windows.f32", "meta.jsonl", "dropped.jsonl"];

pub(super) fn shard_key(unit: &Unit, cfg: &PrepareConfig, files: &[FileHash]) -> String {
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
pub(super) fn build_shard(
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
pub(super) fn read_shard_info(dir: &Path) -> Option<ShardInfo> {
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
