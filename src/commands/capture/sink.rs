//! Where a capture's samples go: the session file (`SessionWriter`), or a live view that may
//! also keep a session (`top`). The capture loop interns frames and hands over samples the
//! same way to either.

use anyhow::Result;
use std::time::Duration;

use crate::store::{FrameDetail, FrameKey, SessionWriter, ThreadKey};

/// One thread at one snapshot: who, when, and its state flags (store's `FLAG_*`).
#[derive(Debug, Clone, Copy)]
pub struct ThreadAt<'a> {
    pub t_us: u64,
    pub thread: ThreadKey,
    pub os_thread_id: Option<u64>,
    pub name: Option<&'a str>,
    pub flags: u8,
    /// How late the snapshot was against its due time.
    pub late_us: u32,
}

/// What receives samples: the session writer's interface, which a live view mirrors.
pub trait SampleSink {
    /// Microseconds since sampling began (the session's clock when one is written).
    fn elapsed_us(&self) -> u64;
    /// A snapshot of every process starts, `late` after its due time.
    fn begin_snapshot(&mut self, _late: Duration) {}
    /// The snapshot begun last is whole.
    fn end_snapshot(&mut self) {}
    /// Register a process (its threads' samples may follow).
    fn add_process(
        &mut self,
        pid: i32,
        parent: Option<i32>,
        command_line: &str,
        python: Option<&str>,
    ) -> Result<()>;
    /// The executable a process runs.
    fn set_executable(&mut self, pid: i32, executable: &str) -> Result<()>;
    /// A process's Python version, known better than when it was registered.
    fn set_python(&mut self, pid: i32, python: &str) -> Result<()>;
    /// The id of a frame (dense, from 0, in order of first appearance).
    fn intern_frame(&mut self, key: &FrameKey) -> Result<u32>;
    /// One thread's stack (interned frame ids, innermost first).
    fn add_sample_ids(&mut self, at: &ThreadAt, frames: &[u32]) -> Result<()>;
    /// A thread whose stack could not be read (see `SessionWriter::add_error_sample`).
    fn add_error_sample(
        &mut self,
        at: &ThreadAt,
        kind: &str,
        message: &str,
        partial: &[u32],
    ) -> Result<()>;
    /// What `dump` shows of the frames of the sample just added.
    fn add_details(&mut self, t_us: u64, thread: ThreadKey, frames: Vec<FrameDetail>)
        -> Result<()>;
}

impl SampleSink for SessionWriter {
    fn elapsed_us(&self) -> u64 {
        SessionWriter::elapsed_us(self)
    }

    fn add_process(
        &mut self,
        pid: i32,
        parent: Option<i32>,
        command_line: &str,
        python: Option<&str>,
    ) -> Result<()> {
        SessionWriter::add_process(self, pid, parent, command_line, python)
    }

    fn set_executable(&mut self, pid: i32, executable: &str) -> Result<()> {
        SessionWriter::set_executable(self, pid, executable)
    }

    fn set_python(&mut self, pid: i32, python: &str) -> Result<()> {
        SessionWriter::set_python(self, pid, python)
    }

    fn intern_frame(&mut self, key: &FrameKey) -> Result<u32> {
        SessionWriter::intern_frame(self, key)
    }

    fn add_sample_ids(&mut self, at: &ThreadAt, frames: &[u32]) -> Result<()> {
        self.add_sample_ids(
            at.t_us,
            at.thread,
            at.os_thread_id,
            at.name,
            frames,
            at.flags,
            at.late_us,
        )
    }

    fn add_error_sample(
        &mut self,
        at: &ThreadAt,
        kind: &str,
        message: &str,
        partial: &[u32],
    ) -> Result<()> {
        self.add_error_sample(
            at.t_us,
            at.thread,
            at.os_thread_id,
            at.name,
            kind,
            message,
            partial,
            at.flags,
            at.late_us,
        )
    }

    fn add_details(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        frames: Vec<FrameDetail>,
    ) -> Result<()> {
        SessionWriter::add_details(self, t_us, thread, frames)
    }
}
