//! Where `top`'s samples go: the live table, and with `--session` the session file too.
//! Frame ids are given here by an in-memory interner; the session writer, seeing the same
//! frames in the same order, gives the same ids.

use anyhow::{ensure, Result};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analyze::live::LiveTop;
use crate::commands::capture::sink::{SampleSink, ThreadAt};
use crate::model::intern::{Interned, Interner};
use crate::store::{FrameDetail, FrameKey, SessionWriter, ThreadKey, FLAG_ACTIVE, FLAG_GIL};

/// The live table (shared with the screen) and the session being kept, if any.
pub struct TopSink {
    pub live: Arc<Mutex<LiveTop>>,
    pub writer: Option<SessionWriter>,
    ids: Interner,
    start: Instant,
}

impl TopSink {
    pub fn new(live: Arc<Mutex<LiveTop>>, writer: Option<SessionWriter>) -> TopSink {
        TopSink {
            live,
            writer,
            ids: Interner::new(),
            start: Instant::now(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, LiveTop> {
        // A panic while the table was held leaves counts that are still counts.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SampleSink for TopSink {
    /// The session's clock when one is kept.
    fn elapsed_us(&self) -> u64 {
        match &self.writer {
            Some(w) => w.elapsed_us(),
            None => self.start.elapsed().as_micros() as u64,
        }
    }

    fn begin_snapshot(&mut self, late: Duration) {
        self.live().begin_snapshot(late);
    }

    fn end_snapshot(&mut self) {
        self.live().end_snapshot();
    }

    fn add_process(
        &mut self,
        pid: i32,
        parent: Option<i32>,
        command_line: &str,
        python: Option<&str>,
    ) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.add_process(pid, parent, command_line, python),
            None => Ok(()),
        }
    }

    fn set_executable(&mut self, pid: i32, executable: &str) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.set_executable(pid, executable),
            None => Ok(()),
        }
    }

    fn set_python(&mut self, pid: i32, python: &str) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.set_python(pid, python),
            None => Ok(()),
        }
    }

    fn intern_frame(&mut self, key: &FrameKey) -> Result<u32> {
        let Interned { id, new } = self.ids.frame(key);
        if new {
            self.live().add_frame(id, key);
        }
        if let Some(w) = &mut self.writer {
            let stored = w.intern_frame(key)?;
            ensure!(
                stored == id,
                "frame ids of the session and the live view differ"
            );
        }
        Ok(id)
    }

    fn add_sample_ids(&mut self, at: &ThreadAt, frames: &[u32]) -> Result<()> {
        self.live().add_sample(
            at.thread,
            at.os_thread_id,
            at.name,
            frames,
            at.flags & FLAG_ACTIVE != 0,
            at.flags & FLAG_GIL != 0,
        );
        match &mut self.writer {
            Some(w) => SampleSink::add_sample_ids(w, at, frames),
            None => Ok(()),
        }
    }

    fn add_error_sample(
        &mut self,
        at: &ThreadAt,
        kind: &str,
        message: &str,
        partial: &[u32],
    ) -> Result<()> {
        self.live()
            .add_error(at.thread, at.os_thread_id, at.name, message);
        match &mut self.writer {
            Some(w) => SampleSink::add_error_sample(w, at, kind, message, partial),
            None => Ok(()),
        }
    }

    fn add_details(
        &mut self,
        t_us: u64,
        thread: ThreadKey,
        frames: Vec<FrameDetail>,
    ) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.add_details(t_us, thread, frames),
            None => Ok(()),
        }
    }
}
