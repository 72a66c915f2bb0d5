//! Where CPython keeps things: one [`Layout`] value per interpreter layout.
//!
//! The sections mirror CPython 3.13's `_Py_DebugOffsets` (runtime, interpreter, thread,
//! frame, code, and the object types we decode), so that for 3.13+ a `Layout` can be filled
//! from the target's own table, and for older versions from the small per-version tables
//! below. Facts come from CPython's headers (`Include/cpython/*.h`, `Include/internal/*.h`)
//! for each release, read with `offsetof` (see `tools/offsets/offsets.c`); x86_64/aarch64 LP64 only.
//!
//! Behaviour that differs between versions is a named flag ([`FrameShape`],
//! [`LineTableFormat`], ...), never a version comparison in the walkers.
//!
//! This module holds the types and their consistency check ([`Layout::check`]) only: the
//! values are in `tables.rs` (2.7–3.12) and `debug_offsets.rs` (3.13+), and which of them
//! serves a version is `registry.rs`'s answer. It imports none of them.

/// Where the walk starts: the symbol whose address is the base of [`RuntimeOffsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `_PyRuntime` (3.7+): the interpreter list head is at `interpreters_head`.
    Runtime,
    /// `interp_head` (2.7, 3.6): a static `PyInterpreterState *` in pystate.c.
    InterpHead,
}

impl Root {
    pub fn symbol(self) -> &'static str {
        match self {
            Root::Runtime => "_PyRuntime",
            Root::InterpHead => "interp_head",
        }
    }
}

/// How a thread's frames are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameShape {
    /// Up to 3.10: `PyFrameObject`s, each its own heap object, linked by `f_back`.
    FrameObject,
    /// 3.11+: `_PyInterpreterFrame`s packed in the thread's datastack chunks.
    InterpreterFrame,
}

/// Where a thread state keeps its innermost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePtr {
    /// A field of the thread state (`frame` up to 3.10, `current_frame` in 3.13+).
    InThread(u64),
    /// 3.11–3.12: `tstate->cframe` points at a `_PyCFrame` whose `current_frame` is it.
    ViaCFrame { cframe: u64, current_frame: u64 },
}

/// Where a frame's current instruction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrPos {
    /// `f_lasti` (an `int`): index of the last instruction in units of `scale` bytes (1 up
    /// to 3.9, 2 in 3.10); negative before the first one.
    Lasti { offset: u64, scale: i64 },
    /// `prev_instr` / `instr_ptr`: a pointer into the code object's bytecode, which starts at
    /// `code.code_adaptive`.
    Pointer(u64),
}

/// How frames called from C are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMark {
    /// Not marked (up to 3.10: every `PyFrameObject` is a real frame).
    None,
    /// 3.11: a byte `is_entry` in the frame, and the byte `owner` saying who owns the frame
    /// (the thread's frame stack, a generator, a frame object).
    IsEntryByte { is_entry: u64, owner: u64 },
    /// 3.12+: C code pushes a shim frame owned by the C stack (`owner` == `cstack`, and in
    /// 3.14+ also frames owned by the interpreter, `interpreter`): these are skipped, and the
    /// frame above one is an entry frame.
    ShimOwner {
        owner: u64,
        cstack: u8,
        interpreter: u8,
    },
}

/// How a code object maps instructions to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTableFormat {
    /// Up to 3.9: `co_lnotab`, (bytecode delta, line delta) byte pairs; line deltas are
    /// signed from 3.6 on, unsigned in 2.7.
    Lnotab { signed: bool },
    /// 3.10: `co_linetable`, (bytecode delta, signed line delta) pairs, -128 meaning no line.
    Linetable310,
    /// 3.11+: `co_linetable` location table (PEP 657), code units of 2 bytes.
    Locations311,
}

/// How the thread holding the GIL is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilHolder {
    /// 2.7, 3.6: the exported variable `_PyThreadState_Current` holds it (or 0).
    CurrentSymbol,
    /// `_PyRuntime.gilstate.tstate_current` (3.7–3.11): the running thread state, or 0.
    RuntimeTstateCurrent(u64),
    /// 3.12+: `interp->ceval.gil` points at the GIL; its `last_holder` holds it while
    /// `locked` is set.
    InterpGil {
        gil_ptr: u64,
        locked: u64,
        holder: u64,
    },
}

/// How `str` objects are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrFormat {
    /// 2.7: names are byte strings (`PyStringObject`: size at `object.ob_size`, bytes at
    /// `object.bytes_sval`).
    Bytes27,
    /// 3.3+: PEP 393 compact strings ([`UnicodeOffsets`]).
    Pep393,
}

/// How `int` objects keep their size and sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntFormat {
    /// Up to 3.11: `ob_size` is the digit count, negative for negative numbers (2.7's small
    /// `int` type keeps a C long at `object.int27_value`).
    ObSize,
    /// 3.12+: `lv_tag` at `object.ob_size`: digit count in bits 3.., sign in bits 0–1
    /// (0 positive, 1 zero, 2 negative).
    LvTag,
}

/// How dicts store their entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictFormat {
    /// 2.7: `ma_table` of `ma_mask + 1` (hash, key, value) entries, some empty.
    Table27 { mask: u64, table: u64 },
    /// 3.6–3.10: keys object with `dk_size` (a `Py_ssize_t`) and an index array of
    /// 1/2/4/8-byte slots before the entries.
    Keys36 { dk_size: u64 },
    /// 3.11+: keys object with `dk_log2_size`, `dk_log2_index_bytes` and `dk_kind`.
    Keys311,
}

/// Where objects of types flagged `Py_TPFLAGS_MANAGED_DICT` keep their attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedDict {
    /// No managed dicts (up to 3.10): the dict is at `tp_dictoffset`.
    None,
    /// 3.11: dict pointer `dict_back` bytes before the object, values pointer `values_back`.
    Split311 { dict_back: u64, values_back: u64 },
    /// 3.12: one word `back` bytes before the object: a dict pointer, or a values pointer
    /// plus 1.
    Tagged312 { back: u64 },
    /// 3.13+: dict pointer `dict_back` bytes before the object; without one, the values are
    /// inline at `tp_basicsize` when the type has `Py_TPFLAGS_INLINE_VALUES` (1 << 2).
    Inline313 { dict_back: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOffsets {
    /// From the root symbol: the first interpreter state (`_PyRuntime.interpreters.head`,
    /// or 0 for `interp_head`).
    pub interpreters_head: u64,
    pub gil: GilHolder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterpreterOffsets {
    pub next: u64,
    /// `interp->threads.head` / `tstate_head`: the newest thread state.
    pub threads_head: u64,
    /// `interp->modules` / `interp->imports.modules`: `sys.modules`.
    pub modules: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadOffsets {
    /// Bytes to copy for one thread state (covers every field below).
    pub size: u64,
    pub next: u64,
    pub interp: u64,
    pub frame: FramePtr,
    /// `thread_id`: the `pthread_t` (`threading.get_ident()`).
    pub thread_id: u64,
    /// `native_thread_id` (3.8+): the OS thread id.
    pub native_thread_id: Option<u64>,
    /// `datastack_chunk` and `datastack_top`: where frames live (3.11+).
    pub datastack_chunk: Option<u64>,
    pub datastack_top: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOffsets {
    /// Bytes to copy for one frame (covers every field below but the locals).
    pub read_size: u64,
    /// `f_code` / `f_executable`.
    pub code: u64,
    /// Low bits of the code pointer and of locals that are tags, not address (3.14+ stack
    /// references: a word of 1 is NULL, low bits 3 a tagged int).
    pub code_tag_bits: u64,
    /// `f_back` / `previous`.
    pub previous: u64,
    pub instr: InstrPos,
    pub entry: EntryMark,
    /// `f_localsplus` / `localsplus`: the local variables, in `co_varnames` order.
    pub localsplus: u64,
    /// Size of `_PyStackChunk`'s header (frames follow it), and its `previous` and `size`.
    pub chunk_header: u64,
    pub chunk_previous: u64,
    pub chunk_size: u64,
    /// Where a frame's evaluation stack ended when the frame last stopped running (it
    /// called another frame or yielded), and where it lies.
    pub stack_top: StackTop,
    /// How a generator's (coroutine's, async generator's) frame leads to the generator
    /// object.
    pub gen: GenLink,
}

/// Where a frame saves its evaluation stack's top; the value there is stale or cleared
/// while the frame runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackTop {
    /// Not read (2.7).
    Unknown,
    /// 3.6-3.9 frame objects: `f_valuestack` (where the stack begins) and `f_stacktop` (one
    /// past its top; NULL while the frame runs).
    ObjectPointer { valuestack: u64, stacktop: u64 },
    /// 3.10 frame objects: `f_valuestack` and `f_stackdepth` (an `int`; -1 while the frame
    /// runs).
    ObjectDepth { valuestack: u64, depth: u64 },
    /// 3.11-3.13 `stacktop`: an `int`, the number of words from `localsplus` to the top
    /// (-1 while the frame runs on 3.11 when resumed through C, and on 3.12-3.13).
    Index(u64),
    /// 3.14+ `stackpointer`: one past the top slot.
    Pointer(u64),
}

impl StackTop {
    /// Where the fields it names end in a frame's bytes.
    pub fn end(self) -> u64 {
        match self {
            StackTop::Unknown => 0,
            StackTop::ObjectPointer {
                valuestack,
                stacktop,
            } => valuestack.max(stacktop) + 8,
            StackTop::ObjectDepth { valuestack, depth } => (valuestack + 8).max(depth + 4),
            StackTop::Index(off) => off + 4,
            StackTop::Pointer(off) => off + 8,
        }
    }
}

/// How a generator's frame leads to its generator object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenLink {
    /// Not known (2.7).
    None,
    /// The frame object's `f_gen` at this offset (3.7-3.10; NULL for other frames).
    Field(u64),
    /// The frame lies inside the generator object, this far from its start (`gi_iframe`,
    /// 3.11+).
    Embedded(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeOffsets {
    /// Bytes to copy for one code object (covers every field below).
    pub size: u64,
    pub argcount: u64,
    pub flags: u64,
    pub firstlineno: u64,
    pub nlocals: u64,
    /// `co_localsplusnames` (3.11+) / `co_varnames`: a tuple whose first `nlocals` items
    /// name the locals.
    pub varnames: u64,
    pub filename: u64,
    pub name: u64,
    /// `co_qualname` (3.11+).
    pub qualname: Option<u64>,
    /// `co_linetable` / `co_lnotab`.
    pub linetable: u64,
    /// Start of the bytecode inside the code object (`co_code_adaptive`, 3.11+).
    pub code_adaptive: u64,
    /// 3.11-3.12: (`co_stacksize`, `co_nlocalsplus`): a frame in its datastack chunk takes
    /// `frame.localsplus + 8 × (nlocalsplus + stacksize)` bytes, so the thread state's
    /// `datastack_top` says which frame was innermost when it was read.
    pub frame_words: Option<(u64, u64)>,
    /// 3.12+: the opcodes that return from a frame, which tell from a frame's instruction
    /// pointer whether it is returning or popped (see `walker::moment`).
    pub ops: Option<FrameOps>,
    /// The part of the object compared to check that a cached code object is still the same:
    /// `[validate_from, validate_to)` covers the names, file, line table and counts.
    pub validate_from: u64,
    pub validate_to: u64,
}

/// Opcodes of one minor version (`opcode.opmap`), where the frame walk needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOps {
    /// `RETURN_VALUE`, `RETURN_CONST` and their `INSTRUMENTED_` forms (repeated where a
    /// version has fewer): a frame whose instruction pointer is at one of them is returning
    /// (its caller is already the thread's current frame while its locals are let go) or,
    /// before 3.14, popped.
    pub returns: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnicodeOffsets {
    pub format: StrFormat,
    pub length: u64,
    pub state: u64,
    /// Bit position of `state.kind` (3 bits), and of the `compact` / `ascii` bits.
    pub kind_shift: u32,
    pub compact_bit: u32,
    pub ascii_bit: u32,
    /// `sizeof(PyASCIIObject)`: compact ASCII data follows it.
    pub ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: other compact data follows it.
    pub compact_size: u64,
    /// `PyUnicodeObject.data.any`, for non-compact strings.
    pub data_any: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectOffsets {
    pub ob_type: u64,
    pub ob_size: u64,
    pub tp_name: u64,
    pub tp_flags: u64,
    pub tp_basicsize: u64,
    pub tp_dictoffset: u64,
    /// `PyHeapTypeObject.ht_cached_keys`: the shared keys of instance dicts (3.3+).
    pub ht_cached_keys: Option<u64>,
    pub bytes_sval: u64,
    pub tuple_items: u64,
    pub list_items: u64,
    pub float_fval: u64,
    pub long_digits: u64,
    pub ints: IntFormat,
    /// 2.7's `int` type: the flag marking it and its subclasses, and where its value is.
    pub int27: Option<(u64, u64)>,
    /// `PyModuleObject.md_dict`
    pub module_dict: u64,
}

/// Dict layout (`PyDictObject`, `PyDictKeysObject`, split and combined tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictOffsets {
    pub format: DictFormat,
    pub ma_used: u64,
    pub ma_keys: u64,
    pub ma_values: u64,
    pub dk_log2_size: u64,
    pub dk_log2_index_bytes: u64,
    pub dk_kind: u64,
    pub dk_nentries: u64,
    pub dk_indices: u64,
    /// Size of a general entry (hash, key, value) and of a unicode-keys entry (key, value).
    pub entry_size: u64,
    pub unicode_entry_size: u64,
    /// Offset of the first value pointer in a split table's values (`PyDictValues`).
    pub values_start: u64,
    pub managed: ManagedDict,
}

/// Everything version-specific the capture layer needs about one CPython layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// First and last version (inclusive, by (major, minor, patch)) the table applies to.
    pub first: (u64, u64, u64),
    pub last: (u64, u64, u64),
    pub root: Root,
    pub frames: FrameShape,
    pub linetable: LineTableFormat,
    pub runtime: RuntimeOffsets,
    pub interp: InterpreterOffsets,
    pub thread: ThreadOffsets,
    pub frame: FrameOffsets,
    pub code: CodeOffsets,
    pub unicode: UnicodeOffsets,
    pub object: ObjectOffsets,
    pub dict: DictOffsets,
}

/// Type flags (`tp_flags`) used to recognise builtin types and their subclasses.
pub mod tpflags {
    /// 3.13+: instance attributes are stored inline, after the object.
    pub const INLINE_VALUES: u64 = 1 << 2;
    /// 3.11+ (with a layout's `ManagedDict`): the instance dict is managed by the VM.
    pub const MANAGED_DICT: u64 = 1 << 4;
    pub const LONG_SUBCLASS: u64 = 1 << 24;
    pub const LIST_SUBCLASS: u64 = 1 << 25;
    pub const TUPLE_SUBCLASS: u64 = 1 << 26;
    pub const BYTES_SUBCLASS: u64 = 1 << 27;
    pub const UNICODE_SUBCLASS: u64 = 1 << 28;
    pub const DICT_SUBCLASS: u64 = 1 << 29;
}

impl Layout {
    /// Internal consistency of a table: every field inside the size we copy. Run on each
    /// table in tests, and on tables read from a target (3.13+) before they are trusted.
    pub fn check(&self) -> Result<(), String> {
        let t = &self.thread;
        let frame_field = match t.frame {
            FramePtr::InThread(off) => off,
            FramePtr::ViaCFrame { cframe, .. } => cframe,
        };
        let mut fields = vec![
            ("thread.next", t.next),
            ("thread.interp", t.interp),
            ("thread.frame", frame_field),
            ("thread.thread_id", t.thread_id),
        ];
        fields.extend(t.native_thread_id.map(|o| ("thread.native_thread_id", o)));
        fields.extend(t.datastack_chunk.map(|o| ("thread.datastack_chunk", o)));
        fields.extend(t.datastack_top.map(|o| ("thread.datastack_top", o)));
        for (name, off) in fields {
            if off + 8 > t.size || off % 8 != 0 {
                return Err(format!(
                    "{name} = {off} is outside thread state size {} or misaligned",
                    t.size
                ));
            }
        }
        if t.size > 1 << 16 {
            return Err(format!("thread state size {} is implausible", t.size));
        }
        if self.frames == FrameShape::InterpreterFrame
            && (t.datastack_chunk.is_none() || t.datastack_top.is_none())
        {
            return Err("frames in datastack chunks need datastack_chunk and _top".into());
        }
        let f = &self.frame;
        let instr_end = match f.instr {
            InstrPos::Lasti { offset, .. } => offset + 4,
            InstrPos::Pointer(offset) => offset + 8,
        };
        let entry_end = match f.entry {
            EntryMark::None => 0,
            EntryMark::IsEntryByte { is_entry, owner } => is_entry.max(owner) + 1,
            EntryMark::ShimOwner { owner, .. } => owner + 1,
        };
        let stack_top_end = f.stack_top.end();
        let gen_end = match f.gen {
            GenLink::Field(off) => off + 8,
            GenLink::None | GenLink::Embedded(_) => 0,
        };
        for (name, end) in [
            ("frame.stack_top", stack_top_end),
            ("frame.gen", gen_end),
            ("frame.code", f.code + 8),
            ("frame.previous", f.previous + 8),
            ("frame.instr", instr_end),
            ("frame.entry", entry_end),
        ] {
            if end > f.read_size {
                return Err(format!(
                    "{name} ends past the frame bytes read ({end} > {})",
                    f.read_size
                ));
            }
        }
        if f.read_size > 4096 || f.code_tag_bits > 7 {
            return Err("frame offsets are implausible".into());
        }
        let c = &self.code;
        let mut names = vec![
            ("code.filename", c.filename),
            ("code.name", c.name),
            ("code.linetable", c.linetable),
            ("code.varnames", c.varnames),
        ];
        names.extend(c.qualname.map(|q| ("code.qualname", q)));
        for (name, off) in names {
            if off + 8 > c.size || off % 8 != 0 {
                return Err(format!(
                    "{name} = {off} is outside code object size {}",
                    c.size
                ));
            }
            if off < c.validate_from || off + 8 > c.validate_to {
                return Err(format!("{name} is not covered by the cache check"));
            }
        }
        for (name, off) in [
            ("code.argcount", c.argcount),
            ("code.firstlineno", c.firstlineno),
            ("code.nlocals", c.nlocals),
            ("code.flags", c.flags),
        ] {
            if off + 4 > c.size {
                return Err(format!(
                    "{name} = {off} is outside code object size {}",
                    c.size
                ));
            }
        }
        if c.code_adaptive > c.size || c.validate_to > c.size || c.size > 4096 {
            return Err("code object bytecode offset outside its size".into());
        }
        let u = &self.unicode;
        if u.format == StrFormat::Pep393
            && (u.kind_shift > 29
                || u.compact_bit > 31
                || u.ascii_bit > 31
                || u.ascii_size > 256
                || u.compact_size > 256)
        {
            return Err("str offsets are implausible".into());
        }
        Ok(())
    }
}
