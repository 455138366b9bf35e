//! Files cardiaffect writes, written so that nothing is half-written, silently changed or lost.
//!
//! - [`write_atomic`]: the bytes go to `NAME.tmp` beside the target, are synced, then renamed
//!   over it; a failed write removes its temporary file and leaves the old file as it was.
//! - [`write_json_atomic`]: the same for anything `Serialize` (an error, never an empty file).
//! - [`replace_dir`]: a folder completed under a temporary name is swapped in with one rename
//!   (Linux `renameat2(RENAME_EXCHANGE)`), so a reader sees the old folder or the new, never a mix.
//! - [`Checksums`]: `checksums.json` beside a folder's files (XXH3-128 of each), written last and
//!   checked by the readers: a flipped byte is an error naming the file.
//! - [`remove_tmp`]: the `*.tmp` leftovers of a killed writer, removed before a run resumes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A file or folder that could not be written. The cause is the error's source (said once).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WriteError {
            path: path.into(),
            source,
        }
    }
}

/// An artifact whose bytes are not the ones written (or that is missing).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: damaged: its checksum is {found}, {listed_in} says {expected} (the file changed after it was written)")]
    Mismatch {
        path: PathBuf,
        listed_in: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: missing, though {listed_in} lists it")]
    Missing { path: PathBuf, listed_in: PathBuf },
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: damaged: not a checksum list: {reason}")]
    List { path: PathBuf, reason: String },
}

/// `path` with `.tmp` appended to its whole name (`model.safetensors` -> `model.safetensors.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        WriteError::new(path, e)
    })
}

/// `value` as pretty JSON, written atomically. A value that does not serialise is an error.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), WriteError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| WriteError::new(path, std::io::Error::other(e)))?;
    write_atomic(path, &bytes)
}

/// Remove the `*.tmp` files and folders directly inside `dir` (what a killed writer left).
/// Returns how many were removed. Only call it while holding the folder's lock.
pub fn remove_tmp(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            let p = e.path();
            let gone = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            n += gone.is_ok() as usize;
        }
    }
    n
}

/// Put the completed folder `new` at `dst` in one step; the old `dst`, if any, is removed after.
/// A reader that opened files of the old folder keeps reading the old folder's files.
pub fn replace_dir(new: &Path, dst: &Path) -> Result<(), WriteError> {
    if fs::symlink_metadata(dst).is_err() {
        return fs::rename(new, dst).map_err(|e| WriteError::new(dst, e));
    }
    if exchange(new, dst).is_err() {
        // No atomic exchange here (not Linux, or a filesystem without it): move the old folder
        // aside first; a reader may then briefly find no folder, never a half-written one.
        // `NAME.old`, not `.tmp`: a reader can still fall back on it after a crash right here.
        let mut name = dst.file_name().unwrap_or_default().to_os_string();
        name.push(".old");
        let old = dst.with_file_name(name);
        let _ = fs::remove_dir_all(&old);
        fs::rename(dst, &old).map_err(|e| WriteError::new(dst, e))?;
        fs::rename(new, dst).map_err(|e| WriteError::new(dst, e))?;
        let _ = fs::remove_dir_all(&old);
        return Ok(());
    }
    // `new` now names the old folder.
    let _ = fs::remove_dir_all(new);
    Ok(())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two NUL-terminated paths, relative to the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Identity of a folder: changes when [`replace_dir`] swaps another in. The inode's change
/// time is part of it because a removed folder's inode number is soon reused.
pub fn dir_identity(dir: &Path) -> Option<(u64, u64, i64, i64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(dir)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
    }
    #[cfg(not(unix))]
    {
        fs::metadata(dir)
            .ok()
            .and_then(|m| m.modified().ok())
            .map(|t| {
                let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                (0, 0, d.as_secs() as i64, d.subsec_nanos() as i64)
            })
    }
}

/// Read a folder with `load`, again if it was replaced meanwhile (so that every file read comes
/// from the same folder).
pub fn read_consistent<T, E>(dir: &Path, mut load: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut tries = 0;
    loop {
        let before = dir_identity(dir);
        let r = load();
        tries += 1;
        // A model folder is replaced once per run: two swaps within one read are rare, and a
        // reader that keeps losing the race waits a little.
        if dir_identity(dir) == before || tries >= 50 {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(tries));
    }
}

/// The checksum cardiaffect records: XXH3-128 (about 10 GB/s on one core), as `xxh3-128:HEX`.
pub fn checksum(bytes: &[u8]) -> String {
    format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// A running checksum over bytes given in pieces.
pub struct Hasher(xxhash_rust::xxh3::Xxh3);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(xxhash_rust::xxh3::Xxh3::new())
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(&self) -> String {
        format!("xxh3-128:{:032x}", self.0.digest128())
    }
}

/// The checksum of a file's bytes, read in blocks.
pub fn checksum_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// `checksums.json`: file name -> checksum, for the files of one folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Checksums {
    pub files: BTreeMap<String, String>,
}

impl Checksums {
    pub const FILE: &'static str = "checksums.json";

    /// Hash the named files of `dir` (those present; a name that is absent is left out).
    pub fn of(dir: &Path, names: &[&str]) -> Result<Checksums, VerifyError> {
        let mut files = BTreeMap::new();
        for name in names {
            let p = dir.join(name);
            if !p.exists() {
                continue;
            }
            let sum = checksum_file(&p).map_err(|e| VerifyError::Read {
                path: p.clone(),
                source: e,
            })?;
            files.insert(name.to_string(), sum);
        }
        Ok(Checksums { files })
    }

    /// Hash the named files of `dir` and write `dir/checksums.json` (after the files: a crash
    /// in between leaves files the list does not vouch for, which a resume writes again).
    pub fn write(dir: &Path, names: &[&str]) -> Result<Checksums, WriteError> {
        let sums = Checksums::of(dir, names).map_err(|e| match e {
            VerifyError::Read { path, source } => WriteError::new(path, source),
            other => WriteError::new(dir, std::io::Error::other(other.to_string())),
        })?;
        write_json_atomic(&dir.join(Self::FILE), &sums)?;
        Ok(sums)
    }

    /// The list in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Checksums>, VerifyError> {
        let p = dir.join(Self::FILE);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VerifyError::Read { path: p, source: e }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| VerifyError::List {
                path: p,
                reason: e.to_string(),
            })
    }

    /// Check `dir`'s files against its `checksums.json`; a folder without one passes (made by
    /// hand or by another tool), so does a file the list does not name.
    pub fn verify(dir: &Path) -> Result<(), VerifyError> {
        match Checksums::load(dir)? {
            Some(list) => list.check(dir),
            None => Ok(()),
        }
    }

    /// Check every listed file of `dir`.
    pub fn check(&self, dir: &Path) -> Result<(), VerifyError> {
        for name in self.files.keys() {
            self.check_file(dir, name)?;
        }
        Ok(())
    }

    /// Check one listed file (a name the list does not hold passes).
    pub fn check_file(&self, dir: &Path, name: &str) -> Result<(), VerifyError> {
        let Some(expected) = self.files.get(name) else {
            return Ok(());
        };
        let p = dir.join(name);
        let found = match checksum_file(&p) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VerifyError::Missing {
                    path: p,
                    listed_in: dir.join(Self::FILE),
                })
            }
            Err(e) => return Err(VerifyError::Read { path: p, source: e }),
        };
        self.compare(dir, name, expected, found)
    }

    /// Check the bytes of listed file `name` that the caller has already read (a name the list
    /// does not hold passes).
    pub fn check_bytes(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), VerifyError> {
        match self.files.get(name) {
            Some(expected) => self.compare(dir, name, expected, checksum(bytes)),
            None => Ok(()),
        }
    }

    /// Whether the list names every one of `names`.
    pub fn covers(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.files.contains_key(*n))
    }

    fn compare(
        &self,
        dir: &Path,
        name: &str,
        expected: &str,
        found: String,
    ) -> Result<(), VerifyError> {
        if found != expected {
            return Err(VerifyError::Mismatch {
                path: dir.join(name),
                listed_in: dir.join(Self::FILE),
                expected: expected.to_string(),
                found,
            });
        }
        Ok(())
    }
}

/// Write the folder `dst` whole: `fill` writes its files into `DST.tmp/`, their checksums
/// (of `names`, those present) go into its `checksums.json`, and the folder is swapped in with
/// [`replace_dir`]. On failure the temporary folder is removed and `dst` stays as it was.
pub fn write_dir<E: From<WriteError>>(
    dst: &Path,
    names: &[&str],
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = tmp_path(dst);
    let _ = fs::remove_dir_all(&tmp);
    let written = (|| {
        fs::create_dir_all(&tmp).map_err(|e| WriteError::new(&tmp, e))?;
        fill(&tmp)?;
        Checksums::write(&tmp, names)?;
        replace_dir(&tmp, dst)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

/// Where files shipped inside cardiaffect are unpacked: `$CARDIAFFECT_CACHE`, else
/// `~/.cache/cardiaffect`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARDIAFFECT_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("cardiaffect")
}

/// Unpack shipped `(relative path, bytes)` under `root`, leaving files that already hold the
/// same bytes (a damaged copy is replaced by content, not size). The cache is shared by every
/// cardiaffect process, so each writes under a temporary name of its own, then renames.
pub fn unpack(root: &Path, files: &[(&str, &[u8])]) -> Result<(), WriteError> {
    for (rel, bytes) in files {
        let p = root.join(rel);
        if fs::read(&p).is_ok_and(|b| b == *bytes) {
            continue;
        }
        let dir = p.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| WriteError::new(dir, e))?;
        let mut name = p.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        let tmp = p.with_file_name(name);
        fs::write(&tmp, bytes).map_err(|e| WriteError::new(&tmp, e))?;
        fs::rename(&tmp, &p).map_err(|e| WriteError::new(&p, e))?;
    }
    Ok(())
}

/// Every message of an error chain, each once, joined by ": " (for places that print an error
/// without `anyhow`).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_tmp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_tmp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"old").unwrap();
        // The rename cannot replace a folder: the write fails after the temporary file exists.
        let q = d.path().join("folder");
        fs::create_dir(&q).unwrap();
        fs::write(q.join("x"), b"x").unwrap();
        let e = write_atomic(&q, b"new").unwrap_err();
        assert!(e.to_string().contains("folder"), "{e}");
        assert!(!tmp_path(&q).exists());
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn an_error_says_its_cause_once() {
        let d = tempfile::tempdir().unwrap();
        let e = write_atomic(&d.path().join("no/such/dir/a.json"), b"x").unwrap_err();
        let text = chain(&e);
        let cause = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        assert!(!e.to_string().contains("No such file"), "{e}");
        assert_eq!(text.matches("No such file").count(), 1, "{text} ({cause})");
    }

    #[test]
    fn replace_dir_swaps_whole_folders() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("model");
        let new = d.path().join("model.tmp");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("a"), b"1").unwrap();
        replace_dir(&new, &dst).unwrap();
        assert_eq!(fs::read(dst.join("a")).unwrap(), b"1");
        let id = dir_identity(&dst);
        fs::create_dir(&new).unwrap();
        fs::write(new.join("b"), b"2").unwrap();
        replace_dir(&new, &dst).unwrap();
        assert!(!dst.join("a").exists(), "the old folder's files are gone");
        assert_eq!(fs::read(dst.join("b")).unwrap(), b"2");
        assert_ne!(dir_identity(&dst), id);
        assert!(!new.exists());
    }

    #[test]
    fn a_reader_never_mixes_files_of_two_folders_swapped_in_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("model");
        let target = dst.clone();
        let write = move |g: usize| {
            let dst = &target;
            let tmp = tmp_path(dst);
            fs::create_dir_all(&tmp).unwrap();
            fs::write(tmp.join("a"), g.to_string()).unwrap();
            fs::write(tmp.join("b"), g.to_string()).unwrap();
            replace_dir(&tmp, dst).unwrap();
        };
        write(0);
        let writer = std::thread::spawn(move || {
            for g in 1..300 {
                write(g);
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let mut reads = 0;
        while !writer.is_finished() {
            let pair = read_consistent(&dst, || {
                let a = fs::read_to_string(dst.join("a"))?;
                std::thread::yield_now();
                let b = fs::read_to_string(dst.join("b"))?;
                Ok::<_, std::io::Error>((a, b))
            });
            // A read may find the folder mid-swap only on systems without the atomic exchange.
            if let Ok((a, b)) = pair {
                assert_eq!(a, b, "files of two generations read together");
                reads += 1;
            }
        }
        writer.join().unwrap();
        assert!(reads > 0);
    }

    #[test]
    fn write_dir_swaps_in_a_whole_folder_or_leaves_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("model");
        write_dir(&dst, &["a"], |t| write_atomic(&t.join("a"), b"1")).unwrap();
        Checksums::verify(&dst).unwrap();
        assert!(Checksums::load(&dst).unwrap().unwrap().covers(&["a"]));
        let e = write_dir(&dst, &["a"], |t| {
            write_atomic(&t.join("a"), b"2")?;
            Err(WriteError::new(t, std::io::Error::other("fill failed")))
        });
        assert!(e.is_err());
        assert_eq!(
            fs::read(dst.join("a")).unwrap(),
            b"1",
            "the old folder stays"
        );
        assert!(!tmp_path(&dst).exists(), "no temporary folder left");
    }

    #[test]
    fn checksums_catch_a_flipped_byte_and_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("w.bin"), vec![7u8; 10_000]).unwrap();
        fs::write(d.path().join("c.json"), b"{}").unwrap();
        Checksums::write(d.path(), &["w.bin", "c.json", "absent"]).unwrap();
        Checksums::verify(d.path()).unwrap();
        let mut b = fs::read(d.path().join("w.bin")).unwrap();
        b[5000] ^= 0x10;
        fs::write(d.path().join("w.bin"), &b).unwrap();
        let e = Checksums::verify(d.path()).unwrap_err();
        assert!(matches!(e, VerifyError::Mismatch { .. }));
        assert!(e.to_string().contains("w.bin"), "{e}");
        fs::remove_file(d.path().join("w.bin")).unwrap();
        assert!(matches!(
            Checksums::verify(d.path()).unwrap_err(),
            VerifyError::Missing { .. }
        ));
    }

    #[test]
    fn checksum_matches_the_reference_xxh3_128() {
        // From the reference implementation (Python `xxhash.xxh3_128_hexdigest`).
        assert_eq!(checksum(b""), "xxh3-128:99aa06d3014798d86001c324468d497f");
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), checksum(b"abc"));
        assert_eq!(h.finish(), "xxh3-128:06b05ab6733a618578af5f94892f3950");
    }

    #[test]
    fn remove_tmp_takes_files_and_folders() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.json.tmp"), b"x").unwrap();
        fs::create_dir(d.path().join("checkpoint.tmp")).unwrap();
        fs::write(d.path().join("keep.json"), b"x").unwrap();
        assert_eq!(remove_tmp(d.path()), 2);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
