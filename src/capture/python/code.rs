//! Code objects: what a frame's `f_code` points at, decoded once and cached.
//!
//! A cache entry is keyed by the code object's address. Before a sample trusts cached
//! entries it re-reads, in one batched read, the part of each object that names it (name,
//! file, line table and counts: [`CodeOffsets::validate_from`]..`validate_to`) and drops the
//! entries whose bytes changed, so a code object freed and replaced at the same address is
//! never reported under the old name.

use super::layout::{CodeOffsets, Layout};
use super::linetable;
use super::strings;
use crate::capture::os::memory::{Fields, Memory};
use crate::model::fasthash::FastMap;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// `co_flags` of generators, coroutines and async generators (the same bits since 2.7).
pub const CO_GENERATOR_LIKE: u32 = 0x20 | CO_COROUTINE_LIKE;
/// `co_flags` of coroutines, generator-based coroutines and async generators.
pub const CO_COROUTINE_LIKE: u32 = 0x80 | 0x100 | 0x200;

/// Source of [`CodeInfo::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
}

struct Entry {
    info: Arc<CodeInfo>,
    /// The bytes compared on validation.
    signature: Vec<u8>,
    /// Line memo: byte offset in the bytecode → line.
    lines: FastMap<u64, i32>,
    /// Sample generation in which this entry was last validated.
    checked: u64,
    /// Sample generation in which this entry was last used (dedup of `used_now`).
    used: u64,
}

/// Cache of decoded code objects, per target process.
#[derive(Default)]
pub struct CodeCache {
    entries: FastMap<u64, Entry>,
    generation: u64,
    /// Address of `PyCode_Type` when the binary names it: an object whose type is another
    /// is not loaded as a code object (a frame read while it changed points at anything).
    pub code_type: Option<u64>,
    /// Counters, for cost accounting and tests.
    pub loads: u64,
    pub invalidations: u64,
    /// Reused buffers of `validate`.
    todo: Vec<u64>,
    bufs: Vec<u8>,
    /// Code objects used by the previous sample and by this one: the previous sample's are
    /// re-validated with the next snapshot's first read ([`CodeCache::prefetch_requests`]).
    used_last: Vec<u64>,
    used_now: Vec<u64>,
    prefetched: Vec<u64>,
}

impl CodeCache {
    /// Start a new sample: entries must be validated again before use.
    pub fn next_generation(&mut self) {
        self.generation += 1;
        if self.entries.len() > MAX_ENTRIES {
            self.entries.clear();
        }
        std::mem::swap(&mut self.used_last, &mut self.used_now);
        self.used_now.clear();
    }

    /// Reads that re-validate the code objects the previous sample used, to be made with
    /// the next snapshot's first batch; hand the results to [`CodeCache::accept_prefetch`].
    pub fn prefetch_requests(&mut self, layout: &Layout, out: &mut Vec<(u64, usize)>) {
        let c = &layout.code;
        let len = (c.validate_to - c.validate_from) as usize;
        self.prefetched.clear();
        for a in &self.used_last {
            if self.entries.contains_key(a) {
                self.prefetched.push(*a);
                out.push((a + c.validate_from, len));
            }
        }
    }

    /// Apply the prefetched validation reads (`buf`: the bytes back to back, `ok` per read,
    /// in the order [`CodeCache::prefetch_requests`] gave them).
    pub fn accept_prefetch(&mut self, layout: &Layout, buf: &[u8], ok: &[bool]) {
        let c = &layout.code;
        let len = (c.validate_to - c.validate_from) as usize;
        let prefetched = std::mem::take(&mut self.prefetched);
        for (i, addr) in prefetched.iter().enumerate() {
            let same = ok.get(i).copied().unwrap_or(false)
                && buf
                    .get(i * len..(i + 1) * len)
                    .is_some_and(|b| self.entries.get(addr).is_some_and(|e| e.signature == b));
            if same {
                if let Some(e) = self.entries.get_mut(addr) {
                    e.checked = self.generation;
                }
            } else if self.entries.remove(addr).is_some() {
                self.invalidations += 1;
            }
        }
        self.prefetched = prefetched;
    }

    /// Re-check, in one batched read, every cached code object among `addrs` not yet checked
    /// in this generation; entries that changed or can't be read are dropped.
    pub fn validate(
        &mut self,
        mem: &dyn Memory,
        layout: &Layout,
        addrs: impl Iterator<Item = u64>,
    ) {
        let c = &layout.code;
        let len = (c.validate_to - c.validate_from) as usize;
        let mut todo = std::mem::take(&mut self.todo);
        todo.clear();
        for a in addrs {
            if let Some(e) = self.entries.get_mut(&a) {
                if e.used != self.generation {
                    e.used = self.generation;
                    self.used_now.push(a);
                    if e.checked != self.generation {
                        todo.push(a);
                    }
                }
            }
        }
        if todo.is_empty() {
            self.todo = todo;
            return;
        }
        let mut bufs = std::mem::take(&mut self.bufs);
        bufs.clear();
        bufs.resize(len * todo.len(), 0);
        let ok = {
            let mut reqs: Vec<(u64, &mut [u8])> = todo
                .iter()
                .zip(bufs.chunks_mut(len))
                .map(|(a, b)| (a + c.validate_from, b))
                .collect();
            mem.read_many(&mut reqs)
        };
        for (i, addr) in todo.iter().enumerate() {
            let same = ok[i]
                && self
                    .entries
                    .get(addr)
                    .is_some_and(|e| e.signature == bufs[i * len..(i + 1) * len]);
            if same {
                if let Some(e) = self.entries.get_mut(addr) {
                    e.checked = self.generation;
                }
            } else {
                self.entries.remove(addr);
                self.invalidations += 1;
            }
        }
        self.todo = todo;
        self.bufs = bufs;
    }

    /// The code object at `addr`, from the cache or read now.
    pub fn get(&mut self, mem: &dyn Memory, layout: &Layout, addr: u64) -> Result<Arc<CodeInfo>> {
        if let Some(e) = self.entries.get(&addr) {
            return Ok(e.info.clone());
        }
        let (info, signature) = load(mem, layout, addr, self.code_type)?;
        let info = Arc::new(info);
        self.loads += 1;
        self.entries.insert(
            addr,
            Entry {
                info: info.clone(),
                signature,
                lines: FastMap::default(),
                checked: self.generation,
                used: self.generation,
            },
        );
        self.used_now.push(addr);
        Ok(info)
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

fn load(
    mem: &dyn Memory,
    layout: &Layout,
    addr: u64,
    code_type: Option<u64>,
) -> Result<(CodeInfo, Vec<u8>)> {
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
    let signature = raw[c.validate_from as usize..c.validate_to as usize].to_vec();
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
        },
        signature,
    ))
}
