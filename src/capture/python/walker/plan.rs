//! Where each thread's stack is, snapshot after snapshot: what the walker remembers of a
//! thread ([`Tracked`], its [`Guess`]), the first batch queued from those guesses
//! ([`queue_first_batch`]), and the stacks taken from it or, where a guess missed, from one
//! second batch ([`locate_stacks`]).

use super::stack::StackRegions;
use super::{
    GUESS_SLACK, LOOSE_POOL, MAX_CHUNK, MAX_CHUNKS_TOTAL, MAX_GUESSED_FRAMES, MAX_GUESSED_OLDER,
    PTR_CANDIDATES,
};
use crate::capture::os::batch::{Batch, Bytes, Run, Word};
use crate::capture::os::memory::{Fields, Memory};
use crate::capture::python::layout::{FramePtr, FrameShape, Layout};

/// One thread as the walker knows it, from one snapshot to the next.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    /// Address of its thread state.
    pub(super) tstate: u64,
    /// Its index in the previous snapshot's threads, when its state was read from there
    /// (in the first batch): that entry's guess and queued reads serve this one.
    pub(super) prev: Option<usize>,
    /// Its innermost frame (`None`: the pointer to it could not be read).
    pub(super) frame: Option<u64>,
    /// 3.11-3.12: the current frame of each evaluation call the thread is in, innermost
    /// first (`outer[0]` is `frame`), as read with the frame pointers from the `cframe`
    /// chain (each `_PyCFrame` links to the enclosing call's); 0 past what was read. The
    /// walk continues there when a 3.12 shim frame was overwritten before it was read.
    pub(super) outer: [u64; PTR_CANDIDATES],
    /// Where its frame stack was copied.
    pub(super) stack: StackRegions,
    /// Where its stack is expected at the next snapshot.
    guess: Guess,
    /// The reads the next snapshot's first batch queued from `guess`.
    pub(super) queued: Queued,
    /// The reads queued for it in the second batch.
    second: Second,
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
    /// Frames read alone: frame objects (up to 3.10), and 3.11+ frames outside the chunks;
    /// those the walk used first, then those seen lately.
    loose: Vec<u64>,
    /// The same frames in address order, as the first batch reads them: frames close
    /// together in the target (generators and coroutines of one size, allocated together)
    /// are then read as one range, at once and at the cost of one.
    loose_by_addr: Vec<u64>,
    /// Frames in the chunks lately seen resuming a generator (see `StackRegions::resumers`).
    resumers: Vec<u64>,
}

/// A thread's requests in the first batch, one per part of its [`Guess`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Queued {
    pub(super) state: Option<Bytes>,
    /// At each candidate: `current_frame` and the next word, `previous` (the enclosing
    /// call's `_PyCFrame`; it follows `current_frame` in 3.11 and 3.12 alike).
    ptrs: [Option<Bytes>; PTR_CANDIDATES],
    chunk: Option<Bytes>,
    loose: Run,
    older: Run,
}

/// A thread's requests in the second batch: its frame pointer, its current chunk (address).
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    ptr: Option<Word>,
    chunk: Option<(u64, Bytes)>,
}

impl Tracked {
    /// Begin this snapshot's record of the thread state at `tstate`.
    pub(super) fn start(&mut self, tstate: u64, prev: Option<usize>) {
        self.tstate = tstate;
        self.prev = prev;
        self.frame = None;
        self.stack.clear();
        self.second = Second::default();
    }

    /// After the walk: guess the same stack next time, plus some room to grow within the
    /// chunk, with the older chunks and the frames read alone that the walk needed.
    pub(super) fn remember(&mut self, l: &Layout, batch: &Batch, prev: Option<&Tracked>) {
        let g = &mut self.guess;
        let regions = &self.stack.regions;
        if l.frames == FrameShape::InterpreterFrame {
            if let Some(&(base, at, len)) = regions.first() {
                if base == g.chunk {
                    let copy = &batch.buffer()[at..at + len];
                    let size = Fields(copy).u64(l.frame.chunk_size as usize);
                    let want = (len + GUESS_SLACK) as u64;
                    g.len = if size >= len as u64 && size <= MAX_CHUNK {
                        want.min(size) as usize
                    } else {
                        len
                    };
                }
            }
            let older = regions.iter().skip(1).take(MAX_GUESSED_OLDER);
            g.older.extend(older.map(|&(base, _, len)| (base, len)));
        }
        // Frames that were read alone, each read with the first batch next time; and a few
        // more seen lately: generators and coroutines are new objects whose memory the
        // allocator hands out again, so the frame a new one runs in is often at an address
        // seen before, and is then read together with the pointer to it; and a generator's
        // resumer must be among the frames read to be found (`relink::resumer_of`).
        g.resumers.extend(&self.stack.resumers);
        let used = &self.stack.used_loose;
        g.loose.extend(used.iter().take(MAX_GUESSED_FRAMES));
        if let Some(p) = prev {
            let room = LOOSE_POOL.saturating_sub(g.loose.len());
            let seen = p.guess.loose.iter().filter(|a| !used.contains(a));
            g.loose.extend(seen.take(room));
        }
    }
}

/// Phase 1: queue in `b`, after the thread states the last snapshot found, each thread's
/// guessed stack. Request order: what changes fastest is read closest to the thread states
/// that point at it (the less time between reading a pointer and what it points at, the
/// more often the two agree): frame pointers, the current chunks, frames read alone
/// (generators', coroutines', 3.12+'s shims), then older chunks. (Reading the frames read
/// alone before the chunks doubled the error samples of pyperformance's raytrace on 3.12 and
/// 3.14, 9-13% to 18-24%.)
pub(super) fn queue_first_batch(l: &Layout, threads: &mut [Tracked], b: &mut Batch) {
    let tsize = l.thread.size as usize;
    let frame_size = l.frame.read_size as usize;
    for t in threads.iter_mut() {
        t.queued = Queued {
            state: Some(b.bytes(t.tstate, tsize)),
            ..Queued::default()
        };
    }
    for t in threads.iter_mut() {
        for (slot, &addr) in t.queued.ptrs.iter_mut().zip(&t.guess.ptr_addrs) {
            *slot = (addr != 0).then(|| b.bytes(addr, 16));
        }
    }
    for t in threads.iter_mut() {
        let g = &t.guess;
        t.queued.chunk = (g.len > 0).then(|| b.bytes(g.chunk, g.len));
    }
    for t in threads.iter_mut() {
        queue_loose(&mut t.guess, &mut t.queued, frame_size, b);
    }
    for t in threads.iter_mut() {
        let older = &t.guess.older;
        t.queued.older = b.run(older.len(), |k| older[k]);
    }
}

/// Queue the frames read alone of guess `g` in address order (see `Guess::loose_by_addr`).
fn queue_loose(g: &mut Guess, queued: &mut Queued, frame_size: usize, b: &mut Batch) {
    g.loose_by_addr.clear();
    g.loose_by_addr.extend(&g.loose);
    g.loose_by_addr.sort_unstable();
    g.loose_by_addr.dedup();
    let loose = &g.loose_by_addr;
    queued.loose = b.run(loose.len(), |k| (loose[k], frame_size));
}

/// Phase 3: each thread's frame pointer and frame stack, from the first batch where the
/// previous snapshot's guess (in `last`) held, else from one second batch; and the start of
/// its next guess. `states` holds `next`'s thread states back to back.
pub(super) fn locate_stacks(
    l: &Layout,
    mem: &dyn Memory,
    last: &[Tracked],
    next: &mut [Tracked],
    states: &[u8],
    batch: &mut Batch,
) {
    let tsize = l.thread.size as usize;
    let mut budget = MAX_CHUNKS_TOTAL;
    for (t, state) in next.iter_mut().zip(states.chunks(tsize)) {
        let f = Fields(state);
        // Where the frame pointer is: known now, or to be read.
        let (known_frame, ptr_addr) = match l.thread.frame {
            FramePtr::InThread(off) => (Some(f.u64(off as usize)), 0),
            FramePtr::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let cf = f.u64(cframe as usize);
                (
                    None,
                    if cf == 0 {
                        0
                    } else {
                        cf.wrapping_add(current_frame)
                    },
                )
            }
        };
        // The used part of the current chunk.
        let (chunk, len) = match (l.thread.datastack_chunk, l.thread.datastack_top) {
            (Some(c), Some(top)) if l.frames == FrameShape::InterpreterFrame => {
                let chunk = f.u64(c as usize);
                let top = f.u64(top as usize);
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
        let prev = t.prev.map(|j| &last[j]);
        t.guess.restart(ptr_addr, chunk, prev.map(|p| &p.guess));
        // The frame pointer from the first batch, if it was read from the same place.
        let cframe_at = |addr: u64| -> Option<(u64, u64)> {
            let p = prev.filter(|_| addr != 0)?;
            let k = p.guess.ptr_addrs.iter().position(|a| *a == addr)?;
            let f = Fields(batch.get(p.queued.ptrs[k]?)?);
            Some((f.u64(0), f.u64(8)))
        };
        let frame = known_frame.or_else(|| Some(cframe_at(ptr_addr)?.0));
        t.outer = [0; PTR_CANDIDATES];
        if let FramePtr::ViaCFrame { current_frame, .. } = l.thread.frame {
            let mut at = ptr_addr;
            // Where each enclosing call's frame pointer is, read next time too (generators
            // resumed through C on 3.11 are linked back through them, `relink::entry_caller`),
            // however often the innermost call's place changes.
            let mut chain = [0; PTR_CANDIDATES];
            for (k, slot) in t.outer.iter_mut().enumerate() {
                chain[k] = at;
                let Some((frame, enclosing)) = cframe_at(at) else {
                    break;
                };
                *slot = frame;
                at = if enclosing == 0 {
                    0
                } else {
                    enclosing.wrapping_add(current_frame)
                };
            }
            t.guess.keep_ptr_chain(&chain);
        }
        // The current chunk from the first batch, if it is the same chunk and still fits.
        let guessed_chunk = prev
            .filter(|p| len > 0 && p.guess.chunk == chunk && len <= p.guess.len)
            .and_then(|p| p.queued.chunk)
            .filter(|h| batch.get(*h).is_some());
        let chunk_hit = len == 0 || guessed_chunk.is_some();
        if let Some(p) = prev {
            take_guessed(
                l,
                p,
                batch,
                guessed_chunk.map(|h| (chunk, h, len)),
                &mut t.stack,
            );
        }
        t.frame = frame;
        if frame.is_none() || !chunk_hit {
            t.second = Second {
                ptr: (frame.is_none() && ptr_addr != 0).then(|| batch.word(ptr_addr)),
                chunk: (!chunk_hit).then(|| (chunk, batch.bytes(chunk, len))),
            };
        }
    }
    batch.read(mem);
    let previous = l.frame.chunk_previous as usize;
    for t in next.iter_mut() {
        if let Some(w) = t.second.ptr {
            t.frame = batch.u64(w);
        }
        if let Some((chunk, h)) = t.second.chunk {
            if let Some(copy) = batch.get(h) {
                let older = Fields(copy).u64(previous);
                t.stack.clear_chunks();
                t.stack.add(chunk, batch.offset(h), copy.len(), older);
                t.stack.copied = Some((chunk, batch.offset(h), copy.len()));
            }
        }
    }
}

/// Into `stack`, what the first batch brought of `p`'s guess: the current chunk (`hit`:
/// its address, request and the length in use now) and the older chunks while the chain of
/// chunks agrees, and the frames read alone.
fn take_guessed(
    l: &Layout,
    p: &Tracked,
    batch: &Batch,
    hit: Option<(u64, Bytes, usize)>,
    stack: &mut StackRegions,
) {
    let previous = l.frame.chunk_previous as usize;
    if let Some((chunk, h, len)) = hit {
        let Some(read) = batch.get(h) else {
            return;
        };
        stack.copied = Some((chunk, batch.offset(h), read.len()));
        let Some(copy) = read.get(..len) else {
            return;
        };
        let mut older = Fields(copy).u64(previous);
        stack.add(chunk, batch.offset(h), len, older);
        for (k, &(base, olen)) in p.guess.older.iter().enumerate() {
            let copy = p.queued.older.nth(k).and_then(|h| Some((h, batch.get(h)?)));
            let Some((h, copy)) = copy.filter(|_| older == base) else {
                break;
            };
            older = Fields(copy).u64(previous);
            stack.add(base, batch.offset(h), olen, older);
        }
    }
    stack.resumers.extend(&p.guess.resumers);
    let frame_size = l.frame.read_size as usize;
    for (k, &base) in p.guess.loose_by_addr.iter().enumerate() {
        if let Some(h) = p.queued.loose.nth(k).filter(|h| batch.get(*h).is_some()) {
            stack.loose.push((base, batch.offset(h), frame_size));
        }
    }
}

impl Guess {
    /// Put the places of the frame pointers of the calls enclosing the innermost one
    /// (`chain`, innermost first, 0-ended) right after it in `ptr_addrs`, the places seen
    /// before them after.
    fn keep_ptr_chain(&mut self, chain: &[u64]) {
        let mut kept = [0; PTR_CANDIDATES];
        let older = self.ptr_addrs;
        let wanted = chain.iter().chain(&older).copied().filter(|&a| a != 0);
        let mut n = 0;
        for a in wanted {
            if n == kept.len() {
                break;
            }
            if !kept[..n].contains(&a) {
                kept[n] = a;
                n += 1;
            }
        }
        self.ptr_addrs = kept;
    }

    /// Start this snapshot's guess: the frame pointer read from `ptr_addr` (the places it was
    /// read from lately kept after it, newest first: 3.11-3.12's `cframe` lives on the C
    /// stack and moves with every C call into the eval loop, often back and forth between a
    /// few places), in `chunk`; the rest is filled by [`Tracked::remember`].
    fn restart(&mut self, ptr_addr: u64, chunk: u64, prev: Option<&Guess>) {
        self.ptr_addrs = [0; PTR_CANDIDATES];
        if ptr_addr != 0 {
            self.ptr_addrs[0] = ptr_addr;
            if let Some(p) = prev {
                let older = p.ptr_addrs.iter().filter(|a| **a != ptr_addr && **a != 0);
                for (slot, a) in self.ptr_addrs[1..].iter_mut().zip(older) {
                    *slot = *a;
                }
            }
        }
        self.chunk = chunk;
        self.len = 0;
        self.older.clear();
        self.loose.clear();
        self.resumers.clear();
    }
}
