//! `py-spy capture`: sample a process (and, with `subprocesses`, its descendants) into a
//! session file until the duration runs out, the program exits, or a stop is requested.
//! This is where the capture layer (which knows nothing of files) meets the store.
//!
//! Everything is recorded: every thread, idle or not, with its line numbers, GIL and activity
//! flags, so the choices py-spy makes while recording (`--idle`, `--gil`, `--threads`,
//! `--nolineno`, `--function`) are made later, when rendering. Frames are interned by code
//! object and line here, on the sampling thread, so a sample costs a few hash lookups; the
//! session writer encodes and commits on a thread of its own.
//!
//! Here: the options, the summary and the loop; `launch` (start or find the process and
//! attach), `process` (one process's snapshot into the session), `snapshot` (`dump`'s
//! single snapshot), `core` (a core file's snapshot), `sink` (where samples go: the session, or a live view), `children`
//! (`--subprocesses`), `progress` (the progress line) and `tally` (the counts).

pub(super) mod children;
mod core;
pub(super) mod launch;
pub(super) mod process;
mod progress;
pub(super) mod rounds;
pub(super) mod sink;
mod snapshot;
pub(super) mod tally;

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use self::core::{core_session, CoreRequest};
use crate::capture::os::proc;
use crate::capture::spy::{PythonSpy, MAX_PAUSE};
pub use crate::capture::timer::StopReason;
use crate::capture::timer::{Flow, Ticker};
use crate::model::config::{Config, LineNo};
use crate::model::trace::Pid;
pub use crate::render::{format_bytes, plural};
use crate::store::{CaptureStart, SamplingOptions, Started};
use crate::store::{SessionWriter, WriterStats};
use launch::{attach, attach_spawned, end_child, spawn};
use progress::Progress;
use rounds::Rounds;
pub use snapshot::{snapshot, SnapshotRequest, SnapshotSummary};

/// Blocking mode that did not pause, and why, when it happened.
pub fn unpaused_note(s: &CaptureSummary) -> Option<String> {
    (s.unpaused > 0).then(|| {
        format!(
            "{} taken without pausing the program: pausing all its threads would have \
             stopped it for more than {} ms each time",
            plural(s.unpaused, "snapshot", "snapshots"),
            MAX_PAUSE.as_millis()
        )
    })
}

/// Snapshots that were late or ticks that were skipped, when there are enough of them to
/// bias the profile (1% of the ticks skipped, or 10% of the snapshots more than a period
/// late), saying how many and what to do; `None` otherwise (a few late snapshots on a busy
/// machine change nothing).
pub fn lateness_note(s: &CaptureSummary) -> Option<String> {
    lateness(s.late, s.snapshots, s.skipped, s.max_late, s.rate)
}

fn lateness(late: u64, snapshots: u64, skipped: u64, worst: Duration, rate: u64) -> Option<String> {
    let ticks = snapshots + skipped;
    let share = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
    let (late_share, skipped_share) = (share(late, snapshots), share(skipped, ticks));
    if skipped_share < 1.0 && late_share < 10.0 {
        return None;
    }
    let advice = if rate > 100 {
        "a lower rate (-r) keeps up"
    } else {
        "the machine was too busy for sampling to keep up (other processes, or very many threads)"
    };
    Some(format!(
        "{} of {snapshots} ({late_share:.1}%) more than a sampling period late (worst {worst:.1?}), \
         {skipped} of {ticks} ticks skipped ({skipped_share:.1}%): the moments sampling fell \
         behind are under-represented; {advice}",
        plural(late, "snapshot", "snapshots"),
    ))
}

/// One line on how a capture went.
pub fn describe_capture(path: &Path, s: &CaptureSummary) -> String {
    let of = if s.processes > 1 {
        format!(
            "{} (process {} and {})",
            plural(s.processes as u64, "process", "processes"),
            s.pid,
            plural(s.processes as u64 - 1, "subprocess", "subprocesses")
        )
    } else {
        format!("process {}", s.pid)
    };
    let mut text = format!(
        "Wrote session '{}': {} of {of} (Python {}), {} in {:.1} s, {} ({} unreadable), {} \
         ({:.1} bytes/sample)",
        path.display(),
        plural(s.samples, "sample", "samples"),
        s.python,
        plural(s.snapshots, "snapshot", "snapshots"),
        s.elapsed.as_secs_f64(),
        plural(s.errors, "error", "errors"),
        plural(s.error_samples, "thread stack", "thread stacks"),
        format_bytes(s.file_bytes),
        s.file_bytes as f64 / s.samples.max(1) as f64,
    );
    if let Some(note) = unpaused_note(s) {
        text.push_str("; ");
        text.push_str(&note);
    }
    if s.longest_pause > Duration::ZERO {
        text.push_str(&format!("; longest pause {:.1?}", s.longest_pause));
    }
    if let Some(note) = lateness_note(s) {
        text.push_str("; ");
        text.push_str(&note);
    }
    if let (true, Some(why)) = (s.errors > 0, &s.last_error) {
        text.push_str(&format!("; the last failed snapshot: {why}"));
    }
    text
}

/// What to profile.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A running process.
    Attach(Pid),
    /// A program to start (and stop again when the capture ends).
    Spawn(Vec<String>),
}

/// How to capture: the sampling options (stored in the session's meta table) and how to
/// show progress (not stored).
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub sampling: SamplingOptions,
    /// Draw a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            sampling: SamplingOptions::default(),
            progress: true,
        }
    }
}

/// What a capture did.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    /// The profiled process (the spawned one, or the one attached to).
    pub pid: Pid,
    /// Processes sampled: the profiled one and, with `--subprocesses`, its descendants.
    pub processes: usize,
    /// Snapshots a second requested.
    pub rate: u64,
    pub python: String,
    pub command_line: String,
    /// Snapshot ticks taken (each covers every thread of every process).
    pub snapshots: u64,
    /// Thread stacks written.
    pub samples: u64,
    /// Snapshots of a process that failed while the process was alive.
    pub errors: u64,
    /// Thread samples written as errors (their stack could not be read; see
    /// `StackFault`), failed snapshots included (one per
    /// thread, or one when no thread was known yet).
    pub error_samples: u64,
    pub last_error: Option<String>,
    /// Ticks taken more than a period late, and ticks skipped because sampling fell behind.
    pub late: u64,
    pub skipped: u64,
    /// Largest lateness of a tick.
    pub max_late: Duration,
    /// The longest pause of a target for one snapshot (blocking mode), and the snapshots
    /// taken without pausing because pausing would have been longer than `MAX_PAUSE`.
    pub longest_pause: Duration,
    pub unpaused: u64,
    pub stop: StopReason,
    pub elapsed: Duration,
    pub writer: WriterStats,
    /// Size of the session file once closed.
    pub file_bytes: u64,
    /// The spawned program's exit code, when it ended by itself (see `launch::end_child`).
    pub program_exit: Option<i32>,
}

impl CaptureSummary {
    /// The exit status a command that spawned the program should end with: the program's
    /// own when it failed, as a script running `py-spy record -- prog` expects; else 0.
    pub fn exit_code(&self) -> i32 {
        self.program_exit.unwrap_or(0)
    }
}

/// Run a capture into `path` (created, or replaced). `stop` ends it early, cleanly.
pub fn capture(
    launch: &Launch,
    opts: &CaptureOptions,
    path: &Path,
    stop: &AtomicBool,
) -> Result<CaptureSummary> {
    // A path that cannot hold a session is refused before any program is started.
    crate::store::schema::session_target(path)?;
    let config = spy_config(opts);
    let mut child = None;
    let root = match launch {
        Launch::Attach(pid) => attach(*pid, &config)?,
        Launch::Spawn(argv) => {
            let c = spawn(argv)?;
            let pid = c.id() as Pid;
            child = Some(c);
            let attached = attach_spawned(pid, &config, child.as_mut().unwrap(), stop);
            match attached {
                Ok(spy) => spy,
                Err(e) => {
                    end_child(&mut child);
                    return Err(e);
                }
            }
        }
    };
    let mut result = run(launch, root, opts, &config, path, stop);
    let exit = end_child(&mut child);
    if let Ok(summary) = &mut result {
        summary.program_exit = exit;
    }
    result
}

fn spy_config(opts: &CaptureOptions) -> Config {
    Config {
        blocking: opts.sampling.blocking,
        native: opts.sampling.native,
        sampling_rate: opts.sampling.rate,
        include_idle: true,
        gil_only: false,
        lineno: LineNo::LastInstruction,
        full_filenames: false,
        dump_locals: 0,
        subprocesses: opts.sampling.subprocesses,
        ..Config::default()
    }
}

/// The session's size on disk, its write-ahead log included.
fn file_size(path: &Path) -> u64 {
    let [wal, _, _] = crate::store::schema::side_files(path);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(path) + size(&wal)
}

fn run(
    launch: &Launch,
    root: PythonSpy,
    opts: &CaptureOptions,
    config: &Config,
    path: &Path,
    stop: &AtomicBool,
) -> Result<CaptureSummary> {
    let root_pid = root.pid;
    let command_line = root.command_line();
    let meta = CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: command_line.clone(),
        started: match launch {
            Launch::Attach(_) => Started::Attached,
            Launch::Spawn(_) => Started::Spawned,
        },
        pid: root_pid,
        python: root.version.to_string(),
        host: proc::hostname(),
        options: opts.sampling.clone(),
    };
    let mut writer = SessionWriter::create(path, &meta)
        .with_context(|| format!("could not create session file {}", path.display()))?;
    let mut progress = Progress::new(opts);
    let begin = Instant::now();
    let mut ticker = Ticker::for_duration(opts.sampling.rate, &opts.sampling.duration);
    let mut rounds = Rounds::start(root, &mut writer, ticker.period())?;
    let stop_reason = ticker.run(stop, |late| {
        let flow = rounds.tick(&mut writer, late, config)?;
        if let Flow::Continue = flow {
            progress.update(&rounds.tally, late, path);
        }
        Ok(flow)
    })?;
    progress.finish();

    let elapsed = begin.elapsed();
    let tally = &rounds.tally;
    writer.set_end(&tally.end(writer.elapsed_us(), ticker.skipped, stop_reason))?;
    let stats = writer.finish()?;
    Ok(CaptureSummary {
        pid: root_pid,
        processes: rounds.processes(),
        rate: opts.sampling.rate,
        python: rounds.root_python.clone(),
        command_line,
        snapshots: tally.snapshots,
        samples: tally.samples,
        errors: tally.errors,
        error_samples: tally.error_samples,
        last_error: tally.last_error.clone(),
        late: tally.late,
        skipped: ticker.skipped,
        max_late: tally.max_late,
        longest_pause: tally.longest_pause,
        unpaused: tally.unpaused,
        stop: stop_reason,
        elapsed,
        writer: stats,
        file_bytes: file_size(path),
        program_exit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::lateness;
    use std::time::Duration;

    #[test]
    fn lateness_is_told_only_when_it_biases_the_profile() {
        let ms = Duration::from_millis;
        // One late snapshot in 179 at the default rate: nothing to say.
        assert_eq!(lateness(1, 179, 0, ms(12), 100), None);
        assert_eq!(lateness(17, 179, 1, ms(12), 100), None);
        let note = lateness(1, 179, 3, ms(40), 100).expect("1.6% of ticks skipped");
        assert!(
            note.starts_with("1 snapshot of 179 (0.6%) more than"),
            "{note}"
        );
        assert!(note.contains("3 of 182 ticks skipped (1.6%)"), "{note}");
        assert!(note.contains("too busy"), "{note}");
        let note = lateness(500, 1000, 0, ms(3), 1000).expect("half the snapshots late");
        assert!(note.contains("a lower rate (-r)"), "{note}");
    }
}
