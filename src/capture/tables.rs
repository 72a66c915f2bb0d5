//! Offset tables for CPython 2.7 to 3.12, one per range of versions with the same layout.
//!
//! Every number is a fact read from that release's headers with `offsetof`/`sizeof`
//! (`tools/offsets.c` prints them; structs that are not installed, such as 3.6–3.10's
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

/// Every table, oldest first.
pub const ALL: &[&Layout] = &[&V3_11];
