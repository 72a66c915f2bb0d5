//! Walking the interpreter: thread states, then each thread's frames.
//!
//! A snapshot runs in four phases, each a function below or in `plan`:
//!
//! 1. **plan** (`plan::queue_first_batch`): queue the first batch, read in one call: the
//!    thread-list head, the GIL words, the thread states seen last time, and for each thread
//!    its frame pointer and its frame stack (3.11+ keeps frames in "datastack chunks") where
//!    they were last time, older chunks and frames read alone included, plus whatever the
//!    caller rides along (the code cache's re-check of the code objects last used:
//!    [`crate::capture::python::code::CodeCache::begin`]);
//! 2. **follow the thread list** (`Walker::follow_threads`): thread states come from the
//!    first batch, a new one costs a read of its own;
//! 3. **locate stacks** (`plan::locate_stacks`): take each thread's frame pointer and
//!    frame stack from the first batch when the guess held, and read those that moved to
//!    another chunk or grew past the guessed length in one second batch;
//! 4. **walk and remember** (`Walker::walk_and_remember`): follow each thread's frames
//!    through the copies (`stack::walk_frames`), and remember where its stack was, for the
//!    next snapshot's guess.
//!
//! So a snapshot costs one read (`process_vm_readv` with many ranges) in the steady state,
//! whatever the number of threads or frames; a stack that moved costs a second; a new thread
//! state, a frame outside the chunks (a generator's) not seen before, or an older chunk not
//! guessed costs a read of its own. The steady state allocates nothing: the batch buffer,
//! the per-thread records and their vectors are kept in the [`Walker`] and reused.
//!
//! **What runs while the target is paused.** In blocking mode the caller
//! ([`crate::capture::spy::PythonSpy::sample`]) reads the OS thread states first, then
//! pauses the target around one snapshot *and* the decoding of its frames: all four phases
//! above, the code cache's `end` (its checks), and the decoding (code objects not seen
//! before, lines, locals with `--locals`, thread names and pthread ids when threads
//! changed). In the steady state the pause therefore lasts one read and the walk and look-ups
//! over local copies; a stack that moved adds the second batch, and anything new (a thread,
//! a code object, a generator's frame, an older chunk) reads of its own. Without pausing the
//! same runs while the target runs on, which is why every chain is checked
//! (`stack::walk_frames`).
//!
//! Files: this one (the walker, its results, the thread-list phase and walk-and-remember),
//! `plan.rs` (what the walker remembers per thread, the first batch, locating stacks with
//! the second batch), `stack.rs` (the copies of a stack and the frame walk over them),
//! `tests.rs` (planted interpreters: frames, corruption, reads and allocations per sample,
//! code objects replaced in place; and garbage memory).

mod moment;
mod plan;
mod relink;
mod stack;
#[cfg(test)]
mod tests;

use super::layout::{EntryMark, FramePtr, Layout};
use crate::capture::os::batch::{Batch, Int, Word};
use crate::capture::os::memory::{Fields, Memory};
use crate::model::fasthash::FastSet;
use anyhow::{bail, Context, Result};
use plan::Tracked;
use stack::WalkScratch;

/// More threads than this means we are walking garbage.
pub const MAX_THREADS: usize = 4096;
/// Deeper stacks than this are cut (and flagged) rather than walked forever.
pub const MAX_DEPTH: usize = 4096;
/// Largest frame stack region copied in one piece.
const MAX_CHUNK: u64 = 4 << 20;
/// How far from a thread's `cframe` an address is taken as on the same C stack (3.12's shim
/// frames live there).
const C_STACK_NEAR: u64 = 1 << 20;
/// 3.12: how far a shim frame lies from its evaluation call's `cframe` at most (both are
/// locals of that call's C stack frame).
const SHIM_BESIDE_CFRAME: u64 = 1024;
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
    /// That shim frame's address (0: none): it lives in the C stack frame of the evaluation
    /// call that runs this frame, which is how `--native` finds that call without symbols.
    pub shim_addr: u64,
    /// The innermost frame returned between our reading the pointer to it and reading it
    /// (3.14+ clear a popped frame's code; its instruction pointer stays): `code` is 0 and
    /// `instr_offset` holds that instruction pointer, whose code object the decoder finds
    /// among those it knows ([`crate::capture::python::code::CodeCache::find_by_instr`]).
    pub returned: bool,
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
    /// Links from a generator's frame to the frame that resumed it, restored by the walk
    /// where the generator had yielded or finished while it was read (see
    /// `relink`).
    pub relinked: u32,
}

impl RawThread {
    /// Forget the last walk's frames and verdicts (keeping the allocations).
    fn clear_walk(&mut self) {
        self.frames.clear();
        self.truncated = false;
        self.partial = false;
        self.fault = None;
        self.relinked = 0;
    }
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
    /// `--native`: the native stack's evaluation frames and the Python frames do not match.
    NativeMismatch,
}

impl StackFault {
    /// Short, stable name (stored in session files).
    pub fn as_str(self) -> &'static str {
        match self {
            StackFault::Changed => "stack_changed",
            StackFault::Unreadable => "frame_unreadable",
            StackFault::BadCode => "code_unreadable",
            StackFault::NativeMismatch => "native_mismatch",
        }
    }

    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            StackFault::Changed => "the stack changed while it was being read",
            StackFault::Unreadable => "a frame could not be read",
            StackFault::BadCode => "a frame's code object could not be read",
            StackFault::NativeMismatch => {
                "the native stack's evaluation frames do not match the Python frames"
            }
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
    /// The set of thread states differs from the previous snapshot.
    pub threads_changed: bool,
    /// The last snapshot's threads, in thread-list order (their guesses are this snapshot's).
    threads: Vec<Tracked>,
    /// This snapshot's threads, being built (then swapped with `threads`).
    next: Vec<Tracked>,
    /// This snapshot's reads: the first batch, the second, and chunks read during the walk.
    batch: Batch,
    /// This snapshot's thread states, back to back in `next`'s order.
    states: Vec<u8>,
    /// Loop guard of the thread list.
    seen: FastSet<u64>,
    scratch: WalkScratch,
    /// A thread's frames as the copy of its chunk has them (`moment`).
    chain: Vec<u64>,
}

/// Where a thread's frame stack was when its thread state was read (3.11-3.12).
struct ChunkTop {
    /// `datastack_top`: the end of the innermost frame in the current chunk.
    top: u64,
    /// `datastack_chunk`: the current chunk.
    chunk: u64,
    /// `cframe`: where the thread's C stack is.
    cframe: u64,
}

/// The first batch's fixed requests.
struct Heads {
    head: Word,
    gil: Word,
    locked: Int,
}

impl Walker {
    pub fn new(layout: &'static Layout, interp: u64, gil: GilWords) -> Walker {
        Walker {
            layout,
            interp,
            gil,
            threads_changed: true,
            threads: Vec::new(),
            next: Vec::new(),
            batch: Batch::default(),
            states: Vec::new(),
            seen: FastSet::default(),
            scratch: WalkScratch::default(),
            chain: Vec::new(),
        }
    }

    /// All threads of the interpreter and their frames (innermost first), into `out`
    /// (replaced; its allocations are reused).
    pub fn snapshot(&mut self, mem: &dyn Memory, out: &mut Vec<RawThread>) -> Result<()> {
        self.snapshot_with(mem, out, |_| {})
    }

    /// [`Walker::snapshot`], with `ride` queueing reads of the caller's in the first batch;
    /// their results are in [`Walker::batch`] until the next snapshot.
    pub fn snapshot_with(
        &mut self,
        mem: &dyn Memory,
        out: &mut Vec<RawThread>,
        ride: impl FnOnce(&mut Batch),
    ) -> Result<()> {
        let heads = self.queue_heads();
        plan::queue_first_batch(self.layout, &mut self.threads, &mut self.batch);
        ride(&mut self.batch);
        self.batch.read(mem);
        let Some(head) = self.batch.u64(heads.head) else {
            bail!(
                "could not read the thread list of the interpreter at {:#x}",
                self.interp
            );
        };
        self.follow_threads(mem, head)?;
        plan::locate_stacks(
            self.layout,
            mem,
            &self.threads,
            &mut self.next,
            &self.states,
            &mut self.batch,
        );
        let holder = self.gil_holder(&heads);
        self.walk_and_remember(mem, out, holder);
        self.threads_changed = self.next.len() != self.threads.len()
            || self
                .next
                .iter()
                .zip(&self.threads)
                .any(|(a, b)| a.tstate != b.tstate);
        std::mem::swap(&mut self.threads, &mut self.next);
        Ok(())
    }

    /// Thread `i`'s frame stack as its thread state had it (3.11-3.12, whose code objects
    /// give frame sizes: `None` otherwise, or when the values are implausible).
    fn chunk_top(&self, i: usize) -> Option<ChunkTop> {
        let l = self.layout;
        let (top_at, chunk_at) = (l.thread.datastack_top?, l.thread.datastack_chunk?);
        l.code.frame_words?;
        // 3.13+ read the frame pointer with `datastack_top` (`moment` reads their stacks).
        if let FramePtr::InThread(_) = l.thread.frame {
            return None;
        }
        let tsize = l.thread.size as usize;
        let f = Fields(self.states.get(i * tsize..(i + 1) * tsize)?);
        let (top, chunk) = (f.u64(top_at as usize), f.u64(chunk_at as usize));
        let cframe = match l.thread.frame {
            FramePtr::ViaCFrame { cframe, .. } => f.u64(cframe as usize),
            FramePtr::InThread(_) => 0,
        };
        (top > chunk && top - chunk <= MAX_CHUNK).then_some(ChunkTop { top, chunk, cframe })
    }

    /// 3.11-3.12, read without pausing: make each thread's innermost frames those of the
    /// moment its thread state was read. The frame pointer is read through `cframe`, on the
    /// C stack, a moment after the thread state; a call entered or left in between (short
    /// calls are a fraction of a microsecond) paired the state's `cframe` with another
    /// moment's frame, and a callee's time went to its caller (3.12 `tests/scripts/churn.py
    /// calls`: `visible` 0.43-0.58 of the samples, 0.31 paused and by `perf`). The thread
    /// state's `datastack_top`, read in the same piece as `cframe`, says where the innermost
    /// frame in the chunk ended then: a frame pushed since (ending past it) is dropped, and a
    /// frame returned since (its caller ends below it) is taken back from the chunk's copy,
    /// where a returned frame keeps its code and links. `frame_bytes(code)` is the size of a
    /// frame running `code` (0: unknown, and the thread is left as read).
    pub fn settle_tops(&self, out: &mut [RawThread], mut frame_bytes: impl FnMut(u64) -> u64) {
        let l = self.layout;
        let arena = self.batch.buffer();
        for (i, (t, thread)) in self.threads.iter().zip(out.iter_mut()).enumerate() {
            if thread.fault.is_some() || thread.frames.is_empty() {
                continue;
            }
            let Some(ChunkTop { top, chunk, cframe }) = self.chunk_top(i) else {
                continue;
            };
            let chunk_end = self.chunk_end(t, chunk, top);
            let in_chunk = |a: u64| a > chunk && a < chunk_end;
            // The innermost frame must be in the chunk: a generator's frame lives outside
            // it, and the thread state's `datastack_top` says nothing of it (frames pushed
            // above the generator's caller are calls made from the generator; taking them
            // for its callee moved the generators' time to their consumer).
            let first = match thread.frames.first() {
                Some(&fr) if in_chunk(fr.addr) => fr,
                _ => continue,
            };
            let end = |fr: &RawFrame, size: u64| fr.addr.wrapping_add(size);
            let size = frame_bytes(first.code);
            if size == 0 {
                continue;
            }
            let first_end = end(&first, size);
            if first_end > top {
                // Pushed after the state was read: drop frames down to the one that ended
                // at the top then (left as read when none does).
                let mut m = 0;
                while m < thread.frames.len() {
                    let fr = thread.frames[m];
                    let s = frame_bytes(fr.code);
                    if s == 0 || !in_chunk(fr.addr) || end(&fr, s) < top {
                        break;
                    }
                    if end(&fr, s) == top {
                        thread.frames.drain(..m);
                        break;
                    }
                    m += 1;
                }
            } else if first_end < top {
                // Returned since: its callees, up from its end, until one ends at the top.
                let mut found: Vec<RawFrame> = Vec::new();
                let mut at = first_end;
                // Ends at a frame pushed but not started: what is found up to it ran then.
                let mut before_unstarted = false;
                // Each must have been called by the frame below it: linked to it, or (3.12, a
                // call through C) to a shim frame on the C stack, near `cframe`.
                let mut caller = first.addr;
                while at < top && found.len() < 4 {
                    let Some(bytes) = t.stack.chunk_bytes(arena, at, l.frame.read_size as usize)
                    else {
                        break;
                    };
                    let fb = Fields(bytes);
                    let tag_mask = !((1u64 << l.frame.code_tag_bits) - 1);
                    let code = fb.u64(l.frame.code as usize) & tag_mask;
                    let s = if code == 0 { 0 } else { frame_bytes(code) };
                    let instr_offset = stack::instr_offset(l, fb, code);
                    if s == 0 {
                        break;
                    }
                    let previous = fb.u64(l.frame.previous as usize);
                    let through_c = cframe != 0 && previous.abs_diff(cframe) < C_STACK_NEAR;
                    if instr_offset >= 0 && previous != caller && !through_c {
                        // Not called from the frame below (a generator's child being
                        // created, whose caller is the generator's frame, outside the
                        // chunk; or a stale frame): the thread is left as read.
                        found.clear();
                        break;
                    }
                    // (3.12: a shim frame lies in its evaluation call's C stack frame,
                    // beside that call's `cframe`: near the state's, it is that call.)
                    // (On 3.11, which has no shims, taking such frames as not current
                    // left `__init__` a fifth of its paused share: not applied.)
                    let by_its_own_call =
                        through_c && previous.abs_diff(cframe) > SHIM_BESIDE_CFRAME;
                    if instr_offset < 0 || by_its_own_call {
                        // Pushed but not started: the thread was still in the C code that
                        // calls it (an allocation, say), which is its caller's time, as a
                        // paused read and `perf` count it. Or run by an evaluation call of
                        // its own (a call through C) while the state's `cframe` was its
                        // caller's: that call was not entered yet, or already left.
                        before_unstarted = true;
                        break;
                    }
                    found.push(RawFrame {
                        addr: at,
                        code,
                        instr_offset,
                        is_entry: matches!(l.frame.entry,
                            EntryMark::IsEntryByte { is_entry: o, .. } if fb.u8(o as usize) != 0),
                        shim_entry: false,
                        shim_addr: 0,
                        returned: false,
                    });
                    caller = at;
                    at = at.saturating_add(s);
                }
                if !found.is_empty() && (at == top || before_unstarted) {
                    found.reverse();
                    thread.frames.splice(0..0, found);
                }
            }
        }
    }

    /// 3.11-3.12, read without pausing: a thread whose chain failed the walk's checks (a
    /// frame or shim overwritten while it was read) is read again from its datastack chunk
    /// alone, as it was when its thread state was read: frames lie back to back in the chunk
    /// from its first slot up to the state's `datastack_top`, each `frame_bytes(code)` long,
    /// and each must be linked to the one below it (or, 3.12, through a shim frame on the C
    /// stack: a call through C). Taken only when the whole stack is in that chunk and every
    /// link holds (generators' frames, outside the chunk, break the links, and such threads
    /// stay as read). Without this the snapshot was taken again, a moment later, and what
    /// runs right after a stack changed (the caller a short call returned to) gained share.
    pub fn rebuild_from_chunk(
        &self,
        out: &mut [RawThread],
        mut frame_bytes: impl FnMut(u64) -> u64,
    ) {
        let l = self.layout;
        let arena = self.batch.buffer();
        let fo = &l.frame;
        let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
        for (i, (t, thread)) in self.threads.iter().zip(out.iter_mut()).enumerate() {
            if thread.fault.is_none() {
                continue;
            }
            let Some(ChunkTop {
                top,
                chunk,
                cframe: c_stack,
            }) = self.chunk_top(i)
            else {
                continue;
            };
            // Only a thread whose frame pointer was in that chunk ran a frame of the chunk: one
            // running a generator's frame (which lives in the generator, outside the chunk)
            // has frames the chunk does not hold, and one whose pointer was a shim frame
            // (3.12) may be resuming a generator through C (on 3.12 `gen`, rebuilding those
            // too gave the generators' consumer 0.2 of the samples against 0.11).
            let pointer = t.frame.unwrap_or(0);
            let chunk_end = self.chunk_end(t, chunk, top);
            let in_chunk = |a: u64| a > chunk && a < chunk_end;
            let innermost_in_chunk = thread.frames.first().is_none_or(|fr| in_chunk(fr.addr));
            if !in_chunk(pointer) || !innermost_in_chunk {
                continue;
            }
            let Some(head) = t
                .stack
                .chunk_bytes(arena, chunk, fo.chunk_header as usize + 8)
            else {
                continue;
            };
            let root = Fields(head).u64(fo.chunk_previous as usize) == 0;
            if !root {
                continue;
            }
            // The root chunk's first slot is kept empty (CPython skips it so as never to
            // free that chunk).
            let mut at = chunk.saturating_add(fo.chunk_header + 8);
            let mut below = 0u64;
            let mut frames: Vec<RawFrame> = Vec::new();
            let mut whole = true;
            while at < top && frames.len() < MAX_DEPTH {
                let Some(bytes) = t.stack.chunk_bytes(arena, at, fo.read_size as usize) else {
                    whole = false;
                    break;
                };
                let fb = Fields(bytes);
                let code = fb.u64(fo.code as usize) & tag_mask;
                let size = if code == 0 { 0 } else { frame_bytes(code) };
                let previous = fb.u64(fo.previous as usize);
                let through_c = c_stack != 0 && previous.abs_diff(c_stack) < C_STACK_NEAR;
                let linked = previous == below || through_c || (below == 0 && previous == 0);
                let owned = match fo.entry {
                    EntryMark::ShimOwner { owner, .. } => fb.u8(owner as usize) == 0,
                    _ => true,
                };
                if size == 0 || !owned {
                    whole = false;
                    break;
                }
                let instr_offset = stack::instr_offset(l, fb, code);
                let not_current = instr_offset < 0
                    || (through_c && previous.abs_diff(c_stack) > SHIM_BESIDE_CFRAME);
                if not_current && at.saturating_add(size) == top {
                    // Pushed but not started, or (3.12) run by an evaluation call that was
                    // not the current one (not entered yet, or left): its caller's time, as
                    // a paused read counts it.
                    at = at.saturating_add(size);
                    break;
                }
                if !linked {
                    whole = false;
                    break;
                }
                frames.push(RawFrame {
                    addr: at,
                    code,
                    instr_offset,
                    is_entry: match fo.entry {
                        EntryMark::IsEntryByte { is_entry: o, .. } => fb.u8(o as usize) != 0,
                        _ => through_c,
                    },
                    shim_entry: through_c,
                    shim_addr: if through_c { previous } else { 0 },
                    returned: false,
                });
                below = at;
                at = at.saturating_add(size);
            }
            // The frame the pointer named must be one of them: a frame pushed since by a
            // generator's frame (a generator being created) is in the chunk, but its caller
            // is not, and the thread was running that caller.
            let holds_pointer = frames.iter().any(|fr| fr.addr == pointer);
            if whole && at == top && holds_pointer {
                frames.reverse();
                thread.frames = frames;
                thread.fault = None;
                thread.partial = false;
            }
        }
    }

    /// Where thread `t`'s current chunk (at `chunk`, in use up to `top`) ends, per its
    /// header's size in the copy (`top` when not copied). Frames lie within it; generators'
    /// frames, in the heap, can lie just above it, and taking those for frames of the chunk
    /// made some processes' generator profiles give their consumer half the samples.
    fn chunk_end(&self, t: &Tracked, chunk: u64, top: u64) -> u64 {
        let fo = &self.layout.frame;
        let size = t
            .stack
            .chunk_bytes(self.batch.buffer(), chunk, fo.chunk_header as usize)
            .map_or(0, |h| Fields(h).u64(fo.chunk_size as usize));
        if size > top.saturating_sub(chunk) && size <= MAX_CHUNK {
            chunk + size
        } else {
            top
        }
    }

    /// This snapshot's reads, with what the caller rode along in the first batch.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Start the first batch with the thread-list head and the GIL words.
    fn queue_heads(&mut self) -> Heads {
        let b = &mut self.batch;
        b.clear();
        // Words we have no address for are read from the interpreter state (always
        // readable) and ignored: a failing range would split the batch in two syscalls.
        let or_interp = |a: u64| if a == 0 { self.interp } else { a };
        Heads {
            head: b.word(self.interp + self.layout.interp.threads_head),
            gil: b.word(or_interp(self.gil.holder)),
            locked: b.int(or_interp(self.gil.locked.unwrap_or(0))),
        }
    }

    /// The thread state holding the GIL, per the first batch (0: none known).
    fn gil_holder(&self, heads: &Heads) -> u64 {
        if self.gil.holder == 0 {
            return 0;
        }
        if self.gil.locked.is_some() && self.batch.u32(heads.locked).is_none_or(|v| v == 0) {
            return 0;
        }
        self.batch.u64(heads.gil).unwrap_or(0)
    }

    /// Phase 2: follow the thread list from `head` into `self.next` and `self.states`,
    /// taking thread states from the first batch (the list is usually in the same order as
    /// last time: look there first) and reading the others one by one.
    fn follow_threads(&mut self, mem: &dyn Memory, head: u64) -> Result<()> {
        let l = self.layout;
        let tsize = l.thread.size as usize;
        self.states.clear();
        self.seen.clear();
        let mut n = 0;
        let mut addr = head;
        while addr != 0 {
            if !self.seen.insert(addr) || n >= MAX_THREADS {
                bail!("the thread list of the interpreter loops or is implausibly long");
            }
            let in_batch = |j: usize| {
                let t: &Tracked = self.threads.get(j)?;
                (t.tstate == addr).then_some(())?;
                Some((j, self.batch.get(t.queued.state?)?))
            };
            let found = in_batch(n).or_else(|| (0..self.threads.len()).find_map(in_batch));
            let at = self.states.len();
            let prev = match found {
                Some((j, bytes)) => {
                    self.states.extend_from_slice(bytes);
                    Some(j)
                }
                None => {
                    self.states.resize(at + tsize, 0);
                    mem.read(addr, &mut self.states[at..])
                        .with_context(|| format!("could not read thread state at {addr:#x}"))?;
                    None
                }
            };
            let f = Fields(&self.states[at..at + tsize]);
            if f.u64(l.thread.interp as usize) != self.interp {
                bail!("thread state at {addr:#x} does not belong to the interpreter");
            }
            if self.next.len() == n {
                self.next.push(Tracked::default());
            }
            self.next[n].start(addr, prev);
            n += 1;
            addr = f.u64(l.thread.next as usize);
        }
        self.next.truncate(n);
        Ok(())
    }

    /// Phase 4: walk each thread's frames into `out`, and remember where its stack was.
    fn walk_and_remember(&mut self, mem: &dyn Memory, out: &mut Vec<RawThread>, gil_holder: u64) {
        let l = self.layout;
        let tsize = l.thread.size as usize;
        let n = self.next.len();
        if out.len() < n {
            out.resize_with(n, RawThread::default);
        }
        out.truncate(n);
        for (i, (t, thread)) in self.next.iter_mut().zip(out.iter_mut()).enumerate() {
            let f = Fields(&self.states[i * tsize..(i + 1) * tsize]);
            thread.tstate = t.tstate;
            thread.thread_id = f.u64(l.thread.thread_id as usize);
            thread.native_thread_id = l.thread.native_thread_id.map_or(0, |o| f.u64(o as usize));
            thread.holds_gil = gil_holder != 0 && gil_holder == t.tstate;
            thread.clear_walk();
            match t.frame {
                Some(frame) => stack::walk_frames(
                    mem,
                    l,
                    stack::Start::from_state(l, f, frame, &t.outer, &[]),
                    &mut t.stack,
                    &mut self.batch,
                    &mut self.scratch,
                    thread,
                ),
                None => thread.fault = Some(StackFault::Unreadable),
            }
            let prev = t.prev.map(|j| &self.threads[j]);
            t.remember(l, &self.batch, prev);
        }
    }
}
