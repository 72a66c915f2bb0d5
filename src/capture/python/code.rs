//! Code objects: what a frame's `f_code` points at, decoded once and cached.
//!
//! A cache entry is keyed by the code object's address. A code object can be freed and
//! another made at the same address, so each walk of the stacks re-checks the entries it
//! uses: [`CodeCache::begin`] (before the walk) queues in the walk's first batch a re-read of
//! the part of each object the last walk used that names it (name, file, line table and
//! counts: [`CodeOffsets::validate_from`]..`validate_to`, its signature), and
//! [`CodeCache::end`] (after the walk, before its frames are decoded) compares those bytes,
//! re-reads in one batch the code objects of the walk not checked yet, and drops every entry
//! whose bytes changed. Every entry `get` serves was so checked at the moment of the walk
//! that uses it, and a code object replaced at the same address is never reported under the
//! old name.

use super::layout::{CodeOffsets, Layout};
use super::linetable;
use super::strings;
use crate::capture::os::batch::{Batch, Run};
use crate::capture::os::memory::{Fields, Memory};
use crate::model::fasthash::{FastMap, FastSet};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// `co_flags` of generators, coroutines and async generators (the same bits since 2.7).
pub const CO_GENERATOR_LIKE: u32 = 0x20 | CO_COROUTINE_LIKE;
/// `co_flags` of coroutines, generator-based coroutines and async generators.
pub const CO_COROUTINE_LIKE: u32 = 0x80 | 0x100 | 0x200;

/// Source of [`CodeInfo::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A code id never given before (native frames take theirs from the same counter).
pub fn next_code_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Longest line table we copy; larger ones come from corrupt objects.
const MAX_LINETABLE: usize = 1 << 20;
/// Entries kept before the cache is emptied (a target that keeps making code objects).
const MAX_ENTRIES: usize = 1 << 16;

/// What we know of one code object.
#[derive(Debug)]
pub struct CodeInfo {
    /// Unique among all code objects loaded by this process (never reused, unlike the
    /// address): a cheap key for interning frames.
    pub id: u64,
    /// `co_qualname` (3.11+) or `co_name`.
    pub qualname: Arc<str>,
    /// `co_name`
    pub name: Arc<str>,
    pub filename: Arc<str>,
    pub first_line: i32,
    pub linetable: Vec<u8>,
    /// `co_argcount`: the first `argcount` locals are arguments.
    pub argcount: u32,
    /// `co_flags`.
    pub flags: u32,
    /// `co_nlocals`: plain local variables (arguments included).
    pub nlocals: u32,
    /// Address of the `co_localsplusnames` tuple (3.11+) / `co_varnames`.
    pub varnames: u64,
    /// For a native frame (`--native`): the binary its function is in.
    pub module: Option<Arc<str>>,
    /// 3.11+: bytes a frame running this code takes in its datastack chunk (0: unknown).
    pub frame_bytes: u64,
    /// 3.12+: byte offsets of the instructions that return from a frame running this code
    /// (as the bytecode was when the code object was read; specializing never makes or
    /// unmakes one).
    pub returns: Vec<u32>,
}

/// What the frame walk needs of a frame's code ([`CodeCache::frame_facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFacts {
    /// Bytes the frame takes in its datastack chunk (0: unknown).
    pub bytes: u64,
    /// At a return instruction (3.11+).
    pub returning: bool,
    /// A generator's (or coroutine's) code: in a datastack chunk, a frame being created.
    pub generator: bool,
}

impl CodeInfo {
    /// Whether a frame running this code whose instruction pointer is at byte `offset` is
    /// returning (3.12+; false where unknown).
    pub fn returning_at(&self, offset: i64) -> bool {
        u32::try_from(offset).is_ok_and(|o| self.returns.binary_search(&o).is_ok())
    }
}

struct Entry {
    info: Arc<CodeInfo>,
    /// Bytes of bytecode (`ob_size` code units of two bytes; 3.11+).
    code_bytes: u64,
    /// The bytes compared on validation.
    signature: Vec<u8>,
    /// Line memo: byte offset in the bytecode → line.
    lines: FastMap<u64, i32>,
    /// Walk (generation) at which this entry was last checked.
    checked: u64,
    /// Walk (generation) in which this entry was last used (dedup of `used_now`).
    used: u64,
}

/// Cache of decoded code objects, per target process.
#[derive(Default)]
pub struct CodeCache {
    entries: FastMap<u64, Entry>,
    /// Counts walks: [`CodeCache::begin`] starts a new one.
    generation: u64,
    /// Address of `PyCode_Type` when the binary names it: an object whose type is another
    /// is not loaded as a code object (a frame read while it changed points at anything).
    pub code_type: Option<u64>,
    /// Counters, for cost accounting and tests.
    pub loads: u64,
    pub invalidations: u64,
    /// Code objects used by the previous walk and by this one: the previous walk's are
    /// re-checked with this walk's first batch.
    used_last: Vec<u64>,
    used_now: Vec<u64>,
    /// The re-checks queued by `begin`: their addresses, and their requests in the walk's
    /// first batch.
    queued: Vec<u64>,
    queued_reads: Run,
    /// `end`'s own re-checks (code objects the previous walk did not use): addresses, reads.
    todo: Vec<u64>,
    checks: Batch,
    /// Addresses [`CodeCache::frame_facts`] could not load a code object from lately (a slot
    /// above the innermost frame holds anything): not read again until the set is cleared
    /// ([`MISSING_FOR`] walks).
    missing: FastSet<u64>,
}

/// Walks for which [`CodeCache::frame_facts`] remembers an address it could not load.
const MISSING_FOR: u64 = 256;

impl CodeCache {
    /// Begin a walk: every entry must be checked again before it is used. Queues in `batch`
    /// (the walk's first read) the re-check of the code objects the previous walk used, so
    /// that in the steady state the checks cost no read of their own. Call once before each
    /// walk (a retry is a walk), then [`CodeCache::end`] after it.
    pub fn begin(&mut self, layout: &Layout, batch: &mut Batch) {
        self.generation += 1;
        if self.entries.len() > MAX_ENTRIES {
            self.entries.clear();
        }
        if self.generation % MISSING_FOR == 0 || self.missing.len() > MAX_ENTRIES {
            self.missing.clear();
        }
        std::mem::swap(&mut self.used_last, &mut self.used_now);
        self.used_now.clear();
        let entries = &self.entries;
        self.queued.clear();
        self.queued
            .extend(self.used_last.iter().filter(|a| entries.contains_key(a)));
        let (from, len) = signature_range(layout);
        let queued = &self.queued;
        self.queued_reads = batch.run(queued.len(), |k| (queued[k].wrapping_add(from), len));
    }

    /// End the checks of a walk begun with [`CodeCache::begin`] (`batch`: the walk's reads,
    /// with what `begin` queued): settle the queued re-checks, re-check in one read the
    /// code objects of `addrs` (the walk's frames) not checked yet, and drop the entries
    /// that changed or could not be read. [`CodeCache::get`] then serves the walk's code
    /// objects as they were when it was taken.
    pub fn end(
        &mut self,
        mem: &dyn Memory,
        layout: &Layout,
        batch: &Batch,
        addrs: impl Iterator<Item = u64>,
    ) {
        let queued = std::mem::take(&mut self.queued);
        for (k, &addr) in queued.iter().enumerate() {
            let now = self.queued_reads.nth(k).and_then(|h| batch.get(h));
            self.settle(addr, now);
        }
        self.queued = queued;
        self.todo.clear();
        for a in addrs {
            if let Some(e) = self.entries.get_mut(&a) {
                if e.used != self.generation {
                    e.used = self.generation;
                    self.used_now.push(a);
                    if e.checked != self.generation {
                        self.todo.push(a);
                    }
                }
            }
        }
        let (from, len) = signature_range(layout);
        let todo = std::mem::take(&mut self.todo);
        let mut checks = std::mem::take(&mut self.checks);
        checks.clear();
        let reads = checks.run(todo.len(), |k| (todo[k].wrapping_add(from), len));
        checks.read(mem);
        for (k, &addr) in todo.iter().enumerate() {
            self.settle(addr, reads.nth(k).and_then(|h| checks.get(h)));
        }
        self.todo = todo;
        self.checks = checks;
    }

    /// The check: the entry at `addr` is kept, as checked in this walk, when `now` (its
    /// signature as just read; `None`: unreadable) is the signature it was loaded with;
    /// otherwise it is dropped.
    fn settle(&mut self, addr: u64, now: Option<&[u8]>) {
        match self.entries.get_mut(&addr) {
            Some(e) if now == Some(&e.signature[..]) => e.checked = self.generation,
            Some(_) => {
                self.entries.remove(&addr);
                self.invalidations += 1;
            }
            None => {}
        }
    }

    /// What the frame walk needs of a frame running the code object at `addr` (from the cache
    /// or read now) at byte `offset` of its bytecode, without taking a reference to it.
    pub fn frame_facts(
        &mut self,
        mem: &dyn Memory,
        layout: &Layout,
        addr: u64,
        offset: i64,
    ) -> Option<FrameFacts> {
        let facts = |info: &CodeInfo| FrameFacts {
            bytes: info.frame_bytes,
            returning: info.returning_at(offset),
            generator: info.flags & CO_GENERATOR_LIKE != 0,
        };
        if let Some(e) = self.entries.get(&addr) {
            return Some(facts(&e.info));
        }
        if self.missing.contains(&addr) {
            return None;
        }
        let found = self.get(mem, layout, addr).ok().map(|info| facts(&info));
        if found.is_none() {
            self.missing.insert(addr);
        }
        found
    }

    /// The code object at `addr`, from the cache or read now.
    pub fn get(&mut self, mem: &dyn Memory, layout: &Layout, addr: u64) -> Result<Arc<CodeInfo>> {
        if let Some(e) = self.entries.get(&addr) {
            return Ok(e.info.clone());
        }
        let (info, signature, code_bytes) = load(mem, layout, addr, self.code_type)?;
        let info = Arc::new(info);
        self.loads += 1;
        self.entries.insert(
            addr,
            Entry {
                info: info.clone(),
                code_bytes,
                signature,
                lines: FastMap::default(),
                checked: self.generation,
                used: self.generation,
            },
        );
        self.used_now.push(addr);
        Ok(info)
    }

    /// The cached code object whose bytecode holds the instruction at `instr` (an absolute
    /// address in the target; 3.11+, where the bytecode lives inside the code object), and
    /// the instruction's byte offset in it. Used for a frame that returned while it was read
    /// (its code cleared, its instruction pointer left): only code already known is looked
    /// up, and the walk's check (`end`) then validates the entry found as any other.
    pub fn find_by_instr(&self, layout: &Layout, instr: u64) -> Option<(u64, i64)> {
        let start = layout.code.code_adaptive;
        self.entries.iter().find_map(|(&addr, e)| {
            let offset = instr.checked_sub(addr.checked_add(start)?)?;
            (offset < e.code_bytes).then_some((addr, offset as i64))
        })
    }

    /// Line of the instruction at byte offset `offset` (negative: not started yet, which
    /// CPython reports as the first line) in code object `addr`, which must be cached.
    pub fn line(&mut self, layout: &Layout, addr: u64, offset: i64) -> i32 {
        let Some(e) = self.entries.get_mut(&addr) else {
            return 0;
        };
        if offset < 0 {
            return e.info.first_line;
        }
        let offset = offset as u64;
        if let Some(line) = e.lines.get(&offset) {
            return *line;
        }
        let line = linetable::line_for(
            layout.linetable,
            &e.info.linetable,
            e.info.first_line,
            offset,
        )
        .unwrap_or(e.info.first_line);
        if e.lines.len() < 4096 {
            e.lines.insert(offset, line);
        }
        line
    }
}

/// Where a code object's signature is: (offset, length).
fn signature_range(layout: &Layout) -> (u64, usize) {
    let c = &layout.code;
    (c.validate_from, (c.validate_to - c.validate_from) as usize)
}

/// Largest bytecode (bytes) looked through for return instructions when a code object is read.
const MAX_SCANNED_BYTECODE: u64 = 64 << 10;

fn load(
    mem: &dyn Memory,
    layout: &Layout,
    addr: u64,
    code_type: Option<u64>,
) -> Result<(CodeInfo, Vec<u8>, u64)> {
    let c: &CodeOffsets = &layout.code;
    let raw = mem
        .read_vec(addr, c.size as usize)
        .with_context(|| format!("could not read code object at {addr:#x}"))?;
    let f = Fields(&raw);
    if let Some(t) = code_type {
        let found = f.u64(layout.object.ob_type as usize);
        if found != t {
            anyhow::bail!("the object at {addr:#x} is not a code object (type {found:#x})");
        }
    }
    let name: Arc<str> = strings::read_name(mem, layout, f.u64(c.name as usize))
        .context("could not read a code object's name")?
        .into();
    let qualname: Arc<str> = match c.qualname.map_or(0, |q| f.u64(q as usize)) {
        0 => name.clone(),
        q => strings::read_name(mem, layout, q)
            .context("could not read a code object's qualified name")?
            .into(),
    };
    let filename: Arc<str> = strings::read_name(mem, layout, f.u64(c.filename as usize))
        .context("could not read a code object's file name")?
        .into();
    let (linetable, _) =
        strings::read_bytes(mem, layout, f.u64(c.linetable as usize), MAX_LINETABLE)
            .context("could not read a code object's line table")?;
    let (from, len) = signature_range(layout);
    let signature = raw[from as usize..from as usize + len].to_vec();
    // Only 3.11+ keep their bytecode in the code object (`co_code_adaptive`, `ob_size` units).
    let code_bytes = if c.code_adaptive > 0 {
        f.u64(layout.object.ob_size as usize).min(1 << 24) * 2
    } else {
        0
    };
    let returns = match c.ops {
        Some(ops) if code_bytes > 0 && code_bytes <= MAX_SCANNED_BYTECODE => {
            // Unreadable bytecode (a snapshot image or core file without it) leaves the
            // return instructions unknown, and the code object usable.
            let bytecode = mem
                .read_vec(addr.wrapping_add(c.code_adaptive), code_bytes as usize)
                .unwrap_or_default();
            // Every code unit is looked at, caches included: a cache that looks like a return
            // is never where an instruction pointer stops.
            (0..bytecode.len() / 2)
                .filter(|u| ops.returns.contains(&bytecode[2 * u]))
                .map(|u| 2 * u as u32)
                .collect()
        }
        _ => Vec::new(),
    };
    Ok((
        CodeInfo {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            qualname,
            name,
            filename,
            first_line: f.i32(c.firstlineno as usize),
            linetable,
            argcount: f.u32(c.argcount as usize),
            flags: f.u32(c.flags as usize),
            nlocals: f.u32(c.nlocals as usize),
            varnames: f.u64(c.varnames as usize),
            module: None,
            frame_bytes: c.frame_words.map_or(0, |(stacksize, nlocalsplus)| {
                let words = f.i32(stacksize as usize) as i64 + f.i32(nlocalsplus as usize) as i64;
                if (0..1 << 20).contains(&words) {
                    layout.frame.localsplus + 8 * words as u64
                } else {
                    0
                }
            }),
            returns,
        },
        signature,
        code_bytes,
    ))
}
