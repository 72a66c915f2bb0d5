//! Writing a session: interning on the caller's (sampling) side, everything else on a
//! writer thread.
//!
//! The sampling side only hashes (in a [`model::intern::Interner`](crate::model::intern::Interner)): a frame, a stack or a thread seen for the first time gets
//! an id and is sent once; samples are buffered and sent as a chunk at least once a second.
//! The writer thread encodes and compresses chunks and commits each one (with the frames and
//! stacks it needs) in its own transaction, so a capture killed at any moment leaves a file
//! with everything up to the last second.

use anyhow::{anyhow, Context, Result};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::chunk::{self, Sample};
use super::details::{self, FrameDetail};
use super::meta::{CaptureEnd, CaptureStart};
use super::schema;
use crate::model::intern::{ErrorKey, Interned, Interner};
pub use crate::model::intern::{FrameKey, ThreadKey};

/// Samples buffered before a chunk is sent, whatever the time.
const CHUNK_SAMPLES: usize = 16 * 1024;
/// Longest time samples wait on the sampling side before they are sent to the writer.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Longest time the writer thread keeps a transaction open.
const COMMIT_EVERY: Duration = Duration::from_millis(500);

/// What a finished writer wrote.
#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    pub samples: u64,
    pub chunks: u64,
    /// Bytes of compressed sample data (the chunks' payload).
    pub chunk_bytes: u64,
    pub frames: u64,
    pub stacks: u64,
}

enum Msg {
    Meta(String, String),
    Process {
        id: u32,
        pid: i32,
        parent: Option<u32>,
        command_line: String,
        python: Option<String>,
    },
    ProcessPython {
        id: u32,
        python: String,
    },
    ProcessExecutable {
        id: u32,
        executable: String,
    },
    Details {
        t_us: u64,
        thread: u32,
        frames: Vec<FrameDetail>,
    },
    Thread {
        id: u32,
        process: u32,
        thread_id: u64,
        os_thread_id: Option<u64>,
    },
    ThreadName {
        thread: u32,
        since_us: u64,
        name: String,
    },
    Frame {
        id: u32,
        key: FrameKey,
    },
    Stack {
        id: u32,
        frames: Vec<u32>,
    },
    Error {
        id: u32,
        kind: String,
        message: String,
        stack: Option<u32>,
    },
    Chunk {
        start_us: u64,
        samples: Vec<Sample>,
    },
}

/// Writes one session file.
pub struct SessionWriter {
    tx: Option<Sender<Msg>>,
    worker: Option<JoinHandle<Result<WriterStats>>>,
    start: Instant,
    ids: Interner,
    pending: Vec<Sample>,
    chunk_start_us: u64,
    last_flush: Instant,
}

impl SessionWriter {
    /// Create `path` (replacing it) and start the writer thread. `start` goes in the meta
    /// table along with `start_unix_us`.
    pub fn create(path: &Path, start: &CaptureStart) -> Result<SessionWriter> {
        let meta = start.rows();
        let conn = schema::create(path)?;
        let start_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        {
            let tx = conn.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
                stmt.execute(params!["start_unix_us", start_unix_us.to_string()])?;
                for (k, v) in &meta {
                    stmt.execute(params![k, v])?;
                }
            }
            tx.commit()?;
        }
        checkpoint(&conn);
        let (tx, rx) = channel();
        let worker = std::thread::Builder::new()
            .name("py-spy-writer".into())
            .spawn(move || write_loop(conn, rx))
            .context("could not start the session writer thread")?;
        let now = Instant::now();
        Ok(SessionWriter {
            tx: Some(tx),
            worker: Some(worker),
            start: now,
            ids: Interner::new(),
            pending: Vec::new(),
            chunk_start_us: 0,
            last_flush: now,
        })
    }

    /// Microseconds since the session started: the time base of samples.
    pub fn elapsed_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.tx
            .as_ref()
            .ok_or_else(|| anyhow!("the session writer is finished"))?
            .send(msg)
            .map_err(|_| anyhow!("the session writer stopped (see its error when finishing)"))
    }

    /// Record how the capture ended (in the meta table, committed with the samples before
    /// it).
    pub fn set_end(&mut self, end: &CaptureEnd) -> Result<()> {
        for (key, value) in end.rows() {
            self.send(Msg::Meta(key.to_string(), value))?;
        }
        Ok(())
    }

    /// Register a process; samples of its threads may follow.
    pub fn add_process(
        &mut self,
        pid: i32,
        parent: Option<i32>,
        command_line: &str,
        python: Option<&str>,
    ) -> Result<()> {
        let Interned { id, new } = self.ids.process(pid);
        if !new {
            return Ok(());
        }
        let parent = parent.and_then(|p| self.ids.process_id(p));
        self.send(Msg::Process {
            id,
            pid,
            parent,
            command_line: command_line.to_string(),
            python: python.map(str::to_string),
        })
    }

    /// A process's Python version, known better than when it was registered (the first
    /// process's is also the session's).
    pub fn set_python(&mut self, pid: i32, python: &str) -> Result<()> {
        let Some(id) = self.ids.process_id(pid) else {
            return Ok(());
        };
        if id == 0 {
            self.send(Msg::Meta("python".into(), python.to_string()))?;
        }
        self.send(Msg::ProcessPython {
            id,
            python: python.to_string(),
        })
    }

    /// The executable a process runs (`/proc/PID/exe` as the target sees it), for `dump`'s
    /// header.
    pub fn set_executable(&mut self, pid: i32, executable: &str) -> Result<()> {
        let Some(id) = self.ids.process_id(pid) else {
            return Ok(());
        };
        self.send(Msg::ProcessExecutable {
            id,
            executable: executable.to_string(),
        })
    }

    /// What `dump` shows of a thread's frames beyond its stack (entry marks, locals), for
    /// the sample of `thread` just added at `t_us`; `frames` in the sample's order.
    pub fn add_details(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        frames: Vec<FrameDetail>,
    ) -> Result<()> {
        let Some(id) = self.ids.thread_id(thread) else {
            anyhow::bail!("details for a thread that has no sample");
        };
        self.send(Msg::Details {
            t_us,
            thread: id,
            frames,
        })
    }

    /// Add one thread's stack (innermost frame first) at `t_us`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_sample(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        os_thread_id: Option<u64>,
        thread_name: Option<&str>,
        frames: &[FrameKey],
        flags: u8,
        late_us: u32,
    ) -> Result<()> {
        let mut ids = Vec::with_capacity(frames.len());
        for f in frames {
            ids.push(self.intern_frame(f)?);
        }
        self.add_sample_ids(
            t_us,
            thread,
            os_thread_id,
            thread_name,
            &ids,
            flags,
            late_us,
        )
    }

    /// [`SessionWriter::add_sample`] with frames already interned by
    /// [`SessionWriter::intern_frame`]: the capture loop's fast path, which caches frame ids
    /// by code object and line so no strings are hashed per sample.
    #[allow(clippy::too_many_arguments)]
    pub fn add_sample_ids(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        os_thread_id: Option<u64>,
        thread_name: Option<&str>,
        frames: &[u32],
        flags: u8,
        late_us: u32,
    ) -> Result<()> {
        let thread_row = self.thread_row(thread, os_thread_id, thread_name, t_us)?;
        let stack = self.stack_id(frames)?;
        self.push(Sample {
            t_us,
            thread: thread_row,
            stack,
            flags,
            late_us,
        })
    }

    /// An error sample: the thread's stack at `t_us` could not be read, for the reason `kind`
    /// (a short stable name) with `message` (for people); `partial` are the innermost frames
    /// that were read (interned frame ids, innermost first) when the chain broke off, if any.
    /// `flags` may hold the thread's activity and GIL flags;
    /// [`FLAG_ERROR`](super::chunk::FLAG_ERROR) is added.
    #[allow(clippy::too_many_arguments)]
    pub fn add_error_sample(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        os_thread_id: Option<u64>,
        thread_name: Option<&str>,
        kind: &str,
        message: &str,
        partial: &[u32],
        flags: u8,
        late_us: u32,
    ) -> Result<()> {
        let thread_row = self.thread_row(thread, os_thread_id, thread_name, t_us)?;
        let stack = if partial.is_empty() {
            None
        } else {
            Some(self.stack_id(partial)?)
        };
        let key = ErrorKey {
            kind: kind.to_string(),
            message: message.to_string(),
            partial: stack,
        };
        let Interned { id: error, new } = self.ids.error(&key);
        if new {
            self.send(Msg::Error {
                id: error,
                kind: key.kind,
                message: key.message,
                stack,
            })?;
        }
        self.push(Sample {
            t_us,
            thread: thread_row,
            stack: error,
            flags: flags | super::chunk::FLAG_ERROR,
            late_us,
        })
    }

    /// The id of a stack (frame ids, innermost first), sending it the first time.
    fn stack_id(&mut self, frames: &[u32]) -> Result<u32> {
        let Interned { id, new } = self.ids.stack(frames);
        if new {
            self.send(Msg::Stack {
                id,
                frames: frames.to_vec(),
            })?;
        }
        Ok(id)
    }

    fn push(&mut self, sample: Sample) -> Result<()> {
        if self.pending.is_empty() {
            self.chunk_start_us = sample.t_us;
        }
        self.pending.push(sample);
        if self.pending.len() >= CHUNK_SAMPLES || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// The id of a frame, sending it to the file the first time it is seen.
    pub fn intern_frame(&mut self, key: &FrameKey) -> Result<u32> {
        let Interned { id, new } = self.ids.frame(key);
        if new {
            self.send(Msg::Frame {
                id,
                key: key.clone(),
            })?;
        }
        Ok(id)
    }

    fn thread_row(
        &mut self,
        key: ThreadKey,
        os_thread_id: Option<u64>,
        name: Option<&str>,
        t_us: u64,
    ) -> Result<u32> {
        let Interned { id, new } = self.ids.thread(key);
        if new {
            self.add_process(key.pid, None, "", None)?;
            let process = self.ids.process(key.pid).id;
            self.send(Msg::Thread {
                id,
                process,
                thread_id: key.thread_id,
                os_thread_id,
            })?;
        }
        if let Some(name) = name {
            if self.ids.rename(id, name) {
                self.send(Msg::ThreadName {
                    thread: id,
                    since_us: t_us,
                    name: name.to_string(),
                })?;
            }
        }
        Ok(id)
    }

    /// Send the buffered samples to the writer thread now.
    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let samples = std::mem::take(&mut self.pending);
        self.send(Msg::Chunk {
            start_us: self.chunk_start_us,
            samples,
        })
    }

    /// Write everything still buffered, close the file and report what was written.
    pub fn finish(mut self) -> Result<WriterStats> {
        self.close()
    }

    fn close(&mut self) -> Result<WriterStats> {
        let flushed = self.flush();
        self.tx = None; // the writer thread sees the channel close, commits and exits
        let stats = match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| anyhow!("the session writer thread panicked"))??,
            None => WriterStats::default(),
        };
        flushed?;
        Ok(stats)
    }
}

impl Drop for SessionWriter {
    /// A writer dropped without `finish` (an error path, a panic) still writes what it has.
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.close();
        }
    }
}

fn write_loop(conn: Connection, rx: Receiver<Msg>) -> Result<WriterStats> {
    let mut stats = WriterStats::default();
    let mut in_tx = false;
    let mut opened = Instant::now();
    loop {
        let msg = match rx.recv_timeout(COMMIT_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(msg) = msg {
            if !in_tx {
                conn.execute_batch("BEGIN")?;
                in_tx = true;
                opened = Instant::now();
            }
            let is_chunk = matches!(msg, Msg::Chunk { .. });
            apply(&conn, msg, &mut stats)?;
            if !is_chunk && opened.elapsed() < COMMIT_EVERY {
                continue;
            }
        }
        if in_tx {
            conn.execute_batch("COMMIT")
                .context("could not commit to the session file")?;
            in_tx = false;
            checkpoint(&conn);
        }
    }
    if in_tx {
        conn.execute_batch("COMMIT")
            .context("could not commit to the session file")?;
    }
    // Fold the WAL back into the main file so the session is one self-contained file.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    let _ = conn.pragma_update(None, "journal_mode", "DELETE");
    Ok(stats)
}

/// Copy what the write-ahead log holds into the session file itself, so that the file alone
/// (copied without its `-wal`, or after a kill) holds everything up to the last commit but
/// one. Passive: never waits for a reader; what it cannot copy now, the next one does.
fn checkpoint(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

fn apply(conn: &Connection, msg: Msg, stats: &mut WriterStats) -> Result<()> {
    match msg {
        Msg::Meta(k, v) => {
            conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![k, v])?;
        }
        Msg::Process {
            id,
            pid,
            parent,
            command_line,
            python,
        } => {
            conn.prepare_cached(
                "INSERT INTO processes (id, pid, parent, command_line, python) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, pid, parent, command_line, python])?;
        }
        Msg::ProcessPython { id, python } => {
            conn.prepare_cached("UPDATE processes SET python = ?2 WHERE id = ?1")?
                .execute(params![id, python])?;
        }
        Msg::ProcessExecutable { id, executable } => {
            conn.prepare_cached("UPDATE processes SET executable = ?2 WHERE id = ?1")?
                .execute(params![id, executable])?;
        }
        Msg::Details {
            t_us,
            thread,
            frames,
        } => details::insert(conn, t_us, thread, &frames)?,
        Msg::Thread {
            id,
            process,
            thread_id,
            os_thread_id,
        } => {
            conn.prepare_cached(
                "INSERT INTO threads (id, process, thread_id, os_thread_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, process, thread_id as i64, os_thread_id.map(|t| t as i64)])?;
        }
        Msg::ThreadName {
            thread,
            since_us,
            name,
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO thread_names (thread, since_us, name) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![thread, since_us as i64, name])?;
        }
        Msg::Frame { id, key } => {
            conn.prepare_cached(
                "INSERT INTO frames (id, function, qualname, filename, short_filename, line, \
                 first_line, module) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                &*key.function,
                &*key.qualname,
                &*key.filename,
                key.short_filename.as_deref(),
                key.line,
                key.first_line,
                key.module.as_deref()
            ])?;
            stats.frames += 1;
        }
        Msg::Stack { id, frames } => {
            let blob: Vec<u8> = frames.iter().flat_map(|f| f.to_le_bytes()).collect();
            conn.prepare_cached("INSERT INTO stacks (id, frames) VALUES (?1, ?2)")?
                .execute(params![id, blob])?;
            stats.stacks += 1;
        }
        Msg::Error {
            id,
            kind,
            message,
            stack,
        } => {
            conn.prepare_cached(
                "INSERT INTO errors (id, kind, message, stack) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, kind, message, stack])?;
        }
        Msg::Chunk { start_us, samples } => {
            let data = chunk::encode(&samples, start_us)?;
            let end_us = samples.last().map_or(start_us, |s| s.t_us);
            conn.prepare_cached(
                "INSERT INTO chunks (start_us, end_us, samples, data) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                start_us as i64,
                end_us as i64,
                samples.len() as i64,
                &data
            ])?;
            stats.samples += samples.len() as u64;
            stats.chunks += 1;
            stats.chunk_bytes += data.len() as u64;
        }
    }
    Ok(())
}
