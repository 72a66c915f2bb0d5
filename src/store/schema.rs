//! Tables of the session file, and recognising our own files.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// `PRAGMA application_id`: "PySp".
pub const APPLICATION_ID: i32 = 0x5079_5370;
/// `PRAGMA user_version`: the schema version this build writes.
pub const SCHEMA_VERSION: i32 = 2;
/// The oldest version this build reads (version 1 has no `errors` table and no error samples).
pub const OLDEST_READABLE: i32 = 1;

/// The schema. Times are microseconds since the session's `start_unix_us` (meta table).
pub const CREATE: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE processes (
    id           INTEGER PRIMARY KEY,
    pid          INTEGER NOT NULL,
    parent       INTEGER REFERENCES processes(id),
    command_line TEXT NOT NULL,
    python       TEXT
);
CREATE TABLE threads (
    id           INTEGER PRIMARY KEY,
    process      INTEGER NOT NULL REFERENCES processes(id),
    thread_id    INTEGER NOT NULL,
    os_thread_id INTEGER
);
CREATE TABLE thread_names (
    thread   INTEGER NOT NULL REFERENCES threads(id),
    since_us INTEGER NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (thread, since_us)
);
CREATE TABLE frames (
    id         INTEGER PRIMARY KEY,
    function   TEXT NOT NULL,
    qualname   TEXT NOT NULL,
    filename   TEXT NOT NULL,
    short_filename TEXT,
    line       INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    module     TEXT
);
CREATE TABLE stacks (
    id     INTEGER PRIMARY KEY,
    frames BLOB NOT NULL
);
CREATE TABLE chunks (
    id       INTEGER PRIMARY KEY,
    start_us INTEGER NOT NULL,
    end_us   INTEGER NOT NULL,
    samples  INTEGER NOT NULL,
    data     BLOB NOT NULL
);
CREATE INDEX chunks_by_time ON chunks(start_us, end_us);
CREATE TABLE errors (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    stack   INTEGER REFERENCES stacks(id)
);
";

/// The first 16 bytes of every SQLite database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Open an existing session read-only, after checking it is one of ours, of a version we
/// read; returns the connection and the file's format version.
pub fn open_existing(path: &Path) -> Result<(Connection, i32)> {
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("could not open session file {}", path.display()))?;
        let n = f.read(&mut head).unwrap_or(0);
        if n < 16 || &head != SQLITE_MAGIC {
            bail!(
                "{} is not a py-spy session file (not an SQLite database)",
                path.display()
            );
        }
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("could not open session file {}", path.display()))?;
    let damaged = |e: rusqlite::Error| {
        anyhow::Error::from(e).context(format!(
            "{} is damaged (truncated or overwritten?)",
            path.display()
        ))
    };
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(damaged)?;
    if app != APPLICATION_ID {
        bail!(
            "{} is an SQLite database but not a py-spy session file",
            path.display()
        );
    }
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(damaged)?;
    if !(OLDEST_READABLE..=SCHEMA_VERSION).contains(&version) {
        bail!(
            "{} has session format version {version}; this py-spy reads versions \
             {OLDEST_READABLE} to {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok((conn, version))
}

/// The files SQLite keeps beside a session at `path` while it is open or after a crash: the
/// write-ahead log, its index and a rollback journal (`run.pyspy-wal`, ...: the suffix is
/// appended to the whole name, extension or not).
pub fn side_files(path: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Create a new session file (replacing any file at `path`) with the schema in place.
pub fn create(path: &Path) -> Result<Connection> {
    let [wal, shm, _] = side_files(path);
    for p in [path.to_path_buf(), wal, shm] {
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("could not replace {}", p.display()))?;
        }
    }
    let conn = Connection::open(path)
        .with_context(|| format!("could not create session file {}", path.display()))?;
    // WAL with FULL sync: each commit (at least once a second) survives a kill or power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // One transaction: one sync for the whole schema rather than one per statement.
    conn.execute_batch(&format!(
        "BEGIN; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; {CREATE} COMMIT;"
    ))
    .context("could not create the session tables")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::side_files;
    use std::path::{Path, PathBuf};

    #[test]
    fn side_files_append_to_the_whole_name() {
        let names = |p: &str| side_files(Path::new(p)).map(|f| f.display().to_string());
        assert_eq!(
            names("/tmp/run.pyspy"),
            [
                "/tmp/run.pyspy-wal",
                "/tmp/run.pyspy-shm",
                "/tmp/run.pyspy-journal"
            ]
        );
        // Without an extension: not "run.-wal".
        assert_eq!(side_files(Path::new("run"))[0], PathBuf::from("run-wal"));
        assert_eq!(
            side_files(Path::new("a.b/run"))[1],
            PathBuf::from("a.b/run-shm")
        );
    }
}
