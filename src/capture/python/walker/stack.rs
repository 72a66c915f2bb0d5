//! The frame walk: one thread's chain of frames, followed from its innermost frame through
//! the copies of its frame stack ([`StackRegions`]), with the checks that tell a chain a live
//! thread can have from one torn by the target running on while it was read.

use super::relink;
use super::{
    RawFrame, RawThread, StackFault, DEFAULT_CHUNK, MAX_CHUNK, MAX_CHUNKS_TOTAL, MAX_DEPTH,
};
use crate::capture::os::batch::Batch;
use crate::capture::os::memory::{Fields, Memory};
use crate::capture::python::layout::{EntryMark, FramePtr, FrameShape, InstrPos, Layout};
use crate::model::fasthash::FastSet;

/// Buffers of the frame walk, kept between walks.
#[derive(Debug, Default)]
pub(super) struct WalkScratch {
    /// One frame's bytes.
    bytes: Vec<u8>,
    /// Frames visited outside the chunks (loop guard).
    visited: FastSet<u64>,
    /// Linking back generators' frames found unlinked.
    relink: relink::Scratch,
}

/// Where one thread's frame stack was copied: ranges of the walker's batch buffer.
#[derive(Debug, Default)]
pub(super) struct StackRegions {
    /// (target address, buffer offset, length)
    pub(super) regions: Vec<(u64, usize, usize)>,
    /// The next older chunk not copied yet (0: none).
    pub(super) older: u64,
    /// Single frames read with the first batch: (target address, buffer offset, length).
    pub(super) loose: Vec<(u64, usize, usize)>,
    /// Frames served from `loose` or read alone during the walk, in walk order.
    pub(super) used_loose: Vec<u64>,
    /// Bases of the copied chunks that are a thread's first (no older chunk): its first
    /// frame lives there.
    pub(super) roots: Vec<u64>,
    /// Frames in the chunks lately seen calling (resuming) a frame outside them, newest
    /// first: where a generator chain torn at its outermost generator continues
    /// (`relink::resumer_of`).
    pub(super) resumers: Vec<u64>,
    /// The current chunk as read, room to grow included (base, buffer offset, length):
    /// `regions` holds only its part in use when the thread state was read.
    pub(super) copied: Option<(u64, usize, usize)>,
}

/// Frames in the chunks remembered as resumers of generators ([`StackRegions::resumers`]).
pub(super) const RESUMERS: usize = 4;

/// Where [`StackRegions::get`] found a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FoundIn {
    /// In the datastack chunk at this base.
    Chunk(u64),
    /// Outside the chunks (a generator's frame, a shim frame on the C stack, a frame object).
    Alone,
}

impl StackRegions {
    /// Forget everything (keeping the allocations).
    pub(super) fn clear(&mut self) {
        self.regions.clear();
        self.older = 0;
        self.loose.clear();
        self.used_loose.clear();
        self.roots.clear();
        self.resumers.clear();
        self.copied = None;
    }

    /// Remember `addr`, a frame in a chunk that called a frame outside the chunks.
    fn note_resumer(&mut self, addr: u64) {
        if !self.resumers.contains(&addr) {
            self.resumers.insert(0, addr);
            self.resumers.truncate(RESUMERS);
        }
    }

    pub(super) fn add(&mut self, base: u64, at: usize, len: usize, older: u64) {
        self.regions.push((base, at, len));
        self.older = older;
        if older == 0 {
            self.roots.push(base);
        }
    }

    pub(super) fn clear_chunks(&mut self) {
        self.regions.clear();
        self.roots.clear();
    }

    /// The copy of `len` bytes at `addr`, from the copied chunks.
    pub(super) fn chunk_bytes<'a>(
        &self,
        arena: &'a [u8],
        addr: u64,
        len: usize,
    ) -> Option<&'a [u8]> {
        Self::find(&self.regions, arena, addr, len).map(|(b, _)| b)
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
        batch: &mut Batch,
        addr: u64,
        out: &mut [u8],
    ) -> Option<FoundIn> {
        loop {
            let arena = batch.buffer();
            if let Some((b, base)) = Self::find(&self.regions, arena, addr, out.len()) {
                out.copy_from_slice(b);
                return Some(FoundIn::Chunk(base));
            }
            if let Some((b, _)) = Self::find(&self.loose, arena, addr, out.len()) {
                out.copy_from_slice(b);
                self.used_loose.push(addr);
                return Some(self.classify(layout, arena, addr));
            }
            if self.older == 0 || self.regions.len() > 64 || batch.size() as u64 > MAX_CHUNKS_TOTAL
            {
                break;
            }
            // The next older chunk: its default size first, then all of it if it is larger.
            let base = std::mem::take(&mut self.older);
            let mut chunk = batch.bytes(base, DEFAULT_CHUNK);
            batch.read(mem);
            let Some(head) = batch.get(chunk) else {
                break;
            };
            let f = Fields(head);
            let size = f.u64(layout.frame.chunk_size as usize);
            let older = f.u64(layout.frame.chunk_previous as usize);
            let mut len = DEFAULT_CHUNK;
            if size > DEFAULT_CHUNK as u64 && size <= MAX_CHUNK {
                chunk = batch.bytes(base, size as usize);
                batch.read(mem);
                if batch.get(chunk).is_none() {
                    break;
                }
                len = size as usize;
            }
            self.add(base, batch.offset(chunk), len, older);
        }
        if mem.read(addr, out).is_err() {
            return None;
        }
        self.used_loose.push(addr);
        Some(self.classify(layout, batch.buffer(), addr))
    }

    /// Where a frame read on its own lives: a frame pushed above the part of its chunk that
    /// was copied is still in the chunk (and the thread's).
    pub(super) fn classify(&self, layout: &Layout, arena: &[u8], addr: u64) -> FoundIn {
        let chunk = self.regions.iter().find_map(|&(base, at, _)| {
            let size = Fields(arena.get(at..)?).u64(layout.frame.chunk_size as usize);
            (addr >= base && addr - base < size.min(MAX_CHUNK)).then_some(base)
        });
        chunk.map_or(FoundIn::Alone, FoundIn::Chunk)
    }
}

/// Where a thread's walk starts: its innermost frame, and (3.11-3.12) the current frame of
/// each evaluation call it is in, innermost first (`Tracked::outer`), and its `cframe`,
/// which says where its C stack is.
pub(super) struct Start<'a> {
    pub(super) frame: u64,
    pub(super) outer: &'a [u64],
    pub(super) c_stack: u64,
    /// Frames of the current chunk known to be the thread's, one called by the next, lowest
    /// first (3.14+, `moment`): from one of them whose caller is outside the chunk (a shim
    /// frame on the C stack) the walk goes on to the one before it when what it reads there
    /// is no longer that shim (the C stack was reused before it was read).
    pub(super) chain: &'a [u64],
}

impl<'a> Start<'a> {
    /// The walk from `frame` of the thread whose state is `state`: its `cframe` (3.11-3.12)
    /// from there.
    pub(super) fn from_state(
        l: &Layout,
        state: Fields,
        frame: u64,
        outer: &'a [u64],
        chain: &'a [u64],
    ) -> Start<'a> {
        let c_stack = match l.thread.frame {
            FramePtr::ViaCFrame { cframe, .. } => state.u64(cframe as usize),
            FramePtr::InThread(_) => 0,
        };
        Start {
            frame,
            outer,
            c_stack,
            chain,
        }
    }
}

/// Follow `previous` links from `first`, innermost frame first, checking that the chain is
/// one a live thread can have (the target runs on while we read it): each frame is visited
/// once, frames in one datastack chunk go down in address, frame owners are consistent with
/// where the frame lives, and the chain ends at the thread's first frame (3.11: in its first
/// chunk; 3.12+: at the shim frame that the C code below the first Python frame pushed).
/// A chain that fails a check sets `thread.fault`.
pub(super) fn walk_frames(
    mem: &dyn Memory,
    l: &Layout,
    start: Start,
    regions: &mut StackRegions,
    batch: &mut Batch,
    scratch: &mut WalkScratch,
    thread: &mut RawThread,
) {
    let Start {
        frame: first,
        outer,
        c_stack,
        chain,
    } = start;
    // The caller `chain` gives the frame `callee` (0: none).
    let chain_caller = |callee: Option<&RawFrame>| -> u64 {
        let Some(callee) = callee else { return 0 };
        match chain.binary_search(&callee.addr) {
            Ok(k) if k > 0 => chain[k - 1],
            _ => 0,
        }
    };
    let WalkScratch {
        bytes,
        visited,
        relink,
    } = scratch;
    relink.start_walk();
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
    // Evaluation calls left so far through their shim frames (3.12), and where the walk
    // goes when a shim was overwritten before it was read.
    let mut calls_left = 0;
    let enclosing = |left: usize| outer.get(left + 1).copied().filter(|&f| f != 0);
    while addr != 0 {
        steps += 1;
        if thread.frames.len() >= MAX_DEPTH || steps > 2 * MAX_DEPTH {
            thread.truncated = true;
            return;
        }
        let Some(found) = regions.get(mem, l, batch, addr, bytes) else {
            let caller = chain_caller(thread.frames.last());
            if caller != 0 && caller != addr {
                // The shim of a call through C, gone (its C stack unmapped).
                leave_call(thread, addr);
                addr = caller;
                continue;
            }
            thread.fault = Some(StackFault::Unreadable);
            return;
        };
        let ordered = match found {
            FoundIn::Chunk(base) => descending(&mut lowest, base, addr, visited),
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
        let is_entry = match entry_mark(fo.entry, f, found) {
            Mark::Frame { is_entry } => is_entry,
            Mark::Shim => {
                // The thread's frame pointer is a shim: its evaluation call's first frame
                // has returned and the call is on its way out (3.12 reads the pointer
                // through `cframe`, a moment after the thread state that named it; a short
                // call made through C, an `__init__` or an operator, has often returned by
                // then). The thread ran that frame when its state was read: it is the frame
                // whose caller is this shim, still in the frame stack above the caller's.
                if thread.frames.is_empty() {
                    if let Some(ran) = callee_of_shim(l, regions, batch.buffer(), addr, previous) {
                        thread.frames.push(ran);
                    }
                }
                leave_call(thread, addr);
                last = Some((found, true));
                // A shim reused by another call through C before it was read: the caller is
                // the frame below in the chunk.
                let caller = chain_caller(thread.frames.last());
                addr = if caller != 0 { caller } else { previous };
                calls_left += 1;
                continue;
            }
            Mark::Implausible => {
                let caller = chain_caller(thread.frames.last());
                if found == FoundIn::Alone && caller != 0 {
                    // A shim overwritten before it was read: the caller is the frame below in
                    // the chunk.
                    leave_call(thread, addr);
                    last = Some((found, true));
                    addr = caller;
                    calls_left += 1;
                    continue;
                }
                // Outside the chunks, after a frame a call through C ran first, a shim was
                // expected: if the C stack that held it was reused before it was read (the
                // call returned), the caller is the current frame of the enclosing call,
                // read with the frame pointers.
                let shim_expected = found == FoundIn::Alone
                    && !thread.frames.is_empty()
                    && c_stack != 0
                    && addr.abs_diff(c_stack) < super::C_STACK_NEAR;
                match enclosing(calls_left).filter(|_| shim_expected) {
                    Some(caller) => {
                        leave_call(thread, addr);
                        last = Some((found, true));
                        addr = caller;
                        calls_left += 1;
                        continue;
                    }
                    None => {
                        thread.fault = Some(StackFault::Changed);
                        return;
                    }
                }
            }
        };
        let innermost = thread.frames.iter().all(|f| f.returned);
        // Only where popping a frame clears its code (3.14+, whose code reference is a tagged
        // stack reference): before, a frame without code is a slot being filled, whose
        // instruction pointer is a former occupant's.
        let pop_clears_code = fo.code_tag_bits > 0;
        let gen = relink::generator_of(l, addr, f);
        // A generator's (or coroutine's) frame unlinked from its caller: it yielded or
        // finished since the pointer that led here was read (3.14+ clear a finished one's
        // code too).
        let unlinked = previous == 0 && found == FoundIn::Alone && gen != 0;
        let mut returned = None;
        if code == 0 && pop_clears_code && ((innermost && found != FoundIn::Alone) || unlinked) {
            if let InstrPos::Pointer(offset) = l.frame.instr {
                // An innermost frame (or its caller, when that returned too), in its chunk,
                // or a generator's frame, with its code cleared: it returned between our
                // reading the pointer to it and our reading it (3.14+ clear a popped frame's
                // code and nothing else). It ran then; its instruction pointer, left as it
                // was, says which code it ran. Dropping such samples would undercount short
                // calls, and coroutines that return.
                returned = Some(f.u64(offset as usize)).filter(|&i| i != 0);
            }
        }
        if code == 0 && returned.is_none() {
            // A slot being filled or cleared: no live frame has no code.
            thread.fault = Some(StackFault::Changed);
            return;
        }
        if matches!(found, FoundIn::Chunk(_))
            && matches!(last, Some((FoundIn::Alone, false)))
            && returned.is_none()
        {
            regions.note_resumer(addr);
        }
        thread.frames.push(RawFrame {
            addr,
            code,
            instr_offset: returned.map_or_else(|| instr_offset(l, f, code), |i| i as i64),
            is_entry,
            shim_entry: false,
            shim_addr: 0,
            returned: returned.is_some(),
        });
        last = Some((found, false));
        let here = addr;
        addr = previous;
        if unlinked {
            // A generator's (or coroutine's) frame whose link to its caller is cleared: it
            // yielded or finished after the pointer that led here was read.
            if let Some(caller) = relink.caller_of(mem, l, regions, batch, outer, thread, here, gen)
            {
                thread.relinked += 1;
                addr = caller;
            }
        }
    }
    if !ends_at_first_frame(l, regions, last, freed_run) {
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

/// The frame whose caller is the shim at `shim` (3.12+): searched in the copies of the frame
/// stack, above `caller` (the shim's own caller) when it is in the same chunk, as a frame the
/// thread owns with a code object. A returned frame keeps its code and links on 3.12 (3.14+
/// clear the code, and [`walk_frames`] names such a frame from its instruction pointer).
fn callee_of_shim(
    l: &Layout,
    regions: &StackRegions,
    arena: &[u8],
    shim: u64,
    caller: u64,
) -> Option<RawFrame> {
    let fo = &l.frame;
    let EntryMark::ShimOwner { owner, .. } = fo.entry else {
        return None;
    };
    let size = fo.read_size as usize;
    let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
    for &(base, at, len) in &regions.regions {
        let copy = arena.get(at..at + len)?;
        let from = match caller.checked_sub(base) {
            Some(off) if (off as usize) < len => off as usize + 8,
            _ => 0,
        };
        let mut off = from;
        while off + size <= len {
            let f = Fields(&copy[off..off + size]);
            if f.u64(fo.previous as usize) == shim && f.u8(owner as usize) == OWNED_BY_THREAD {
                let code = f.u64(fo.code as usize) & tag_mask;
                let addr = base.wrapping_add(off as u64);
                let frame = RawFrame {
                    addr,
                    code,
                    instr_offset: instr_offset(l, f, code),
                    is_entry: false,
                    shim_entry: false,
                    shim_addr: 0,
                    returned: false,
                };
                return match (code, fo.instr) {
                    (0, InstrPos::Pointer(at)) if fo.code_tag_bits > 0 => Some(RawFrame {
                        // Its code cleared as it returned (3.14+): named by the decoder
                        // from its instruction pointer.
                        instr_offset: f.u64(at as usize) as i64,
                        returned: true,
                        ..frame
                    }),
                    (0, _) => None,
                    _ => Some(frame),
                };
            }
            off += 8;
        }
    }
    None
}

/// The walk leaves an evaluation call through its shim frame at `shim` (3.12+), pushed by the
/// C code that called the innermost frame found so far: that frame is an entry frame.
fn leave_call(thread: &mut RawThread, shim: u64) {
    if let Some(last) = thread.frames.last_mut() {
        last.shim_entry = true;
        last.shim_addr = shim;
    }
}

/// What a frame's entry mark says of it.
pub(super) enum Mark {
    /// A Python frame, and whether C code called it (the first of an evaluation call).
    Frame { is_entry: bool },
    /// A shim frame (3.12+) pushed by C code below the frame it called.
    Shim,
    /// An owner that cannot be where the frame was found: read while it changed.
    Implausible,
}

pub(super) fn entry_mark(entry: EntryMark, f: Fields, found: FoundIn) -> Mark {
    match entry {
        EntryMark::None => Mark::Frame { is_entry: true },
        EntryMark::IsEntryByte { is_entry: off, .. } => Mark::Frame {
            is_entry: f.u8(off as usize) != 0,
        },
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
            match (plausible, shim) {
                (false, _) => Mark::Implausible,
                (true, true) => Mark::Shim,
                (true, false) => Mark::Frame { is_entry: false },
            }
        }
    }
}

/// Whether a chain whose last frame visited was `last` (where it was found, and whether it
/// was a shim) ended where a thread's first frame is; before 3.11, `freed_run` says where
/// the run of freed frame objects that ends it began.
fn ends_at_first_frame(
    l: &Layout,
    regions: &StackRegions,
    last: Option<(FoundIn, bool)>,
    freed_run: Option<usize>,
) -> bool {
    match (l.frame.entry, last) {
        (_, None) => true,
        (EntryMark::None, _) => l.frames != FrameShape::FrameObject || freed_run.is_none(),
        (EntryMark::IsEntryByte { .. }, Some((FoundIn::Chunk(base), _))) => {
            regions.roots.contains(&base)
        }
        (EntryMark::IsEntryByte { .. }, Some((FoundIn::Alone, _))) => false,
        (EntryMark::ShimOwner { .. }, Some((_, shim))) => shim,
    }
}

/// Whether a frame at `addr` in the chunk at `base` is below the frames visited in that
/// chunk so far (older frames live lower), remembering it in `lowest` (per chunk: its base and
/// the lowest frame seen; more chunks than slots fall back on the `visited` set).
fn descending(lowest: &mut [(u64, u64)], base: u64, addr: u64, visited: &mut FastSet<u64>) -> bool {
    match lowest.iter().position(|(b, _)| *b == base || *b == 0) {
        Some(k) if lowest[k].0 == base => {
            let below = addr < lowest[k].1;
            lowest[k].1 = addr;
            below
        }
        Some(k) => {
            lowest[k] = (base, addr);
            true
        }
        None => visited.insert(addr),
    }
}

/// Byte offset of the last instruction started in the frame `f` running `code` (negative:
/// none yet).
pub(super) fn instr_offset(l: &Layout, f: Fields, code: u64) -> i64 {
    match l.frame.instr {
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
    }
}

/// `_PyInterpreterFrame.owner` values common to 3.12+ (`FRAME_OWNED_BY_THREAD`, `_GENERATOR`,
/// `_FRAME_OBJECT`); the shim owners differ by version and are in the layout.
pub(super) const OWNED_BY_THREAD: u8 = 0;
const OWNED_BY_GENERATOR: u8 = 1;
const OWNED_BY_FRAME_OBJECT: u8 = 2;
