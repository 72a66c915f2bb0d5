//! One sampled process: a snapshot of its threads taken through the capture layer and
//! written into the session, frames interned by (code object, line) so that a frame seen
//! before costs one hash lookup and no string.

use anyhow::Result;
use std::sync::Arc;

use super::sink::{SampleSink, ThreadAt};
use super::tally::Tally;
use crate::capture::os::proc;
use crate::capture::spy::{PythonSpy, ThreadSample};
use crate::model::fasthash::FastMap;
use crate::model::trace::{LocalVariable, Pid};
use crate::store::{FrameDetail, FrameKey, ThreadKey};
use crate::store::{FLAG_ACTIVE, FLAG_GIL, FLAG_PAUSED, FLAG_TRUNCATED};

/// Reason stored for the threads of a snapshot that failed as a whole.
const SNAPSHOT_FAILED: (&str, &str) = (
    "snapshot_failed",
    "the process's thread list could not be read",
);

/// When a snapshot is taken: microseconds into the session, and how late its tick was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    pub t_us: u64,
    pub late_us: u32,
}

/// Buffers reused from one snapshot to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    threads: Vec<ThreadSample>,
    ids: Vec<u32>,
}

/// Make a process known to `sink` (under its parent, for a descendant) before its samples.
pub(crate) fn register(
    sink: &mut impl SampleSink,
    spy: &PythonSpy,
    parent: Option<Pid>,
) -> Result<()> {
    let version = spy.version.to_string();
    sink.add_process(spy.pid, parent, &spy.command_line(), Some(&version))?;
    sink.set_executable(spy.pid, spy.exe())
}

/// One attached process.
pub(crate) struct Attached {
    pub spy: PythonSpy,
    /// Frame ids by (code object, line): no string is hashed for a frame seen before.
    frame_ids: FastMap<(u64, i32), u32>,
    /// The threads of the last snapshot that worked (Python id, OS id): a failed snapshot
    /// is stored as an error sample for each.
    last_threads: Vec<(u64, Option<u64>)>,
    /// The spy's count of unpaused snapshots already added to the tally.
    unpaused_seen: u64,
    /// Store what `dump` shows beyond the stacks (entry marks, locals when the spy reads
    /// them) with each sample.
    pub details: bool,
}

impl Attached {
    pub fn new(spy: PythonSpy) -> Attached {
        Attached {
            spy,
            frame_ids: FastMap::default(),
            last_threads: Vec::new(),
            unpaused_seen: 0,
            details: false,
        }
    }

    /// Take one snapshot of every thread and store it at `at`. Returns false when the
    /// process has exited (nothing is stored then); a snapshot that fails while the process
    /// lives is stored as an error sample for each thread it last had.
    pub fn sample_into(
        &mut self,
        writer: &mut impl SampleSink,
        at: Moment,
        scratch: &mut Scratch,
        tally: &mut Tally,
    ) -> Result<bool> {
        let sampled = self.spy.sample(&mut scratch.threads);
        let stats = &self.spy.stats;
        tally.longest_pause = tally.longest_pause.max(stats.longest_pause);
        tally.unpaused += stats.unpaused - self.unpaused_seen;
        self.unpaused_seen = stats.unpaused;
        match sampled {
            Ok(()) => {
                self.last_threads.clear();
                let threads = &scratch.threads;
                self.last_threads
                    .extend(threads.iter().map(|t| (t.thread_id, t.os_thread_id)));
                for t in threads {
                    self.store_thread(writer, at, t, &mut scratch.ids, tally)?;
                }
                Ok(true)
            }
            Err(_) if !proc::alive(self.spy.pid) => Ok(false),
            Err(e) => {
                tally.errors += 1;
                tally.last_error = Some(describe_failure(self.spy.pid, &e));
                self.store_failure(writer, at, tally)?;
                Ok(true)
            }
        }
    }

    /// One thread's sample: its stack, or an error sample with the reason and the innermost
    /// frames read before the chain broke off.
    fn store_thread(
        &mut self,
        writer: &mut impl SampleSink,
        at: Moment,
        t: &ThreadSample,
        ids: &mut Vec<u32>,
        tally: &mut Tally,
    ) -> Result<()> {
        let state = if t.active { FLAG_ACTIVE } else { 0 }
            | if t.holds_gil { FLAG_GIL } else { 0 }
            | if self.spy.last_snapshot_paused() {
                FLAG_PAUSED
            } else {
                0
            };
        let key = ThreadKey {
            pid: self.spy.pid,
            thread_id: t.thread_id,
        };
        ids.clear();
        for f in &t.frames {
            let id = match self.frame_ids.get(&(f.code.id, f.line)) {
                Some(id) => *id,
                None => {
                    let key = FrameKey {
                        function: f.code.name.clone(),
                        qualname: f.code.qualname.clone(),
                        filename: f.code.filename.clone(),
                        short_filename: self.spy.short_filename(&f.code.filename).map(Arc::from),
                        line: f.line,
                        first_line: f.code.first_line,
                        module: f.code.module.clone(),
                    };
                    let id = writer.intern_frame(&key)?;
                    self.frame_ids.insert((f.code.id, f.line), id);
                    id
                }
            };
            ids.push(id);
        }
        let mut thread = ThreadAt {
            t_us: at.t_us,
            thread: key,
            os_thread_id: t.os_thread_id,
            name: self.spy.thread_name(t.thread_id),
            flags: state,
            late_us: at.late_us,
        };
        tally.samples += 1;
        if let Some(fault) = t.fault {
            tally.error_samples += 1;
            return writer.add_error_sample(&thread, fault.as_str(), fault.describe(), ids);
        }
        thread.flags |= if t.truncated { FLAG_TRUNCATED } else { 0 };
        writer.add_sample_ids(&thread, ids)?;
        if self.details {
            writer.add_details(at.t_us, key, details_of(t))?;
        }
        Ok(())
    }

    /// A snapshot that failed as a whole: the time is still each thread's, stored as unknown
    /// with the reason (before any snapshot worked no thread is known: counted only).
    fn store_failure(
        &mut self,
        writer: &mut impl SampleSink,
        at: Moment,
        tally: &mut Tally,
    ) -> Result<()> {
        if self.last_threads.is_empty() {
            tally.error_samples += 1;
        }
        let (kind, message) = SNAPSHOT_FAILED;
        for &(thread_id, os_thread_id) in &self.last_threads {
            let thread = ThreadAt {
                t_us: at.t_us,
                thread: ThreadKey {
                    pid: self.spy.pid,
                    thread_id,
                },
                os_thread_id,
                name: self.spy.thread_name(thread_id),
                flags: FLAG_ACTIVE,
                late_us: at.late_us,
            };
            writer.add_error_sample(&thread, kind, message, &[])?;
            tally.samples += 1;
            tally.error_samples += 1;
        }
        Ok(())
    }
}

/// A thread's frame details as `dump` shows them.
fn details_of(t: &ThreadSample) -> Vec<FrameDetail> {
    frame_details(
        t.frames
            .iter()
            .map(|f| (f.is_entry, f.shim_entry, f.locals.clone())),
    )
}

/// Frame details, innermost first, from each frame's (entered from C, entered from a shim,
/// locals): the outermost frame counts as entered from a shim, as py-spy 0.4 marks it.
pub(super) fn frame_details(
    frames: impl ExactSizeIterator<Item = (bool, bool, Option<Vec<LocalVariable>>)>,
) -> Vec<FrameDetail> {
    let last = frames.len().saturating_sub(1);
    frames
        .enumerate()
        .map(|(i, (is_entry, shim_entry, locals))| FrameDetail {
            is_entry,
            is_shim_entry: shim_entry || i == last,
            locals,
        })
        .collect()
}

/// Why a snapshot of `pid` failed, for people: when another tracer (a debugger, a second
/// profiler) holds the process, that is the reason, whatever the kernel's error says.
fn describe_failure(pid: i32, e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("already traced") {
        return format!("process {pid}: {text}");
    }
    match proc::tracer_of(pid) {
        Some(tracer) if tracer as u32 != std::process::id() => format!(
            "process {pid} is held by another tracer, process {tracer} ({}): a debugger or a \
             second profiler; py-spy cannot pause it meanwhile (--nonblocking reads without \
             pausing) ({text})",
            proc::command_line(tracer)
        ),
        _ => format!("process {pid}: {text}"),
    }
}
