//! The append-only spool: one JSON line per write operation, the single ordered log that
//! the writer task commits from. The call path appends (one `write(2)` into the page cache,
//! no fsync, no database), so an operation survives `kill -9` the moment its method returns;
//! the writer task fsyncs before each batch and truncates the file only once everything in
//! it has been committed.
//!
//! The folder also records which database its operations are for (`owner.json`, see
//! [`claim`]): a spool is only ever replayed into its own database.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// Name of the spool file inside the spool folder.
pub(crate) const SPOOL_FILE: &str = "appeals.jsonl";
/// Operations the database refused (not transient failures) go here, never silently away.
pub(crate) const REJECTED_FILE: &str = "rejected.jsonl";
/// Which database the spool's operations are for (see [`claim`]).
pub(crate) const OWNER_FILE: &str = "owner.json";

/// What the spool records about the database it belongs to.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Owner {
    /// [`database_identity`] of the database's URL.
    database: String,
}

/// The database a URL names, written so that two spellings of one database compare equal
/// and no password is kept: `sqlite:` with the file's absolute path (symbolic links
/// followed where the folder exists), `postgres://user@host:port/name` (host, port, user
/// and database as the driver would connect, defaults and `PG*` variables included).
pub fn database_identity(url: &str) -> Result<String, Error> {
    match crate::db::Backend::from_url(url)? {
        crate::db::Backend::Sqlite => {
            let (path, _) = crate::db::sqlite_path(url);
            let Some(path) = path else {
                return Ok("sqlite::memory:".into());
            };
            let abs = std::path::absolute(&path).unwrap_or(path);
            // The deepest folder that exists, with its links resolved, and the rest as given:
            // the same before and after the database's folder is created.
            let real = abs
                .ancestors()
                .find_map(|a| {
                    let real = std::fs::canonicalize(a).ok()?;
                    let rest = abs.strip_prefix(a).ok()?;
                    // (joining an empty rest would add a trailing `/`)
                    Some(if rest.as_os_str().is_empty() {
                        real
                    } else {
                        real.join(rest)
                    })
                })
                .unwrap_or(abs);
            Ok(format!("sqlite:{}", real.display()))
        }
        crate::db::Backend::Postgres => {
            let o: sqlx::postgres::PgConnectOptions = url.parse()?;
            let host = match o.get_socket() {
                Some(socket) => socket.display().to_string(),
                None => o.get_host().to_owned(),
            };
            Ok(format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                host,
                o.get_port(),
                o.get_database().unwrap_or(o.get_username())
            ))
        }
    }
}

/// Complete lines in the spool file of `dir` (0 when there is none).
fn waiting_lines(dir: &Path) -> Result<u64, Error> {
    let path = dir.join(SPOOL_FILE);
    match File::open(&path) {
        Ok(mut f) => complete_prefix(&mut f)
            .map(|(_, lines)| lines)
            .map_err(|source| Error::Spool { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(Error::Spool { path, source }),
    }
}

fn read_owner(dir: &Path) -> Result<Option<String>, Error> {
    let path = dir.join(OWNER_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<Owner>(&bytes) {
            Ok(o) => Ok(Some(o.database)),
            Err(e) => Err(Error::Spool {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Spool { path, source }),
    }
}

fn write_owner(dir: &Path, database: &str) -> Result<(), Error> {
    let path = dir.join(OWNER_FILE);
    let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
    let err = |source| Error::Spool {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let body = serde_json::to_vec(&Owner {
        database: database.to_owned(),
    })
    .map_err(|e| err(io::Error::other(e)))?;
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(&body)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Makes sure the spool in `dir` is for the database `url` names, before anything reads it.
/// A spool with no owner yet (a new folder, or one from before owners were recorded) or
/// with nothing waiting is claimed for this database; a spool holding operations for another
/// database is refused with [`Error::SpoolOfAnotherDatabase`] and left as it is — it is
/// never replayed into the wrong database. [`adopt`] moves it on purpose.
pub fn claim(dir: &Path, url: &str) -> Result<(), Error> {
    let database = database_identity(url)?;
    match read_owner(dir)? {
        Some(owner) if owner == database => Ok(()),
        Some(owner) => {
            let waiting = waiting_lines(dir)?;
            if waiting == 0 {
                tracing::info!(spool = %dir.display(), from = %owner, to = %database, "the empty appeal spool now belongs to this database");
                write_owner(dir, &database)
            } else {
                Err(Error::SpoolOfAnotherDatabase {
                    dir: dir.to_owned(),
                    owner,
                    database,
                    waiting,
                })
            }
        }
        None => write_owner(dir, &database),
    }
}

/// Gives the spool in `dir`, whatever it holds, to the database `url` names: its waiting
/// operations are replayed into that database at the next start. Returns the previous owner
/// and how many operations wait. Only for a spool no daemon has open.
pub fn adopt(dir: &Path, url: &str) -> Result<(Option<String>, u64), Error> {
    let database = database_identity(url)?;
    let previous = read_owner(dir)?;
    let waiting = waiting_lines(dir)?;
    write_owner(dir, &database)?;
    Ok((previous, waiting))
}

/// The appending side, shared by every writer handle behind a mutex.
pub(crate) struct SpoolAppender {
    file: File,
    path: PathBuf,
    /// Bytes of complete lines in the file.
    pub(crate) len: u64,
    /// Lines that could not be written (disk full, …), kept in order until they can be.
    pending: VecDeque<Vec<u8>>,
}

impl SpoolAppender {
    /// Appends one complete line (ending in `\n`). Never fails: if the file cannot take it
    /// now, the line waits in memory, and so does every later line, to keep the order.
    /// Returns false when the line had to wait in memory.
    pub(crate) fn append(&mut self, line: Vec<u8>) -> bool {
        if !self.flush_pending() {
            self.pending.push_back(line);
            return false;
        }
        match self.write_line(&line) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot append to the appeal spool; keeping the operation in memory");
                self.pending.push_back(line);
                false
            }
        }
    }

    /// Writes lines that waited in memory. Returns true when none is left waiting.
    pub(crate) fn flush_pending(&mut self) -> bool {
        while let Some(line) = self.pending.front() {
            let line = line.clone();
            if self.write_line(&line).is_err() {
                return false;
            }
            self.pending.pop_front();
        }
        true
    }

    /// Lines waiting in memory because the file could not take them.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self.file.write_all(line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut off whatever part of the line got in, so the next line starts clean.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Empties the file; only call when every line in it has been committed.
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    /// A second handle on the same file, for fsync outside the lock.
    pub(crate) fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// Opens (creating) the spool in `dir`, drops a torn last line left by a crash in the
/// middle of a write, and returns the appender, a reader at the start, and how many
/// complete lines are waiting to be replayed.
pub(crate) fn open(dir: &Path) -> Result<(SpoolAppender, SpoolReader, u64), Error> {
    let spool_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Spool { path, source }
    };
    std::fs::create_dir_all(dir).map_err(spool_err(dir))?;
    let path = dir.join(SPOOL_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(spool_err(&path))?;
    let (len, lines) = complete_prefix(&mut file).map_err(spool_err(&path))?;
    let on_disk = file.metadata().map_err(spool_err(&path))?.len();
    if on_disk != len {
        tracing::warn!(path = %path.display(), dropped = on_disk - len, "dropping a torn last line from the appeal spool");
        file.set_len(len).map_err(spool_err(&path))?;
    }
    let reader = File::open(&path).map_err(spool_err(&path))?;
    Ok((
        SpoolAppender {
            file,
            path: path.clone(),
            len,
            pending: VecDeque::new(),
        },
        SpoolReader {
            file: reader,
            path,
            pos: 0,
        },
        lines,
    ))
}

/// Length of the file up to and including its last `\n`, and the number of lines.
fn complete_prefix(file: &mut File) -> io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut pos, mut end, mut lines) = (0u64, 0u64, 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((end, lines));
        }
        for (i, b) in buf.iter().take(n).enumerate() {
            if *b == b'\n' {
                lines += 1;
                end = pos + i as u64 + 1;
            }
        }
        pos += n as u64;
    }
}

/// One line read back from the spool.
pub(crate) struct SpoolLine {
    /// The line without its `\n`.
    pub(crate) bytes: Vec<u8>,
}

/// The writer task's read position in the spool.
pub(crate) struct SpoolReader {
    file: File,
    path: PathBuf,
    /// Offset of the first line not yet committed.
    pub(crate) pos: u64,
}

impl SpoolReader {
    /// Reads up to `max` complete lines from `pos`, never past `len` (the appender's count of
    /// complete bytes). Returns them and the offset just after the last one.
    pub(crate) fn read_batch(
        &mut self,
        max: usize,
        len: u64,
    ) -> Result<(Vec<SpoolLine>, u64), Error> {
        let err = |source| Error::Spool {
            path: self.path.clone(),
            source,
        };
        let mut lines = Vec::new();
        let mut end = self.pos;
        if len <= self.pos || max == 0 {
            return Ok((lines, end));
        }
        self.file.seek(SeekFrom::Start(self.pos)).map_err(err)?;
        // Read in chunks, so a long outage's spool is not loaded whole.
        let mut carry: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 256 * 1024];
        let mut read_to = self.pos;
        while lines.len() < max && read_to < len {
            let want =
                usize::try_from((len - read_to).min(chunk.len() as u64)).unwrap_or(chunk.len());
            let n = self.file.read(&mut chunk[..want]).map_err(err)?;
            if n == 0 {
                break;
            }
            read_to += n as u64;
            carry.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(nl) = carry[start..].iter().position(|b| *b == b'\n') {
                let line = carry[start..start + nl].to_vec();
                start += nl + 1;
                end += (nl + 1) as u64;
                lines.push(SpoolLine { bytes: line });
                if lines.len() == max {
                    break;
                }
            }
            carry.drain(..start);
        }
        Ok((lines, end))
    }
}

/// Appends a refused operation with the reason to `rejected.jsonl` beside the spool.
pub(crate) fn reject(dir: &Path, line: &[u8], reason: &str) {
    let path = dir.join(REJECTED_FILE);
    let raw = String::from_utf8_lossy(line);
    let op: serde_json::Value =
        serde_json::from_slice(line).unwrap_or(serde_json::Value::String(raw.into_owned()));
    let entry = serde_json::json!({ "error": reason, "op": op });
    let result = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{entry}"));
    if let Err(e) = result {
        tracing::error!(path = %path.display(), error = %e, op = %entry, "cannot record a rejected appeal operation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_dropped_and_lines_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SPOOL_FILE),
            b"{\"a\":1}\n{\"b\":2}\n{\"c\":",
        )
        .unwrap();
        let (app, mut reader, lines) = open(dir.path()).unwrap();
        assert_eq!(lines, 2);
        assert_eq!(app.len, 16);
        assert_eq!(
            std::fs::read(dir.path().join(SPOOL_FILE)).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        let (got, end) = reader.read_batch(10, app.len).unwrap();
        assert_eq!(end, 16);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].bytes, b"{\"b\":2}");
    }

    #[test]
    fn read_batch_respects_max_and_len() {
        let dir = tempfile::tempdir().unwrap();
        let (mut app, mut reader, _) = open(dir.path()).unwrap();
        for i in 0..5 {
            assert!(app.append(format!("{i}\n").into_bytes()));
        }
        let (got, end) = reader.read_batch(3, app.len).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(end, 6);
        reader.pos = end;
        // Only the first 8 bytes count as written: one more line.
        let (got, end) = reader.read_batch(10, 8).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, b"3");
        assert_eq!(end, 8);
        app.truncate().unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(SPOOL_FILE))
                .unwrap()
                .len(),
            0
        );
        assert!(app.append(b"x\n".to_vec()));
        assert_eq!(std::fs::read(dir.path().join(SPOOL_FILE)).unwrap(), b"x\n");
    }
}
