//! [`PythonSpy`]: attach to a process and take stack traces of all its Python threads.
//!
//! Here: the spy, what a sample holds, attaching and py-spy 0.4's entry points. `sample`
//! takes a snapshot (with retries and the activity and GIL rules), `decode` turns raw frames
//! into code objects, lines and locals, `files` shortens file names as py-spy does.

mod decode;
mod files;
mod native;
mod pause;
mod sample;

pub use files::shorten_path;
pub use sample::is_idle_call;

use pause::PauseBudget;
pub use pause::MAX_PAUSE;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attach::AttachPolicy;
use super::errors::{classify_remote, AttachError};
use super::os::memory::{words_in, LiveMemory, Memory};
use super::os::threads::{self, OsThreads};
use super::python::code::{CodeCache, CodeInfo, CO_COROUTINE_LIKE, CO_GENERATOR_LIKE};
use super::python::layout::FrameShape;
use super::python::locals::read_locals;
use super::python::objects::ObjectReader;
use super::python::target::PythonTarget;
use super::python::thread_names::thread_names;
use super::python::version::Version;
use super::python::walker::{RawFrame, RawThread, StackFault, Walker};
use crate::model::config::{Config, LineNo, LockingStrategy};
use crate::model::fasthash::{FastMap, FastSet};
use crate::model::trace::{Frame, LocalVariable, Pid, StackTrace};

/// Shortest time between two lookups of thread names triggered by unknown threads.
const NAME_REFRESH: Duration = Duration::from_millis(250);

/// Counters of what sampling cost and what went wrong, since attaching.
#[derive(Debug, Clone, Default)]
pub struct CaptureStats {
    pub snapshots: u64,
    /// Memory read calls (`process_vm_readv`) made by snapshots.
    pub reads: u64,
    /// Reads made by the most recent snapshot.
    pub last_reads: u64,
    pub code_loads: u64,
    pub code_invalidations: u64,
    /// Frames dropped because their code object could not be read.
    pub bad_frames: u64,
    /// Stacks cut short at the walk's depth limit.
    pub truncated_stacks: u64,
    /// Snapshots taken again because a stack changed while it was read (or a frame could not
    /// be read), and stacks that still could not be taken after the retries: those are
    /// reported as faults (see [`ThreadSample::fault`]).
    pub retries: u64,
    /// Chains broken off at a generator or coroutine that yielded while read, completed
    /// from a retry that holds the same frame (see `sample::stitch`).
    pub stitched: u64,
    /// Links from generator frames to their resumers restored where the generator yielded
    /// or finished while it was read (see `RawThread::relinked`), over every attempt.
    pub relinked: u64,
    pub faults: u64,
    /// The longest time the target was paused for one snapshot (blocking mode).
    pub longest_pause: Duration,
    /// Snapshots taken without pausing in blocking mode, because pausing every thread would
    /// have stopped the program for longer than [`MAX_PAUSE`] (see [`PythonSpy::sample`]).
    pub unpaused: u64,
}

/// A runnable thread counts as running in blocking mode if it had at least 1/`MIN_CPU_SHARE`
/// of the time since it was last looked at (see [`PythonSpy::worked_since_last_look`]).
const MIN_CPU_SHARE: u64 = 20;

/// Snapshots taken again, at most, when a stack changed while it was read.
const MAX_RETRIES: usize = 2;
/// How long a paused target runs before it is paused again for a retry (times the retry's
/// number), at least; and at most, while a thread to be read again has not had the CPU
/// (see [`PythonSpy::let_faulty_threads_run`]).
const PAUSED_RETRY_WAIT: Duration = Duration::from_micros(500);
const PAUSED_RETRY_LONGEST: Duration = Duration::from_millis(20);

/// A live Python process, attached.
pub struct PythonSpy {
    pub pid: Pid,
    pub process: remoteprocess::Process,
    pub version: Version,
    /// Address of the interpreter state (`PyInterpreterState`).
    pub interpreter_address: usize,
    /// Address of the word that says which thread holds the GIL.
    pub threadstate_address: usize,
    pub config: Config,
    pub stats: CaptureStats,
    target: PythonTarget,
    mem: LiveMemory,
    walker: Walker,
    codes: CodeCache,
    os_threads: OsThreads,
    thread_names: FastMap<u64, String>,
    /// `pthread_t` → OS thread id, for versions whose thread states lack the latter.
    pthread_tids: FastMap<u64, u64>,
    names_looked_up: Option<Instant>,
    short_filenames: HashMap<Arc<str>, Option<String>>,
    /// Per thread id: the innermost frame (address, code, instruction) last seen.
    last_tops: FastMap<u64, (u64, u64, i64)>,
    /// Threads whose last stack had frames.
    had_frames: FastSet<u64>,
    /// Reused between samples: OS thread states, and threads for `get_stack_traces`.
    running: FastMap<u64, bool>,
    last_running: FastMap<u64, bool>,
    scratch: Vec<ThreadSample>,
    /// Without pausing: the first attempt of a sample that is taken again (see
    /// [`PythonSpy::keep_first_moment`]).
    first_attempt: Vec<ThreadSample>,
    raw: Vec<RawThread>,
    /// Stripped 2.7/3.6 builds don't export `_PyThreadState_Current`: when it was last looked
    /// for in the binary's data (see [`PythonSpy::find_gil_word`]).
    gil_search: Option<Instant>,
    attached_at: Instant,
    /// Whether a snapshot may pause the target (see [`MAX_PAUSE`]).
    pauses: PauseBudget,
    /// The last snapshot was taken with the target paused.
    last_paused: bool,
    /// Per OS thread: its CPU time and when it was read (see
    /// [`PythonSpy::worked_since_last_look`]).
    cpu_seen: FastMap<u64, (u64, Instant)>,
    /// When the full version was last looked for (see [`PythonSpy::refresh_version`]).
    version_checked: Option<Instant>,
    /// `--native`: the unwinder and what it learned.
    native: Option<Box<native::NativeState>>,
}

/// One thread's stack as [`PythonSpy::sample`] takes it: code objects rather than strings.
#[derive(Debug, Default)]
pub struct ThreadSample {
    pub thread_id: u64,
    pub os_thread_id: Option<u64>,
    pub holds_gil: bool,
    /// Running (or runnable) rather than waiting, by py-spy's rules.
    pub active: bool,
    /// The innermost frame or its instruction differs from the previous snapshot's: the
    /// thread ran Python code since then.
    pub moved: bool,
    /// The stack is deeper than the walk's limit: its outermost frames are cut.
    pub truncated: bool,
    /// With a fault, `frames` holds the innermost part of a chain that broke off.
    pub partial: bool,
    /// The thread's stack could not be taken (it kept changing while read, or could not be
    /// read): the sample stands for time of unknown stack, and `frames` is empty or, for a
    /// chain that broke off before the thread's first frame, its innermost part (see
    /// `RawThread::partial`).
    pub fault: Option<StackFault>,
    /// Innermost first.
    pub frames: Vec<CodeFrame>,
}

/// One frame of a [`ThreadSample`].
#[derive(Debug)]
pub struct CodeFrame {
    pub code: Arc<CodeInfo>,
    /// Where the frame is in the target (0: a native frame).
    pub addr: u64,
    /// Per `Config::lineno`: the line being run, the function's first line, or 0.
    pub line: i32,
    pub is_entry: bool,
    /// Called from a shim frame (3.12+); the outermost frame counts as one too.
    pub shim_entry: bool,
    /// That shim frame's address (0: none; see `RawFrame::shim_addr`).
    pub shim_addr: u64,
    pub locals: Option<Vec<LocalVariable>>,
}

impl PythonSpy {
    /// Attach to `pid`: find its interpreter and check that it can be walked.
    pub fn new(pid: Pid, config: &Config) -> Result<PythonSpy> {
        if config.native && config.blocking == LockingStrategy::NonBlocking {
            anyhow::bail!(
                "native stack traces (--native) need the program paused for each snapshot: \
                 drop --nonblocking"
            );
        }
        let mem = LiveMemory::new(pid);
        let target = PythonTarget::find(pid, &mem)?;
        let process =
            remoteprocess::Process::new(pid).map_err(|_| AttachError::NoSuchProcess(pid))?;
        let interp = target.interpreter_address(&mem)?;
        let gil = target.gil_words(&mem, interp);
        let walker = Walker::new(target.layout, interp, gil);
        let gil_word = gil.holder;
        let mut codes = CodeCache::default();
        codes.code_type = target.interpreter_binary.symbol("PyCode_Type");
        let mut spy = PythonSpy {
            pid,
            process,
            version: target.version.clone(),
            interpreter_address: interp as usize,
            threadstate_address: gil_word as usize,
            config: config.clone(),
            stats: CaptureStats::default(),
            target,
            mem,
            walker,
            codes,
            os_threads: OsThreads::new(pid),
            thread_names: FastMap::default(),
            pthread_tids: FastMap::default(),
            names_looked_up: None,
            short_filenames: HashMap::new(),
            last_tops: FastMap::default(),
            had_frames: FastSet::default(),
            running: FastMap::default(),
            last_running: FastMap::default(),
            scratch: Vec::new(),
            first_attempt: Vec::new(),
            raw: Vec::new(),
            gil_search: None,
            attached_at: Instant::now(),
            pauses: PauseBudget::default(),
            last_paused: false,
            cpu_seen: FastMap::default(),
            version_checked: None,
            native: config.native.then(Box::default),
        };
        spy.refresh_native_maps();
        // Walk once now: a wrong layout shows here, as an error, rather than as garbage later.
        let mut raw = Vec::new();
        spy.walker.snapshot(&spy.mem, &mut raw).with_context(|| {
            format!(
                "found Python {} in process {pid} but could not walk its threads",
                spy.version
            )
        })?;
        Ok(spy)
    }

    /// [`PythonSpy::new`], retried while the target is still starting up (py-spy 0.4's
    /// entry point; the policy is `AttachPolicy::retries`).
    pub fn retry_new(pid: Pid, config: &Config, max_retries: u64) -> Result<PythonSpy> {
        AttachPolicy::retries(max_retries).attach(pid, config, &mut || None)
    }

    /// The executable path as the target sees it.
    pub fn exe(&self) -> &str {
        &self.target.exe
    }

    /// Stack traces of every Python thread (or only the GIL holder with `gil_only`).
    pub fn get_stack_traces(&mut self) -> Result<Vec<StackTrace>> {
        let mut threads = std::mem::take(&mut self.scratch);
        let result = self.sample(&mut threads);
        let traces = result.map(|()| {
            let mut traces = Vec::with_capacity(threads.len());
            for t in threads.iter_mut() {
                let mut frames = Vec::with_capacity(t.frames.len());
                for f in t.frames.iter_mut() {
                    frames.push(Frame {
                        name: f.code.qualname.to_string(),
                        filename: f.code.filename.to_string(),
                        module: f.code.module.as_deref().map(str::to_string),
                        short_filename: self.shorten(&f.code.filename),
                        line: f.line,
                        locals: f.locals.take(),
                        is_entry: f.is_entry,
                        is_shim_entry: f.shim_entry,
                    });
                }
                if let Some(last) = frames.last_mut() {
                    last.is_shim_entry = true;
                }
                traces.push(StackTrace {
                    pid: self.pid,
                    thread_id: t.thread_id,
                    thread_name: self.thread_names.get(&t.thread_id).cloned(),
                    os_thread_id: t.os_thread_id,
                    active: t.active,
                    owns_gil: t.holds_gil,
                    frames,
                    process_info: None,
                });
            }
            traces
        });
        self.scratch = threads;
        traces
    }

    /// When the version was known only from a file name at attach (before 3.11, attached
    /// before the interpreter set `sys.version`), look for the full version again, at most
    /// every 100 ms for 10 s: returns it once found (then `self.version` holds it).
    pub fn refresh_version(&mut self) -> Option<Version> {
        if !self.target.version_from_name {
            return None;
        }
        let now = Instant::now();
        if self
            .version_checked
            .is_some_and(|t| now - t < Duration::from_millis(100))
            || now - self.attached_at > Duration::from_secs(10)
        {
            return None;
        }
        self.version_checked = Some(now);
        let exact = self.target.exact_version(&self.mem)?;
        self.target.version_from_name = false;
        self.target.version = exact.clone();
        self.version = exact.clone();
        Some(exact)
    }

    /// `threading`'s name for a thread, as last looked up.
    pub fn thread_name(&self, thread_id: u64) -> Option<&str> {
        self.thread_names.get(&thread_id).map(String::as_str)
    }

    /// The command line of the target, arguments joined by spaces.
    pub fn command_line(&self) -> String {
        self.process.cmdline().unwrap_or_default().join(" ")
    }

    fn lock_error(&self, e: remoteprocess::Error) -> anyhow::Error {
        match classify_remote(self.pid, &e) {
            Some(a) => a.into(),
            None => anyhow::Error::from(e).context("failed to pause the process"),
        }
    }
}
