//! One writer per run folder: an advisory lock (`flock`) on `FOLDER/.cardiaffect.lock`, which
//! holds the writer's pid, host and command while it runs.
//!
//! The kernel drops the lock when its process ends, however it ends, so a lock left by a killed
//! run never blocks: the next writer takes it over and says so. On release the file is emptied
//! (not removed: removing a lock file races with a writer that has just opened it).

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".cardiaffect.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{dir} is being written by another cardiaffect ({holder}); wait for it to finish, or give another ‹out›")]
    Held { dir: PathBuf, holder: String },
    #[error("{path}: cannot take the folder's lock")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while a run writes its folder; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: fs::File,
    path: PathBuf,
    /// Who held it before, if the lock was left by a process that is gone.
    pub taken_over: Option<String>,
}

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

fn describe(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        "a process that did not say who it is".into()
    } else {
        t.to_string()
    }
}

impl RunLock {
    /// Take `dir`'s lock for `command` (created with the folder if need be); an error names the
    /// process that holds it.
    pub fn acquire(dir: &Path, command: &str) -> Result<RunLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |e| LockError::Io {
            path: path.clone(),
            source: e,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: describe(&text),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut before = String::new();
        let _ = file.read_to_string(&mut before);
        let taken_over = (!before.trim().is_empty()).then(|| describe(&before));
        if let Some(old) = &taken_over {
            tracing::warn!(
                "{}: taking over the lock of {old}, which is no longer running (it was stopped before it finished)",
                dir.display()
            );
        }
        let me = format!(
            "pid {} on {}, `cardiaffect {command}`\n",
            std::process::id(),
            host()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(RunLock {
            file,
            path,
            taken_over,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Empty = released cleanly; the kernel releases the flock itself when the file closes.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named() {
        let d = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(d.path(), "prepare").unwrap();
        assert!(first.taken_over.is_none());
        // flock locks belong to the open file, so a second open in this process conflicts too.
        let e = RunLock::acquire(d.path(), "prepare").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("cardiaffect prepare"), "{text}");
        drop(first);
        let again = RunLock::acquire(d.path(), "prepare").unwrap();
        assert!(again.taken_over.is_none(), "a clean release is not stale");
    }

    #[test]
    fn a_lock_left_by_a_gone_process_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        // What a killed writer leaves: its line in the file, no flock held.
        fs::write(
            d.path().join(LOCK_FILE),
            "pid 999999 on elsewhere, `cardiaffect pretrain`\n",
        )
        .unwrap();
        let l = RunLock::acquire(d.path(), "pretrain").unwrap();
        assert!(l.taken_over.as_deref().unwrap().contains("pid 999999"));
        let now = fs::read_to_string(l.path()).unwrap();
        assert!(
            now.contains(&format!("pid {}", std::process::id())),
            "{now}"
        );
    }
}
