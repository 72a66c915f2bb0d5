//! Tests of the walker on memory images: garbage, planted interpreters, costs.

use super::*;
use crate::capture::os::memory::ImageMemory;
use crate::capture::python::code::CodeCache;
use crate::capture::python::layout::{EntryMark, FramePtr, FrameShape, GilHolder, InstrPos};
use crate::capture::python::objects::ObjectReader;

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
    for seed in 1..400u64 {
        // Every table, in turn: each frame shape, string, int and dict format.
        let layout = crate::capture::python::tables::ALL
            [seed as usize % crate::capture::python::tables::ALL.len()];
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
        let mut walker = Walker::new(
            layout,
            0x20000 + (seed % 64) * 8,
            GilWords {
                holder: 0x10000 + 576,
                locked: (seed % 2 == 0).then_some(0x10000 + 592),
            },
        );
        let mut codes = CodeCache::default();
        let mut threads = Vec::new();
        for _ in 0..2 {
            if walker.snapshot(&mem, &mut threads).is_ok() {
                for t in &threads {
                    assert!(t.frames.len() <= MAX_DEPTH);
                    for f in &t.frames {
                        if codes.get(&mem, layout, f.code).is_ok() {
                            codes.line(layout, f.code, f.instr_offset);
                        }
                    }
                }
            }
        }
        let mut reader = ObjectReader::new(&mem, layout);
        for base in BASES {
            let addr = base + ((rng.next() % 0x4000) & !7);
            let _ = reader.repr(addr, 128);
            let _ = reader.dict_items(addr);
            let _ = reader.instance_dict_items(addr);
        }
    }
}

/// A planted interpreter: one thread whose stack is `depth` frames, each running one of
/// [`CODES`] code objects named `f0`, `f1`, ... (frame `k` runs code `k % CODES`), laid out
/// as `layout` says: frame objects up to 3.10, a datastack chunk (and, 3.12+, the shim frame
/// C code pushes below the first Python frame) from 3.11.
struct Skeleton {
    layout: &'static Layout,
    mem: ImageMemory,
    codes: Vec<u64>,
    depth: usize,
}

const CODES: usize = 4;
const INTERP: u64 = 0x10_0000;
const GIL: u64 = INTERP + 0x1000;
const TSTATE: u64 = 0x20_0000;
const CFRAME: u64 = 0x28_0000;
/// Frame objects (up to 3.10), `FRAME_OBJECT_STRIDE` apart.
const FRAME_OBJECTS: u64 = 0x30_0000;
const FRAME_OBJECT_STRIDE: u64 = 0x200;
const CHUNK: u64 = 0x40_0000;
const CHUNK_SIZE: u64 = 0x4000;
/// Interpreter frames in the chunk, this far apart.
const FRAME_STRIDE: u64 = 0x80;
const SHIM: u64 = 0x50_0000;
const CODE_BASE: u64 = 0x60_0000;
const FILENAME: u64 = 0x70_0000;
const LINETABLE: u64 = 0x71_0000;
/// Most frames a skeleton holds.
const ROOM: usize = 100;

impl Skeleton {
    fn new(layout: &'static Layout, depth: usize) -> Skeleton {
        let l = layout;
        let mut mem = ImageMemory::new();
        mem.add(INTERP, vec![0; 0x2000]);
        mem.add(TSTATE, vec![0; l.thread.size as usize]);
        mem.add(CFRAME, vec![0; 0x100]);
        match l.frames {
            FrameShape::FrameObject => {
                mem.add(FRAME_OBJECTS, vec![0; ROOM * FRAME_OBJECT_STRIDE as usize])
            }
            FrameShape::InterpreterFrame => mem.add(CHUNK, vec![0; CHUNK_SIZE as usize]),
        }
        mem.add(SHIM, vec![0; 0x100]);
        mem.add(FILENAME, str_object(l, "planted.py"));
        let mut linetable = vec![0; 64];
        put(&mut linetable, l.object.ob_size, 0);
        mem.add(LINETABLE, linetable);
        let mut s = Skeleton {
            layout,
            mem,
            codes: Vec::new(),
            depth: 0,
        };
        for k in 0..CODES {
            let addr = CODE_BASE + 0x1000 * k as u64;
            s.mem.add(addr, vec![0; 0x1000]);
            s.codes.push(addr);
            s.plant_code(k, &format!("f{k}"), 0);
        }
        let w = |mem: &mut ImageMemory, addr: u64, v: u64| write(mem, addr, v);
        w(&mut s.mem, INTERP + l.interp.threads_head, TSTATE);
        w(&mut s.mem, GIL, TSTATE);
        w(&mut s.mem, GIL + 8, 1);
        w(&mut s.mem, TSTATE + l.thread.interp, INTERP);
        w(&mut s.mem, TSTATE + l.thread.thread_id, 0x7f00_1234);
        if let Some(off) = l.thread.native_thread_id {
            w(&mut s.mem, TSTATE + off, 4242);
        }
        if let FramePtr::ViaCFrame { cframe, .. } = l.thread.frame {
            w(&mut s.mem, TSTATE + cframe, CFRAME);
        }
        if let Some(off) = l.thread.datastack_chunk {
            w(&mut s.mem, TSTATE + off, CHUNK);
            w(&mut s.mem, CHUNK + l.frame.chunk_size, CHUNK_SIZE);
        }
        if let EntryMark::ShimOwner { owner, cstack, .. } = l.frame.entry {
            s.mem.bytes_mut(SHIM + owner, 1).unwrap()[0] = cstack;
        }
        s.set_depth(depth);
        s
    }

    /// (Re)write code object `k` at its address: a new object named `name` (its name
    /// string at a new place when `generation` differs), first line `10 + k + generation`.
    fn plant_code(&mut self, k: usize, name: &str, generation: u64) {
        let l = self.layout;
        let addr = self.codes[k];
        let name_at = 0x7200_0000 + 0x1000 * (k as u64) + 0x10_0000 * generation;
        self.mem.add(name_at, str_object(l, name));
        let c = &l.code;
        write(&mut self.mem, addr + c.name, name_at);
        if let Some(q) = c.qualname {
            write(&mut self.mem, addr + q, name_at);
        }
        write(&mut self.mem, addr + c.filename, FILENAME);
        write(&mut self.mem, addr + c.linetable, LINETABLE);
        let first = (10 + k as u64 + generation) as u32;
        self.mem.bytes_mut(addr + c.firstlineno, 4).unwrap()[..4]
            .copy_from_slice(&first.to_le_bytes());
    }

    /// Address of frame `k` (0: the outermost).
    fn frame_addr(&self, k: usize) -> u64 {
        match self.layout.frames {
            FrameShape::FrameObject => FRAME_OBJECTS + FRAME_OBJECT_STRIDE * k as u64,
            // CPython leaves the first slot of a thread's first chunk empty.
            FrameShape::InterpreterFrame => {
                CHUNK + self.layout.frame.chunk_header + 8 + FRAME_STRIDE * k as u64
            }
        }
    }

    /// Make the thread's stack `depth` frames deep (the innermost frames change, the
    /// outer ones stay as they are).
    fn set_depth(&mut self, depth: usize) {
        assert!(depth <= ROOM);
        let l = self.layout;
        let fo = l.frame;
        for k in 0..depth {
            let addr = self.frame_addr(k);
            let code = self.codes[k % CODES];
            let previous = match (k, fo.entry) {
                (0, EntryMark::ShimOwner { .. }) => SHIM,
                (0, _) => 0,
                _ => self.frame_addr(k - 1),
            };
            write(&mut self.mem, addr + fo.code, code);
            write(&mut self.mem, addr + fo.previous, previous);
            match fo.instr {
                InstrPos::Lasti { offset, .. } => {
                    let b = self.mem.bytes_mut(addr + offset, 4).unwrap();
                    b.copy_from_slice(&(k as u32).to_le_bytes());
                }
                InstrPos::Pointer(off) => {
                    let instr = code + l.code.code_adaptive + 2 * k as u64;
                    write(&mut self.mem, addr + off, instr);
                }
            }
            match fo.entry {
                EntryMark::None => write(&mut self.mem, addr, 1), // a live object's refcount
                EntryMark::IsEntryByte { is_entry: off, .. } => {
                    self.mem.bytes_mut(addr + off, 1).unwrap()[0] = (k == 0) as u8;
                }
                EntryMark::ShimOwner { owner, .. } => {
                    // FRAME_OWNED_BY_THREAD
                    self.mem.bytes_mut(addr + owner, 1).unwrap()[0] = 0;
                }
            }
        }
        let innermost = if depth == 0 {
            0
        } else {
            self.frame_addr(depth - 1)
        };
        match l.thread.frame {
            FramePtr::InThread(off) => write(&mut self.mem, TSTATE + off, innermost),
            FramePtr::ViaCFrame { current_frame, .. } => {
                write(&mut self.mem, CFRAME + current_frame, innermost)
            }
        }
        if let Some(off) = l.thread.datastack_top {
            let top = CHUNK + fo.chunk_header + 8 + FRAME_STRIDE * depth as u64;
            write(&mut self.mem, TSTATE + off, top);
        }
        self.depth = depth;
    }

    /// The frames the walker must find, innermost first.
    fn expected(&self) -> Vec<RawFrame> {
        let l = self.layout;
        (0..self.depth)
            .rev()
            .map(|k| RawFrame {
                returned: false,
                addr: self.frame_addr(k),
                code: self.codes[k % CODES],
                instr_offset: match l.frame.instr {
                    InstrPos::Lasti { scale, .. } => k as i64 * scale,
                    InstrPos::Pointer(_) => 2 * k as i64,
                },
                is_entry: match l.frame.entry {
                    EntryMark::None => true,
                    EntryMark::IsEntryByte { .. } => k == 0,
                    EntryMark::ShimOwner { .. } => false,
                },
                shim_entry: k == 0 && matches!(l.frame.entry, EntryMark::ShimOwner { .. }),
                shim_addr: match (k, l.frame.entry) {
                    (0, EntryMark::ShimOwner { .. }) => SHIM,
                    _ => 0,
                },
            })
            .collect()
    }

    /// Plant a generator's frame at `f` (3.12+: `owner` is the owner byte's offset) running
    /// `code`, an instruction in.
    fn plant_generator_frame(&mut self, f: u64, code: u64, owner: u64) {
        let l = self.layout;
        write(&mut self.mem, f + l.frame.code, code);
        if let InstrPos::Pointer(off) = l.frame.instr {
            write(&mut self.mem, f + off, code + l.code.code_adaptive + 8);
        }
        self.mem.bytes_mut(f + owner, 1).unwrap()[0] = OWNED_BY_GENERATOR;
    }

    /// Make `frame` the thread's innermost frame (in the thread state, or its `cframe`).
    fn set_current_frame(&mut self, frame: u64) {
        match self.layout.thread.frame {
            FramePtr::InThread(off) => write(&mut self.mem, TSTATE + off, frame),
            FramePtr::ViaCFrame { current_frame, .. } => {
                write(&mut self.mem, CFRAME + current_frame, frame)
            }
        }
    }

    fn walker(&self) -> Walker {
        let locked = matches!(self.layout.runtime.gil, GilHolder::InterpGil { .. });
        Walker::new(
            self.layout,
            INTERP,
            GilWords {
                holder: GIL,
                locked: locked.then_some(GIL + 8),
            },
        )
    }

    /// Every place a walk reads a pointer, count or mark from: (address, width).
    fn fields(&self) -> Vec<(u64, usize)> {
        let l = self.layout;
        let t = &l.thread;
        let mut out = vec![
            (INTERP + l.interp.threads_head, 8),
            (TSTATE + t.next, 8),
            (TSTATE + t.interp, 8),
        ];
        match t.frame {
            FramePtr::InThread(off) => out.push((TSTATE + off, 8)),
            FramePtr::ViaCFrame {
                cframe,
                current_frame,
            } => out.extend([(TSTATE + cframe, 8), (CFRAME + current_frame, 8)]),
        }
        out.extend(t.datastack_chunk.map(|o| (TSTATE + o, 8)));
        out.extend(t.datastack_top.map(|o| (TSTATE + o, 8)));
        let fo = &l.frame;
        if l.frames == FrameShape::InterpreterFrame {
            out.extend([(CHUNK + fo.chunk_previous, 8), (CHUNK + fo.chunk_size, 8)]);
        }
        for k in 0..self.depth {
            let a = self.frame_addr(k);
            out.extend([(a + fo.code, 8), (a + fo.previous, 8)]);
            match fo.instr {
                InstrPos::Lasti { offset, .. } => out.push((a + offset, 4)),
                InstrPos::Pointer(off) => out.push((a + off, 8)),
            }
            match fo.entry {
                EntryMark::None => out.push((a, 8)),
                EntryMark::IsEntryByte { is_entry: off, .. } => out.push((a + off, 1)),
                EntryMark::ShimOwner { owner, .. } => out.push((a + owner, 1)),
            }
        }
        if let EntryMark::ShimOwner { owner, .. } = fo.entry {
            out.extend([(SHIM + owner, 1), (SHIM + fo.previous, 8)]);
        }
        out
    }
}

fn put(bytes: &mut [u8], off: u64, v: u64) {
    bytes[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn write(mem: &mut ImageMemory, addr: u64, v: u64) {
    mem.bytes_mut(addr, 8)
        .unwrap_or_else(|| panic!("{addr:#x} is not in the image"))
        .copy_from_slice(&v.to_le_bytes());
}

/// A compact ASCII `str` object as `l` lays it out, with room after it for speculative reads.
fn str_object(l: &Layout, text: &str) -> Vec<u8> {
    let u = &l.unicode;
    let mut obj = vec![0u8; u.ascii_size as usize];
    put(&mut obj, u.length, text.len() as u64);
    let state: u32 = (1 << u.kind_shift) | (1 << u.compact_bit) | (1 << u.ascii_bit);
    obj[u.state as usize..u.state as usize + 4].copy_from_slice(&state.to_le_bytes());
    obj.extend_from_slice(text.as_bytes());
    obj.resize(obj.len() + 512, 0);
    obj
}

/// A 3.13 layout, read from a synthetic `_Py_DebugOffsets` table (3.13's offsets).
fn layout_313() -> &'static Layout {
    use crate::capture::python::debug_offsets::{layout_from_table, COOKIE, SHAPE_3_13};
    use crate::capture::python::version::Version;
    let s = &SHAPE_3_13.indices;
    let mut w = vec![0u64; s.size as usize / 8];
    let gil_state = 0x400;
    for (i, v) in [
        (s.version, 0x030d_00f0),
        (s.interpreters_head, 632),
        (s.interp_next, 0),
        (s.threads_head, 7344),
        (s.imports_modules, 968),
        (s.ceval_gil, 7176),
        (s.gil_runtime_state, gil_state),
        (s.gil_locked, gil_state + 16),
        (s.gil_holder, gil_state + 8),
        (s.thread_next, 8),
        (s.thread_interp, 16),
        (s.current_frame, 72),
        (s.thread_id, 152),
        (s.native_thread_id, 160),
        (s.datastack_chunk, 200),
        (s.frame_previous, 8),
        (s.frame_executable, 0),
        (s.frame_instr_ptr, 56),
        (s.frame_localsplus, 72),
        (s.frame_owner, 70),
        (s.code_filename, 112),
        (s.code_name, 120),
        (s.code_qualname, 128),
        (s.code_linetable, 136),
        (s.code_firstlineno, 68),
        (s.code_argcount, 52),
        (s.code_localsplusnames, 96),
        (s.code_adaptive, 200),
        (s.ob_type, 8),
        (s.tp_name, 24),
        (s.tp_flags, 168),
        (s.tuple_item, 24),
        (s.list_item, 24),
        (s.dict_keys, 32),
        (s.dict_values, 40),
        (s.float_fval, 16),
        (s.long_tag, 16),
        (s.long_digit, 24),
        (s.bytes_size, 16),
        (s.bytes_sval, 32),
        (s.str_state, 32),
        (s.str_length, 16),
        (s.str_ascii_size, 40),
    ] {
        w[i] = v;
    }
    let mut raw: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw[..8].copy_from_slice(COOKIE);
    let layout = layout_from_table(&raw, &Version::new(3, 13, 0), &SHAPE_3_13).unwrap();
    assert_eq!(layout.thread.frame, FramePtr::InThread(72));
    Box::leak(Box::new(layout))
}

/// The layouts the planted tests run on: frame objects (3.8), 3.11's entry byte and
/// `cframe`, 3.12's shim frames, 3.13's frame pointer in the thread state.
fn planted_layouts() -> Vec<&'static Layout> {
    use crate::capture::python::tables::{V3_11, V3_12, V3_8};
    vec![&V3_8, &V3_11, &V3_12, layout_313()]
}

/// A thread in a line: its fault and its first frames.
fn short(t: &RawThread) -> String {
    let frames: Vec<String> = t
        .frames
        .iter()
        .take(8)
        .map(|f| format!("{:#x}", f.addr))
        .collect();
    let (n, fault, cut) = (t.frames.len(), t.fault, t.truncated);
    format!("{n} frames {frames:?}, fault {fault:?}, truncated {cut}")
}

fn name(l: &Layout) -> String {
    format!("{}.{}", l.first.0, l.first.1)
}

/// One sample as `PythonSpy` takes it: the code cache's checks bracket the walk, then the
/// frames' code objects are looked up. Returns the thread and its frames' names.
fn sample(
    walker: &mut Walker,
    codes: &mut CodeCache,
    mem: &ImageMemory,
) -> (RawThread, Vec<String>) {
    let l = walker.layout;
    let mut threads = Vec::new();
    walker
        .snapshot_with(mem, &mut threads, |b| codes.begin(l, b))
        .unwrap();
    let frames = threads.iter().flat_map(|t| t.frames.iter().map(|f| f.code));
    codes.end(mem, l, walker.batch(), frames);
    assert_eq!(threads.len(), 1);
    let t = threads.pop().unwrap();
    let names = t
        .frames
        .iter()
        .map(|f| match f.code {
            // Returned, its code cleared (3.14+): named later from its instruction pointer.
            0 => "<returned>".to_string(),
            code => codes
                .get(mem, l, code)
                .unwrap_or_else(|e| panic!("{e}: {}", short(&t)))
                .name
                .to_string(),
        })
        .collect();
    (t, names)
}

/// The planted skeleton is walked to exactly its frames; then, with fields of it corrupted
/// (seeded), every walk returns, with a bounded result that is either made of the planted
/// frames, in their order, or a fault.
#[test]
fn planted_stacks_walk_then_survive_corruption() {
    for layout in planted_layouts() {
        let v = name(layout);
        let depth = 6;
        let clean = Skeleton::new(layout, depth);
        let mut walker = clean.walker();
        let mut codes = CodeCache::default();
        for _ in 0..3 {
            let (t, names) = sample(&mut walker, &mut codes, &clean.mem);
            assert_eq!(t.fault, None, "{v}");
            assert_eq!(t.frames, clean.expected(), "{v}");
            assert_eq!(names, ["f1", "f0", "f3", "f2", "f1", "f0"], "{v}");
            assert_eq!(
                (t.tstate, t.thread_id, t.holds_gil),
                (TSTATE, 0x7f00_1234, true)
            );
        }
        let planted: Vec<u64> = (0..ROOM).map(|k| clean.frame_addr(k)).collect();
        let fields = clean.fields();
        let (mut faults, mut whole) = (0, 0);
        for seed in 1..300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e3779b97f4a7c15));
            let mut skel = Skeleton::new(layout, depth);
            // A walker that knows the clean stack (its guesses in place), or a fresh one.
            let mut walker = clean.walker();
            if seed % 2 == 0 {
                walker.snapshot(&skel.mem, &mut Vec::new()).unwrap();
            }
            for _ in 0..1 + rng.next() % 3 {
                let (addr, width) = fields[(rng.next() % fields.len() as u64) as usize];
                let r = rng.next();
                let value = match r % 7 {
                    0 => 0,
                    1 => r >> 8 & 63,
                    2 => r >> 3,
                    3 => planted[(r >> 8) as usize % (depth + 2)],
                    4 => skel.codes[(r >> 8) as usize % CODES],
                    5 => [CHUNK, SHIM, TSTATE, CFRAME, INTERP][(r >> 8) as usize % 5],
                    _ => r >> 8 & 0xff,
                };
                let b = skel.mem.bytes_mut(addr, width).unwrap();
                b.copy_from_slice(&value.to_le_bytes()[..width]);
            }
            let mut codes = CodeCache::default();
            for _ in 0..2 {
                let mut threads = Vec::new();
                if walker.snapshot(&skel.mem, &mut threads).is_err() {
                    continue;
                }
                assert!(threads.len() <= MAX_THREADS);
                for t in &threads {
                    assert!(t.frames.len() <= MAX_DEPTH, "{v} seed {seed}");
                    if t.fault.is_some() {
                        faults += 1;
                        continue;
                    }
                    // No fault: the planted frames, outer to inner, each once; a code
                    // pointer that is not a planted code object must not load.
                    let mut at: Vec<usize> = t
                        .frames
                        .iter()
                        .map(|f| planted.iter().position(|a| *a == f.addr))
                        .map(|k| k.unwrap_or_else(|| panic!("{v} seed {seed}: {}", short(t))))
                        .collect();
                    at.reverse();
                    let ordered = at.windows(2).all(|w| w[0] < w[1]);
                    assert!(ordered, "{v} seed {seed}: {}", short(t));
                    for f in &t.frames {
                        let ok = codes.get(&skel.mem, layout, f.code).is_ok();
                        assert_eq!(ok, skel.codes.contains(&f.code), "{v} seed {seed}");
                    }
                    whole += (t.frames == clean.expected()) as usize;
                }
            }
        }
        // The corruptions reach the walk: both outcomes happen.
        assert!(
            faults > 20 && whole > 20,
            "{v}: {faults} faults, {whole} whole"
        );
    }
}

/// The cost of a sample, pinned: one read in the steady state (the walk and the code cache's
/// checks together), two after the stack grew past the part of its chunk read last time.
#[test]
fn one_read_per_steady_sample_two_after_a_move() {
    for layout in planted_layouts() {
        let v = name(layout);
        let mut skel = Skeleton::new(layout, 8);
        let mut walker = skel.walker();
        let mut codes = CodeCache::default();
        let reads = |walker: &mut Walker, codes: &mut CodeCache, skel: &Skeleton| {
            let before = skel.mem.reads_made();
            let (t, _) = sample(walker, codes, &skel.mem);
            assert_eq!(t.frames, skel.expected(), "{v}");
            skel.mem.reads_made() - before
        };
        let cold = reads(&mut walker, &mut codes, &skel);
        assert!(cold > 1, "{v}: {cold}");
        for _ in 0..3 {
            assert_eq!(
                reads(&mut walker, &mut codes, &skel),
                1,
                "{v}: steady state"
            );
        }
        if layout.frames == FrameShape::InterpreterFrame {
            // Deeper by more than the guess's room to grow: the chunk is read again.
            skel.set_depth(8 + 2 * GUESS_SLACK / FRAME_STRIDE as usize);
            assert_eq!(reads(&mut walker, &mut codes, &skel), 2, "{v}: stack moved");
            assert_eq!(
                reads(&mut walker, &mut codes, &skel),
                1,
                "{v}: steady again"
            );
            // Shallower: still within what is read.
            skel.set_depth(3);
            assert_eq!(reads(&mut walker, &mut codes, &skel), 1, "{v}: shallower");
        }
    }
}

/// A code object freed and another made at the same address is reported under its new
/// name: when the previous walk used it (its check rides the walk's read), and when it was
/// cached but not used by the previous walk (checked by a read of its own).
#[test]
fn code_object_reused_at_the_same_address_is_never_reported_under_its_old_name() {
    for layout in planted_layouts() {
        let v = name(layout);
        let mut skel = Skeleton::new(layout, 4);
        let mut walker = skel.walker();
        let mut codes = CodeCache::default();
        let (_, names) = sample(&mut walker, &mut codes, &skel.mem);
        assert_eq!(names, ["f3", "f2", "f1", "f0"], "{v}");
        // Used by the previous walk.
        skel.plant_code(2, "g2", 1);
        let (t, names) = sample(&mut walker, &mut codes, &skel.mem);
        assert_eq!(names, ["f3", "g2", "f1", "f0"], "{v}");
        assert_eq!(t.frames, skel.expected(), "{v}");
        // Cached, not used by the previous walk (the stack was shallower then).
        skel.set_depth(2);
        let (_, names) = sample(&mut walker, &mut codes, &skel.mem);
        assert_eq!(names, ["f1", "f0"], "{v}");
        skel.plant_code(3, "h3", 2);
        skel.set_depth(4);
        let (_, names) = sample(&mut walker, &mut codes, &skel.mem);
        assert_eq!(names, ["h3", "g2", "f1", "f0"], "{v}");
        assert_eq!(codes.invalidations, 2, "{v}");
        let (_, names) = sample(&mut walker, &mut codes, &skel.mem);
        assert_eq!(names, ["h3", "g2", "f1", "f0"], "{v}");
        assert_eq!(codes.loads, 6, "{v}: 4 planted, 2 replaced");
    }
}

/// Counts the allocations of threads that ask for it (the other tests run on).
struct CountingAlloc;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation();
        std::alloc::System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation();
        std::alloc::System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        note_allocation();
        std::alloc::System.realloc(ptr, layout, size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// What the module doc says: a steady-state sample (the walk, the code cache's checks and
/// its look-ups) allocates nothing.
#[test]
fn steady_samples_allocate_nothing() {
    for layout in planted_layouts() {
        let v = name(layout);
        let skel = Skeleton::new(layout, 8);
        let mut walker = skel.walker();
        let mut codes = CodeCache::default();
        let mut threads = Vec::new();
        let run = |walker: &mut Walker, codes: &mut CodeCache, threads: &mut Vec<RawThread>| {
            walker
                .snapshot_with(&skel.mem, threads, |b| codes.begin(layout, b))
                .unwrap();
            let frames = threads.iter().flat_map(|t| t.frames.iter().map(|f| f.code));
            codes.end(&skel.mem, layout, walker.batch(), frames);
            for f in &threads[0].frames {
                codes.get(&skel.mem, layout, f.code).unwrap();
                codes.line(layout, f.code, f.instr_offset);
            }
        };
        for _ in 0..3 {
            run(&mut walker, &mut codes, &mut threads);
        }
        COUNTING.with(|c| c.set(true));
        let before = ALLOCATIONS.with(|n| n.get());
        for _ in 0..5 {
            run(&mut walker, &mut codes, &mut threads);
        }
        let allocations = ALLOCATIONS.with(|n| n.get()) - before;
        COUNTING.with(|c| c.set(false));
        assert_eq!(allocations, 0, "{v}");
        assert_eq!(threads[0].frames, skel.expected(), "{v}");
    }
}

/// Generator objects planted for the relinking test, `GEN_STRIDE` apart.
const GENS: u64 = 0x58_0000;
const GEN_STRIDE: u64 = 0x400;

/// A generator chain torn as a generator yields while it is read: the consumer `f1` (in the
/// chunk) resumed generator `g0`, which resumed `g1`, the frame the pointer names; by the
/// time `g1` is read it has yielded, its link cleared. `g0` holds `g1`'s generator object on
/// top of its saved stack, so the walk links `g1` back to it (once `g0` is among the frames
/// it reads with the first batch: after one whole walk). Without that holder the thread is
/// an error sample with `g1` alone; with two holders (the object passed on) too.
#[test]
fn generator_that_yielded_while_read_is_linked_back_to_its_resumer() {
    use crate::capture::python::layout::{GenLink, StackTop};
    for layout in planted_layouts() {
        let (GenLink::Embedded(gen_off), EntryMark::ShimOwner { owner, .. }) =
            (layout.frame.gen, layout.frame.entry)
        else {
            continue;
        };
        let v = name(layout);
        let fo = layout.frame;
        for holders in 0..3 {
            let mut s = Skeleton::new(layout, 2);
            s.mem.add(GENS, vec![0; 4 * GEN_STRIDE as usize]);
            let gen_obj = |k: u64| GENS + GEN_STRIDE * k;
            let frame = |k: u64| gen_obj(k) + gen_off;
            // g0 and g1 (and g2, a second holder of g1 when asked, resumed by f1 too).
            for k in 0..3 {
                let f = frame(k);
                s.plant_generator_frame(f, s.codes[2 + k as usize % 2], owner);
                // A saved stack of three words, the last the generator it resumed.
                let slots = f + fo.localsplus;
                match fo.stack_top {
                    StackTop::Index(off) => {
                        s.mem.bytes_mut(f + off, 4).unwrap()[..4]
                            .copy_from_slice(&3i32.to_le_bytes());
                    }
                    StackTop::Pointer(off) => write(&mut s.mem, f + off, slots + 24),
                    _ => unreachable!("{v}"),
                }
                let held = match k {
                    0 if holders > 0 => gen_obj(1),
                    2 if holders > 1 => gen_obj(1),
                    _ => gen_obj(3),
                };
                write(&mut s.mem, slots + 16, held);
            }
            let consumer = s.frame_addr(1);
            write(&mut s.mem, frame(0) + fo.previous, consumer);
            write(&mut s.mem, frame(2) + fo.previous, consumer);
            write(&mut s.mem, frame(1) + fo.previous, frame(0));
            s.set_current_frame(frame(1));
            let mut walker = s.walker();
            let mut codes = CodeCache::default();
            let whole = [frame(1), frame(0), s.frame_addr(1), s.frame_addr(0)];
            // Whole: walked as linked (g2 is read once, so it is a candidate later too).
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            let addrs: Vec<u64> = t.frames.iter().map(|f| f.addr).collect();
            assert_eq!(
                (t.fault, &addrs[..]),
                (None, &whole[..]),
                "{v}: {}",
                short(&t)
            );
            write(&mut s.mem, frame(1) + fo.previous, frame(2));
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            assert_eq!(t.fault, None, "{v}: {}", short(&t));
            // Torn: g1 has yielded.
            write(&mut s.mem, frame(1) + fo.previous, 0);
            for _ in 0..2 {
                let (t, _) = sample(&mut walker, &mut codes, &s.mem);
                let addrs: Vec<u64> = t.frames.iter().map(|f| f.addr).collect();
                if holders == 1 {
                    assert_eq!(t.fault, None, "{v}: {}", short(&t));
                    assert_eq!(addrs, whole, "{v}");
                    assert_eq!(t.relinked, 1, "{v}");
                } else {
                    assert_eq!(t.fault, Some(StackFault::Changed), "{v} {holders} holders");
                    assert_eq!(addrs, [frame(1)], "{v}: {}", short(&t));
                    assert_eq!(t.relinked, 0, "{v}");
                }
            }
        }
    }
}

/// `_PyInterpreterFrame.owner` of a generator's frame (3.12+).
const OWNED_BY_GENERATOR: u8 = 1;

/// A generator that finished (or yielded) while it was read, whose resumer no longer holds
/// it, is never linked to where the thread went on: the innermost generator still running
/// (or, with none, the chunk's frame below) is its caller only when one level finished, and
/// an ancestor further up when more did, which made a shorter stack look whole. The sample is
/// an error keeping the frames read, whatever runs beside it.
#[test]
fn generator_that_finished_while_read_is_never_linked_to_where_the_thread_went() {
    use crate::capture::python::layout::GenLink;
    // 3.14+ clear a finished generator's code (a tagged reference): 3.13's layout with tag
    // bits stands for it.
    let mut tagged = *layout_313();
    tagged.frame.code_tag_bits = 1;
    let tagged: &'static Layout = Box::leak(Box::new(tagged));
    let mut layouts = planted_layouts();
    layouts.push(tagged);
    let mut checked = 0;
    for layout in layouts {
        let (GenLink::Embedded(gen_off), EntryMark::ShimOwner { owner, .. }) =
            (layout.frame.gen, layout.frame.entry)
        else {
            continue;
        };
        let v = name(layout);
        let fo = layout.frame;
        let mut s = Skeleton::new(layout, 2);
        s.mem.add(GENS, vec![0; 3 * GEN_STRIDE as usize]);
        let frame = |k: u64| GENS + GEN_STRIDE * k + gen_off;
        for k in 0..3 {
            s.plant_generator_frame(frame(k), s.codes[2 + k as usize % 2], owner);
        }
        // The consumer runs g0, which runs g1, which runs g2, the innermost frame.
        let consumer = s.frame_addr(1);
        write(&mut s.mem, frame(0) + fo.previous, consumer);
        write(&mut s.mem, frame(1) + fo.previous, frame(0));
        write(&mut s.mem, frame(2) + fo.previous, frame(1));
        s.set_current_frame(frame(2));
        let mut walker = s.walker();
        let mut codes = CodeCache::default();
        let tail = [s.frame_addr(1), s.frame_addr(0)];
        let whole = [frame(2), frame(1), frame(0), tail[0], tail[1]];
        // Whole, read twice so that every generator frame is read with the first batch.
        for _ in 0..2 {
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            let addrs: Vec<u64> = t.frames.iter().map(|f| f.addr).collect();
            assert_eq!(
                (t.fault, &addrs[..]),
                (None, &whole[..]),
                "{v}: {}",
                short(&t)
            );
        }
        // g2 finished (3.14+: its code cleared too), then g1, then g0, while the pointer to g2
        // was being read: each time the thread runs on in a generator (or the chunk frame)
        // that is not g2's caller, or is but cannot be told from an ancestor.
        let mut finished = Vec::new();
        for k in [2, 1, 0] {
            write(&mut s.mem, frame(k) + fo.previous, 0);
            if fo.code_tag_bits > 0 && k == 2 {
                write(&mut s.mem, frame(2) + fo.code, 1);
            }
            finished.push(k);
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            let addrs: Vec<u64> = t.frames.iter().map(|f| f.addr).collect();
            assert_eq!(
                (t.fault, &addrs[..]),
                (Some(StackFault::Changed), &[frame(2)][..]),
                "{v}, after {finished:?} finished: {}",
                short(&t)
            );
            assert!(t.partial, "{v}");
            assert_eq!(t.relinked, 0, "{v}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} layouts checked");
}

/// 3.11 resumes a generator through C, in an evaluation call of its own: one that yielded or
/// finished while it was read is linked to the current frame of the enclosing call, read
/// with the frame pointers (`cframe` and its `previous`); one not entered through C is not.
#[test]
fn generator_resumed_through_c_is_linked_to_the_enclosing_calls_frame() {
    use crate::capture::python::layout::GenLink;
    let mut checked = 0;
    for layout in planted_layouts() {
        let (
            EntryMark::IsEntryByte {
                is_entry: entry, ..
            },
            GenLink::Embedded(gen_off),
            FramePtr::ViaCFrame { current_frame, .. },
        ) = (layout.frame.entry, layout.frame.gen, layout.thread.frame)
        else {
            continue;
        };
        checked += 1;
        let v = name(layout);
        let fo = layout.frame;
        let mut s = Skeleton::new(layout, 2);
        s.mem.add(GENS, vec![0; GEN_STRIDE as usize]);
        let x = GENS + gen_off;
        let code = s.codes[2];
        write(&mut s.mem, x + fo.code, code);
        if let InstrPos::Pointer(off) = fo.instr {
            write(&mut s.mem, x + off, code + layout.code.code_adaptive + 8);
        }
        s.mem.bytes_mut(x + entry, 1).unwrap()[0] = 1;
        let consumer = s.frame_addr(1);
        write(&mut s.mem, x + fo.previous, consumer);
        // Two evaluation calls: the generator's, entered through C from the consumer's.
        let enclosing = CFRAME + 0x80;
        write(&mut s.mem, CFRAME + current_frame, x);
        write(&mut s.mem, CFRAME + current_frame + 8, enclosing);
        write(&mut s.mem, enclosing + current_frame, consumer);
        let mut walker = s.walker();
        let mut codes = CodeCache::default();
        let whole = [x, consumer, s.frame_addr(0)];
        let addrs = |t: &RawThread| t.frames.iter().map(|f| f.addr).collect::<Vec<u64>>();
        for _ in 0..3 {
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            assert_eq!(
                (t.fault, addrs(&t)),
                (None, whole.to_vec()),
                "{v}: {}",
                short(&t)
            );
        }
        // Torn: the generator yielded (or finished) while it was read.
        write(&mut s.mem, x + fo.previous, 0);
        for _ in 0..2 {
            let (t, _) = sample(&mut walker, &mut codes, &s.mem);
            assert_eq!(
                (t.fault, addrs(&t)),
                (None, whole.to_vec()),
                "{v}: {}",
                short(&t)
            );
            assert_eq!(t.relinked, 1, "{v}");
        }
        // Not the first frame of its evaluation call: its caller is not known.
        s.mem.bytes_mut(x + entry, 1).unwrap()[0] = 0;
        let (t, _) = sample(&mut walker, &mut codes, &s.mem);
        assert_eq!(t.fault, Some(StackFault::Changed), "{v}: {}", short(&t));
        assert_eq!(addrs(&t), [x], "{v}");
    }
    assert_eq!(checked, 1, "3.11's layout is planted");
}

/// 3.13's planted layout as 3.14+ behave: a popped frame's code is cleared (a tagged
/// reference), return instructions are known, and each planted code object runs in frames
/// `FRAME_STRIDE` bytes long with a few code units of bytecode.
fn layout_popping() -> &'static Layout {
    use crate::capture::python::layout::FrameOps;
    let mut l = *layout_313();
    l.frame.code_tag_bits = 1;
    l.code.ops = Some(FrameOps {
        returns: [35, 246, 35, 246],
    });
    assert!(l.code.frame_words.is_some(), "3.13+ frame sizes");
    Box::leak(Box::new(l))
}

/// Give the skeleton's code objects frames of `FRAME_STRIDE` bytes and 16 code units of
/// bytecode, with a return instruction at byte `ret`.
fn plant_sizes(s: &mut Skeleton, ret: u64) {
    let l = s.layout;
    let (stacksize, nlocalsplus) = l.code.frame_words.unwrap();
    let words = (FRAME_STRIDE - l.frame.localsplus) / 8;
    for code in s.codes.clone() {
        let b = s.mem.bytes_mut(code + stacksize, 4).unwrap();
        b.copy_from_slice(&(words as u32).to_le_bytes());
        s.mem.bytes_mut(code + nlocalsplus, 4).unwrap().fill(0);
        write(&mut s.mem, code + l.object.ob_size, 16);
        s.mem
            .bytes_mut(code + l.code.code_adaptive, 32)
            .unwrap()
            .fill(0);
    }
    let op = l.code.ops.unwrap().returns[0];
    for code in s.codes.clone() {
        s.mem
            .bytes_mut(code + l.code.code_adaptive + ret, 1)
            .unwrap()[0] = op;
    }
}

fn off_instr(l: &Layout) -> u64 {
    match l.frame.instr {
        InstrPos::Pointer(off) => off,
        InstrPos::Lasti { .. } => unreachable!("3.12+ keep an instruction pointer"),
    }
}

/// One nonblocking sample: the walk, then the stack taken again as its chunk's copy has it.
fn sample_moment(walker: &mut Walker, codes: &mut CodeCache, mem: &ImageMemory) -> RawThread {
    let l = walker.layout;
    let mut threads = Vec::new();
    walker
        .snapshot_with(mem, &mut threads, |b| codes.begin(l, b))
        .unwrap();
    walker.settle_to_copy(mem, &mut threads, |c, o| codes.frame_facts(mem, l, c, o));
    let frames = threads.iter().flat_map(|t| t.frames.iter().map(|f| f.code));
    codes.end(mem, l, walker.batch(), frames);
    threads.pop().unwrap()
}

/// Without pausing, the frame pointer is read a moment before the frames it leads to, and
/// short calls come and go in between: the stack is taken as the chunk's copy has it (3.14+:
/// live frames back to back from the chunk's first slot, a popped one's code cleared), not
/// walked from a pointer of another moment.
#[test]
fn stack_is_taken_at_the_moment_its_chunk_was_copied() {
    let l = layout_popping();
    let addrs = |t: &RawThread| -> Vec<u64> { t.frames.iter().map(|f| f.addr).collect() };
    let frames =
        |s: &Skeleton, n: usize| -> Vec<u64> { (0..n).rev().map(|k| s.frame_addr(k)).collect() };
    let fo = l.frame;
    let EntryMark::ShimOwner { owner, .. } = fo.entry else {
        unreachable!()
    };
    // The walker's guess of the chunk's extent comes from a first sample six frames deep.
    let start = || {
        let mut s = Skeleton::new(l, 6);
        plant_sizes(&mut s, 20);
        let (mut walker, mut codes) = (s.walker(), CodeCache::default());
        let t = sample_moment(&mut walker, &mut codes, &s.mem);
        assert_eq!(addrs(&t), frames(&s, 6), "{}", short(&t));
        (s, walker, codes)
    };
    let clear_code = |s: &mut Skeleton, k: usize| {
        let a = s.frame_addr(k) + fo.code;
        write(&mut s.mem, a, 0)
    };

    // Frames 5 and 4 returned after the pointer to 5 was read: the thread is in frame 3.
    let (mut s, mut walker, mut codes) = start();
    clear_code(&mut s, 5);
    clear_code(&mut s, 4);
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 4), "{}", short(&t));
    assert!(t.fault.is_none() && t.frames.iter().all(|f| !f.returned));

    // The pointer named frame 3; frames 4 and 5 were called since.
    let (mut s, mut walker, mut codes) = start();
    s.set_current_frame(s.frame_addr(3));
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 6), "{}", short(&t));

    // Frame 4 (code 0) is at a return instruction and frame 5 is popped: its caller is the
    // thread's current frame, as a paused read has it.
    let (mut s, mut walker, mut codes) = start();
    clear_code(&mut s, 5);
    let at_return = s.codes[0] + l.code.code_adaptive + 20;
    if let InstrPos::Pointer(off) = fo.instr {
        {
            let a = s.frame_addr(4) + off;
            let v = at_return;
            write(&mut s.mem, a, v)
        }
    }
    s.set_current_frame(s.frame_addr(4));
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 4), "{}", short(&t));

    // Frame 3 was called through C, and its shim on the C stack was reused before it was
    // read: the frame below in the chunk is its caller.
    let (mut s, mut walker, mut codes) = start();
    const SHIM2: u64 = SHIM + 0x80;
    {
        let a = s.frame_addr(3) + fo.previous;
        let v = SHIM2;
        write(&mut s.mem, a, v)
    }
    s.mem.bytes_mut(SHIM2 + owner, 1).unwrap()[0] = 0x77;
    write(&mut s.mem, SHIM2 + fo.previous, 0x1234_5678);
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 6), "{}", short(&t));
    assert!(t.frames[2].shim_entry && t.frames[2].shim_addr == SHIM2);

    // A generator's frame being created is moved into its generator, and its slot keeps code
    // and links: frame 5, so left, is no frame of the stack.
    let (mut s, mut walker, mut codes) = start();
    let gen_code = CODE_BASE + 0x1000 * CODES as u64;
    s.mem.add(gen_code, vec![0; 0x1000]);
    s.codes.push(gen_code);
    s.plant_code(CODES, "gen", 0);
    plant_sizes(&mut s, 20);
    let flags = s.mem.bytes_mut(gen_code + l.code.flags, 4).unwrap();
    flags.copy_from_slice(&0x20u32.to_le_bytes());
    {
        let a = s.frame_addr(5) + fo.code;
        write(&mut s.mem, a, gen_code)
    }
    if let InstrPos::Pointer(off) = fo.instr {
        // Frame 4 (code 0) away from its return instruction.
        let (a, v) = (s.frame_addr(4) + off, s.codes[0] + l.code.code_adaptive + 2);
        write(&mut s.mem, a, v);
    }
    s.set_current_frame(s.frame_addr(4));
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 5), "{}", short(&t));

    // 3.12-3.13 keep a popped frame's code and links: frames 5 and 4, popped, are at the
    // instructions they returned by.
    let mut s = Skeleton::new(layout_313(), 6);
    plant_sizes(&mut s, 20);
    let (mut walker, mut codes) = (s.walker(), CodeCache::default());
    sample_moment(&mut walker, &mut codes, &s.mem);
    for k in [4, 5] {
        let (a, v) = (
            s.frame_addr(k) + off_instr(l),
            s.codes[k % CODES] + l.code.code_adaptive + 20,
        );
        write(&mut s.mem, a, v);
    }
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 4), "{}", short(&t));

    // The pointer named frame 6, called by a generator's frame (outside the chunk) that frame
    // 5 resumed; 6 returned since. Whether the generator still ran when the chunk was copied
    // the copy cannot tell: the walk from the pointer stands.
    let (mut s, mut walker, mut codes) = start();
    let EntryMark::ShimOwner { owner, .. } = fo.entry else {
        unreachable!()
    };
    s.mem.add(GENS, vec![0; GEN_STRIDE as usize]);
    s.plant_generator_frame(GENS, s.codes[1], owner);
    let (six, five) = (s.frame_addr(6), s.frame_addr(5));
    write(&mut s.mem, GENS + fo.previous, five);
    write(&mut s.mem, six + fo.previous, GENS);
    write(&mut s.mem, six + fo.code, 0);
    if let InstrPos::Pointer(off) = fo.instr {
        write(&mut s.mem, six + off, s.codes[2] + l.code.code_adaptive + 4);
    }
    s.mem.bytes_mut(six + owner, 1).unwrap()[0] = 0;
    s.set_current_frame(six);
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    let mut want = vec![six, GENS];
    want.extend(frames(&s, 6));
    assert_eq!(addrs(&t), want, "{}", short(&t));

    // A frame above the innermost that is not linked to it is no frame of this stack: the
    // walk from the pointer stands (the copy is not taken as torn into a longer stack).
    let (mut s, mut walker, mut codes) = start();
    clear_code(&mut s, 5);
    {
        let a = s.frame_addr(4) + fo.previous;
        let v = s.frame_addr(1);
        write(&mut s.mem, a, v)
    }
    s.set_current_frame(s.frame_addr(3));
    let t = sample_moment(&mut walker, &mut codes, &s.mem);
    assert_eq!(addrs(&t), frames(&s, 4), "{}", short(&t));
}
