//! [`PythonSpy`]: attach to a process and take stack traces of all its Python threads.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attach::AttachPolicy;
use super::errors::{classify_remote, AttachError};
use super::os::memory::{words_in, Fields, LiveMemory, Memory};
use super::os::threads::{self, OsThreads};
use super::python::code::{CodeCache, CodeInfo, CO_COROUTINE_LIKE, CO_GENERATOR_LIKE};
use super::python::layout::FrameShape;
use super::python::objects::ObjectReader;
use super::python::strings;
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
    pub faults: u64,
}

/// Snapshots taken again, at most, when a stack changed while it was read.
const MAX_RETRIES: usize = 2;
/// How long a paused target runs before it is paused again for a retry (times the retry's
/// number).
const PAUSED_RETRY_WAIT: Duration = Duration::from_micros(500);

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
    /// Per `Config::lineno`: the line being run, the function's first line, or 0.
    pub line: i32,
    pub is_entry: bool,
    /// Called from a shim frame (3.12+); the outermost frame counts as one too.
    pub shim_entry: bool,
    pub locals: Option<Vec<LocalVariable>>,
}

impl PythonSpy {
    /// Attach to `pid`: find its interpreter and check that it can be walked.
    pub fn new(pid: Pid, config: &Config) -> Result<PythonSpy> {
        if config.native {
            anyhow::bail!("native stack traces (--native) are not supported yet");
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
        };
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
    /// entry point; the policy is [`AttachPolicy::retries`]).
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
                        module: None,
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

    /// Take one snapshot of every Python thread into `out` (replacing its contents, reusing
    /// its allocations), without building strings: frames point at cached code objects.
    /// This is what `capture` uses; [`PythonSpy::get_stack_traces`] formats the same data.
    pub fn sample(&mut self, out: &mut Vec<ThreadSample>) -> Result<()> {
        // In blocking mode, OS thread states must be read before pausing the target: paused,
        // every thread is 't'. Without pausing they are read after the snapshot, and only for
        // threads not holding the GIL.
        self.running.clear();
        let blocking = self.config.blocking == LockingStrategy::Lock;
        if !self.config.gil_only && blocking {
            if self.walker.threads_changed {
                self.os_threads.rescan();
            }
            for tid in self.os_threads.known() {
                if let Some(r) = self.os_threads.is_running(tid) {
                    self.running.insert(tid, r);
                }
            }
        }
        let reads_before = self.mem.reads_made();
        // The target runs on while it is read (without pausing), and even paused it can be
        // caught half-way through pushing a frame: a stack that fails the walker's or the
        // code cache's checks is taken again (after letting a paused target run on), and
        // reported as a fault if it still fails.
        let mut attempt = 0;
        loop {
            let lock = if blocking {
                Some(self.process.lock().map_err(|e| self.lock_error(e))?)
            } else {
                None
            };
            let result = self.snapshot_once(out);
            drop(lock);
            result?;
            if attempt == 0 {
                self.doubt_new_empty_stacks(out);
            }
            // Without pausing, a chain that broke off inside a coroutine (it yielded to its
            // event loop while it was read) is kept as it is, an error sample with its
            // innermost frames: a coroutine's step is short, so the snapshot taken again
            // lands in the loop's machinery instead, and coroutines would be undercounted.
            // (A generator is resumed right away by its consumer: taking it again works.)
            let faulty = out
                .iter()
                .any(|t| t.fault.is_some() && (blocking || !broke_in_coroutine(t)));
            if !faulty || attempt == MAX_RETRIES {
                break;
            }
            if attempt == 0 && !blocking {
                // `out`'s slots are reused by the next attempt: keep this one aside.
                std::mem::swap(&mut self.first_attempt, out);
            }
            attempt += 1;
            self.stats.retries += 1;
            // Paused, a thread can be caught half-way through entering or leaving a call: it
            // must run on to leave that state, and a thread that waits for a core may not
            // run at all in the instant between two pauses.
            if blocking {
                std::thread::sleep(PAUSED_RETRY_WAIT * attempt as u32);
            }
        }
        if attempt > 0 && !blocking {
            self.keep_first_moment(out);
        }
        self.settle_faults(out);

        // Threads seen for the first time: their state can only be read now.
        if !self.config.gil_only {
            for t in out.iter_mut() {
                // Without pausing, a GIL holder that ran Python code since the last snapshot
                // is running: active, unless parked in a known waiting call, with no /proc
                // read. One that did not move may be stopped (SIGSTOP) or in a long C call:
                // the OS says which. (A pause wakes sleeping threads, which then take the GIL
                // for an instant to check for signals: in blocking mode the OS state read
                // before the pause is what counts, as in py-spy.)
                if t.holds_gil && !blocking && t.moved {
                    t.active = !is_idle_frame(&t.frames);
                    continue;
                }
                let Some(tid) = t.os_thread_id else {
                    continue;
                };
                let r = match self.running.get(&tid) {
                    Some(r) => Some(*r),
                    // In blocking mode a thread whose state could not be read before the pause
                    // is judged by its last known state: read now, just after the pause, every
                    // thread looks runnable while it resumes its interrupted system call.
                    None if blocking => match self.last_running.get(&tid) {
                        Some(r) => Some(*r),
                        None => self.os_threads.is_running(tid),
                    },
                    None => self.os_threads.is_running(tid),
                };
                if let Some(r) = r {
                    self.last_running.insert(tid, r);
                }
                t.active = r.unwrap_or(true) && !is_idle_frame(&t.frames);
            }
            if self.walker.threads_changed {
                let tids: Vec<u64> = out.iter().filter_map(|t| t.os_thread_id).collect();
                self.os_threads.retain(&tids);
                self.last_running.retain(|t, _| tids.contains(t));
            }
        }
        if self.walker.threads_changed || self.last_tops.len() > out.len() {
            let ids: Vec<u64> = self.raw.iter().map(|t| t.thread_id).collect();
            self.last_tops.retain(|t, _| ids.contains(t));
            self.had_frames.retain(|t| ids.contains(t));
        }
        self.stats.snapshots += 1;
        self.stats.last_reads = self.mem.reads_made() - reads_before;
        self.stats.reads += self.stats.last_reads;
        self.stats.code_loads = self.codes.loads;
        self.stats.code_invalidations = self.codes.invalidations;
        Ok(())
    }

    /// A thread that ran Python code last time and has no frame now has most likely been read
    /// while it changed (3.11-3.12 read the frame pointer through a C stack frame that may be
    /// gone): believed only when a second read says so too.
    fn doubt_new_empty_stacks(&self, out: &mut [ThreadSample]) {
        for t in out.iter_mut() {
            if t.fault.is_none() && t.frames.is_empty() && self.had_frames.contains(&t.thread_id) {
                t.fault = Some(StackFault::Changed);
            }
        }
    }

    /// Without pausing, a snapshot taken again is taken at a later moment, and what runs a
    /// moment after a stack tears is not a fair draw (a recursive call that returns tears
    /// the chain before 3.11, and the retry lands on what the caller does next far more
    /// often than chance): taking the retry's stack instead would move samples from one
    /// function to another. So `out` (the last attempt) is merged back into the first: a
    /// thread read whole the first time keeps that stack; a thread whose chain broke off
    /// takes the retry's only when it is whole and caught at the same moment (the same
    /// innermost code and line), and otherwise stays an error sample with the innermost
    /// frames first read; a thread whose stack could not be read at all takes the retry's.
    fn keep_first_moment(&mut self, out: &mut Vec<ThreadSample>) {
        let first = &mut self.first_attempt;
        for slot in first.iter_mut() {
            if slot.fault.is_none() {
                continue;
            }
            let Some(retry) = out.iter_mut().find(|t| t.thread_id == slot.thread_id) else {
                continue;
            };
            let take = if slot.partial && !slot.frames.is_empty() {
                retry.fault.is_none() && same_moment(&slot.frames[0], retry.frames.first())
            } else {
                true
            };
            if take {
                std::mem::swap(slot, retry);
            }
        }
        std::mem::swap(first, out);
    }

    /// After the last attempt: count faults and cut stacks, keep of a faulted thread only
    /// the frames of a chain that broke off, and remember which threads had frames.
    fn settle_faults(&mut self, out: &mut [ThreadSample]) {
        for t in out.iter_mut() {
            if t.fault.is_none() {
                if t.frames.is_empty() {
                    self.had_frames.remove(&t.thread_id);
                } else {
                    self.had_frames.insert(t.thread_id);
                }
            }
            if t.fault.is_some() {
                self.stats.faults += 1;
                if !t.partial {
                    t.frames.clear();
                }
                t.truncated = false;
            } else if t.truncated {
                self.stats.truncated_stacks += 1;
            }
        }
    }

    /// One walk of every thread and the decoding of its frames into `out`. The code cache's
    /// checks bracket the walk here, and only here: `begin` rides the walk's first read,
    /// `end` settles them before any frame is decoded.
    fn snapshot_once(&mut self, out: &mut Vec<ThreadSample>) -> Result<()> {
        let layout = self.target.layout;
        let mut raw = std::mem::take(&mut self.raw);
        let codes = &mut self.codes;
        let decoded = self
            .walker
            .snapshot_with(&self.mem, &mut raw, |batch| codes.begin(layout, batch))
            .and_then(|()| {
                let frames = raw.iter().flat_map(|t| t.frames.iter().map(|f| f.code));
                self.codes
                    .end(&self.mem, layout, self.walker.batch(), frames);
                self.decode(&raw, out)
            });
        if self.walker.gil.holder == 0
            && self.target.layout.runtime.gil == super::python::layout::GilHolder::CurrentSymbol
        {
            self.find_gil_word(&raw);
        }
        self.raw = raw;
        decoded
    }

    /// Without the `_PyThreadState_Current` symbol, look (at most once a second) for the word
    /// in the interpreter binary's data that holds one of the thread states now: while some
    /// thread holds the GIL it is the only such word there. Adopted only when unique.
    fn find_gil_word(&mut self, threads: &[RawThread]) {
        if self
            .gil_search
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.gil_search = Some(Instant::now());
        let tstates: Vec<u64> = threads.iter().map(|t| t.tstate).collect();
        let found: Vec<u64> = words_in(&self.mem, &self.target.interpreter_binary.data_ranges)
            .filter(|&(_, v)| v != 0 && tstates.contains(&v))
            .map(|(addr, _)| addr)
            .collect();
        if let [word] = found[..] {
            self.walker.gil.holder = word;
            self.threadstate_address = word as usize;
        }
    }

    /// `threading`'s name for a thread, as last looked up.
    pub fn thread_name(&self, thread_id: u64) -> Option<&str> {
        self.thread_names.get(&thread_id).map(String::as_str)
    }

    /// The file name relative to its package root (py-spy's rule): strip the directories
    /// above the outermost one that still holds an `__init__.py`. Names that are not paths
    /// (`<frozen runpy>`, `<string>`) are kept whole. Cached per file.
    pub fn short_filename(&mut self, filename: &Arc<str>) -> Option<String> {
        if let Some(s) = self.short_filenames.get(filename) {
            return s.clone();
        }
        // The packages are looked for where the target sees them: through its root when it
        // runs in a container or chroot; what is stripped is a prefix of its own path.
        let prefix = if self.target.dockerized {
            format!("/proc/{}/root", self.pid)
        } else {
            String::new()
        };
        let short = shorten_path(filename, |dir| {
            Path::new(&format!("{prefix}{dir}"))
                .join("__init__.py")
                .exists()
        });
        self.short_filenames.insert(filename.clone(), short.clone());
        short
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

    /// Turn raw threads into samples: code objects, lines, locals.
    fn decode(&mut self, threads: &[RawThread], out: &mut Vec<ThreadSample>) -> Result<()> {
        let layout = self.target.layout;

        // Before 3.8 thread states have no OS thread id: it is found through the pthread_t.
        if layout.thread.native_thread_id.is_none()
            && (self.walker.threads_changed
                || threads
                    .iter()
                    .any(|t| !self.pthread_tids.contains_key(&t.thread_id)))
        {
            let ids: Vec<u64> = threads.iter().map(|t| t.thread_id).collect();
            if self.walker.threads_changed || self.pthread_tids.len() < ids.len() {
                self.pthread_tids = threads::map_pthreads(&self.mem, self.pid, &ids);
            }
        }
        let unknown_thread = threads
            .iter()
            .any(|t| !self.thread_names.contains_key(&t.thread_id));
        if self.walker.threads_changed || unknown_thread {
            let due = self
                .names_looked_up
                .is_none_or(|t| t.elapsed() >= NAME_REFRESH || self.walker.threads_changed);
            if due {
                let mut reader = ObjectReader::new(&self.mem, layout);
                if let Ok(names) = thread_names(&mut reader, self.walker.interp) {
                    self.thread_names = names.into_iter().collect();
                }
                self.names_looked_up = Some(Instant::now());
            }
        }

        let mut used = 0;
        for thread in threads {
            if self.config.gil_only && !thread.holds_gil {
                continue;
            }
            if used == out.len() {
                out.push(ThreadSample::default());
            }
            let slot = &mut out[used];
            used += 1;
            slot.thread_id = thread.thread_id;
            slot.os_thread_id = if thread.native_thread_id != 0 {
                Some(thread.native_thread_id)
            } else {
                self.pthread_tids.get(&thread.thread_id).copied()
            };
            slot.holds_gil = thread.holds_gil;
            slot.active = true;
            slot.truncated = thread.truncated;
            slot.fault = thread.fault;
            slot.partial = thread.partial;
            let top = thread
                .frames
                .first()
                .map_or((0, 0, 0), |f| (f.addr, f.code, f.instr_offset));
            // (A thread seen for the first time has not been seen to move.)
            slot.moved = thread.fault.is_none()
                && self
                    .last_tops
                    .insert(thread.thread_id, top)
                    .is_some_and(|last| last != top);
            slot.frames.clear();
            if slot.fault.is_some() && !slot.partial {
                continue;
            }
            for raw in &thread.frames {
                let code = match self.codes.get(&self.mem, layout, raw.code) {
                    Ok(c) => c,
                    Err(_) => {
                        self.stats.bad_frames += 1;
                        slot.fault = Some(StackFault::BadCode);
                        slot.partial = false;
                        slot.frames.clear();
                        break;
                    }
                };
                let line = match self.config.lineno {
                    LineNo::NoLine => 0,
                    LineNo::First => code.first_line,
                    LineNo::LastInstruction => self.codes.line(layout, raw.code, raw.instr_offset),
                };
                let locals = if self.config.dump_locals > 0 {
                    Some(self.locals(raw, &code).unwrap_or_default())
                } else {
                    None
                };
                slot.frames.push(CodeFrame {
                    code,
                    line,
                    is_entry: raw.is_entry,
                    shim_entry: raw.shim_entry,
                    locals,
                });
            }
            // Up to 3.10 a running generator's frame links to its caller only while it runs:
            // a chain that ends at one was read after it yielded (a thread's first frame is a
            // function called from C, never a generator). From 3.11 the walker knows where a
            // chain must end.
            if layout.frames == FrameShape::FrameObject
                && slot.fault.is_none()
                && slot
                    .frames
                    .last()
                    .is_some_and(|f| f.code.flags & CO_GENERATOR_LIKE != 0)
            {
                slot.fault = Some(StackFault::Changed);
                slot.partial = true;
            }
        }
        out.truncate(used);
        Ok(())
    }

    /// Local variables of a frame: names from the code object, values from the frame.
    fn locals(&mut self, raw: &RawFrame, code: &CodeInfo) -> Result<Vec<LocalVariable>> {
        let layout = self.target.layout;
        let n = code.nlocals.min(4096) as usize;
        let names = self
            .mem
            .read_vec(code.varnames + layout.object.tuple_items, n * 8)
            .context("could not read local variable names")?;
        let values = self
            .mem
            .read_vec(raw.addr + layout.frame.localsplus, n * 8)
            .context("could not read local variable values")?;
        let max_len = (128 * self.config.dump_locals) as isize;
        let mut reader = ObjectReader::new(&self.mem, layout);
        let mut out = Vec::new();
        // 3.14+ locals are tagged stack references: mask the tags; 1 is NULL.
        let tag_bits = layout.frame.code_tag_bits;
        for i in 0..n {
            let word = Fields(&values).u64(i * 8);
            if tag_bits > 0 && (word == 1 || word & 3 == 3) {
                continue;
            }
            let addr = word & !((1u64 << tag_bits) - 1);
            if addr == 0 {
                continue;
            }
            let name = strings::read_name(&self.mem, layout, Fields(&names).u64(i * 8))
                .unwrap_or_else(|_| "?".to_owned());
            let repr = reader.repr(addr, max_len).ok();
            out.push(LocalVariable {
                name,
                addr: addr as usize,
                arg: i < code.argcount as usize,
                repr: Some(repr.unwrap_or_else(|| "?".to_owned())),
            });
        }
        Ok(out)
    }

    /// The file name as `Frame::short_filename` shows it: shortened unless full file names
    /// were asked for.
    fn shorten(&mut self, filename: &Arc<str>) -> Option<String> {
        if self.config.full_filenames {
            return Some(filename.to_string());
        }
        self.short_filename(filename)
    }
}

/// `filename` without the directories above its package root: the outermost directory for
/// which `is_package` holds, climbing from the file's own directory. A name that is not a
/// path (no `/`) is returned whole; a relative path keeps its relative form.
fn shorten_path(filename: &str, is_package: impl Fn(&str) -> bool) -> Option<String> {
    if !filename.contains('/') {
        return Some(filename.to_string());
    }
    let path = Path::new(filename);
    let mut root = path;
    while let Some(parent) = root.parent() {
        root = parent;
        if !is_package(&parent.to_string_lossy()) {
            break;
        }
    }
    path.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether `retry` is the innermost frame `torn` was, at the same line: a stack read again
/// that shows the thread where the first read left it.
fn same_moment(torn: &CodeFrame, retry: Option<&CodeFrame>) -> bool {
    retry.is_some_and(|r| Arc::ptr_eq(&r.code, &torn.code) && r.line == torn.line)
}

/// The thread's chain broke off inside a coroutine (or async generator): its innermost
/// frames, kept, include one.
fn broke_in_coroutine(t: &ThreadSample) -> bool {
    t.partial
        && t.frames
            .iter()
            .any(|f| f.code.flags & CO_COROUTINE_LIKE != 0)
}

/// py-spy's rule for threads that are runnable but in fact waiting: the innermost frame is a
/// known blocking call.
fn is_idle_frame(frames: &[CodeFrame]) -> bool {
    let Some(f) = frames.first() else {
        return false;
    };
    let (name, file) = (&*f.code.name, &*f.code.filename);
    (name == "wait" && file.ends_with("threading.py"))
        || (name == "select" && file.ends_with("selectors.py"))
        || (name == "poll"
            && (file.ends_with("asyncore.py")
                || file.contains("zmq")
                || file.contains("gevent")
                || file.contains("tornado")))
}

#[cfg(test)]
mod tests {
    use super::shorten_path;

    #[test]
    fn short_names() {
        let pkgs = ["/srv/app/pkg", "/srv/app/pkg/sub"];
        let is_pkg = |d: &str| pkgs.contains(&d);
        assert_eq!(
            shorten_path("/srv/app/pkg/sub/mod.py", is_pkg).as_deref(),
            Some("pkg/sub/mod.py")
        );
        assert_eq!(
            shorten_path("/usr/lib/python3.11/threading.py", is_pkg).as_deref(),
            Some("threading.py")
        );
        // Not paths: kept whole (they used to pick up the host's chroot prefix).
        for name in ["<frozen runpy>", "__init__", "<string>"] {
            assert_eq!(shorten_path(name, is_pkg).as_deref(), Some(name));
        }
    }
}
