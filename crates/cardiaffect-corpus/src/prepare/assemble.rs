//! The corpus files from the shards: `windows.npy`, `windows.csv` and `dropped.csv` streamed
//! shard after shard (each shard's class codes mapped onto the corpus's), under temporary names
//! that are then renamed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::hashing::Hashing;
use super::manifest::{Manifest, ShardInfo, CORPUS_FILES};
use crate::window::{Dropped, WindowMeta};
use crate::{npy, CorpusError};

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

/// Stream the shards into `windows.npy`, `windows.csv` and `dropped.csv` (temporary names, then
/// renamed); returns their checksums.
pub(super) fn assemble(
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
