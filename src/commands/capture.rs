//! `py-spy capture`: sample a process (and, with `subprocesses`, its descendants) into a
//! session file until the duration runs out, the program exits, or a stop is requested.
//! This is where the capture layer (which knows nothing of files) meets the store.
//!
//! Everything is recorded: every thread, idle or not, with its line numbers, GIL and activity
//! flags, so the choices py-spy makes while recording (`--idle`, `--gil`, `--threads`,
//! `--nolineno`, `--function`) are made later, when rendering. Frames are interned by code
//! object and line here, on the sampling thread, so a sample costs a few hash lookups; the
//! session writer encodes and commits on a thread of its own.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::attach::AttachPolicy;
use crate::capture::os::proc;
use crate::capture::spy::{PythonSpy, ThreadSample};
use crate::capture::timer::Ticker;
use crate::model::config::{Config, LineNo, RecordDuration};
use crate::model::fasthash::FastMap;
use crate::model::trace::Pid;
use crate::store::{CaptureEnd, CaptureStart, SamplingOptions, Started};
use crate::store::{FrameKey, SessionWriter, ThreadKey, WriterStats};
use crate::store::{FLAG_ACTIVE, FLAG_GIL, FLAG_TRUNCATED};

/// How often descendants are looked for with `subprocesses`.
const CHILD_SCAN_EVERY: Duration = Duration::from_millis(500);
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// One line on how a capture went.
pub fn describe_capture(path: &Path, s: &CaptureSummary) -> String {
    let mut text = format!(
        "Wrote session '{}': {} samples of process {} (Python {}), {} snapshots in {:.1} s, \
         {} errors ({} thread stacks unreadable), {} ({:.1} bytes/sample)",
        path.display(),
        s.samples,
        s.pid,
        s.python,
        s.snapshots,
        s.elapsed.as_secs_f64(),
        s.errors,
        s.error_samples,
        format_bytes(s.file_bytes),
        s.file_bytes as f64 / s.samples.max(1) as f64,
    );
    if s.late > 0 || s.skipped > 0 {
        text.push_str(&format!(
            "; {} snapshots more than a period late (worst {:.1?}), {} ticks skipped: try a lower rate",
            s.late, s.max_late, s.skipped
        ));
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

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Duration,
    Interrupted,
    ProcessExited,
}

impl StopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::ProcessExited => "process_exited",
        }
    }
}

/// What a capture did.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    /// The profiled process (the spawned one, or the one attached to).
    pub pid: Pid,
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
    pub stop: StopReason,
    pub elapsed: Duration,
    pub writer: WriterStats,
    /// Size of the session file once closed.
    pub file_bytes: u64,
}

/// One attached process.
struct Attached {
    spy: PythonSpy,
    /// Frame ids by (code object, line): no string is hashed for a frame seen before.
    frame_ids: FastMap<(u64, i32), u32>,
    /// The threads of the last snapshot that worked (Python id, OS id): a failed snapshot
    /// is stored as an error sample for each.
    last_threads: Vec<(u64, Option<u64>)>,
}

/// Reason stored for the threads of a snapshot that failed as a whole.
const SNAPSHOT_FAILED: (&str, &str) = (
    "snapshot_failed",
    "the process's thread list could not be read",
);

/// Run a capture into `path` (created, or replaced). `stop` ends it early, cleanly.
pub fn capture(
    launch: &Launch,
    opts: &CaptureOptions,
    path: &Path,
    stop: &AtomicBool,
) -> Result<CaptureSummary> {
    if opts.sampling.native {
        bail!("native stack traces (--native) are not supported yet");
    }
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
    let result = run(launch, root, opts, &config, path, stop);
    end_child(&mut child);
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
        ..Config::default()
    }
}

fn spawn(argv: &[String]) -> Result<Child> {
    let Some(program) = argv.first() else {
        bail!("no program given to run (expected `-- python script.py ...`)");
    };
    Command::new(program)
        .args(&argv[1..])
        .spawn()
        .with_context(|| format!("could not start '{program}'"))
}

/// Attach to a running process. `PythonSpy::new` checks the layout with one walk that does
/// not pause the target (a pause right before the first sample would wake its sleeping
/// threads and make them look busy in it).
fn attach(pid: Pid, config: &Config) -> Result<PythonSpy> {
    AttachPolicy::RUNNING.attach(pid, config, &mut || None)
}

/// Attach to a program we just started: retry while it loads and initialises Python.
fn attach_spawned(
    pid: Pid,
    config: &Config,
    child: &mut Child,
    stop: &AtomicBool,
) -> Result<PythonSpy> {
    let mut give_up = || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(format!(
                "the program exited ({status}) before py-spy could attach to it"
            ));
        }
        stop.load(std::sync::atomic::Ordering::Relaxed)
            .then(|| format!("stopped before py-spy could attach to process {pid}"))
    };
    AttachPolicy::STARTING
        .attach(pid, config, &mut give_up)
        .with_context(|| format!("could not attach to the program started as process {pid}"))
}

/// Stop a program we started, if it still runs, and reap it.
fn end_child(child: &mut Option<Child>) {
    if let Some(c) = child.as_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// The session's size on disk, its write-ahead log included.
fn file_size(path: &Path) -> u64 {
    let [wal, _, _] = crate::store::schema::side_files(path);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(path) + size(&wal)
}

/// Human-readable byte count.
pub fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn progress_bar(opts: &CaptureOptions) -> ProgressBar {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match opts.sampling.duration {
        RecordDuration::Seconds(s) => {
            let bar = ProgressBar::with_draw_target(Some(s * 1000), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30.green/dim} {elapsed:>4} of {len_s}  {msg}")
                    .expect("valid template")
                    .with_key(
                        "len_s",
                        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{}s", s.len().unwrap_or(0) / 1000);
                        },
                    ),
            );
            bar
        }
        RecordDuration::Unlimited => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.green} {elapsed:>4}  {msg}  (Ctrl-C stops)",
                )
                .expect("valid template"),
            );
            bar
        }
    };
    bar
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
    let python = root.version.to_string();
    let command_line = root.command_line();
    let meta = CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: command_line.clone(),
        started: match launch {
            Launch::Attach(_) => Started::Attached,
            Launch::Spawn(_) => Started::Spawned,
        },
        pid: root_pid,
        python: python.clone(),
        host: proc::hostname(),
        options: opts.sampling.clone(),
    };
    let mut writer = SessionWriter::create(path, &meta)
        .with_context(|| format!("could not create session file {}", path.display()))?;
    writer.add_process(root_pid, None, &command_line, Some(&python))?;

    let mut procs: Vec<Attached> = vec![Attached {
        spy: root,
        frame_ids: FastMap::default(),
        last_threads: Vec::new(),
    }];
    let mut known: HashSet<Pid> = HashSet::from([root_pid]);
    let mut child_tries: HashMap<Pid, (u64, bool)> = HashMap::new();
    let mut last_scan = Instant::now();

    let limit = match opts.sampling.duration {
        RecordDuration::Unlimited => None,
        RecordDuration::Seconds(s) => Some(s.saturating_mul(opts.sampling.rate.max(1))),
    };
    let bar = progress_bar(opts);
    let mut last_draw = Instant::now();
    let begin = Instant::now();
    let mut ticker = Ticker::new(opts.sampling.rate);
    let mut threads: Vec<ThreadSample> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let period = Duration::from_nanos(1_000_000_000 / opts.sampling.rate.max(1));
    let (mut snapshots, mut samples, mut errors, mut late_count) = (0u64, 0u64, 0u64, 0u64);
    let mut error_samples = 0u64;
    let mut max_late = Duration::ZERO;
    let mut last_error = None;

    let stop_reason = loop {
        if limit.is_some_and(|l| ticker.next_index() >= l) {
            break StopReason::Duration;
        }
        let Some(late) = ticker.wait(stop) else {
            break StopReason::Interrupted;
        };
        let t_us = writer.elapsed_us();
        let late_us = late.as_micros().min(u32::MAX as u128) as u32;
        if late > period {
            late_count += 1;
        }
        max_late = max_late.max(late);

        let mut gone = Vec::new();
        for (i, p) in procs.iter_mut().enumerate() {
            match p.spy.sample(&mut threads) {
                Ok(()) => {
                    p.last_threads.clear();
                    p.last_threads
                        .extend(threads.iter().map(|t| (t.thread_id, t.os_thread_id)));
                    for t in &threads {
                        let state = if t.active { FLAG_ACTIVE } else { 0 }
                            | if t.holds_gil { FLAG_GIL } else { 0 };
                        let key = ThreadKey {
                            pid: p.spy.pid,
                            thread_id: t.thread_id,
                        };
                        ids.clear();
                        for f in &t.frames {
                            let id = match p.frame_ids.get(&(f.code.id, f.line)) {
                                Some(id) => *id,
                                None => {
                                    let key = FrameKey {
                                        function: f.code.name.clone(),
                                        qualname: f.code.qualname.clone(),
                                        filename: f.code.filename.clone(),
                                        short_filename: p
                                            .spy
                                            .short_filename(&f.code.filename)
                                            .map(Arc::from),
                                        line: f.line,
                                        first_line: f.code.first_line,
                                        module: None,
                                    };
                                    let id = writer.intern_frame(&key)?;
                                    p.frame_ids.insert((f.code.id, f.line), id);
                                    id
                                }
                            };
                            ids.push(id);
                        }
                        if let Some(fault) = t.fault {
                            // Stored with its reason, and the innermost frames read before
                            // the chain broke off, if any.
                            writer.add_error_sample(
                                t_us,
                                key,
                                t.os_thread_id,
                                p.spy.thread_name(t.thread_id),
                                fault.as_str(),
                                fault.describe(),
                                &ids,
                                state,
                                late_us,
                            )?;
                            samples += 1;
                            error_samples += 1;
                            continue;
                        }
                        let flags = state | if t.truncated { FLAG_TRUNCATED } else { 0 };
                        writer.add_sample_ids(
                            t_us,
                            key,
                            t.os_thread_id,
                            p.spy.thread_name(t.thread_id),
                            &ids,
                            flags,
                            late_us,
                        )?;
                        samples += 1;
                    }
                }
                Err(e) => {
                    if !proc::alive(p.spy.pid) {
                        gone.push(i);
                    } else {
                        errors += 1;
                        last_error = Some(format!("process {}: {e:#}", p.spy.pid));
                        // The time is still each thread's: stored as unknown, with the reason.
                        // (Before any snapshot worked no thread is known: counted only.)
                        if p.last_threads.is_empty() {
                            error_samples += 1;
                        }
                        for &(thread_id, os_thread_id) in &p.last_threads {
                            let key = ThreadKey {
                                pid: p.spy.pid,
                                thread_id,
                            };
                            let name = p.spy.thread_name(thread_id);
                            let (kind, message) = SNAPSHOT_FAILED;
                            writer.add_error_sample(
                                t_us,
                                key,
                                os_thread_id,
                                name,
                                kind,
                                message,
                                &[],
                                FLAG_ACTIVE,
                                late_us,
                            )?;
                            samples += 1;
                            error_samples += 1;
                        }
                    }
                }
            }
        }
        snapshots += 1;
        ticker.advance();
        for i in gone.into_iter().rev() {
            procs.remove(i);
        }
        if procs.is_empty() {
            break StopReason::ProcessExited;
        }

        if opts.sampling.subprocesses && last_scan.elapsed() >= CHILD_SCAN_EVERY {
            last_scan = Instant::now();
            for (pid, parent) in proc::descendants(root_pid) {
                if known.contains(&pid) {
                    continue;
                }
                let (tries, failed) = child_tries.entry(pid).or_insert((0, false));
                if *failed {
                    continue;
                }
                *tries += 1;
                let attached = PythonSpy::new(pid, config).map_err(|e| {
                    *failed = AttachPolicy::DESCENDANT.is_final(&e, *tries, Duration::ZERO);
                });
                if let Ok(spy) = attached {
                    let cmd = spy.command_line();
                    let version = spy.version.to_string();
                    writer.add_process(pid, Some(parent), &cmd, Some(&version))?;
                    known.insert(pid);
                    procs.push(Attached {
                        spy,
                        frame_ids: FastMap::default(),
                        last_threads: Vec::new(),
                    });
                }
            }
        }

        if !bar.is_hidden() && last_draw.elapsed() >= PROGRESS_EVERY {
            last_draw = Instant::now();
            bar.set_position(begin.elapsed().as_millis() as u64);
            let mut msg = format!(
                "{samples} samples, {errors} errors, {}",
                format_bytes(file_size(path))
            );
            if late > Duration::from_secs(1) {
                msg.push_str(&format!("  ({late:.1?} behind: try a lower rate)"));
            }
            bar.set_message(msg);
        }
    };
    bar.finish_and_clear();

    let elapsed = begin.elapsed();
    writer.set_end(&CaptureEnd {
        end_us: writer.elapsed_us(),
        snapshots,
        samples,
        errors,
        error_samples,
        late_snapshots: late_count,
        skipped_ticks: ticker.skipped,
        stop_reason: stop_reason.as_str().to_string(),
        last_error: last_error.clone(),
    })?;
    let stats = writer.finish()?;
    Ok(CaptureSummary {
        pid: root_pid,
        python,
        command_line,
        snapshots,
        samples,
        errors,
        error_samples,
        last_error,
        late: late_count,
        skipped: ticker.skipped,
        max_late,
        stop: stop_reason,
        elapsed,
        writer: stats,
        file_bytes: file_size(path),
    })
}
