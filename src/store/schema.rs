//! Tables of the session file, and recognising our own files.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// `PRAGMA application_id`: "PySp".
pub const APPLICATION_ID: i32 = 0x5079_5370;
/// `PRAGMA user_version`: the schema version this build writes.
pub const SCHEMA_VERSION: i32 = 3;
/// The oldest version this build reads (version 1 has no `errors` table and no error samples;
/// versions before 3 have no executables and no snapshot details).
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
    python       TEXT,
    executable   TEXT
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
CREATE TABLE snapshot_frames (
    t_us          INTEGER NOT NULL,
    thread        INTEGER NOT NULL REFERENCES threads(id),
    depth         INTEGER NOT NULL,
    is_entry      INTEGER NOT NULL,
    is_shim_entry INTEGER NOT NULL,
    locals        INTEGER,
    PRIMARY KEY (t_us, thread, depth)
) WITHOUT ROWID;
CREATE TABLE snapshot_locals (
    t_us     INTEGER NOT NULL,
    thread   INTEGER NOT NULL REFERENCES threads(id),
    depth    INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL,
    arg      INTEGER NOT NULL,
    addr     INTEGER NOT NULL,
    repr     TEXT,
    PRIMARY KEY (t_us, thread, depth, position)
) WITHOUT ROWID;
";

/// The first 16 bytes of every SQLite database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Open an existing session read-only, after checking it is one of ours, of a version we
/// read; returns the connection and the file's format version.
pub fn open_existing(path: &Path) -> Result<(Connection, i32)> {
    // A FIFO would block the open below forever, a device would be read as data.
    let meta = std::fs::metadata(path)
        .with_context(|| format!("could not open session file {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{} is {}, not a session file",
            path.display(),
            describe_file_type(&meta.file_type())
        );
    }
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
    fold_write_ahead_log(path);
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("could not open session file {}", path.display()))?;
    let damaged = |e: rusqlite::Error| {
        let [wal, _, _] = side_files(path);
        let folder = folder_of(path);
        if wal.exists() && !writable(folder) {
            // SQLite reads a write-ahead log through an index file it creates beside it.
            return anyhow::Error::from(e).context(format!(
                "{} was not closed (its capture was killed), and reading the samples in its \
                 {} needs a file SQLite creates in {}, which is not writable: copy both files \
                 to a writable folder",
                path.display(),
                wal.display(),
                folder.display()
            ));
        }
        anyhow::Error::from(e).context(format!(
            "{} is damaged (truncated or overwritten?)",
            path.display()
        ))
    };
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(damaged)?;
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(damaged)?;
    if app == 0 && tables == 0 {
        bail!(
            "{} holds no session yet: the capture writing it is just starting, or stopped \
             before its first commit",
            path.display()
        );
    }
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

/// A session whose capture was killed is still in WAL mode, and keeps its last commits in
/// `PATH-wal` (with an index in `PATH-shm`): fold them into the file and leave WAL mode, so
/// the session is one file again and reading it leaves no side file behind. Only when
/// nothing else has the session open (a capture still writing it keeps it as it is), and
/// only where the folder and file may be written; otherwise it is read as it is.
fn fold_write_ahead_log(path: &Path) {
    let [wal, _, _] = side_files(path);
    if !(wal.exists() || in_wal_mode(path)) || !writable(folder_of(path)) || !writable(path) {
        return;
    }
    let Ok(conn) = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
    else {
        return;
    };
    // Not ours, or not in WAL mode: left alone.
    let ours = conn
        .query_row("PRAGMA application_id", [], |r| r.get::<_, i32>(0))
        .is_ok_and(|id| id == APPLICATION_ID);
    if ours {
        // Leaving WAL mode needs every other connection closed: a live capture makes it
        // fail at once (no waiting), and nothing changes.
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        let _ = conn.pragma_update(None, "journal_mode", "DELETE");
    }
}

/// Whether the database header says WAL mode (its read and write versions are 2).
fn in_wal_mode(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head[18] == 2 && head[19] == 2)
}

/// The folder `path` is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Whether this process may write `path`: a file, or a folder to create files in.
pub fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads the NUL-terminated path only.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
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

/// Where a new session at `path` goes: `path` itself, or the file a symbolic link there
/// points at. A session is an SQLite database and needs a regular file: a device, a FIFO, a
/// directory or a socket at `path` is refused, never replaced.
pub fn session_target(path: &Path) -> Result<PathBuf> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(t) => t,
            // A dangling link: the file it names is created.
            Err(_) => std::fs::read_link(path)
                .map(|t| path.parent().unwrap_or(Path::new("")).join(t))
                .with_context(|| format!("could not read the link {}", path.display()))?,
        },
        _ => path.to_path_buf(),
    };
    let folder = folder_of(&target);
    if !folder.is_dir() {
        bail!(
            "cannot write the session {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
    }
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() => bail!(
            "{} is {}, not a regular file: a session file is an SQLite database and must be a \
             regular file (give another path with -o)",
            path.display(),
            describe_file_type(&m.file_type())
        ),
        _ => Ok(target),
    }
}

/// "a directory", "a character device", … for messages.
pub fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Create a new session file (replacing a regular file at `path`, or the regular file a link
/// there points at) with the schema in place.
pub fn create(path: &Path) -> Result<Connection> {
    let path = &session_target(path)?;
    let [wal, shm, _] = side_files(path);
    for p in [path.to_path_buf(), wal, shm] {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
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
    use super::{create, session_target, side_files};
    use std::path::{Path, PathBuf};

    #[test]
    fn devices_fifos_and_folders_are_refused_never_replaced() {
        for (path, what) in [("/dev/null", "a character device"), ("/tmp", "a directory")] {
            let err = create(Path::new(path)).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
            assert!(err.contains("must be a regular file"), "{err}");
        }
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let dir = std::env::temp_dir().join(format!("pyspy-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(create(&fifo).unwrap_err().to_string().contains("a FIFO"));
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        // A link to a regular file: the file is replaced, the link kept.
        let real = dir.join("real.pyspy");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.join("link.pyspy");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(session_target(&link).unwrap(), real.canonicalize().unwrap());
        drop(create(&link).unwrap());
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(
            std::fs::metadata(&real).unwrap().len() > 3,
            "the session went into the file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
