//! Hashes of the source files (what a shard's key is made of), remembered between runs while a
//! file's size and modification time are unchanged, and a writer that checksums what it writes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use cardiaffect_io::artifact::{self, Hasher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CorpusError;

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
pub(super) struct HashCache(BTreeMap<String, FileHash>);

impl HashCache {
    pub(super) const FILE: &'static str = "file-hashes.json";

    pub(super) fn load(shards: &Path) -> HashCache {
        let v: Vec<FileHash> = fs::read_to_string(shards.join(Self::FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        HashCache(v.into_iter().map(|f| (f.path.clone(), f)).collect())
    }

    pub(super) fn get(&self, path: &Path) -> Option<FileHash> {
        let f = self.0.get(&path.display().to_string())?;
        let size = fs::metadata(path).ok()?.len();
        (f.bytes == size && f.modified_ns != 0 && f.modified_ns == modified_ns(path))
            .then(|| f.clone())
    }

    pub(super) fn save<'a>(shards: &Path, files: impl Iterator<Item = &'a FileHash>) {
        let v: Vec<&FileHash> = files.collect();
        // A cache: losing it only costs re-hashing, so a failed write is not an error.
        let _ = artifact::write_json_atomic(&shards.join(Self::FILE), &v);
    }
}

pub(super) fn sha256_file(path: &Path) -> Result<FileHash, CorpusError> {
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

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A writer that hashes what passes through it (the checksum of a file as it is written).
pub(super) struct Hashing<W: Write> {
    pub(super) inner: W,
    pub(super) hash: Hasher,
}

impl<W: Write> Hashing<W> {
    pub(super) fn new(inner: W) -> Self {
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
