//! Linking back a generator's (or coroutine's) frame that the walk found unlinked from its
//! caller: it yielded or finished between our reading the pointer that led to it and our
//! reading it, and was running then. Its caller is taken only where the target's memory
//! proves it:
//! - the frame holding the generator object on its evaluation stack ([`resumer_of`]: a
//!   suspended generator is held by the frame that resumes it);
//! - 3.11, for a frame resumed through C: the enclosing evaluation call's frame, from the
//!   frame pointers ([`entry_caller`]).
//!
//! Otherwise the chain stays torn (an error sample keeping its innermost frames). Where the
//! thread went on to after the generator finished is not its caller: the innermost
//! generator still running, or the chunk's frame below, is an ancestor of it several levels
//! up whenever more than one of them finished or yielded while the stack was read, and
//! taking it showed 5-25% of the samples of recursive generators and coroutines with levels
//! missing (issue 23's sixth session, tests/whole_stacks.rs), shorter stacks that looked
//! whole.

use super::stack::StackRegions;
use super::RawThread;
use crate::capture::os::batch::Batch;
use crate::capture::os::memory::{Fields, Memory};
use crate::capture::python::layout::{EntryMark, GenLink, Layout, StackTop};

/// Buffers of the linking, kept between walks.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The walk's candidate resumers and the top words of each one's evaluation stack
    /// ([`resumer_of`]), read at the walk's first need of them.
    tops: Vec<Held>,
    tops_read: bool,
    /// What frames outside the chunks hold, to be read: (frame, running, address, length).
    pending: Vec<(u64, bool, u64, usize)>,
}

impl Scratch {
    /// A new walk: what candidates hold is read again when needed.
    pub(super) fn start_walk(&mut self) {
        self.tops_read = false;
    }

    /// The caller of the generator frame at `frame` (of generator object `gen`), the last of
    /// `thread.frames`, found unlinked, where the target's memory proves it. `outer`: the
    /// current frame of each evaluation call the thread is in, innermost first (3.11-3.12's
    /// frame pointers).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn caller_of(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        regions: &StackRegions,
        batch: &mut Batch,
        outer: &[u64],
        thread: &RawThread,
        frame: u64,
        gen: u64,
    ) -> Option<u64> {
        resumer_of(mem, l, regions, batch, self, frame, gen)
            .or_else(|| entry_caller(l, thread, outer))
    }
}

/// What a candidate resumer holds: the top two words of the evaluation stack it saved, or,
/// while it runs (3.11-3.13 mark a running frame's `stacktop` -1), the first
/// [`SCANNED_WORDS`] words of its locals and stack.
#[derive(Debug, Clone, Copy)]
struct Held {
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
    need: &mut Scratch,
    frame: u64,
    gen: u64,
) -> Option<u64> {
    if !need.tops_read {
        need.tops_read = true;
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

/// The caller of the generator frame just walked (the last of `thread.frames`), found
/// unlinked, when it is the first frame of an evaluation call (3.11 marks such a frame
/// `is_entry`): the current frame of the enclosing call as the frame pointers had it
/// (`outer`, innermost call first), the call being the one after those of the entry frames
/// walked before it. 3.12+ resume a generator inside the caller's evaluation call, and a
/// frame read alone there is not marked: `None`.
fn entry_caller(l: &Layout, thread: &RawThread, outer: &[u64]) -> Option<u64> {
    if !matches!(l.frame.entry, EntryMark::IsEntryByte { .. }) {
        return None;
    }
    let (last, before) = thread.frames.split_last()?;
    if !last.is_entry {
        return None;
    }
    let calls = before.iter().filter(|f| f.is_entry).count();
    outer.get(calls + 1).copied().filter(|&f| f != 0)
}

/// Into `need.tops`, what each candidate resumer holds (see [`resumer_of`]).
fn read_held(
    mem: &dyn Memory,
    l: &Layout,
    regions: &StackRegions,
    batch: &mut Batch,
    need: &mut Scratch,
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
pub(super) fn generator_of(l: &Layout, addr: u64, header: Fields) -> u64 {
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
