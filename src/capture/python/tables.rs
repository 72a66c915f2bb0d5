//! Offset tables for CPython 2.7 to 3.12, one per range of versions with the same layout.
//!
//! Every number is a fact read from that release's headers with `offsetof`/`sizeof`
//! (`tools/offsets/offsets.c` prints them; structs that are not installed, such as 3.6–3.10's
//! `PyDictKeysObject` and `PyModuleObject`, come from the sources). 3.13 and later publish
//! their offsets in `_PyRuntime.debug_offsets`: see `debug_offsets.rs`. x86_64/aarch64 LP64.

use super::layout::*;

/// CPython 3.11.x (Include/cpython/pystate.h, Include/internal/pycore_frame.h,
/// Include/cpython/code.h, Include/internal/pycore_runtime.h, pycore_interp.h, pycore_dict.h).
pub const V3_11: Layout = Layout {
    first: (3, 11, 0),
    last: (3, 11, 99),
    root: Root::Runtime,
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
        entry: EntryMark::IsEntryByte(68),
        localsplus: 72,
        chunk_header: 24,
        chunk_previous: 0,
        chunk_size: 8,
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
        validate_from: 8,
        validate_to: 144,
    },
    unicode: UnicodeOffsets {
        format: StrFormat::Pep393,
        length: 16,
        state: 32,
        kind_shift: 2,
        compact_bit: 5,
        ascii_bit: 6,
        ascii_size: 48,
        compact_size: 72,
        data_any: 72,
    },
    object: ObjectOffsets {
        ob_type: 8,
        ob_size: 16,
        tp_name: 24,
        tp_flags: 168,
        tp_basicsize: 32,
        tp_dictoffset: 288,
        ht_cached_keys: Some(872),
        bytes_sval: 32,
        tuple_items: 24,
        list_items: 24,
        float_fval: 16,
        long_digits: 24,
        ints: IntFormat::ObSize,
        int27: None,
        module_dict: 16,
    },
    dict: DictOffsets {
        format: DictFormat::Keys311,
        ma_used: 16,
        ma_keys: 32,
        ma_values: 40,
        dk_log2_size: 8,
        dk_log2_index_bytes: 9,
        dk_kind: 10,
        dk_nentries: 24,
        dk_indices: 32,
        entry_size: 24,
        unicode_entry_size: 16,
        values_start: 0,
        managed: ManagedDict::Split311 {
            dict_back: 24,
            values_back: 32,
        },
    },
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
    dict: DictOffsets {
        managed: ManagedDict::Tagged312 { back: 24 },
        ..V3_11.dict
    },
    ..V3_11
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
        ..V3_9.frame
    },
    linetable: LineTableFormat::Linetable310,
    object: ObjectOffsets {
        ht_cached_keys: Some(872),
        ..V3_9.object
    },
    ..V3_9
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
        validate_from: 8,
        validate_to: 128,
    },
    object: ObjectOffsets {
        ht_cached_keys: Some(872),
        ..V3_7.object
    },
    ..V3_7
};

/// CPython 3.7.0–3.7.3: a smaller `PyGC_Head` (24 bytes; 32 from 3.7.4, bpo-27987) puts
/// `_PyRuntime.gilstate` 88 bytes earlier.
pub const V3_7_0: Layout = Layout {
    first: (3, 7, 0),
    last: (3, 7, 3),
    runtime: RuntimeOffsets {
        gil: GilHolder::RuntimeTstateCurrent(1392),
        ..V3_7.runtime
    },
    ..V3_7
};

/// CPython 3.7.4–3.7.x: the first with `_PyRuntime`.
pub const V3_7: Layout = Layout {
    first: (3, 7, 4),
    last: (3, 7, 99),
    root: Root::Runtime,
    runtime: RuntimeOffsets {
        interpreters_head: 24,
        gil: GilHolder::RuntimeTstateCurrent(1480),
    },
    interp: InterpreterOffsets {
        modules: 40,
        ..V3_6.interp
    },
    thread: ThreadOffsets {
        size: 184,
        next: 8,
        interp: 16,
        frame: FramePtr::InThread(24),
        thread_id: 176,
        native_thread_id: None,
        datastack_chunk: None,
        datastack_top: None,
    },
    frame: FrameOffsets {
        read_size: 112,
        instr: InstrPos::Lasti {
            offset: 104,
            scale: 1,
        },
        localsplus: 360,
        ..V3_6.frame
    },
    ..V3_6
};

/// CPython 3.6.x: `interp_head` and `_PyThreadState_Current` are plain globals.
pub const V3_6: Layout = Layout {
    first: (3, 6, 0),
    last: (3, 6, 99),
    root: Root::InterpHead,
    frames: FrameShape::FrameObject,
    linetable: LineTableFormat::Lnotab { signed: true },
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
        size: 160,
        next: 8,
        interp: 16,
        frame: FramePtr::InThread(24),
        thread_id: 152,
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
        validate_from: 8,
        validate_to: 120,
    },
    unicode: V3_11.unicode,
    object: ObjectOffsets {
        ht_cached_keys: Some(856),
        ..V3_11.object
    },
    dict: DictOffsets {
        format: DictFormat::Keys36 { dk_size: 8 },
        ma_used: 16,
        ma_keys: 32,
        ma_values: 40,
        dk_log2_size: 0,
        dk_log2_index_bytes: 0,
        dk_kind: 0,
        dk_nentries: 32,
        dk_indices: 40,
        entry_size: 24,
        unicode_entry_size: 24,
        values_start: 0,
        managed: ManagedDict::None,
    },
};

/// CPython 2.7.x: byte-string names, unsigned `co_lnotab` line deltas, `int` and `long`,
/// open-addressing dicts.
pub const V2_7: Layout = Layout {
    first: (2, 7, 0),
    last: (2, 7, 99),
    linetable: LineTableFormat::Lnotab { signed: false },
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
        validate_from: 8,
        validate_to: 112,
    },
    unicode: UnicodeOffsets {
        format: StrFormat::Bytes27,
        ..V3_11.unicode
    },
    object: ObjectOffsets {
        bytes_sval: 36,
        ht_cached_keys: None,
        int27: Some((1 << 23, 16)),
        ..V3_6.object
    },
    dict: DictOffsets {
        format: DictFormat::Table27 {
            mask: 32,
            table: 40,
        },
        ma_used: 24,
        ma_keys: 0,
        ma_values: 0,
        dk_nentries: 0,
        dk_indices: 0,
        ..V3_6.dict
    },
    ..V3_6
};

/// Every table, oldest first.
pub const ALL: &[&Layout] = &[
    &V2_7, &V3_6, &V3_7_0, &V3_7, &V3_8, &V3_9, &V3_10, &V3_11, &V3_12,
];
