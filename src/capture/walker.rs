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

use super::layout::{FrameShape, GilHolder, Layout};
use super::memory::{Fields, Memory};
use crate::fasthash::FastSet;
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

/// One Python frame as found in the target, before names and lines are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    pub addr: u64,
    pub code: u64,
    /// Byte offset of the last instruction started, in the code's bytecode (negative: none yet).
    pub instr_offset: i64,
    /// Entered from C (3.11 `is_entry`).
    pub is_entry: bool,
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
    /// The walk stopped early (depth limit or unreadable frame).
    pub truncated: bool,
}

/// Walks one interpreter of one process; keeps what it learned between snapshots, and
/// reuses its buffers so that a snapshot allocates nothing in the steady state.
pub struct Walker {
    pub layout: &'static Layout,
    pub runtime: u64,
    pub interp: u64,
    last_tstates: Vec<u64>,
    /// The set of thread states differs from the previous snapshot.
    pub threads_changed: bool,
    /// Reused buffers: last snapshot's thread states as read again, this snapshot's thread
    /// states, their addresses, the loop guard, and the frame-stack copies.
    known: Vec<u8>,
    states: Vec<u8>,
    addrs: Vec<u64>,
    seen: FastSet<u64>,
    arena: Vec<u8>,
    frame_bytes: Vec<u8>,
    /// Per thread of `last_tstates`: where its stack was.
    guesses: Vec<Guess>,
}

/// Per-thread bookkeeping between batch (2) and the frame walk.
struct ThreadStack {
    frame: u64,
    unreadable: bool,
    regions: StackRegions,
}

impl Walker {
    pub fn new(layout: &'static Layout, runtime: u64, interp: u64) -> Walker {
        Walker {
            layout,
            runtime,
            interp,
            last_tstates: Vec::new(),
            threads_changed: true,
            known: Vec::new(),
            states: Vec::new(),
            addrs: Vec::new(),
            seen: FastSet::default(),
            arena: Vec::new(),
            frame_bytes: Vec::new(),
            guesses: Vec::new(),
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

        // (1) head pointer, GIL word, last time's thread states and, guessing that each
        // thread's stack is where it was, its frame pointer and frame stack; plus the
        // caller's prefetch. One batch.
        let gil_addr = match l.runtime.gil {
            GilHolder::RuntimeTstateCurrent(off) => self.runtime + off,
        };
        let mut head = [0u8; 8];
        let mut gil = [0u8; 8];
        let last = self.last_tstates.len();
        self.known.clear();
        self.known.resize(tsize * last, 0);
        if self.guesses.len() != last {
            self.guesses.clear();
        }
        let mut spec_ptrs = vec![[0u8; 8]; self.guesses.len()];
        // Each guess reads, back to back both in the request list and in the arena: the frame
        // pointer, the current chunk, then its older chunks. `spec` keeps, per guess, the
        // index of its first request and the arena offset of its current chunk.
        self.arena.clear();
        let mut spec: Vec<(usize, usize)> = Vec::with_capacity(self.guesses.len());
        let mut req = 2 + last;
        for g in &self.guesses {
            spec.push((req, self.arena.len()));
            req += 2 + g.older.len();
            let bytes = g.len + g.older.iter().map(|(_, len)| len).sum::<usize>();
            self.arena.resize(self.arena.len() + bytes, 0);
        }
        prefetch.buf.clear();
        prefetch
            .buf
            .resize(prefetch.reqs.iter().map(|r| r.1).sum(), 0);
        let ok = {
            let mut reqs: Vec<(u64, &mut [u8])> = Vec::with_capacity(req + prefetch.reqs.len());
            reqs.push((self.interp + l.interp.threads_head, &mut head));
            reqs.push((gil_addr, &mut gil));
            for (addr, buf) in self.last_tstates.iter().zip(self.known.chunks_mut(tsize)) {
                reqs.push((*addr, buf));
            }
            let mut rest: &mut [u8] = &mut self.arena;
            for (g, ptr) in self.guesses.iter().zip(spec_ptrs.iter_mut()) {
                reqs.push((g.cframe + l.frame.cframe_current_frame, ptr));
                for (base, len) in std::iter::once((g.chunk, g.len)).chain(g.older.iter().copied())
                {
                    let (buf, tail) = std::mem::take(&mut rest).split_at_mut(len);
                    rest = tail;
                    reqs.push((base, buf));
                }
            }
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
        let spec_ok = |j: usize| ok[spec[j].0] && ok[spec[j].0 + 1];
        prefetch.ok.clear();
        prefetch.ok.extend_from_slice(&ok[req..]);
        let head = u64::from_le_bytes(head);
        let gil_holder = if ok[1] { u64::from_le_bytes(gil) } else { 0 };

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
            let cached = if self.last_tstates.get(i) == Some(&addr) && ok[i + 2] {
                Some(i)
            } else {
                self.last_tstates
                    .iter()
                    .position(|a| *a == addr)
                    .filter(|j| ok[j + 2])
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
        match l.frames {
            FrameShape::InterpreterFrame311 => {
                let mut budget = MAX_CHUNKS_TOTAL;
                // (thread, chunk, arena offset, len) of the threads that need batch (2)
                let mut missing: Vec<(usize, u64, usize, usize)> = Vec::new();
                for (i, cached) in from_cache.iter().enumerate() {
                    let f = Fields(&self.states[i * tsize..(i + 1) * tsize]);
                    let cframe = f.u64(l.thread.cframe as usize);
                    let chunk = f.u64(l.thread.datastack_chunk as usize);
                    let top = f.u64(l.thread.datastack_top as usize);
                    let len = if chunk != 0 && top > chunk && top - chunk <= MAX_CHUNK.min(budget) {
                        top - chunk
                    } else {
                        0
                    };
                    budget -= len;
                    let len = len as usize;
                    new_guesses.push(Guess {
                        cframe,
                        chunk,
                        len: 0,
                        older: Vec::new(),
                    });
                    let hit = cached.filter(|&j| {
                        let g = &self.guesses[j];
                        spec_ok(j) && g.cframe == cframe && g.chunk == chunk && len <= g.len
                    });
                    match hit {
                        Some(j) => {
                            let mut regions = StackRegions::default();
                            if len > 0 {
                                let (first_req, at) = spec[j];
                                let mut prev = Fields(&self.arena[at..at + len])
                                    .u64(l.frame.chunk_previous as usize);
                                regions.add(chunk, at, len, prev);
                                // Older chunks read with the guess, while the chain agrees.
                                let g = &self.guesses[j];
                                let mut oat = at + g.len;
                                for (k, &(base, olen)) in g.older.iter().enumerate() {
                                    if prev != base || !ok[first_req + 2 + k] {
                                        break;
                                    }
                                    prev = Fields(&self.arena[oat..oat + olen])
                                        .u64(l.frame.chunk_previous as usize);
                                    regions.add(base, oat, olen, prev);
                                    oat += olen;
                                }
                            }
                            stacks.push(ThreadStack {
                                frame: u64::from_le_bytes(spec_ptrs[j]),
                                unreadable: false,
                                regions,
                            });
                        }
                        None => {
                            missing.push((i, chunk, self.arena.len(), len));
                            self.arena.resize(self.arena.len() + len, 0);
                            stacks.push(ThreadStack {
                                frame: 0,
                                unreadable: true,
                                regions: StackRegions::default(),
                            });
                        }
                    }
                }
                if !missing.is_empty() {
                    let mut frame_ptrs = vec![[0u8; 8]; missing.len()];
                    let ok = {
                        let mut reqs: Vec<(u64, &mut [u8])> = Vec::with_capacity(2 * missing.len());
                        let first = missing[0].2;
                        let mut rest: &mut [u8] = &mut self.arena[first..];
                        for (&(i, chunk, _, len), ptr) in missing.iter().zip(frame_ptrs.iter_mut())
                        {
                            let cframe = Fields(&self.states[i * tsize..(i + 1) * tsize])
                                .u64(l.thread.cframe as usize);
                            reqs.push((cframe + l.frame.cframe_current_frame, ptr));
                            let (buf, tail) = std::mem::take(&mut rest).split_at_mut(len);
                            rest = tail;
                            reqs.push((chunk, buf));
                        }
                        mem.read_many(&mut reqs)
                    };
                    for (k, &(i, chunk, at, len)) in missing.iter().enumerate() {
                        let mut regions = StackRegions::default();
                        if ok[2 * k + 1] && len > 0 {
                            let prev = Fields(&self.arena[at..at + len])
                                .u64(l.frame.chunk_previous as usize);
                            regions.add(chunk, at, len, prev);
                        }
                        stacks[i] = ThreadStack {
                            frame: if ok[2 * k] {
                                u64::from_le_bytes(frame_ptrs[k])
                            } else {
                                0
                            },
                            unreadable: !ok[2 * k],
                            regions,
                        };
                    }
                }
                // Next time, guess the same stack plus some room to grow, within the chunk.
                for (i, g) in new_guesses.iter_mut().enumerate() {
                    let Some(&(_, at, len)) = stacks[i].regions.regions.first() else {
                        continue;
                    };
                    let size = Fields(&self.arena[at..at + len]).u64(l.frame.chunk_size as usize);
                    let want = (len + GUESS_SLACK) as u64;
                    g.len = if size >= len as u64 && size <= MAX_CHUNK {
                        want.min(size) as usize
                    } else {
                        len
                    };
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
            thread.native_thread_id = f.u64(l.thread.native_thread_id as usize);
            thread.holds_gil = gil_holder != 0 && gil_holder == addr;
            thread.frames.clear();
            thread.truncated = stack.unreadable;
            walk_frames(
                mem,
                l,
                stack.frame,
                &mut stack.regions,
                &mut self.arena,
                &mut self.frame_bytes,
                thread,
            );
            // Older chunks the walk needed: guessed next time too.
            if let Some(g) = new_guesses.get_mut(i) {
                g.older.clear();
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
        }
        self.threads_changed = self.addrs != self.last_tstates;
        if self.threads_changed {
            self.last_tstates.clone_from(&self.addrs);
        }
        self.guesses = new_guesses;
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

/// Where a thread's stack was last time: its `cframe`, its datastack chunk and how much of
/// the chunk to copy. A thread whose `cframe` and chunk are unchanged, and whose stack still
/// fits, is served from the first batch.
#[derive(Debug, Clone)]
struct Guess {
    cframe: u64,
    chunk: u64,
    len: usize,
    /// Older chunks the walk needed last time (deep stacks): (address, length).
    older: Vec<(u64, usize)>,
}

/// Where one thread's frame stack was copied: ranges of the walker's arena.
#[derive(Default)]
struct StackRegions {
    /// (target address, arena offset, length)
    regions: Vec<(u64, usize, usize)>,
    /// The next older chunk not copied yet (0: none).
    older: u64,
}

impl StackRegions {
    fn add(&mut self, base: u64, at: usize, len: usize, older: u64) {
        self.regions.push((base, at, len));
        self.older = older;
    }

    fn find<'a>(&self, arena: &'a [u8], addr: u64, len: usize) -> Option<&'a [u8]> {
        self.regions.iter().find_map(|(base, at, size)| {
            let off = addr.checked_sub(*base)? as usize;
            if off.checked_add(len)? > *size {
                return None;
            }
            arena.get(at + off..at + off + len)
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
    ) -> bool {
        loop {
            if let Some(b) = self.find(arena, addr, out.len()) {
                out.copy_from_slice(b);
                return true;
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
        mem.read(addr, out).is_ok()
    }
}

/// Follow `previous` links from `first`, innermost frame first.
fn walk_frames(
    mem: &dyn Memory,
    l: &Layout,
    first: u64,
    regions: &mut StackRegions,
    arena: &mut Vec<u8>,
    bytes: &mut Vec<u8>,
    thread: &mut RawThread,
) {
    match l.frames {
        FrameShape::InterpreterFrame311 => {
            let fo = &l.frame;
            bytes.clear();
            bytes.resize(fo.localsplus as usize, 0);
            let mut addr = first;
            while addr != 0 {
                if thread.frames.len() >= MAX_DEPTH {
                    thread.truncated = true;
                    return;
                }
                if !regions.get(mem, l, arena, addr, bytes) {
                    thread.truncated = true;
                    return;
                }
                let f = Fields(bytes);
                let code = f.u64(fo.code as usize);
                let instr = f.u64(fo.instr_ptr as usize);
                let bytecode = code.wrapping_add(l.code.code_adaptive);
                thread.frames.push(RawFrame {
                    addr,
                    code,
                    instr_offset: instr.wrapping_sub(bytecode) as i64,
                    is_entry: f.u8(fo.is_entry as usize) != 0,
                });
                addr = f.u64(fo.previous as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::code::CodeCache;
    use crate::capture::layout::V3_11;
    use crate::capture::memory::ImageMemory;
    use crate::capture::objects::ObjectReader;

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
        for seed in 1..300u64 {
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
            let mut walker = Walker::new(&V3_11, 0x10000, 0x20000 + (seed % 64) * 8);
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
                            if codes.get(&mem, &V3_11, f.code).is_ok() {
                                codes.line(&V3_11, f.code, f.instr_offset);
                            }
                        }
                    }
                }
            }
            let mut reader = ObjectReader::new(&mem, &V3_11);
            for base in BASES {
                let addr = base + ((rng.next() % 0x4000) & !7);
                let _ = reader.repr(addr, 128);
                let _ = reader.dict_items(addr);
                let _ = reader.instance_dict_items(addr);
            }
        }
    }
}
