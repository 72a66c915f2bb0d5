//! The frame walk: one thread's chain of frames, followed from its innermost frame through
//! the copies of its frame stack ([`StackRegions`]), with the checks that tell a chain a live
//! thread can have from one torn by the target running on while it was read.

use super::{
    RawFrame, RawThread, StackFault, DEFAULT_CHUNK, MAX_CHUNK, MAX_CHUNKS_TOTAL, MAX_DEPTH,
};
use crate::capture::os::batch::Batch;
use crate::capture::os::memory::{Fields, Memory};
use crate::capture::python::layout::{EntryMark, FrameShape, GenLink, InstrPos, Layout, StackTop};
use crate::model::fasthash::FastSet;

/// Buffers of the frame walk, kept between walks.
#[derive(Debug, Default)]
pub(super) struct WalkScratch {
    /// One frame's bytes.
    bytes: Vec<u8>,
    /// Frames visited outside the chunks (loop guard).
    visited: FastSet<u64>,
    /// The walk's candidate resumers and the top word of each one's evaluation stack
    /// ([`resumer_of`]), found at the walk's first need of them.
    tops: Vec<Held>,
    tops_read: bool,
    /// What frames outside the chunks hold, to be read: (frame, running, address, length).
    pending: Vec<(u64, bool, u64, usize)>,
    /// Running generator frames among those read alone: (frame, caller) ([`running_tip`]).
    running: Vec<(u64, u64)>,
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
    /// ([`resumer_of`]).
    pub(super) resumers: Vec<u64>,
}

/// Frames in the chunks remembered as resumers of generators ([`StackRegions::resumers`]).
pub(super) const RESUMERS: usize = 4;

/// Where [`StackRegions::get`] found a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoundIn {
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
    fn classify(&self, layout: &Layout, arena: &[u8], addr: u64) -> FoundIn {
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
    /// The thread state's `datastack_top` (0: unknown): where the chunk's frames ended.
    pub(super) top: u64,
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
        top,
    } = start;
    let WalkScratch {
        bytes,
        visited,
        tops,
        tops_read,
        pending,
        running,
    } = scratch;
    *tops_read = false;
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
    // The frames walked before a link taken by [`running_tip`], while the walk has not yet
    // followed it into the thread's chunks.
    let mut unproven: Option<usize> = None;
    let enclosing = |left: usize| outer.get(left + 1).copied().filter(|&f| f != 0);
    while addr != 0 {
        steps += 1;
        if thread.frames.len() >= MAX_DEPTH || steps > 2 * MAX_DEPTH {
            thread.truncated = true;
            return;
        }
        let Some(found) = regions.get(mem, l, batch, addr, bytes) else {
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
        if let FoundIn::Chunk(_) = found {
            unproven = None;
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
                addr = previous;
                calls_left += 1;
                continue;
            }
            Mark::Implausible => {
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
        let gen = generator_of(l, addr, f);
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
            // yielded or finished after the pointer that led here was read, and was running
            // then, resumed by the frame that holds it on its evaluation stack (while it is
            // suspended) or, once it finished and was let go, by the frame the thread went
            // back to.
            let mut need = Tops {
                tops,
                read: tops_read,
                pending,
            };
            if let Some(resumer) = resumer_of(mem, l, regions, batch, &mut need, here, gen) {
                thread.relinked += 1;
                addr = resumer;
            } else if let Some(tip) =
                running_tip(l, regions, batch.buffer(), visited, running, here)
            {
                thread.relinked += 1;
                addr = tip;
                // Taken from the frames read alone, it must lead back into the thread's
                // chunks: another thread's chain of generators could end at a shim too.
                unproven = Some(thread.frames.len());
            } else if let Some(caller) = entry_caller(l, thread, outer) {
                // 3.11 resumes every generator through C, in an evaluation call of its own
                // (a task's coroutine from `Task.__step`, say): its caller is the current
                // frame of the enclosing call, read with the frame pointers.
                thread.relinked += 1;
                addr = caller;
            } else if let Some(caller) = (running.is_empty())
                .then(|| chunk_caller(l, regions, batch.buffer(), thread, top))
                .flatten()
            {
                thread.relinked += 1;
                addr = caller;
            }
        }
    }
    if let Some(walked) = unproven {
        // Frames past the link are not known to be the thread's.
        thread.frames.truncate(walked);
        thread.fault = Some(StackFault::Changed);
        thread.partial = !thread.frames.is_empty();
    } else if !ends_at_first_frame(l, regions, last, freed_run) {
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

/// The candidate resumers of one walk and what each holds (see [`resumer_of`]), read at the
/// walk's first need of them.
struct Tops<'a> {
    tops: &'a mut Vec<Held>,
    read: &'a mut bool,
    pending: &'a mut Vec<(u64, bool, u64, usize)>,
}

/// What a candidate resumer holds: the top two words of the evaluation stack it saved, or,
/// while it runs (3.11-3.13 mark a running frame's `stacktop` -1), the first
/// [`SCANNED_WORDS`] words of its locals and stack.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    frame: u64,
    running: bool,
    words: [u64; SCANNED_WORDS],
}

/// Words of a running frame's locals and stack looked through for the generator it resumed.
const SCANNED_WORDS: usize = 16;

/// Most words a frame's evaluation stack plausibly holds.
const MAX_STACK_WORDS: u64 = 1 << 16;

/// The frame that resumed the generator (or coroutine, or async generator) whose frame at
/// `frame` was found with its link to its caller cleared (3.11+): it yielded between our
/// reading the pointer that led to it and our reading it, and was running then. A frame
/// that resumes a generator (`for` over it, `yield from`, `await`) holds the generator
/// object on its evaluation stack: on top of the stack it saves as it resumes it (3.12+
/// resume a generator without a C call), and in its stack while it runs on after the
/// generator yielded (or, 3.11, while the generator runs in a C call of its own). So the
/// resumer is the one candidate that holds that object: at the top of its saved stack, or,
/// failing that, the one running candidate holding it among its first words. Candidates
/// are the frames outside the chunks read with the first batch (other generators) and the
/// frames in the chunks lately seen resuming one; more than one holder (the object passed on
/// as an argument, say) leaves the chain torn. What the candidates outside the chunks hold
/// costs one more read, made once per walk.
fn resumer_of(
    mem: &dyn Memory,
    l: &Layout,
    regions: &StackRegions,
    batch: &mut Batch,
    need: &mut Tops,
    frame: u64,
    gen: u64,
) -> Option<u64> {
    if !*need.read {
        *need.read = true;
        read_held(mem, l, regions, batch, need);
    }
    let tag_mask = !((1u64 << l.frame.code_tag_bits) - 1);
    let unique = |running: bool| {
        let mut holders = need.tops.iter().filter(|h| {
            h.frame != frame && h.running == running && h.words.iter().any(|w| w & tag_mask == gen)
        });
        let first = holders.next()?.frame;
        holders.next().is_none().then_some(first)
    };
    unique(false).or_else(|| unique(true))
}

/// Where the thread ran a moment after a generator's (or coroutine's) frame at `torn`, found
/// with its link to its caller cleared, finished or yielded (3.11+): the innermost of the
/// generator frames that were running when the frames read alone were copied, in the same
/// read as `torn`. Running generator frames link to their callers and suspended or finished
/// ones do not, so the running ones read alone form the thread's chain of generators as it
/// was then; its innermost frame (the one no other names as its caller) is where `torn`
/// returned or yielded to (or, if that frame went on to call another generator, that one).
/// A chain with a frame missing from those read (a deep one) falls into pieces, each with
/// an innermost frame: the piece that ends in the thread's chunks is the outermost, and the
/// one that does not, when there is exactly one, is the innermost. A piece that ends at a
/// frame already walked is made of callees of the walked frames (read running, a moment
/// before they returned) and does not count. Otherwise (another thread's generators among
/// the frames read) the chain stays torn. No frame already walked counts; `running` is
/// scratch.
fn running_tip(
    l: &Layout,
    regions: &StackRegions,
    arena: &[u8],
    visited: &FastSet<u64>,
    running: &mut Vec<(u64, u64)>,
    torn: u64,
) -> Option<u64> {
    let fo = &l.frame;
    if l.frames != FrameShape::InterpreterFrame {
        return None;
    }
    let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
    running.clear();
    for &(addr, at, len) in &regions.loose {
        // A frame pushed above the copied part of a chunk is the thread's own, not a
        // generator's (3.11 pushes a new generator's frame there before moving it into the
        // generator, and the slot keeps its caller).
        let own = regions.classify(l, arena, addr) != FoundIn::Alone;
        if addr == torn || visited.contains(&addr) || own {
            continue;
        }
        let Some(f) = arena.get(at..at + len).map(Fields) else {
            continue;
        };
        let previous = f.u64(fo.previous as usize);
        let code = f.u64(fo.code as usize) & tag_mask;
        let generator = matches!(entry_mark(fo.entry, f, FoundIn::Alone), Mark::Frame { .. });
        if previous != 0 && code != 0 && generator {
            running.push((addr, previous));
        }
    }
    let running = &*running;
    let is_caller = |a: u64| running.iter().any(|&(_, p)| p == a);
    // Where the piece of chain that `tip` begins ends: the caller of its last frame.
    let piece_end = |tip: u64| {
        let mut at = tip;
        for _ in 0..running.len() {
            match running.iter().find(|(a, _)| *a == at) {
                Some(&(_, caller)) => at = caller,
                None => break,
            }
        }
        at
    };
    // A piece that ends at a frame already walked (`torn` itself, most often) is made of
    // callees of the walked frames, read running a moment before they returned: not where
    // the thread went on to.
    let stale = |end: u64| end == torn || visited.contains(&end);
    let tips = || {
        running
            .iter()
            .map(|r| r.0)
            .filter(|&a| !is_caller(a) && !stale(piece_end(a)))
    };
    let in_chunk = |end: u64| regions.chunk_bytes(arena, end, 8).is_some();
    only_one(tips()).or_else(|| only_one(tips().filter(|&t| !in_chunk(piece_end(t)))))
}

/// The one item of `it`, if it has exactly one.
fn only_one(mut it: impl Iterator<Item = u64>) -> Option<u64> {
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// The caller of the generator frame just walked (the last of `thread.frames`), found
/// unlinked, when it is the first frame of an evaluation call (3.11 marks such a frame
/// `is_entry`): the current frame of the enclosing call as the frame pointers had it
/// (`outer`, innermost call first), the call being the one after those of the entry frames
/// walked before it. 3.12+ resume a generator inside the caller's evaluation call, and a
/// frame read alone there is not marked: `None`.
fn entry_caller(l: &Layout, thread: &RawThread, outer: &[u64]) -> Option<u64> {
    if !matches!(l.frame.entry, EntryMark::IsEntryByte(_)) {
        return None;
    }
    let (last, before) = thread.frames.split_last()?;
    if !last.is_entry {
        return None;
    }
    let calls = before.iter().filter(|f| f.is_entry).count();
    outer.get(calls + 1).copied().filter(|&f| f != 0)
}

/// Words below the end of a chunk's frames searched for the frame that ends there.
const CALLER_SCAN_WORDS: u64 = 512;

/// The caller of the generator frame just walked (the last of `thread.frames`), found
/// unlinked with no running generator read with it: the frame of the chunk right below the
/// frames it called (or, when it called none that are in the chunk, the frame ending at the
/// chunk's top when the thread state was read). A generator's frame lives outside the chunk,
/// so frames it calls are pushed right above its caller's, or above the frame that called the
/// C code that resumed it (`any(x for x in ...)`, a task's step). That frame is found as the
/// one whose saved stack pointer lies between its locals and that end (a frame that called
/// out saves it: 3.14+'s `stackpointer`, or a `stacktop` not -1), owned by the thread, with
/// code: the highest such below the end.
fn chunk_caller(
    l: &Layout,
    regions: &StackRegions,
    arena: &[u8],
    thread: &RawThread,
    top: u64,
) -> Option<u64> {
    let fo = &l.frame;
    let EntryMark::ShimOwner { owner, .. } = fo.entry else {
        return None;
    };
    let (_, callees) = thread.frames.split_last()?;
    let in_chunk = |a: u64| regions.chunk_bytes(arena, a, 8).is_some();
    let end = match callees
        .iter()
        .map(|f| f.addr)
        .filter(|&a| in_chunk(a))
        .min()
    {
        Some(a) => a,
        None if top != 0 && in_chunk(top - 8) => top,
        None => return None,
    };
    let size = fo.read_size;
    let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
    let lowest = end.saturating_sub(8 * CALLER_SCAN_WORDS);
    let mut p = end.checked_sub(fo.localsplus)? & !7;
    while p >= lowest {
        if let Some(b) = regions.chunk_bytes(arena, p, size as usize) {
            let f = Fields(b);
            let code = f.u64(fo.code as usize) & tag_mask;
            let locals = p + fo.localsplus;
            let saved = match fo.stack_top {
                StackTop::Pointer(off) => Some(f.u64(off as usize)),
                StackTop::Index(off) => {
                    let n = f.i32(off as usize);
                    (n >= 0).then(|| locals + 8 * n as u64)
                }
                _ => None,
            };
            let fits = saved.is_some_and(|sp| sp >= locals && sp <= end && sp % 8 == 0);
            // Its caller is below it in the chunk or outside it (a shim); 3.12+ link every
            // frame of a chunk to one.
            let previous = f.u64(fo.previous as usize);
            let linked = previous != 0 && previous != p && (previous < p || !in_chunk(previous));
            let plausible = code != 0 && code % 8 == 0 && linked;
            if fits && plausible && f.u8(owner as usize) == OWNED_BY_THREAD {
                return Some(p);
            }
        } else {
            return None;
        }
        p = p.checked_sub(8)?;
    }
    None
}

/// Into `need.tops`, what each candidate resumer holds (see [`resumer_of`]).
fn read_held(
    mem: &dyn Memory,
    l: &Layout,
    regions: &StackRegions,
    batch: &mut Batch,
    need: &mut Tops,
) {
    need.tops.clear();
    need.pending.clear();
    let size = l.frame.read_size as usize;
    let arena = batch.buffer();
    for &r in &regions.resumers {
        let held = regions.chunk_bytes(arena, r, size).and_then(|h| {
            let (running, at, len) = held_words(l, r, Fields(h))?;
            Some(Held::new(r, running, regions.chunk_bytes(arena, at, len)?))
        });
        need.tops.extend(held);
    }
    for &(addr, at, len) in &regions.loose {
        let place = arena
            .get(at..at + len)
            .and_then(|h| held_words(l, addr, Fields(h)));
        if let Some((running, at, len)) = place {
            need.pending.push((addr, running, at, len));
        }
    }
    if need.pending.is_empty() {
        return;
    }
    let pending = &*need.pending;
    let run = batch.run(pending.len(), |k| (pending[k].2, pending[k].3));
    batch.read(mem);
    for (k, &(addr, running, _, _)) in pending.iter().enumerate() {
        if let Some(w) = run.nth(k).and_then(|h| batch.get(h)) {
            need.tops.push(Held::new(addr, running, w));
        }
    }
}

impl Held {
    fn new(frame: u64, running: bool, bytes: &[u8]) -> Held {
        let mut words = [0; SCANNED_WORDS];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = Fields(b).u64(0);
        }
        Held {
            frame,
            running,
            words,
        }
    }
}

/// The generator object whose frame is the frame at `addr` (its first bytes in `header`),
/// or 0: from 3.11 every frame outside the chunks that is not a shim is a generator's,
/// embedded in it; before, a frame object names its generator (`f_gen`, NULL for others).
fn generator_of(l: &Layout, addr: u64, header: Fields) -> u64 {
    match l.frame.gen {
        GenLink::None => 0,
        GenLink::Field(off) => header.u64(off as usize),
        GenLink::Embedded(off) => addr.saturating_sub(off),
    }
}

/// Which words of the frame at `addr` (its first bytes in `header`) say what it holds:
/// (running, address, length). A frame that saved its stack: the top two words of it (two,
/// because 3.15's `for` keeps an index above the iterator). A running frame (3.6-3.13
/// mark one): the first [`SCANNED_WORDS`] of its stack (3.11+: of its locals and stack).
/// `None`: a saved stack of fewer than two words, or nothing to go by.
fn held_words(l: &Layout, addr: u64, header: Fields) -> Option<(bool, u64, usize)> {
    let base = addr.checked_add(l.frame.localsplus)?;
    let scan = 8 * SCANNED_WORDS;
    let within = |p: u64| p >= base && p - base <= 8 * MAX_STACK_WORDS && p % 8 == 0;
    // The top two words of a saved stack, or its one word (a frame object's value stack
    // holds no locals: a `for` over a generator leaves just the generator).
    let saved_top = |p: u64| match p {
        _ if p >= 16 && within(p - 16) => Some((false, p - 16, 16)),
        _ if p >= 8 && within(p - 8) => Some((false, p - 8, 8)),
        _ => None,
    };
    match l.frame.stack_top {
        StackTop::Unknown => None,
        StackTop::ObjectPointer {
            valuestack,
            stacktop,
        } => {
            let (stack, top) = (
                header.u64(valuestack as usize),
                header.u64(stacktop as usize),
            );
            match top {
                0 => within(stack).then_some((true, stack, scan)),
                _ if top >= stack.saturating_add(8) => saved_top(top),
                _ => None,
            }
        }
        StackTop::ObjectDepth { valuestack, depth } => {
            let stack = header.u64(valuestack as usize);
            match header.i32(depth as usize) {
                -1 => within(stack).then_some((true, stack, scan)),
                n if n >= 1 && (n as u64) < MAX_STACK_WORDS => saved_top(stack + 8 * n as u64),
                _ => None,
            }
        }
        StackTop::Index(off) => match header.i32(off as usize) {
            -1 => Some((true, base, scan)),
            n if n >= 1 && (n as u64) < MAX_STACK_WORDS => saved_top(base + 8 * n as u64),
            _ => None,
        },
        StackTop::Pointer(off) => saved_top(header.u64(off as usize)),
    }
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
enum Mark {
    /// A Python frame, and whether C code called it (the first of an evaluation call).
    Frame { is_entry: bool },
    /// A shim frame (3.12+) pushed by C code below the frame it called.
    Shim,
    /// An owner that cannot be where the frame was found: read while it changed.
    Implausible,
}

fn entry_mark(entry: EntryMark, f: Fields, found: FoundIn) -> Mark {
    match entry {
        EntryMark::None => Mark::Frame { is_entry: true },
        EntryMark::IsEntryByte(off) => Mark::Frame {
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
        (EntryMark::IsEntryByte(_), Some((FoundIn::Chunk(base), _))) => {
            regions.roots.contains(&base)
        }
        (EntryMark::IsEntryByte(_), Some((FoundIn::Alone, _))) => false,
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
const OWNED_BY_THREAD: u8 = 0;
const OWNED_BY_GENERATOR: u8 = 1;
const OWNED_BY_FRAME_OBJECT: u8 = 2;
