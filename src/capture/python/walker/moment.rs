//! One moment per stack (3.11+, read without pausing): the frames of a thread's current
//! datastack chunk are taken as the copy of the chunk has them, not as the thread state read a
//! moment before it had them.
//!
//! The thread state (its frame pointer) and the chunk are read in one call, the chunk a
//! fraction of a microsecond later. Code that calls short functions changes its innermost
//! frame faster than that: the slot the pointer named has by then often been popped and
//! filled again by a later call, from a frame lower down (pyperformance raytrace on 3.14: the
//! frame found there had another size than the pointer's moment gave it in a third of the
//! samples). Walking from the pointer paired one moment's innermost slot with another
//! moment's occupant: a caller that had gone on to call something else was taken for the
//! leaf, and short calls lost their time to their callers (raytrace `Point.__sub__` 5% of the
//! samples against 16-22% paused, on 3.12 and 3.14 alike).
//!
//! The copy of the chunk is itself one moment: its innermost frames are copied within a few
//! tens of nanoseconds. Its frames lie back to back from the chunk's first slot, each linked
//! to the one below it (or, called through C or by a generator, to a frame outside the chunk),
//! and the thread was in the innermost of them that is still its caller's callee: not popped
//! (3.14+ clear a popped frame's code; before, a popped frame keeps its code and links and
//! sits at the instruction it returned by), not returning (at a return instruction: its
//! caller is already the thread's current frame while its locals are let go, as a paused read
//! has it), not a generator's frame already created (moved into its generator by its first
//! instruction, it leaves its slot as it was; taken as current only where the pointer named
//! it), not pushed and not yet started. A thread whose
//! pointer named a frame of that chunk is walked again from there
//! ([`Walker::settle_to_copy`]); one whose walk went through a generator's frame is left as
//! walked, since the copy cannot tell whether the generator still ran. Either moment is a
//! fair draw; mixing the two was not.

use super::stack::{self, OWNED_BY_THREAD};
use super::{RawThread, Walker, MAX_DEPTH};
use crate::capture::os::memory::{Fields, Memory};
use crate::capture::python::code::FrameFacts;
use crate::capture::python::layout::{EntryMark, FrameShape};

impl Walker {
    /// 3.11+, read without pausing: walk each thread whose frame pointer named a frame of its
    /// current chunk again from the innermost frame the chunk's copy holds, when that is
    /// another frame (see the module's documentation). `facts(code, offset)` is what a frame
    /// running `code` at byte `offset` is (`None`: unknown, and the thread is left as
    /// walked).
    pub fn settle_to_copy(
        &mut self,
        mem: &dyn Memory,
        out: &mut [RawThread],
        mut facts: impl FnMut(u64, i64) -> Option<FrameFacts>,
    ) {
        let l = self.layout;
        let Some(chunk_at) = l.thread.datastack_chunk else {
            return;
        };
        let with_ops = l.code.ops.is_some() && l.frames == FrameShape::InterpreterFrame;
        if !with_ops {
            return;
        }
        let tsize = l.thread.size as usize;
        for i in 0..self.threads.len().min(out.len()) {
            let Some(state) = self.states.get(i * tsize..(i + 1) * tsize) else {
                continue;
            };
            let chunk = Fields(state).u64(chunk_at as usize);
            let t = &self.threads[i];
            let Some(pointer) = t.frame else {
                continue;
            };
            let mut chain = std::mem::take(&mut self.chain);
            chain.clear();
            let found = self.innermost_in_copy(i, chunk, pointer, &mut facts, &mut chain);
            let Some(innermost) = found else {
                self.chain = chain;
                continue;
            };
            // The chain ends at the innermost frame.
            while chain.last().is_some_and(|&a| a > innermost) {
                chain.pop();
            }
            let thread = &mut out[i];
            let unchanged =
                thread.fault.is_none() && thread.frames.first().map(|f| f.addr) == Some(innermost);
            // A generator's (or coroutine's) frame lives outside the chunk: where the walk from
            // the pointer went through one before reaching the chunk's innermost frame, the
            // thread ran a generator resumed by that frame, or a callee of it, and the copy
            // cannot tell whether the generator still ran when it was taken (its consumer
            // would take the generator's time): the walk stands.
            let copied = self.threads[i].stack.copied.map_or(0, |c| c.2 as u64);
            let in_chunk = |a: u64| a > chunk && a < chunk.saturating_add(copied);
            let through_generator = thread
                .frames
                .iter()
                .take_while(|f| f.addr != innermost)
                .any(|f| !in_chunk(f.addr));
            if unchanged || through_generator {
                self.chain = chain;
                continue;
            }
            self.rewalk(mem, i, innermost, &chain, thread);
            self.chain = chain;
        }
    }

    /// The innermost current frame of thread `i`'s chunk at `chunk` as its copy has it, when
    /// the thread's `pointer` named a frame of that chunk and the copy shows every frame up to
    /// it (`None`: left as walked).
    fn innermost_in_copy(
        &self,
        i: usize,
        chunk: u64,
        pointer: u64,
        facts: &mut impl FnMut(u64, i64) -> Option<FrameFacts>,
        chain: &mut Vec<u64>,
    ) -> Option<u64> {
        let l = self.layout;
        let fo = &l.frame;
        let (_, at, len) = self.threads[i].stack.copied.filter(|c| c.0 == chunk)?;
        let copy = self.batch.buffer().get(at..at + len)?;
        let end = chunk.checked_add(len as u64)?;
        if !(pointer > chunk && pointer < end) {
            return None;
        }
        let owner = match fo.entry {
            EntryMark::ShimOwner { owner, .. } => owner,
            EntryMark::IsEntryByte { owner, .. } => owner,
            EntryMark::None => return None,
        };
        let tag_mask = !((1u64 << fo.code_tag_bits) - 1);
        let size = fo.read_size as usize;
        // The frame at `addr` in the copy, when it is a frame of this thread called by the
        // frame at `below` (0: the chunk's first, called from anywhere): its size.
        let mut current = |addr: u64, below: u64| -> Option<u64> {
            let off = usize::try_from(addr.checked_sub(chunk)?).ok()?;
            let f = Fields(copy.get(off..off.checked_add(size)?)?);
            let code = f.u64(fo.code as usize) & tag_mask;
            let previous = f.u64(fo.previous as usize);
            // Called by the frame below, or through C or by a generator (from outside the
            // chunk).
            let linked = below == 0 || previous == below || !(previous > chunk && previous < end);
            if code == 0 || f.u8(owner as usize) != OWNED_BY_THREAD || !linked {
                return None;
            }
            let offset = stack::instr_offset(l, f, code);
            let facts = facts(code, offset)?;
            // Not its caller's callee now (see the module's documentation): popped, returning
            // (its locals being let go can take long: objects freed), a generator's (or
            // coroutine's) frame created, or pushed and not started (before 3.13, at
            // offset -1; a frame at its first instruction since 3.13 may be current or not yet
            // entered, as often one as the other in paused reads of raytrace on 3.14, and is
            // taken as current).
            // A generator's frame being created is the thread's current one while it runs
            // its first instruction, which allocates the generator and moves the frame into
            // it; the slot it leaves keeps its code and links: it is taken as current only
            // where the pointer named it.
            let stale_generator = facts.generator && addr != pointer;
            let gone = facts.returning || stale_generator || offset < 0 || facts.bytes == 0;
            (!gone).then_some(facts.bytes)
        };
        let root = Fields(copy).u64(fo.chunk_previous as usize) == 0;
        let mut addr = chunk.checked_add(fo.chunk_header + if root { 8 } else { 0 })?;
        let mut bytes = current(addr, 0)?;
        for _ in 0..MAX_DEPTH {
            chain.push(addr);
            let next = addr.checked_add(bytes)?;
            let next_off = usize::try_from(next.checked_sub(chunk)?).ok()?;
            if next_off.saturating_add(size) > copy.len() {
                // The frames past the copy are unknown (the stack may have grown past it).
                return None;
            }
            match current(next, addr) {
                Some(called) => {
                    bytes = called;
                    addr = next;
                }
                None => return Some(addr),
            }
        }
        None
    }

    /// Walk thread `i` again from `frame`, into `thread`.
    fn rewalk(
        &mut self,
        mem: &dyn Memory,
        i: usize,
        frame: u64,
        chain: &[u64],
        thread: &mut RawThread,
    ) {
        let l = self.layout;
        let Walker {
            threads,
            batch,
            scratch,
            states,
            ..
        } = self;
        let t = &mut threads[i];
        // The current chunk as copied, past the part in use when the thread state was read.
        if let Some((base, at, len)) = t.stack.copied {
            for r in t
                .stack
                .regions
                .iter_mut()
                .filter(|r| r.0 == base && r.1 == at)
            {
                r.2 = r.2.max(len);
            }
        }
        thread.clear_walk();
        let tsize = l.thread.size as usize;
        let Some(state) = states.get(i * tsize..(i + 1) * tsize).map(Fields) else {
            // (Not reached: the caller read the state.)
            thread.fault = Some(super::StackFault::Unreadable);
            return;
        };
        stack::walk_frames(
            mem,
            l,
            stack::Start::from_state(l, state, frame, &t.outer, chain),
            &mut t.stack,
            batch,
            scratch,
            thread,
        );
    }
}
