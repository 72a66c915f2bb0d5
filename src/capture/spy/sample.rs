//! Taking a sample: one snapshot of every thread (pausing the target in blocking mode), taken
//! again when a stack changed while it was read, then each thread's activity and GIL state,
//! and the faults that remain.

use super::*;

impl PythonSpy {
    /// Take one snapshot of every Python thread into `out` (replacing its contents, reusing
    /// its allocations), without building strings: frames point at cached code objects.
    /// This is what `capture` uses; [`PythonSpy::get_stack_traces`] formats the same data.
    pub fn sample(&mut self, out: &mut Vec<ThreadSample>) -> Result<()> {
        let (blocking, threads) = self.choose_pausing();
        let reads_before = self.mem.reads_made();
        let attempt = self.take_with_retries(out, blocking, threads)?;
        if attempt > 0 && !blocking {
            self.keep_first_moment(out);
        }
        self.settle_faults(out);
        if !self.config.gil_only {
            self.judge_activity(out, blocking);
        }
        self.forget_gone_threads(out);
        if blocking && self.native.is_some() {
            self.merge_native(out);
        }
        self.stats.snapshots += 1;
        self.stats.last_reads = self.mem.reads_made() - reads_before;
        self.stats.reads += self.stats.last_reads;
        self.stats.code_loads = self.codes.loads;
        self.stats.code_invalidations = self.codes.invalidations;
        Ok(())
    }

    /// Whether this snapshot pauses the target (blocking mode, unless pausing every thread
    /// would freeze it too long), and how many threads it has. In blocking mode, OS thread
    /// states must be read before pausing the target: paused, every thread is 't'. Without
    /// pausing they are read after the snapshot, and only for threads not holding the GIL.
    fn choose_pausing(&mut self) -> (bool, u32) {
        self.running.clear();
        let mut blocking = self.config.blocking == LockingStrategy::Lock;
        if blocking && (self.walker.threads_changed || self.os_threads.count() == 0) {
            self.os_threads.rescan();
        }
        let threads = self.os_threads.count().max(1) as u32;
        if blocking && !self.pauses.allows(threads, Instant::now()) {
            // Pausing every thread would freeze the program too long: read it running.
            blocking = false;
            self.stats.unpaused += 1;
        }
        self.last_paused = blocking;
        if !self.config.gil_only && blocking {
            for tid in self.os_threads.known() {
                if let Some(r) = self.os_threads.is_running(tid) {
                    self.running.insert(tid, r);
                }
            }
        }
        (blocking, threads)
    }

    /// Walk every thread into `out`, paused or not, again while a stack fails the checks (at
    /// most [`MAX_RETRIES`] times). Returns the number of retries.
    fn take_with_retries(
        &mut self,
        out: &mut Vec<ThreadSample>,
        blocking: bool,
        threads: u32,
    ) -> Result<usize> {
        let mut attempt = 0;
        loop {
            let paused_at = Instant::now();
            let lock = if blocking {
                Some(self.process.lock().map_err(|e| self.lock_error(e))?)
            } else {
                None
            };
            let result = self.snapshot_once(out);
            if blocking && result.is_ok() && self.native.is_some() {
                self.unwind_paused(out);
            }
            drop(lock);
            if blocking {
                // Every pause is measured: the next snapshot is not paused if it would be
                // too long.
                let now = Instant::now();
                let pause = now - paused_at;
                self.stats.longest_pause = self.stats.longest_pause.max(pause);
                self.pauses.record(pause, threads, now);
            }
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
            if blocking {
                self.let_faulty_threads_run(out, attempt);
            }
        }
        Ok(attempt)
    }

    /// Whether each thread is active (running, not parked in a known waiting call), from
    /// what it did since the last snapshot and what the OS says of it (not needed with
    /// `--gil`, where only the GIL holder counts).
    fn judge_activity(&mut self, out: &mut [ThreadSample], blocking: bool) {
        // Threads seen for the first time: their state can only be read now.
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
            let r = if blocking && r == Some(true) && !t.holds_gil && !t.moved {
                Some(self.worked_since_last_look(tid))
            } else {
                r
            };
            t.active = r.unwrap_or(true) && !is_idle_frame(&t.frames);
        }
        if self.walker.threads_changed {
            // Sets, not lists: with thousands of threads coming and going, a list
            // searched for each of them cost more than the snapshot.
            let tids: FastSet<u64> = out.iter().filter_map(|t| t.os_thread_id).collect();
            self.os_threads.retain(&tids);
            self.last_running.retain(|t, _| tids.contains(t));
            self.cpu_seen.retain(|t, _| tids.contains(t));
        }
    }

    /// Forget what was kept about threads that are gone.
    fn forget_gone_threads(&mut self, out: &[ThreadSample]) {
        if self.walker.threads_changed || self.last_tops.len() > out.len() {
            let ids: FastSet<u64> = self.raw.iter().map(|t| t.thread_id).collect();
            self.last_tops.retain(|t, _| ids.contains(t));
            self.had_frames.retain(|t| ids.contains(t));
        }
    }

    /// Paused, a thread can be caught half-way through entering or leaving a call (a frame
    /// pushed but not yet linked, a chunk of the frame stack just freed): it must run on to
    /// leave that state before the snapshot is taken again. On a busy machine a thread that
    /// waits for a core may not run at all during a fixed short wait, so this waits until
    /// each faulty thread has had the CPU (its run time in `/proc` grew): at least
    /// [`PAUSED_RETRY_WAIT`] × `attempt`, at most [`PAUSED_RETRY_LONGEST`].
    fn let_faulty_threads_run(&mut self, out: &[ThreadSample], attempt: usize) {
        let started = Instant::now();
        let faulty: Vec<(u64, Option<u64>)> = out
            .iter()
            .filter(|t| t.fault.is_some())
            .filter_map(|t| t.os_thread_id)
            .map(|tid| (tid, self.os_threads.cpu_ns(tid)))
            .collect();
        // Checked after waits that double (a handful of /proc reads at most: polling often
        // would cost more CPU than the retry).
        let mut wait = PAUSED_RETRY_WAIT * attempt as u32;
        loop {
            std::thread::sleep(wait);
            let waiting = faulty
                .iter()
                .any(|&(tid, before)| before.is_some() && self.os_threads.cpu_ns(tid) == before);
            if !waiting || started.elapsed() >= PAUSED_RETRY_LONGEST {
                break;
            }
            wait = (wait * 2).min(PAUSED_RETRY_LONGEST.saturating_sub(started.elapsed()));
        }
    }

    /// Blocking mode, for a thread found runnable that neither holds the GIL nor ran Python
    /// code since the last snapshot: has it had the CPU for at least a twentieth of the time
    /// since it was last looked at? Each pause interrupts a sleeping thread, which then waits
    /// for the GIL (CPython's switch interval is 5 ms) to check for signals: at 200 Hz the next
    /// snapshot finds it runnable every time, though it did almost no work. A thread running
    /// C code without the GIL keeps the CPU. Unknown CPU time counts as working.
    fn worked_since_last_look(&mut self, tid: u64) -> bool {
        let now = Instant::now();
        let Some(cpu) = self.os_threads.cpu_ns(tid) else {
            return true;
        };
        let Some((last_cpu, last_at)) = self.cpu_seen.insert(tid, (cpu, now)) else {
            return true;
        };
        let wall = now.saturating_duration_since(last_at).as_nanos() as u64;
        cpu.saturating_sub(last_cpu).saturating_mul(MIN_CPU_SHARE) >= wall
    }

    /// The last snapshot was taken with the target paused (blocking mode, within the pause
    /// bound): its stacks are the threads' state at one instant.
    pub fn last_snapshot_paused(&self) -> bool {
        self.last_paused
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
            } else if slot.partial && retry.fault.is_none() {
                stitch(slot, retry, &mut self.stats.stitched);
            }
        }
        std::mem::swap(first, out);
    }

    /// After the last attempt: count faults and cut stacks, keep of a faulted thread only
    /// the frames of a chain that broke off, and remember which threads had frames.
    fn settle_faults(&mut self, out: &mut [ThreadSample]) {
        self.stats.relinked += self.raw.iter().map(|t| t.relinked as u64).sum::<u64>();
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
                if !self.last_paused {
                    let (codes, mem) = (&mut self.codes, &self.mem);
                    let mut frame_bytes =
                        |code| codes.get(mem, layout, code).map_or(0, |c| c.frame_bytes);
                    self.walker.settle_tops(&mut raw, &mut frame_bytes);
                    self.walker.rebuild_from_chunk(&mut raw, &mut frame_bytes);
                    self.walker.settle_to_copy(mem, &mut raw, |code, offset| {
                        codes.frame_facts(mem, layout, code, offset)
                    });
                }
                resolve_returned(&self.codes, layout, &mut raw);
                let frames = raw.iter().flat_map(|t| t.frames.iter().map(|f| f.code));
                self.codes
                    .end(&self.mem, layout, self.walker.batch(), frames);
                self.decode(&raw, out)
            });
        if self.walker.gil.holder == 0
            && self.target.layout.runtime.gil
                == crate::capture::python::layout::GilHolder::CurrentSymbol
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
}

/// Name the code of innermost frames that returned while they were read (their code cleared,
/// their instruction pointer left: [`RawFrame::returned`]) from the code objects known; a
/// thread whose returned frame ran code not seen before is a stack that changed while read.
fn resolve_returned(
    codes: &CodeCache,
    layout: &crate::capture::python::layout::Layout,
    raw: &mut [RawThread],
) {
    for t in raw.iter_mut() {
        for f in t.frames.iter_mut().take_while(|f| f.returned) {
            match codes.find_by_instr(layout, f.instr_offset as u64) {
                Some((code, offset)) => {
                    f.code = code;
                    f.instr_offset = offset;
                    f.returned = false;
                }
                None => {
                    t.fault = Some(StackFault::Changed);
                    t.partial = false;
                    t.frames.clear();
                    break;
                }
            }
        }
    }
}

/// A chain that broke off at a generator or coroutine frame that yielded while it was read
/// (its link to its caller cleared) is completed from the retry when the retry, read whole,
/// holds that same frame (same address, same code): a generator's or coroutine's frame is
/// resumed by the same caller for as long as it lives in the common patterns (`for` over a
/// generator, `yield from`, `await`), so the callers the retry shows are the ones it had
/// when the torn chain was read. Without this, generator-heavy code made a third to two
/// thirds of its samples error samples whose outer frames were unknown.
fn stitch(slot: &mut ThreadSample, retry: &mut ThreadSample, stitched: &mut u64) {
    let Some(last) = slot.frames.last() else {
        return;
    };
    if last.addr == 0 || last.code.flags & CO_GENERATOR_LIKE == 0 {
        return;
    }
    let at = retry
        .frames
        .iter()
        .position(|f| f.addr == last.addr && Arc::ptr_eq(&f.code, &last.code));
    if let Some(i) = at {
        slot.frames.extend(retry.frames.drain(i + 1..));
        slot.fault = None;
        slot.partial = false;
        *stitched += 1;
    }
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
    is_idle_call(&f.code.name, &f.code.filename)
}

/// Whether a thread whose innermost frame runs function `name` of `file` is waiting.
pub fn is_idle_call(name: &str, file: &str) -> bool {
    (name == "wait" && file.ends_with("threading.py"))
        || (name == "select" && file.ends_with("selectors.py"))
        || (name == "poll"
            && (file.ends_with("asyncore.py")
                || file.contains("zmq")
                || file.contains("gevent")
                || file.contains("tornado")))
}
