//! Walking the interpreter: thread states, then each thread's frames.
//!
//! One snapshot costs a fixed handful of batched reads, whatever the number of threads or
//! frames: (1) the thread-list head, the GIL word and the thread states seen last time, in one
//! `read_many`; (2) every thread's current-frame pointer and the used part of its frame stack
//! (3.11+ keeps frames in "datastack chunks"), in one `read_many`; (3) the check of cached
//! code objects ([`super::code::CodeCache::validate`]). Only what changed costs more: a new
//! thread state, a frame outside the chunks (a generator's), a code object not seen before.

use super::layout::{FrameShape, GilHolder, Layout};
use super::memory::{Fields, Memory};
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};

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

/// Walks one interpreter of one process; keeps what it learned between snapshots.
pub struct Walker {
    pub layout: &'static Layout,
    pub runtime: u64,
    pub interp: u64,
    last_tstates: Vec<u64>,
    /// The set of thread states differs from the previous snapshot.
    pub threads_changed: bool,
}

impl Walker {
    pub fn new(layout: &'static Layout, runtime: u64, interp: u64) -> Walker {
        Walker {
            layout,
            runtime,
            interp,
            last_tstates: Vec::new(),
            threads_changed: true,
        }
    }

    /// All threads of the interpreter and their frames.
    pub fn snapshot(&mut self, mem: &dyn Memory) -> Result<Vec<RawThread>> {
        let l = self.layout;
        let tsize = l.thread.size as usize;

        // (1) head pointer, GIL word and last time's thread states, in one batch.
        let gil_addr = match l.runtime.gil {
            GilHolder::RuntimeTstateCurrent(off) => self.runtime + off,
        };
        let mut head = [0u8; 8];
        let mut gil = [0u8; 8];
        let mut known = vec![0u8; tsize * self.last_tstates.len()];
        let ok = {
            let mut reqs: Vec<(u64, &mut [u8])> = vec![
                (self.interp + l.interp.threads_head, &mut head),
                (gil_addr, &mut gil),
            ];
            for (addr, buf) in self.last_tstates.iter().zip(known.chunks_mut(tsize)) {
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
        let head = u64::from_le_bytes(head);
        let gil_holder = if ok[1] { u64::from_le_bytes(gil) } else { 0 };
        let mut cached: HashMap<u64, &[u8]> = HashMap::new();
        for (i, addr) in self.last_tstates.iter().enumerate() {
            if ok[i + 2] {
                cached.insert(*addr, &known[i * tsize..(i + 1) * tsize]);
            }
        }

        // Follow the list, reading only thread states not already in hand.
        let mut states: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut addr = head;
        while addr != 0 {
            if !seen.insert(addr) || states.len() >= MAX_THREADS {
                bail!("the thread list of the interpreter loops or is implausibly long");
            }
            let bytes = match cached.get(&addr) {
                Some(b) => b.to_vec(),
                None => mem
                    .read_vec(addr, tsize)
                    .with_context(|| format!("could not read thread state at {addr:#x}"))?,
            };
            let f = Fields(&bytes);
            if f.u64(l.thread.interp as usize) != self.interp {
                bail!("thread state at {addr:#x} does not belong to the interpreter");
            }
            let next = f.u64(l.thread.next as usize);
            states.push((addr, bytes));
            addr = next;
        }
        let addrs: Vec<u64> = states.iter().map(|(a, _)| *a).collect();
        self.threads_changed = addrs != self.last_tstates;
        self.last_tstates = addrs;

        // (2) every thread's frame pointer and frame stack, in one batch.
        let mut stacks = Vec::with_capacity(states.len());
        match l.frames {
            FrameShape::InterpreterFrame311 => {
                let mut frame_ptrs = vec![[0u8; 8]; states.len()];
                let mut chunk_bufs: Vec<Vec<u8>> = Vec::with_capacity(states.len());
                let mut chunk_addrs = Vec::with_capacity(states.len());
                let mut budget = MAX_CHUNKS_TOTAL;
                for (_, bytes) in &states {
                    let f = Fields(bytes);
                    let chunk = f.u64(l.thread.datastack_chunk as usize);
                    let top = f.u64(l.thread.datastack_top as usize);
                    let len = if chunk != 0 && top > chunk && top - chunk <= MAX_CHUNK.min(budget) {
                        top - chunk
                    } else {
                        0
                    };
                    budget -= len;
                    chunk_addrs.push(chunk);
                    chunk_bufs.push(vec![0u8; len as usize]);
                }
                let ok = {
                    let mut reqs: Vec<(u64, &mut [u8])> = Vec::new();
                    for (((_, bytes), ptr), (chunk, buf)) in states
                        .iter()
                        .zip(frame_ptrs.iter_mut())
                        .zip(chunk_addrs.iter().zip(chunk_bufs.iter_mut()))
                    {
                        let cframe = Fields(bytes).u64(l.thread.cframe as usize);
                        reqs.push((cframe + l.frame.cframe_current_frame, ptr));
                        reqs.push((*chunk, buf));
                    }
                    mem.read_many(&mut reqs)
                };
                for (i, (ptr, (chunk, buf))) in frame_ptrs
                    .iter()
                    .zip(chunk_addrs.into_iter().zip(chunk_bufs))
                    .enumerate()
                {
                    let frame = if ok[2 * i] {
                        u64::from_le_bytes(*ptr)
                    } else {
                        0
                    };
                    let mut regions = StackRegions::default();
                    if ok[2 * i + 1] && !buf.is_empty() {
                        let prev = Fields(&buf).u64(l.frame.chunk_previous as usize);
                        regions.add(chunk, buf, prev);
                    }
                    stacks.push((frame, regions, !ok[2 * i]));
                }
            }
        }

        let mut threads = Vec::with_capacity(states.len());
        for ((addr, bytes), (first_frame, mut regions, unreadable)) in states.iter().zip(stacks) {
            let f = Fields(bytes);
            let mut thread = RawThread {
                tstate: *addr,
                thread_id: f.u64(l.thread.thread_id as usize),
                native_thread_id: f.u64(l.thread.native_thread_id as usize),
                holds_gil: gil_holder != 0 && gil_holder == *addr,
                frames: Vec::new(),
                truncated: unreadable,
            };
            walk_frames(mem, l, first_frame, &mut regions, &mut thread);
            threads.push(thread);
        }
        Ok(threads)
    }
}

/// Copies of the target's frame stack memory made during one snapshot.
#[derive(Default)]
struct StackRegions {
    regions: Vec<(u64, Vec<u8>)>,
    /// The next older chunk not copied yet (0: none).
    older: u64,
}

impl StackRegions {
    fn add(&mut self, base: u64, bytes: Vec<u8>, older: u64) {
        self.regions.push((base, bytes));
        self.older = older;
    }

    fn find(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.regions.iter().find_map(|(base, bytes)| {
            let off = addr.checked_sub(*base)? as usize;
            bytes.get(off..off.checked_add(len)?)
        })
    }

    /// Fill `out` from `addr`: from a copied chunk, after copying older chunks as needed, or
    /// read alone (a generator's frame lives in the generator object, outside the chunks).
    fn get(&mut self, mem: &dyn Memory, layout: &Layout, addr: u64, out: &mut [u8]) -> bool {
        loop {
            if let Some(b) = self.find(addr, out.len()) {
                out.copy_from_slice(b);
                return true;
            }
            if self.older == 0 || self.regions.len() > 64 {
                break;
            }
            let base = self.older;
            self.older = 0;
            let mut buf = vec![0u8; DEFAULT_CHUNK];
            if mem.read(base, &mut buf).is_err() {
                break;
            }
            let f = Fields(&buf);
            let size = f.u64(layout.frame.chunk_size as usize);
            let older = f.u64(layout.frame.chunk_previous as usize);
            if size > DEFAULT_CHUNK as u64 && size <= MAX_CHUNK {
                match mem.read_vec(base, size as usize) {
                    Ok(b) => buf = b,
                    Err(_) => break,
                }
            }
            self.add(base, buf, older);
        }
        mem.read(addr, out).is_ok()
    }
}

fn walk_frames(
    mem: &dyn Memory,
    l: &Layout,
    first: u64,
    regions: &mut StackRegions,
    thread: &mut RawThread,
) {
    match l.frames {
        FrameShape::InterpreterFrame311 => {
            let fo = &l.frame;
            let mut bytes = vec![0u8; fo.localsplus as usize];
            let mut addr = first;
            while addr != 0 {
                if thread.frames.len() >= MAX_DEPTH {
                    thread.truncated = true;
                    return;
                }
                if !regions.get(mem, l, addr, &mut bytes) {
                    thread.truncated = true;
                    return;
                }
                let f = Fields(&bytes);
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
            for _ in 0..2 {
                if let Ok(threads) = walker.snapshot(&mem) {
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
