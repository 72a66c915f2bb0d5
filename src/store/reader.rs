//! Reading a session: its tables in memory, its samples streamed chunk by chunk.

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};
use std::collections::BTreeMap;
use std::path::Path;

use super::chunk::{self, Sample};
use super::meta::SessionMeta;
use super::schema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRow {
    pub function: String,
    pub qualname: String,
    pub filename: String,
    pub short_filename: Option<String>,
    pub line: i32,
    pub first_line: i32,
    pub module: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProcessRow {
    /// The row's id (`processes.id`, its index in `Session::processes`).
    pub id: u32,
    pub pid: i32,
    pub parent: Option<u32>,
    pub command_line: String,
    pub python: Option<String>,
    /// The executable (`/proc/PID/exe`), from format version 3 on.
    pub executable: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ThreadRow {
    pub process: u32,
    pub thread_id: u64,
    pub os_thread_id: Option<u64>,
    /// (since_us, name), oldest first: names can change during a capture.
    pub names: Vec<(u64, String)>,
}

impl ThreadRow {
    /// The thread's name at time `t_us`.
    pub fn name_at(&self, t_us: u64) -> Option<&str> {
        self.names
            .iter()
            .rev()
            .find(|(since, _)| *since <= t_us)
            .or(self.names.first())
            .map(|(_, n)| n.as_str())
    }
}

/// Deepest stack a session may hold: the walker stops at 4,096 Python frames; room is left
/// for native frames. A deeper one is damage, and would make outputs huge.
pub const MAX_STACK_DEPTH: usize = 16_384;

/// Which samples to read.
#[derive(Debug, Clone, Default)]
pub struct SampleFilter {
    /// Only samples at or after this time (µs since start).
    pub from_us: Option<u64>,
    /// Only samples at or before this time (µs since start).
    pub to_us: Option<u64>,
    /// Only these processes (pids).
    pub pids: Option<Vec<i32>>,
    /// Only these threads (row ids in `threads`).
    pub threads: Option<Vec<u32>>,
}

/// Why a thread's stack could not be read (an error sample's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// Short, stable name: `stack_changed`, `frame_unreadable`, `code_unreadable`,
    /// `snapshot_failed`.
    pub kind: String,
    /// For people.
    pub message: String,
    /// The innermost frames read before the chain broke off (a `stacks.id`), if any.
    pub stack: Option<u32>,
}

/// An open session file. Ids in samples index `frames`, `stacks` (or, for error samples,
/// `errors`), `threads`, `processes`.
pub struct Session {
    conn: Connection,
    /// The file's format version.
    pub version: i32,
    pub meta: SessionMeta,
    pub processes: Vec<ProcessRow>,
    pub threads: Vec<ThreadRow>,
    pub frames: Vec<FrameRow>,
    /// Frame ids of each stack, innermost first.
    pub stacks: Vec<Vec<u32>>,
    /// Reasons of error samples (empty in version 1 files).
    pub errors: Vec<ErrorRow>,
}

fn dense<T>(rows: Vec<(i64, T)>, table: &str) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, (id, row)) in rows.into_iter().enumerate() {
        if id != i as i64 {
            bail!("the {table} table has a gap at id {i} (damaged file?)");
        }
        out.push(row);
    }
    Ok(out)
}

impl Session {
    pub fn open(path: &Path) -> Result<Session> {
        let (conn, version) = schema::open_existing(path)?;
        let ctx = || format!("could not read session file {}", path.display());
        let meta = conn
            .prepare("SELECT key, value FROM meta")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<BTreeMap<String, String>>>()
            .with_context(ctx)?;
        let meta = SessionMeta::from_rows(meta);
        let executable = if version >= 3 { "executable" } else { "NULL" };
        let processes = conn
            .prepare(&format!(
                "SELECT id, pid, parent, command_line, python, {executable} FROM processes \
                 ORDER BY id"
            ))?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    ProcessRow {
                        id: r.get(0)?,
                        pid: r.get(1)?,
                        parent: r.get(2)?,
                        command_line: r.get(3)?,
                        python: r.get(4)?,
                        executable: r.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(ctx)?;
        let mut threads = dense(
            conn.prepare("SELECT id, process, thread_id, os_thread_id FROM threads ORDER BY id")?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        ThreadRow {
                            process: r.get(1)?,
                            thread_id: r.get::<_, i64>(2)? as u64,
                            os_thread_id: r.get::<_, Option<i64>>(3)?.map(|t| t as u64),
                            names: Vec::new(),
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
                .with_context(ctx)?,
            "threads",
        )?;
        let names = conn
            .prepare("SELECT thread, since_us, name FROM thread_names ORDER BY thread, since_us")?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(ctx)?;
        for (thread, since, name) in names {
            if let Some(t) = threads.get_mut(thread as usize) {
                t.names.push((since as u64, name));
            }
        }
        let frames = dense(
            conn.prepare(
                "SELECT id, function, qualname, filename, short_filename, line, first_line, module \
                 FROM frames ORDER BY id",
            )?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    FrameRow {
                        function: r.get(1)?,
                        qualname: r.get(2)?,
                        filename: r.get(3)?,
                        short_filename: r.get(4)?,
                        line: r.get(5)?,
                        first_line: r.get(6)?,
                        module: r.get(7)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(ctx)?,
            "frames",
        )?;
        let stacks = dense(
            conn.prepare("SELECT id, frames FROM stacks ORDER BY id")?
                .query_map([], |r| {
                    let blob: Vec<u8> = r.get(1)?;
                    let ids = blob
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect::<Vec<u32>>();
                    Ok((r.get::<_, i64>(0)?, ids))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
                .with_context(ctx)?,
            "stacks",
        )?;
        for s in &stacks {
            if s.iter().any(|f| *f as usize >= frames.len()) {
                bail!("a stack names a frame that is not stored (damaged file?)");
            }
            if s.len() > MAX_STACK_DEPTH {
                bail!(
                    "a stack has {} frames, more than a capture writes ({MAX_STACK_DEPTH}) \
                     (damaged file?)",
                    s.len()
                );
            }
        }
        let errors = if version >= 2 {
            dense(
                conn.prepare("SELECT id, kind, message, stack FROM errors ORDER BY id")?
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            ErrorRow {
                                kind: r.get(1)?,
                                message: r.get(2)?,
                                stack: r.get(3)?,
                            },
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .with_context(ctx)?,
                "errors",
            )?
        } else {
            Vec::new()
        };
        if errors
            .iter()
            .any(|e| e.stack.is_some_and(|s| s as usize >= stacks.len()))
        {
            bail!("an error names a stack that is not stored (damaged file?)");
        }
        let processes = dense(processes, "processes")?;
        Ok(Session {
            conn,
            version,
            errors,
            meta,
            processes,
            threads,
            frames,
            stacks,
        })
    }

    /// Samples matching `filter`, in time order, a chunk at a time (memory stays bounded).
    pub fn samples(&self, filter: &SampleFilter) -> Result<SampleIter<'_>> {
        let from = filter.from_us.unwrap_or(0) as i64;
        let to = filter
            .to_us
            .map_or(i64::MAX, |t| t.min(i64::MAX as u64) as i64);
        let chunks = self
            .conn
            .prepare(
                "SELECT id FROM chunks WHERE end_us >= ?1 AND start_us <= ?2 ORDER BY start_us, id",
            )?
            .query_map(params![from, to], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .context("could not list the sample chunks")?;
        let allowed_threads = filter.threads.clone().map(|ts| {
            let mut v = vec![false; self.threads.len()];
            for t in ts {
                if let Some(x) = v.get_mut(t as usize) {
                    *x = true;
                }
            }
            v
        });
        let allowed_pids = filter.pids.clone();
        Ok(SampleIter {
            session: self,
            chunks,
            next_chunk: 0,
            current: Vec::new().into_iter(),
            from: from as u64,
            to: to as u64,
            allowed_threads,
            allowed_pids,
        })
    }

    /// Total number of samples, from the chunk index (no decoding).
    pub fn sample_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(SUM(samples), 0) FROM chunks", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// The times of the first and last chunk's samples (µs), from the chunk index; `None`
    /// when the session holds no samples.
    pub fn time_span_us(&self) -> Result<Option<(u64, u64)>> {
        let span: (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT MIN(start_us), MAX(end_us) FROM chunks", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(match span {
            (Some(a), Some(b)) => Some((a.max(0) as u64, b.max(0) as u64)),
            _ => None,
        })
    }

    /// What the snapshot at `t_us` kept beyond its stacks (entry marks and locals, for
    /// `dump`), by thread row; empty when it kept nothing.
    pub fn snapshot_details(&self, t_us: u64) -> Result<super::details::SnapshotDetails> {
        super::details::read(&self.conn, self.version, t_us)
    }

    /// The pid of a thread's process.
    pub fn pid_of(&self, thread: u32) -> Option<i32> {
        let t = self.threads.get(thread as usize)?;
        Some(self.processes.get(t.process as usize)?.pid)
    }
}

/// Streams samples chunk by chunk.
pub struct SampleIter<'a> {
    session: &'a Session,
    chunks: Vec<i64>,
    next_chunk: usize,
    current: std::vec::IntoIter<Sample>,
    from: u64,
    to: u64,
    allowed_threads: Option<Vec<bool>>,
    allowed_pids: Option<Vec<i32>>,
}

impl SampleIter<'_> {
    fn keep(&self, s: &Sample) -> bool {
        if s.t_us < self.from || s.t_us > self.to {
            return false;
        }
        if let Some(a) = &self.allowed_threads {
            if !a.get(s.thread as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if let Some(pids) = &self.allowed_pids {
            match self.session.pid_of(s.thread) {
                Some(p) if pids.contains(&p) => {}
                _ => return false,
            }
        }
        true
    }
}

impl Iterator for SampleIter<'_> {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Result<Sample>> {
        loop {
            while let Some(s) = self.current.next() {
                if self.keep(&s) {
                    return Some(Ok(s));
                }
            }
            let id = *self.chunks.get(self.next_chunk)?;
            self.next_chunk += 1;
            let row = self.session.conn.query_row(
                "SELECT start_us, samples, data FROM chunks WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            );
            let decoded = row
                .context("could not read a sample chunk (damaged file?)")
                .and_then(|(start, claimed, data)| {
                    let claimed = u64::try_from(claimed).map_err(|_| {
                        anyhow::anyhow!("a sample chunk claims {claimed} samples (damaged file?)")
                    })?;
                    chunk::decode(&data, start.max(0) as u64, claimed)
                });
            match decoded {
                Ok(samples) => {
                    let n_threads = self.session.threads.len();
                    let n_stacks = self.session.stacks.len();
                    let n_errors = self.session.errors.len();
                    let bad = |s: &Sample| {
                        let n = if s.error() { n_errors } else { n_stacks };
                        s.thread as usize >= n_threads || s.stack as usize >= n
                    };
                    if samples.iter().any(bad) {
                        self.chunks.clear();
                        return Some(Err(anyhow::anyhow!(
                            "a sample names a thread or stack that is not stored (damaged file?)"
                        )));
                    }
                    self.current = samples.into_iter();
                }
                Err(e) => {
                    self.chunks.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}
