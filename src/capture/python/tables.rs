//! The static layouts of CPython 2.7 to 3.12, one per range of versions with the same layout,
//! oldest first; each is written as the changes from its predecessor (struct update syntax),
//! so reading one table means reading it and the ones before it, never a later one.
//!
//! Every number is a fact read from that release's headers with `offsetof`/`sizeof`
//! (`tools/offsets/offsets.c` prints them; structs that are not installed, such as 3.6–3.10's
//! `PyDictKeysObject` and `PyModuleObject`, come from the sources). 3.13 and later publish
//! most of their offsets in `_PyRuntime.debug_offsets` (`debug_offsets.rs`); the facts they
//! do not publish and that have not changed since an older release are the named fragments
//! at the top of this file, shared by both. Which layout serves which version is decided in
//! `registry.rs`. x86_64/aarch64 LP64.

use super::layout::*;

// ---- Fragments: facts unchanged from the release named through 3.15 ----
//
// `tools/offsets/shared-facts.c` prints each of them from a release's headers; compiled
// against 3.11.7, 3.12.1, 3.13.0, 3.14.10 and 3.15.2 it prints the same values for all.

/// `_PyStackChunk { previous; size; top; data[] }` (Include/cpython/pystate.h, 3.11 on):
/// frames start after the 24-byte header (`data`); `previous` and `size` are its first words.
pub const STACK_CHUNK_HEADER: u64 = 24;
pub const STACK_CHUNK_PREVIOUS: u64 = 0;
pub const STACK_CHUNK_SIZE: u64 = 8;

/// PEP 393's `PyASCIIObject.state` bitfield (Include/cpython/unicodeobject.h, 3.3 on):
/// `interned:2` first, then `kind:3`, `compact:1`, `ascii:1`.
pub const STR_KIND_SHIFT: u32 = 2;
pub const STR_COMPACT_BIT: u32 = 5;
pub const STR_ASCII_BIT: u32 = 6;

/// `PyModuleObject.md_dict`: the first field after `PyObject_HEAD` in every release
/// (Objects/moduleobject.c; Include/internal/pycore_moduleobject.h from 3.10).
pub const MODULE_MD_DICT: u64 = 16;

/// PEP 393 strings as laid out from 3.3 to 3.11 (`PyASCIIObject` still has `wstr`):
/// `length` and `state` after the object header and hash, ASCII data after the 48-byte
/// `PyASCIIObject`, other compact data after the 72-byte `PyCompactUnicodeObject`.
pub const STR_3_3: UnicodeOffsets = UnicodeOffsets {
    format: StrFormat::Pep393,
    length: 16,
    state: 32,
    kind_shift: STR_KIND_SHIFT,
    compact_bit: STR_COMPACT_BIT,
    ascii_bit: STR_ASCII_BIT,
    ascii_size: 48,
    compact_size: 72,
    data_any: 72,
};

/// A dict section of 3.11 or later: `PyDictObject.ma_used`, the `PyDictKeysObject` header
/// (`dk_log2_size`, `dk_log2_index_bytes`, `dk_kind`, `dk_nentries`, then the indices) and
/// the entry sizes (`PyDictKeyEntry`, `PyDictUnicodeEntry`) are the same from 3.11 through
/// 3.15 (Include/internal/pycore_dict.h); where the keys and values pointers are, where a
/// split table's values start and how managed dicts are kept are given.
pub const fn dict_3_11(
    ma_keys: u64,
    ma_values: u64,
    values_start: u64,
    managed: ManagedDict,
) -> DictOffsets {
    DictOffsets {
        format: DictFormat::Keys311,
        ma_used: 16,
        ma_keys,
        ma_values,
        dk_log2_size: 8,
        dk_log2_index_bytes: 9,
        dk_kind: 10,
        dk_nentries: 24,
        dk_indices: 32,
        entry_size: 24,
        unicode_entry_size: 16,
        values_start,
        managed,
    }
}

// ---- The tables, oldest first ----

/// CPython 2.7.x: `interp_head` and `_PyThreadState_Current` are plain globals; byte-string
/// names, unsigned `co_lnotab` line deltas, `int` and `long`, open-addressing dicts.
pub const V2_7: Layout = Layout {
    first: (2, 7, 0),
    last: (2, 7, 99),
    root: Root::InterpHead,
    frames: FrameShape::FrameObject,
    linetable: LineTableFormat::Lnotab { signed: false },
    runtime: RuntimeOffsets {
        interpreters_head: 0,
        gil: GilHolder::CurrentSymbol,
    },
    interp: InterpreterOffsets {
        next: 0,
        threads_head: 8,
        modules: 16,
    },
    thread: ThreadOffsets {
        size: 152,
        next: 0,
        interp: 8,
        frame: FramePtr::InThread(16),
        thread_id: 144,
        native_thread_id: None,
        datastack_chunk: None,
        datastack_top: None,
    },
    frame: FrameOffsets {
        read_size: 128,
        code: 32,
        code_tag_bits: 0,
        previous: 24,
        instr: InstrPos::Lasti {
            offset: 120,
            scale: 1,
        },
        entry: EntryMark::None,
        localsplus: 376,
        chunk_header: 0,
        chunk_previous: 0,
        chunk_size: 0,
        stack_top: StackTop::Unknown,
        gen: GenLink::None,
    },
    code: CodeOffsets {
        size: 112,
        argcount: 16,
        flags: 28,
        firstlineno: 96,
        nlocals: 20,
        varnames: 56,
        filename: 80,
        name: 88,
        qualname: None,
        linetable: 104,
        code_adaptive: 0,
        frame_words: None,
        ops: None,
        validate_from: 8,
        validate_to: 112,
    },
    // Names are byte strings; the str fields are unused and hold 3.3's values.
    unicode: UnicodeOffsets {
        format: StrFormat::Bytes27,
        ..STR_3_3
    },
    object: ObjectOffsets {
        ob_type: 8,
        ob_size: 16,
        tp_name: 24,
        tp_flags: 168,
        tp_basicsize: 32,
        tp_dictoffset: 288,
        ht_cached_keys: None,
        bytes_sval: 36,
        tuple_items: 24,
        list_items: 24,
        float_fval: 16,
        long_digits: 24,
        ints: IntFormat::ObSize,
        int27: Some((1 << 23, 16)),
        module_dict: MODULE_MD_DICT,
    },
    dict: DictOffsets {
        format: DictFormat::Table27 {
            mask: 32,
            table: 40,
        },
        ma_used: 24,
        ma_keys: 0,
        ma_values: 0,
        dk_log2_size: 0,
        dk_log2_index_bytes: 0,
        dk_kind: 0,
        dk_nentries: 0,
        dk_indices: 0,
        entry_size: 24,
        unicode_entry_size: 24,
        values_start: 0,
        managed: ManagedDict::None,
    },
};

/// CPython 3.6.x: still `interp_head` and `_PyThreadState_Current`, the same frame objects;
/// signed line deltas, PEP 393 strings, compact dicts with an index array.
pub const V3_6: Layout = Layout {
    first: (3, 6, 0),
    last: (3, 6, 99),
    linetable: LineTableFormat::Lnotab { signed: true },
    thread: ThreadOffsets {
        size: 160,
        next: 8,
        interp: 16,
        frame: FramePtr::InThread(24),
        thread_id: 152,
        ..V2_7.thread
    },
    code: CodeOffsets {
        size: 120,
        argcount: 16,
        flags: 32,
        firstlineno: 36,
        nlocals: 24,
        varnames: 64,
        filename: 96,
        name: 104,
        qualname: None,
        linetable: 112,
        code_adaptive: 0,
        frame_words: None,
        ops: None,
        validate_from: 8,
        validate_to: 120,
    },
    unicode: STR_3_3,
    object: ObjectOffsets {
        ht_cached_keys: Some(856),
        bytes_sval: 32,
        int27: None,
        ..V2_7.object
    },
    dict: DictOffsets {
        format: DictFormat::Keys36 { dk_size: 8 },
        ma_used: 16,
        ma_keys: 32,
        ma_values: 40,
        dk_nentries: 32,
        dk_indices: 40,
        ..V2_7.dict
    },
    ..V2_7
};

/// CPython 3.7.0–3.7.3: the first with `_PyRuntime`. A smaller `PyGC_Head` (24 bytes; 32
/// from 3.7.4, bpo-27987) puts `_PyRuntime.gilstate` 88 bytes earlier than in 3.7.4+.
pub const V3_7_0: Layout = Layout {
    first: (3, 7, 0),
    last: (3, 7, 3),
    root: Root::Runtime,
    runtime: RuntimeOffsets {
        interpreters_head: 24,
        gil: GilHolder::RuntimeTstateCurrent(1392),
    },
    interp: InterpreterOffsets {
        modules: 40,
        ..V3_6.interp
    },
    thread: ThreadOffsets {
        size: 184,
        thread_id: 176,
        ..V3_6.thread
    },
    frame: FrameOffsets {
        read_size: 112,
        instr: InstrPos::Lasti {
            offset: 104,
            scale: 1,
        },
        localsplus: 360,
        // f_valuestack, f_stacktop, ..., f_gen (3.7+) before f_lasti.
        stack_top: StackTop::ObjectPointer {
            valuestack: 64,
            stacktop: 72,
        },
        gen: GenLink::Field(96),
        ..V3_6.frame
    },
    ..V3_6
};

/// CPython 3.7.4–3.7.x: `PyGC_Head` grew to 32 bytes, moving `_PyRuntime.gilstate`.
pub const V3_7: Layout = Layout {
    first: (3, 7, 4),
    last: (3, 7, 99),
    runtime: RuntimeOffsets {
        gil: GilHolder::RuntimeTstateCurrent(1480),
        ..V3_7_0.runtime
    },
    ..V3_7_0
};

/// CPython 3.8.x: `co_posonlyargcount` moves the code object's fields.
pub const V3_8: Layout = Layout {
    first: (3, 8, 0),
    last: (3, 8, 99),
    runtime: RuntimeOffsets {
        interpreters_head: 32,
        gil: GilHolder::RuntimeTstateCurrent(1368),
    },
    interp: InterpreterOffsets {
        modules: 56,
        ..V3_7.interp
    },
    code: CodeOffsets {
        size: 128,
        argcount: 16,
        flags: 36,
        firstlineno: 40,
        nlocals: 28,
        varnames: 72,
        filename: 104,
        name: 112,
        qualname: None,
        linetable: 120,
        code_adaptive: 0,
        frame_words: None,
        ops: None,
        validate_from: 8,
        validate_to: 128,
    },
    object: ObjectOffsets {
        ht_cached_keys: Some(872),
        ..V3_7.object
    },
    ..V3_7
};

/// CPython 3.9.x: `_PyRuntime` with the GIL state and `interp->modules` moved.
pub const V3_9: Layout = Layout {
    first: (3, 9, 0),
    last: (3, 9, 99),
    runtime: RuntimeOffsets {
        gil: GilHolder::RuntimeTstateCurrent(568),
        ..V3_8.runtime
    },
    interp: InterpreterOffsets {
        modules: 856,
        ..V3_8.interp
    },
    object: ObjectOffsets {
        ht_cached_keys: Some(864),
        ..V3_8.object
    },
    ..V3_8
};

/// CPython 3.10.x: frame objects with `f_lasti` counting 2-byte code units, and 3.10's line
/// table.
pub const V3_10: Layout = Layout {
    first: (3, 10, 0),
    last: (3, 10, 99),
    frame: FrameOffsets {
        read_size: 104,
        instr: InstrPos::Lasti {
            offset: 96,
            scale: 2,
        },
        localsplus: 352,
        // f_valuestack, f_trace, f_stackdepth, two chars, f_gen, f_lasti.
        stack_top: StackTop::ObjectDepth {
            valuestack: 64,
            depth: 80,
        },
        gen: GenLink::Field(88),
        ..V3_9.frame
    },
    linetable: LineTableFormat::Linetable310,
    object: ObjectOffsets {
        ht_cached_keys: Some(872),
        ..V3_9.object
    },
    ..V3_9
};

/// CPython 3.11.x: `_PyInterpreterFrame`s in datastack chunks, reached through `_PyCFrame`;
/// PEP 657 location tables, `co_qualname`, dict keys with `dk_log2_size` and managed dicts
/// (Include/cpython/pystate.h, Include/internal/pycore_frame.h, Include/cpython/code.h,
/// Include/internal/pycore_runtime.h, pycore_interp.h, pycore_dict.h).
pub const V3_11: Layout = Layout {
    first: (3, 11, 0),
    last: (3, 11, 99),
    frames: FrameShape::InterpreterFrame,
    linetable: LineTableFormat::Locations311,
    runtime: RuntimeOffsets {
        interpreters_head: 40,
        gil: GilHolder::RuntimeTstateCurrent(576),
    },
    interp: InterpreterOffsets {
        next: 0,
        threads_head: 16,
        modules: 888,
    },
    thread: ThreadOffsets {
        size: 320,
        next: 8,
        interp: 16,
        frame: FramePtr::ViaCFrame {
            cframe: 56,
            current_frame: 8,
        },
        thread_id: 152,
        native_thread_id: Some(160),
        datastack_chunk: Some(296),
        datastack_top: Some(304),
    },
    frame: FrameOffsets {
        read_size: 72,
        code: 32,
        code_tag_bits: 0,
        previous: 48,
        instr: InstrPos::Pointer(56),
        entry: EntryMark::IsEntryByte {
            is_entry: 68,
            owner: 69,
        },
        localsplus: 72,
        chunk_header: STACK_CHUNK_HEADER,
        chunk_previous: STACK_CHUNK_PREVIOUS,
        chunk_size: STACK_CHUNK_SIZE,
        stack_top: StackTop::Index(64),
        // PyObject_HEAD, gi_code, gi_weakreflist, gi_name, gi_qualname (48), gi_exc_state
        // (two pointers), gi_origin_or_finalizer, four chars, padded to 8.
        gen: GenLink::Embedded(80),
    },
    code: CodeOffsets {
        size: 192,
        argcount: 56,
        flags: 48,
        firstlineno: 72,
        nlocals: 80,
        varnames: 96,
        filename: 112,
        name: 120,
        qualname: Some(128),
        linetable: 136,
        code_adaptive: 184,
        frame_words: Some((68, 76)),
        // Lib/opcode.py: RETURN_VALUE (3.11 has no RETURN_CONST).
        ops: Some(FrameOps {
            returns: [83, 83, 83, 83],
        }),
        validate_from: 8,
        validate_to: 144,
    },
    dict: dict_3_11(
        32,
        40,
        0,
        ManagedDict::Split311 {
            dict_back: 24,
            values_back: 32,
        },
    ),
    // The root, strings (3.3's) and the other objects are 3.10's.
    ..V3_10
};

/// CPython 3.12.x: `_PyCFrame.current_frame` first, shim frames owned by the C stack,
/// `interp->ceval.gil`, `imports.modules`, no `wstr` in strings, `lv_tag` ints and a tagged
/// dict-or-values word before managed-dict objects.
pub const V3_12: Layout = Layout {
    first: (3, 12, 0),
    last: (3, 12, 99),
    runtime: RuntimeOffsets {
        interpreters_head: 40,
        gil: GilHolder::InterpGil {
            gil_ptr: 384,
            locked: 16,
            holder: 8,
        },
    },
    interp: InterpreterOffsets {
        next: 0,
        threads_head: 72,
        modules: 944,
    },
    thread: ThreadOffsets {
        size: 248,
        next: 8,
        interp: 16,
        frame: FramePtr::ViaCFrame {
            cframe: 56,
            current_frame: 0,
        },
        thread_id: 136,
        native_thread_id: Some(144),
        datastack_chunk: Some(232),
        datastack_top: Some(240),
    },
    frame: FrameOffsets {
        read_size: 72,
        code: 0,
        code_tag_bits: 0,
        previous: 8,
        instr: InstrPos::Pointer(56),
        entry: EntryMark::ShimOwner {
            owner: 70,
            cstack: 3,
            interpreter: u8::MAX,
        },
        localsplus: 72,
        chunk_header: 24,
        chunk_previous: 0,
        chunk_size: 8,
        stack_top: StackTop::Index(64),
        // As 3.11 without gi_code.
        gen: GenLink::Embedded(72),
    },
    code: CodeOffsets {
        size: 200,
        argcount: 52,
        flags: 48,
        firstlineno: 68,
        nlocals: 80,
        varnames: 96,
        filename: 112,
        name: 120,
        qualname: Some(128),
        linetable: 136,
        code_adaptive: 192,
        frame_words: Some((64, 72)),
        // Lib/opcode.py: RETURN_VALUE, RETURN_CONST, INSTRUMENTED_RETURN_VALUE,
        // INSTRUMENTED_RETURN_CONST.
        ops: Some(FrameOps {
            returns: [83, 121, 242, 247],
        }),
        validate_from: 8,
        validate_to: 144,
    },
    unicode: UnicodeOffsets {
        ascii_size: 40,
        compact_size: 56,
        data_any: 56,
        ..V3_11.unicode
    },
    object: ObjectOffsets {
        ht_cached_keys: Some(880),
        ints: IntFormat::LvTag,
        ..V3_11.object
    },
    dict: dict_3_11(32, 40, 0, ManagedDict::Tagged312 { back: 24 }),
    ..V3_11
};

/// Every table, oldest first.
pub const ALL: &[&Layout] = &[
    &V2_7, &V3_6, &V3_7_0, &V3_7, &V3_8, &V3_9, &V3_10, &V3_11, &V3_12,
];
