//! One data directory per daemon. `hotlined run` locks each folder it writes (the appeal
//! spool, the recordings) for its whole life, before any port is bound, so that a second
//! daemon pointed at the same folders refuses to start instead of replaying the first one's
//! spool or writing beside its recordings. The lock is `flock(2)` on `.hotlined.lock` in the
//! folder, which holds the pid of the daemon that has it; the kernel drops the lock when that
//! process ends, however it ends (`kill -9` included), so a stale file never blocks a start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file in each locked folder.
pub const LOCK_FILE: &str = ".hotlined.lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the folder.
    #[error("{} is in use by another hotlined ({}): give each daemon its own `database.spool_dir` and `recording.dir`", dir.display(), pid.map_or("pid unknown".to_owned(), |p| format!("pid {p}")))]
    Held {
        /// The folder.
        dir: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The folder or its lock file could not be made or opened.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A held folder; the lock goes with the value (or with the process).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    _file: File,
}

impl DirLock {
    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Creates `dir` if needed and locks it for this process, or says who holds it.
pub fn lock(dir: &Path) -> Result<DirLock, LockError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LockError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                dir,
                pid: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(io(&path)(e.into())),
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .map_err(io(&path))?;
    Ok(DirLock { dir, _file: file })
}

/// Locks every folder in `dirs` (a folder named twice is locked once).
pub fn lock_all<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<Vec<DirLock>, LockError> {
    let mut held: Vec<DirLock> = Vec::new();
    for dir in dirs {
        let same = std::fs::canonicalize(dir)
            .ok()
            .is_some_and(|c| held.iter().any(|h| h.dir == c));
        if !same {
            held.push(lock(dir)?);
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let first = lock(&spool).unwrap();
        assert_eq!(
            std::fs::read_to_string(spool.join(LOCK_FILE)).unwrap(),
            format!("{}\n", std::process::id())
        );
        // flock(2) locks belong to the open file: a second open in this process conflicts
        // just as another process would.
        match lock(&spool) {
            Err(LockError::Held { dir, pid }) => {
                assert_eq!(dir, std::fs::canonicalize(&spool).unwrap());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("not refused: {other:?}"),
        }
        drop(first);
        let again = lock(&spool).unwrap();
        assert_eq!(again.dir(), std::fs::canonicalize(&spool).unwrap());
    }

    #[test]
    fn one_folder_named_twice_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_all([dir.path(), dir.path(), &dir.path().join("rec")]).unwrap();
        assert_eq!(held.len(), 2);
    }
}
