//! Walking the interpreter: thread states, then each thread's frames.
//!
//! A snapshot costs one batched read (`process_vm_readv` with many ranges) in the steady
//! state, whatever the number of threads or frames: the thread-list head, the GIL word, the
//! thread states seen last time, and for each thread its frame pointer and its frame stack
//! (3.11+ keeps frames in "datastack chunks") where they were last time, older chunks
//! included, plus whatever the caller prefetches (the code cache's re-check of the code
//! objects last used: [`Prefetch`]). A thread whose stack moved to another chunk or grew past
//! the guessed length is read in a second batch; a new thread state, a frame outside the
//! chunks (a generator's) or a code object not seen before costs a read of its own.

use super::layout::{EntryMark, FramePtr, FrameShape, InstrPos, Layout};
use crate::capture::os::memory::{Fields, Memory};
use crate::model::fasthash::FastSet;
use anyhow::{bail, Context, Result};

/// More threads than this means we are walking garbage.
pub const MAX_THREADS: usize = 4096;
/// Deeper stacks than this are cut (and flagged) rather than walked forever.
pub const MAX_DEPTH: usize = 4096;
/// Largest frame stack region copied in one piece.
const MAX_CHUNK: u64 = 4 << 20;
/// Most frame stack bytes copied in one snapshot, over all threads; past it, frames are read
/// one by one (garbage thread states must not make us allocate gigabytes).
const MAX_CHUNKS_TOTAL: u64 = 64 << 20;
/// Size of CPython's default datastack chunk (`DATA_STACK_CHUNK_SIZE`): what is read first
/// when an older chunk is needed.
const DEFAULT_CHUNK: usize = 16 * 1024;
/// Room for a stack to grow between two samples and still be served by the first read.
const GUESS_SLACK: usize = 1024;
/// Older chunks of one thread read with the first batch at most.
const MAX_GUESSED_OLDER: usize = 8;
/// Frames outside the chunks (generators', coroutines', shims) lately seen in a thread, read
/// with the first batch (3.11+).
const LOOSE_POOL: usize = 24;
/// Places a thread's frame pointer was lately read from, each read with the first batch.
const PTR_CANDIDATES: usize = 4;
/// Frame objects (up to 3.10) of one thread read with the first batch at most.
const MAX_GUESSED_FRAMES: usize = 512;

/// One Python frame as found in the target, before names and lines are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    pub addr: u64,
    pub code: u64,
    /// Byte offset of the last instruction started, in the code's bytecode (negative: none yet).
    pub instr_offset: i64,
    /// Run by its own call of the C eval loop: every frame up to 3.10, 3.11's `is_entry`.
    pub is_entry: bool,
    /// Called from a shim frame that C code pushed (3.12+).
    pub shim_entry: bool,
}

/// One Python thread as found in the target.
#[derive(Debug, Clone, Default)]
pub struct RawThread {
    pub tstate: u64,
    pub thread_id: u64,
    pub native_thread_id: u64,
    pub holds_gil: bool,
    /// Innermost frame first.
    pub frames: Vec<RawFrame>,
    /// The stack is deeper than [`MAX_DEPTH`]: the innermost frames are true, the rest cut.
    pub truncated: bool,
    /// The frames could not be taken as the thread's true stack (see [`StackFault`]); the
    /// frames found are then not to be trusted, except with `partial`.
    pub fault: Option<StackFault>,
    /// With a fault: `frames` are the innermost frames, each read whole and consistent, of a
    /// chain that ended before the thread's first frame (a generator or coroutine that
    /// yielded while it was read leaves its frame unlinked): what the thread ran then, with
    /// its callers unknown.
    pub partial: bool,
}

/// Why a thread's stack could not be taken as the thread's true stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackFault {
    /// The frames changed while they were read (the target runs on while it is sampled):
    /// the chain loops, goes the wrong way through the frame stack, holds a frame in a state
    /// no live frame has, or ends before the thread's first frame.
    Changed,
    /// A frame (or the pointer to the innermost one) could not be read.
    Unreadable,
    /// A frame's code object could not be read, or is not a code object.
    BadCode,
}

impl StackFault {
    /// Short, stable name (stored in session files).
    pub fn as_str(self) -> &'static str {
        match self {
            StackFault::Changed => "stack_changed",
            StackFault::Unreadable => "frame_unreadable",
            StackFault::BadCode => "code_unreadable",
        }
    }

    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            StackFault::Changed => "the stack changed while it was being read",
            StackFault::Unreadable => "a frame could not be read",
            StackFault::BadCode => "a frame's code object could not be read",
        }
    }
}

/// Where the GIL's holder is read, in absolute addresses of the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GilWords {
    /// A `PyThreadState *` that names the holder (0: unknown, nobody is reported holding it).
    pub holder: u64,
    /// An `int` that must be non-zero for `holder` to count (3.12+'s `gil->locked`).
    pub locked: Option<u64>,
}

/// Walks one interpreter of one process; keeps what it learned between snapshots, and
/// reuses its buffers so that a snapshot allocates nothing in the steady state.
pub struct Walker {
    pub layout: &'static Layout,
    pub interp: u64,
    pub gil: GilWords,
    last_tstates: Vec<u64>,
    /// The set of thread states differs from the previous snapshot.
    pub threads_changed: bool,
    /// Reused buffers: last snapshot's thread states as read again, this snapshot's thread
    /// states, their addresses, the loop guard, and the frame copies.
    known: Vec<u8>,
    states: Vec<u8>,
    addrs: Vec<u64>,
    seen: FastSet<u64>,
    arena: Vec<u8>,
    frame_bytes: Vec<u8>,
    /// Per thread of `last_tstates`: where its stack was.
    guesses: Vec<Guess>,
    /// Guesses no longer used, kept for their buffers.
    spare: Vec<Guess>,
}

/// Per-thread bookkeeping between batch (2) and the frame walk.
struct ThreadStack {
    frame: u64,
    unreadable: bool,
    regions: StackRegions,
}

/// What a guess put in the first batch: request indices (or `usize::MAX`) and arena offsets.
#[derive(Clone, Copy)]
struct Spec {
    ptr_req: usize,
    chunk_req: usize,
    chunk_at: usize,
    older_req: usize,
    older_at: usize,
    loose_req: usize,
    loose_at: usize,
}

const NONE: usize = usize::MAX;

impl Walker {
    pub fn new(layout: &'static Layout, interp: u64, gil: GilWords) -> Walker {
        Walker {
            layout,
            interp,
            gil,
            last_tstates: Vec::new(),
            threads_changed: true,
            known: Vec::new(),
            states: Vec::new(),
            addrs: Vec::new(),
            seen: FastSet::default(),
            arena: Vec::new(),
            frame_bytes: Vec::new(),
            guesses: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// All threads of the interpreter and their frames (innermost first), into `out`
    /// (replaced; its allocations are reused). `prefetch` rides along with the first read
    /// (see [`Prefetch`]).
    pub fn snapshot(
        &mut self,
        mem: &dyn Memory,
        out: &mut Vec<RawThread>,
        prefetch: &mut Prefetch,
    ) -> Result<()> {
        let l = self.layout;
        let tsize = l.thread.size as usize;

        // (1) head pointer, GIL words, last time's thread states and, guessing that each
        // thread's stack is where it was, its frame pointer and frames; plus the caller's
        // prefetch. One batch.
        let mut head = [0u8; 8];
        let mut gil = [0u8; 8];
        let mut locked = [0u8; 4];
        let last = self.last_tstates.len();
        self.known.clear();
        self.known.resize(tsize * last, 0);
        if self.guesses.len() != last {
            self.spare.append(&mut self.guesses);
        }
        let mut spec_ptrs = vec![[0u8; 8]; self.guesses.len() * PTR_CANDIDATES];
        self.arena.clear();
        let mut spec: Vec<Spec> = Vec::with_capacity(self.guesses.len());
        // Request order: what changes fastest is read closest to the thread states that point
        // at it (the less time between reading a pointer and what it points at, the more often
        // the two agree): frame pointers, the current chunks, frames read alone (generators',
        // coroutines'), then older chunks. Arena order: per thread, chunk, older chunks, loose.
        let size = l.frame.read_size as usize;
        let mut req = 3 + last;
        for g in &self.guesses {
            let mut sp = Spec {
                ptr_req: NONE,
                chunk_req: NONE,
                chunk_at: self.arena.len(),
                older_req: NONE,
                older_at: 0,
                loose_req: NONE,
                loose_at: 0,
            };
            sp.ptr_req = req;
            req += g.ptr_addrs.iter().filter(|a| **a != 0).count();
            sp.older_at = sp.chunk_at + g.len;
            let bytes = g.len + g.older.iter().map(|(_, len)| len).sum::<usize>();
            sp.loose_at = sp.chunk_at + bytes;
            let bytes = bytes + g.loose.len() * size;
            self.arena.resize(self.arena.len() + bytes, 0);
            spec.push(sp);
        }
        for (g, sp) in self.guesses.iter().zip(spec.iter_mut()) {
            if g.len > 0 {
                sp.chunk_req = req;
                req += 1;
            }
        }
        for (g, sp) in self.guesses.iter().zip(spec.iter_mut()) {
            sp.loose_req = req;
            req += g.loose.len();
        }
        for (g, sp) in self.guesses.iter().zip(spec.iter_mut()) {
            sp.older_req = req;
            req += g.older.len();
        }
        prefetch.buf.clear();
        prefetch
            .buf
            .resize(prefetch.reqs.iter().map(|r| r.1).sum(), 0);
        let ok = {
            let mut reqs: Vec<(u64, &mut [u8])> = Vec::with_capacity(req + prefetch.reqs.len());
            reqs.push((self.interp + l.interp.threads_head, &mut head));
            // Words we have no address for are read from the interpreter state (always
            // readable) and ignored: a failing range would split the batch in two syscalls.
            let or_interp = |a: u64| if a == 0 { self.interp } else { a };
            reqs.push((or_interp(self.gil.holder), &mut gil));
            reqs.push((or_interp(self.gil.locked.unwrap_or(0)), &mut locked));
            for (addr, buf) in self.last_tstates.iter().zip(self.known.chunks_mut(tsize)) {
                reqs.push((*addr, buf));
            }
            let mut rest: &mut [u8] = &mut self.arena;
            let (mut chunks, mut loose, mut older) = (Vec::new(), Vec::new(), Vec::new());
            for (g, ptrs) in self
                .guesses
                .iter()
                .zip(spec_ptrs.chunks_mut(PTR_CANDIDATES))
            {
                for (addr, ptr) in g.ptr_addrs.iter().zip(ptrs.iter_mut()) {
                    if *addr != 0 {
                        reqs.push((*addr, ptr));
                    }
                }
                let mut take = |len: usize| {
                    let (buf, tail) = std::mem::take(&mut rest).split_at_mut(len);
                    rest = tail;
                    buf
                };
                if g.len > 0 {
                    chunks.push((g.chunk, take(g.len)));
                }
                for &(base, len) in &g.older {
                    older.push((base, take(len)));
                }
                for &base in &g.loose {
                    loose.push((base, take(size)));
                }
            }
            reqs.append(&mut chunks);
            reqs.append(&mut loose);
            reqs.append(&mut older);
            let mut rest: &mut [u8] = &mut prefetch.buf;
            for (addr, len) in &prefetch.reqs {
                let (buf, tail) = std::mem::take(&mut rest).split_at_mut(*len);
                rest = tail;
                reqs.push((*addr, buf));
            }
            mem.read_many(&mut reqs)
        };
        if !ok[0] {
            bail!(
                "could not read the thread list of the interpreter at {:#x}",
                self.interp
            );
        }
        prefetch.ok.clear();
        prefetch.ok.extend_from_slice(&ok[req..]);
        let head = u64::from_le_bytes(head);
        let holder = if ok[1] && self.gil.holder != 0 {
            u64::from_le_bytes(gil)
        } else {
            0
        };
        let gil_holder = match self.gil.locked {
            Some(_) if !(ok[2] && u32::from_le_bytes(locked) != 0) => 0,
            _ => holder,
        };

        // Follow the list, reading only thread states not already in hand (the list is
        // usually in the same order as last time: look there first).
        self.states.clear();
        self.addrs.clear();
        self.seen.clear();
        let mut from_cache: Vec<Option<usize>> = Vec::new();
        let mut addr = head;
        while addr != 0 {
            if !self.seen.insert(addr) || self.addrs.len() >= MAX_THREADS {
                bail!("the thread list of the interpreter loops or is implausibly long");
            }
            let i = self.addrs.len();
            let cached = if self.last_tstates.get(i) == Some(&addr) && ok[i + 3] {
                Some(i)
            } else {
                self.last_tstates
                    .iter()
                    .position(|a| *a == addr)
                    .filter(|j| ok[j + 3])
            };
            let at = self.states.len();
            match cached {
                Some(j) => self
                    .states
                    .extend_from_slice(&self.known[j * tsize..(j + 1) * tsize]),
                None => {
                    self.states.resize(at + tsize, 0);
                    mem.read(addr, &mut self.states[at..])
                        .with_context(|| format!("could not read thread state at {addr:#x}"))?;
                }
            }
            let f = Fields(&self.states[at..at + tsize]);
            if f.u64(l.thread.interp as usize) != self.interp {
                bail!("thread state at {addr:#x} does not belong to the interpreter");
            }
            self.addrs.push(addr);
            from_cache.push(cached);
            addr = f.u64(l.thread.next as usize);
        }
        let n = self.addrs.len();

        // (2) for threads whose guess missed: frame pointer and the used part of the frame
        // stack, in one batch, appended to the arena.
        let mut stacks: Vec<ThreadStack> = Vec::with_capacity(n);
        let mut new_guesses: Vec<Guess> = Vec::with_capacity(n);
        let mut budget = MAX_CHUNKS_TOTAL;
        // (thread, frame pointer address or 0, chunk, arena offset, len) of the threads that
        // need batch (2)
        let mut missing: Vec<(usize, u64, u64, usize, usize)> = Vec::new();
        for (i, cached) in from_cache.iter().enumerate() {
            let f = Fields(&self.states[i * tsize..(i + 1) * tsize]);
            // Where the frame pointer is: known now, or to be read.
            let (known_frame, ptr_addr) = match l.thread.frame {
                FramePtr::InThread(off) => (Some(f.u64(off as usize)), 0),
                FramePtr::ViaCFrame {
                    cframe,
                    current_frame,
                } => {
                    let cf = f.u64(cframe as usize);
                    (None, if cf == 0 { 0 } else { cf + current_frame })
                }
            };
            let (chunk, len) = match (l.thread.datastack_chunk, l.thread.datastack_top) {
                (Some(c), Some(t)) if l.frames == FrameShape::InterpreterFrame => {
                    let chunk = f.u64(c as usize);
                    let top = f.u64(t as usize);
                    let len = if chunk != 0 && top > chunk && top - chunk <= MAX_CHUNK.min(budget) {
                        top - chunk
                    } else {
                        0
                    };
                    budget -= len;
                    (chunk, len as usize)
                }
                _ => (0, 0),
            };
            let mut g = self.spare.pop().unwrap_or_default();
            // The places the frame pointer was read from lately, newest first: 3.11-3.12's
            // `cframe` lives on the C stack and moves with every C call into the eval loop,
            // often back and forth between a few places.
            g.ptr_addrs = [0; PTR_CANDIDATES];
            if ptr_addr != 0 {
                g.ptr_addrs[0] = ptr_addr;
                if let Some(j) = cached {
                    let older = self.guesses[*j]
                        .ptr_addrs
                        .iter()
                        .filter(|a| **a != ptr_addr && **a != 0);
                    for (slot, a) in g.ptr_addrs[1..].iter_mut().zip(older) {
                        *slot = *a;
                    }
                }
            }
            g.chunk = chunk;
            g.len = 0;
            g.older.clear();
            g.loose.clear();
            new_guesses.push(g);
            let guess = cached.map(|j| (j, &self.guesses[j], spec[j]));
            let mut regions = StackRegions::default();
            // Frame pointer from the guess, if it was read from the same place.
            let frame = known_frame.or_else(|| {
                let (j, g, sp) = guess?;
                if ptr_addr == 0 {
                    return None;
                }
                let k = g.ptr_addrs.iter().position(|a| *a == ptr_addr)?;
                ok[sp.ptr_req + k].then(|| u64::from_le_bytes(spec_ptrs[j * PTR_CANDIDATES + k]))
            });
            // The current chunk from the guess, if it is the same chunk and still fits.
            let chunk_hit = len == 0
                || guess.is_some_and(|(_, g, sp)| {
                    g.chunk == chunk && len <= g.len && sp.chunk_req != NONE && ok[sp.chunk_req]
                });
            if let Some((_, g, sp)) = guess {
                let mut prev = 0;
                if len > 0 && chunk_hit {
                    let at = sp.chunk_at;
                    prev = Fields(&self.arena[at..at + len]).u64(l.frame.chunk_previous as usize);
                    regions.add(chunk, at, len, prev);
                }
                // Older chunks read with the guess, while the chain agrees.
                let mut oat = sp.older_at;
                for (k, &(base, olen)) in g.older.iter().enumerate() {
                    if !chunk_hit || prev != base || !ok[sp.older_req + k] {
                        break;
                    }
                    prev =
                        Fields(&self.arena[oat..oat + olen]).u64(l.frame.chunk_previous as usize);
                    regions.add(base, oat, olen, prev);
                    oat += olen;
                }
                // Frames read alone last time (frame objects; generator and C-stack shim
                // frames outside the chunks), read again with the guess.
                let size = l.frame.read_size as usize;
                for (k, &base) in g.loose.iter().enumerate() {
                    if ok[sp.loose_req + k] {
                        regions.loose.push((base, sp.loose_at + k * size, size));
                    }
                }
            }
            match frame {
                Some(frame) if chunk_hit => stacks.push(ThreadStack {
                    frame,
                    unreadable: false,
                    regions,
                }),
                _ => {
                    let want_ptr = if frame.is_none() { ptr_addr } else { 0 };
                    let want_len = if chunk_hit { 0 } else { len };
                    missing.push((i, want_ptr, chunk, self.arena.len(), want_len));
                    self.arena.resize(self.arena.len() + want_len, 0);
                    stacks.push(ThreadStack {
                        frame: frame.unwrap_or(0),
                        unreadable: frame.is_none() && ptr_addr == 0,
                        regions,
                    });
                }
            }
        }
        if !missing.is_empty() {
            let mut frame_ptrs = vec![[0u8; 8]; missing.len()];
            let mut index = vec![(NONE, NONE); missing.len()];
            let ok = {
                let mut reqs: Vec<(u64, &mut [u8])> = Vec::with_capacity(2 * missing.len());
                let first = missing[0].3;
                let mut rest: &mut [u8] = &mut self.arena[first..];
                for (k, (&(_, ptr_addr, chunk, _, len), ptr)) in
                    missing.iter().zip(frame_ptrs.iter_mut()).enumerate()
                {
                    if ptr_addr != 0 {
                        index[k].0 = reqs.len();
                        reqs.push((ptr_addr, ptr));
                    }
                    if len > 0 {
                        let (buf, tail) = std::mem::take(&mut rest).split_at_mut(len);
                        rest = tail;
                        index[k].1 = reqs.len();
                        reqs.push((chunk, buf));
                    }
                }
                mem.read_many(&mut reqs)
            };
            for (k, &(i, ptr_addr, chunk, at, len)) in missing.iter().enumerate() {
                let stack = &mut stacks[i];
                if ptr_addr != 0 {
                    if ok[index[k].0] {
                        stack.frame = u64::from_le_bytes(frame_ptrs[k]);
                    } else {
                        stack.unreadable = true;
                    }
                }
                if len > 0 && ok[index[k].1] {
                    let prev =
                        Fields(&self.arena[at..at + len]).u64(l.frame.chunk_previous as usize);
                    stack.regions.clear_chunks();
                    stack.regions.add(chunk, at, len, prev);
                }
            }
        }

        if out.len() < n {
            out.resize_with(n, RawThread::default);
        }
        out.truncate(n);
        for (i, mut stack) in stacks.into_iter().enumerate() {
            let f = Fields(&self.states[i * tsize..(i + 1) * tsize]);
            let addr = self.addrs[i];
            let thread = &mut out[i];
            thread.tstate = addr;
            thread.thread_id = f.u64(l.thread.thread_id as usize);
            thread.native_thread_id = l.thread.native_thread_id.map_or(0, |o| f.u64(o as usize));
            thread.holds_gil = gil_holder != 0 && gil_holder == addr;
            thread.frames.clear();
            thread.truncated = false;
            thread.partial = false;
            thread.fault = stack.unreadable.then_some(StackFault::Unreadable);
            if !stack.unreadable {
                walk_frames(
                    mem,
                    l,
                    stack.frame,
                    &mut stack.regions,
                    &mut self.arena,
                    &mut self.frame_bytes,
                    &mut self.seen,
                    thread,
                );
            }
            let g = &mut new_guesses[i];
            match l.frames {
                // Next time, guess the same stack plus some room to grow, within the chunk,
                // and the older chunks the walk needed.
                FrameShape::InterpreterFrame => {
                    if let Some(&(base, at, len)) = stack.regions.regions.first() {
                        if base == g.chunk {
                            let size =
                                Fields(&self.arena[at..at + len]).u64(l.frame.chunk_size as usize);
                            let want = (len + GUESS_SLACK) as u64;
                            g.len = if size >= len as u64 && size <= MAX_CHUNK {
                                want.min(size) as usize
                            } else {
                                len
                            };
                        }
                    }
                    g.older.extend(
                        stack
                            .regions
                            .regions
                            .iter()
                            .skip(1)
                            .take(MAX_GUESSED_OLDER)
                            .map(|&(base, _, len)| (base, len)),
                    );
                }
                FrameShape::FrameObject => {}
            }
            // Frames that were read alone, each read with the first batch next time; and
            // (3.11+) a few more seen lately: generators and coroutines are new objects whose
            // memory the allocator hands out again, so the frame a new one runs in is often
            // at an address seen before, and is then read together with the pointer to it.
            let used = &stack.regions.used_loose;
            g.loose.extend(used.iter().take(MAX_GUESSED_FRAMES));
            if l.frames == FrameShape::InterpreterFrame {
                if let Some(j) = from_cache[i] {
                    let room = LOOSE_POOL.saturating_sub(g.loose.len());
                    let seen = self.guesses[j].loose.iter().filter(|a| !used.contains(a));
                    g.loose.extend(seen.take(room));
                }
            }
        }
        self.threads_changed = self.addrs != self.last_tstates;
        if self.threads_changed {
            self.last_tstates.clone_from(&self.addrs);
        }
        let old = std::mem::replace(&mut self.guesses, new_guesses);
        self.spare.extend(old);
        Ok(())
    }
}

/// Reads a caller wants made together with a snapshot's first batch (the code cache's
/// re-validation of the code objects the last snapshot used), so that a steady-state
/// sample costs one `process_vm_readv`.
#[derive(Debug, Default)]
pub struct Prefetch {
    /// (address, length) to read.
    pub reqs: Vec<(u64, usize)>,
    /// The bytes read, back to back in request order.
    pub buf: Vec<u8>,
    /// Whether each request was read.
    pub ok: Vec<bool>,
}

/// Where a thread's stack was last time: the address its frame pointer was read from (3.11
/// and 3.12 read it through `cframe`; 0 when it is in the thread state), its datastack chunk
/// and how much of the chunk to copy, and the older chunks (or, up to 3.10, the frame
/// objects) the walk needed. A thread whose frame pointer and chunk are where they were,
/// and whose stack still fits, is served from the first batch.
#[derive(Debug, Clone, Default)]
struct Guess {
    /// Addresses the frame pointer was read from lately, newest first (0: none).
    ptr_addrs: [u64; PTR_CANDIDATES],
    chunk: u64,
    len: usize,
    /// (address, length) of older chunks.
    older: Vec<(u64, usize)>,
    /// Frames read alone: frame objects (up to 3.10), and 3.11+ frames outside the chunks.
    loose: Vec<u64>,
}

/// Where one thread's frame stack was copied: ranges of the walker's arena.
#[derive(Default)]
struct StackRegions {
    /// (target address, arena offset, length)
    regions: Vec<(u64, usize, usize)>,
    /// The next older chunk not copied yet (0: none).
    older: u64,
    /// Single frames read with the first batch: (target address, arena offset, length).
    loose: Vec<(u64, usize, usize)>,
    /// Frames served from `loose` or read alone during the walk, in walk order.
    used_loose: Vec<u64>,
    /// Bases of the copied chunks that are a thread's first (no older chunk): its first
    /// frame lives there.
    roots: Vec<u64>,
}

/// Where [`StackRegions::get`] found a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoundIn {
    /// In the datastack chunk at this base.
    Chunk(u64),
    /// Outside the chunks (a generator's frame, a shim frame on the C stack, a frame object).
    Alone,
}

impl StackRegions {
    fn add(&mut self, base: u64, at: usize, len: usize, older: u64) {
        self.regions.push((base, at, len));
        self.older = older;
        if older == 0 {
            self.roots.push(base);
        }
    }

    fn clear_chunks(&mut self) {
        self.regions.clear();
        self.roots.clear();
    }

    fn find<'a>(
        regions: &[(u64, usize, usize)],
        arena: &'a [u8],
        addr: u64,
        len: usize,
    ) -> Option<(&'a [u8], u64)> {
        regions.iter().find_map(|(base, at, size)| {
            let off = addr.checked_sub(*base)? as usize;
            if off.checked_add(len)? > *size {
                return None;
            }
            Some((arena.get(at + off..at + off + len)?, *base))
        })
    }

    /// Fill `out` from `addr`: from a copied chunk, after copying older chunks as needed, or
    /// read alone (a generator's frame lives in the generator object, outside the chunks).
    fn get(
        &mut self,
        mem: &dyn Memory,
        layout: &Layout,
        arena: &mut Vec<u8>,
        addr: u64,
        out: &mut [u8],
    ) -> Option<FoundIn> {
        loop {
            if let Some((b, base)) = Self::find(&self.regions, arena, addr, out.len()) {
                out.copy_from_slice(b);
                return Some(FoundIn::Chunk(base));
            }
            if let Some((b, _)) = Self::find(&self.loose, arena, addr, out.len()) {
                out.copy_from_slice(b);
                self.used_loose.push(addr);
                return Some(self.classify(layout, arena, addr));
            }
            if self.older == 0 || self.regions.len() > 64 || arena.len() as u64 > MAX_CHUNKS_TOTAL {
                break;
            }
            let base = self.older;
            self.older = 0;
            let at = arena.len();
            arena.resize(at + DEFAULT_CHUNK, 0);
            if mem.read(base, &mut arena[at..]).is_err() {
                arena.truncate(at);
                break;
            }
            let f = Fields(&arena[at..]);
            let size = f.u64(layout.frame.chunk_size as usize);
            let older = f.u64(layout.frame.chunk_previous as usize);
            let mut len = DEFAULT_CHUNK;
            if size > DEFAULT_CHUNK as u64 && size <= MAX_CHUNK {
                arena.resize(at + size as usize, 0);
                if mem.read(base, &mut arena[at..]).is_err() {
                    arena.truncate(at);
                    break;
                }
                len = size as usize;
            }
            self.add(base, at, len, older);
        }
        if mem.read(addr, out).is_err() {
            return None;
        }
        self.used_loose.push(addr);
        Some(self.classify(layout, arena, addr))
    }

    /// Where a frame read on its own lives: a frame pushed above the part of its chunk that
    /// was copied is still in the chunk (and the thread's).
    fn classify(&self, layout: &Layout, arena: &[u8], addr: u64) -> FoundIn {
        let chunk = self.regions.iter().find_map(|&(base, at, _)| {
            let size = Fields(arena.get(at..)?).u64(layout.frame.chunk_size as usize);
            (addr >= base && addr - base < size.min(MAX_CHUNK)).then_some(base)
        });
        chunk.map_or(FoundIn::Alone, FoundIn::Chunk)
    }
}

/// Follow `previous` links from `first`, innermost frame first, checking that the chain is
/// one a live thread can have (the target runs on while we read it): each frame is visited
/// once, frames in one datastack chunk go down in address, frame owners are consistent with
/// where the frame lives, and the chain ends at the thread's first frame (3.11: in its first
/// chunk; 3.12+: at the shim frame that the C code below the first Python frame pushed).
/// A chain that fails a check sets `thread.fault`.
#[allow(clippy::too_many_arguments)]
fn walk_frames(
    mem: &dyn Memory,
    l: &Layout,
    first: u64,
    regions: &mut StackRegions,
    arena: &mut Vec<u8>,
    bytes: &mut Vec<u8>,
    visited: &mut FastSet<u64>,
    thread: &mut RawThread,
) {
    let fo = &l.frame;
    bytes.clear();
    bytes.resize(fo.read_size as usize, 0);
    visited.clear();
    let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
    // Lowest frame address seen so far in each chunk (older frames must be lower still).
    let mut lowest: [(u64, u64); 8] = [(0, 0); 8];
    let mut addr = first;
    let mut steps = 0;
    // Where the last frame visited was, and whether it was a shim.
    let mut last: Option<(FoundIn, bool)> = None;
    // Up to 3.10: where the run of freed frame objects (no references left) that ends the
    // chain so far began; `None` while the last frame visited is live.
    let mut freed_run: Option<usize> = None;
    while addr != 0 {
        steps += 1;
        if thread.frames.len() >= MAX_DEPTH || steps > 2 * MAX_DEPTH {
            thread.truncated = true;
            return;
        }
        let Some(found) = regions.get(mem, l, arena, addr, bytes) else {
            thread.fault = Some(StackFault::Unreadable);
            return;
        };
        let ordered = match found {
            FoundIn::Chunk(base) => {
                let slot = lowest.iter().position(|(b, _)| *b == base || *b == 0);
                match slot {
                    Some(k) if lowest[k].0 == base => {
                        let ok = addr < lowest[k].1;
                        lowest[k].1 = addr;
                        ok
                    }
                    Some(k) => {
                        lowest[k] = (base, addr);
                        true
                    }
                    // More chunks than slots: fall back on the visited set.
                    None => visited.insert(addr),
                }
            }
            FoundIn::Alone => visited.insert(addr),
        };
        if !ordered {
            thread.fault = Some(StackFault::Changed);
            return;
        }
        let f = Fields(bytes);
        let code = f.u64(fo.code as usize) & tag_mask;
        let previous = f.u64(fo.previous as usize);
        // Up to 3.10 a frame is an object, and one that was freed has no references left.
        // Frames read after the thread state may have returned since (freed: a function's
        // last frame is kept for its next call with `f_back` intact, the stack of the
        // moment the thread state was read): they are kept, as py-spy keeps them. Rejecting
        // them made a retry of nearly half the snapshots of fast-changing code, and the
        // retries moved samples from deep stacks to shallow ones (3.8 `logging`: `handle` 35%
        // against 45-48% for py-spy and for the program's own samples). Other freed frames
        // are on the free list, which is linked through `f_back` and ends at NULL: a chain
        // that wanders into it ends at a freed frame, which the end-of-chain check rejects.
        if l.frames == FrameShape::FrameObject {
            if f.i64(0) > 0 {
                freed_run = None;
            } else if freed_run.is_none() {
                freed_run = Some(thread.frames.len());
            }
        }
        let mut is_entry = false;
        match fo.entry {
            EntryMark::None => is_entry = true,
            EntryMark::IsEntryByte(off) => is_entry = f.u8(off as usize) != 0,
            EntryMark::ShimOwner {
                owner,
                cstack,
                interpreter,
            } => {
                let o = f.u8(owner as usize);
                let shim = o == cstack || o == interpreter;
                // A frame in a chunk belongs to the thread (owner 0); one outside is a
                // generator's (1), a frame object's (2) or a shim.
                let plausible = match found {
                    FoundIn::Chunk(_) => o == OWNED_BY_THREAD,
                    FoundIn::Alone => shim || o == OWNED_BY_GENERATOR || o == OWNED_BY_FRAME_OBJECT,
                };
                if !plausible {
                    thread.fault = Some(StackFault::Changed);
                    return;
                }
                if shim {
                    // A shim frame pushed by C code: the frame it called is an entry frame.
                    if let Some(last) = thread.frames.last_mut() {
                        last.shim_entry = true;
                    }
                    last = Some((found, true));
                    addr = previous;
                    continue;
                }
            }
        }
        if code == 0 {
            // A slot being filled or cleared: no live frame has no code.
            thread.fault = Some(StackFault::Changed);
            return;
        }
        let instr_offset = match fo.instr {
            InstrPos::Lasti { offset, scale } => {
                let lasti = f.i32(offset as usize) as i64;
                if lasti < 0 {
                    -1
                } else {
                    lasti * scale
                }
            }
            InstrPos::Pointer(offset) => {
                let instr = f.u64(offset as usize);
                let bytecode = code.wrapping_add(l.code.code_adaptive);
                instr.wrapping_sub(bytecode) as i64
            }
        };
        thread.frames.push(RawFrame {
            addr,
            code,
            instr_offset,
            is_entry,
            shim_entry: false,
        });
        last = Some((found, false));
        addr = previous;
    }
    // The chain ended: it must end where a thread's first frame is.
    let complete = match (fo.entry, last) {
        (_, None) => true,
        (EntryMark::None, _) => l.frames != FrameShape::FrameObject || freed_run.is_none(),
        (EntryMark::IsEntryByte(_), Some((FoundIn::Chunk(base), _))) => {
            regions.roots.contains(&base)
        }
        (EntryMark::IsEntryByte(_), Some((FoundIn::Alone, _))) => false,
        (EntryMark::ShimOwner { .. }, Some((_, shim))) => shim,
    };
    if !complete {
        thread.fault = Some(StackFault::Changed);
        // A chain of frame objects that ends at a freed frame wandered into the free list
        // (linked through `f_back`): the run of freed frames it ends with is not the
        // thread's, but for its first frame, which was running when it was reached (its
        // code and line are still in it) and returned as it was read.
        if let Some(run) = freed_run {
            thread.frames.truncate(run + 1);
        }
        thread.partial = !thread.frames.is_empty();
    }
}

/// `_PyInterpreterFrame.owner` values common to 3.12+ (`FRAME_OWNED_BY_THREAD`, `_GENERATOR`,
/// `_FRAME_OBJECT`); the shim owners differ by version and are in the layout.
const OWNED_BY_THREAD: u8 = 0;
const OWNED_BY_GENERATOR: u8 = 1;
const OWNED_BY_FRAME_OBJECT: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::os::memory::ImageMemory;
    use crate::capture::python::code::CodeCache;
    use crate::capture::python::objects::ObjectReader;

    /// xorshift: reproducible garbage.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Regions of random bytes whose 8-byte words are often pointers back into the regions,
    /// so walks go deep into garbage: every call must return (Ok or Err), never panic or hang.
    #[test]
    fn garbage_memory_never_panics() {
        const BASES: [u64; 4] = [0x10000, 0x20000, 0x30000, 0x40000];
        for seed in 1..400u64 {
            // Every table, in turn: each frame shape, string, int and dict format.
            let layout = crate::capture::python::tables::ALL
                [seed as usize % crate::capture::python::tables::ALL.len()];
            let mut rng = Rng(seed.wrapping_mul(0x9e3779b97f4a7c15));
            let mut mem = ImageMemory::new();
            for base in BASES {
                let mut bytes = vec![0u8; 0x4000];
                for w in bytes.chunks_mut(8) {
                    let r = rng.next();
                    let v = match r % 4 {
                        0 => BASES[(r >> 8) as usize % 4] + (((r >> 16) % 0x4000) & !7),
                        1 => 0,
                        2 => r % 64,
                        _ => r,
                    };
                    w.copy_from_slice(&v.to_le_bytes());
                }
                mem.add(base, bytes);
            }
            let mut walker = Walker::new(
                layout,
                0x20000 + (seed % 64) * 8,
                GilWords {
                    holder: 0x10000 + 576,
                    locked: (seed % 2 == 0).then_some(0x10000 + 592),
                },
            );
            let mut codes = CodeCache::default();
            let mut threads = Vec::new();
            for _ in 0..2 {
                if walker
                    .snapshot(&mem, &mut threads, &mut Prefetch::default())
                    .is_ok()
                {
                    for t in &threads {
                        assert!(t.frames.len() <= MAX_DEPTH);
                        for f in &t.frames {
                            if codes.get(&mem, layout, f.code).is_ok() {
                                codes.line(layout, f.code, f.instr_offset);
                            }
                        }
                    }
                }
            }
            let mut reader = ObjectReader::new(&mem, layout);
            for base in BASES {
                let addr = base + ((rng.next() % 0x4000) & !7);
                let _ = reader.repr(addr, 128);
                let _ = reader.dict_items(addr);
                let _ = reader.instance_dict_items(addr);
            }
        }
    }
}
