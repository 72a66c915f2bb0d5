//! CPython 3.13+ describes its own layout in `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`,
//! the first field of `_PyRuntime`): a cookie, the version, and for each struct a profiler
//! reads (runtime, interpreter, thread, frame, code, and the object types) its size and the
//! offsets of its fields. We read that table from the target and build a [`Layout`] from it.
//!
//! The table's own shape changes between minor versions (fields are inserted), so we keep,
//! per minor version, where each field we use sits in it ([`DebugShape`]: every field is a
//! `uint64_t`, so a position is an index). A few facts the table does not give (the top of
//! the frame stack, `co_nlocals`, frame-owner values, dict internals) come from
//! [`DebugShape::extras`], read from that version's headers.
//!
//! A newer minor version than we know (3.16+) is read with the newest shape only when the
//! table proves compatible: its anchor fields, whose values have not changed since 3.13,
//! hold the expected values at the expected places. Otherwise the version is unsupported.

use super::layout::*;
use super::tables::V3_12;
use super::version::Version;
use crate::capture::os::memory::{words_in, Fields, Memory};
use anyhow::{bail, Context, Result};
use std::sync::Mutex;

/// `_Py_DebugOffsets.cookie`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Facts a layout needs that `_Py_DebugOffsets` does not carry, per minor version.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// `PyThreadState.datastack_top`
    pub datastack_top: u64,
    pub co_flags: u64,
    pub co_nlocals: u64,
    /// Low bits of `f_executable` that tag it (3.14's `_PyStackRef`).
    pub code_tag_bits: u64,
    /// Owner values of shim frames: `FRAME_OWNED_BY_CSTACK`, `FRAME_OWNED_BY_INTERPRETER`
    /// (`u8::MAX`: no such value).
    pub owner_cstack: u8,
    pub owner_interpreter: u8,
    pub tp_basicsize: u64,
    pub tp_dictoffset: u64,
    pub ht_cached_keys: u64,
}

/// Index (in 8-byte words from the start of `_Py_DebugOffsets`) of each field we read, for
/// one minor version's table; `None` where that version's table lacks the field.
#[derive(Debug, Clone, Copy)]
pub struct DebugShape {
    pub minor: u64,
    /// Size of the table in bytes.
    pub size: u64,
    pub version: usize,
    pub free_threaded: usize,
    pub interpreters_head: usize,
    pub interp_next: usize,
    pub threads_head: usize,
    pub imports_modules: usize,
    pub ceval_gil: usize,
    pub gil_runtime_state: usize,
    pub gil_locked: usize,
    pub gil_holder: usize,
    pub thread_next: usize,
    pub thread_interp: usize,
    pub current_frame: usize,
    pub thread_id: usize,
    pub native_thread_id: usize,
    pub datastack_chunk: usize,
    pub frame_previous: usize,
    pub frame_executable: usize,
    pub frame_instr_ptr: usize,
    pub frame_localsplus: usize,
    pub frame_owner: usize,
    pub code_filename: usize,
    pub code_name: usize,
    pub code_qualname: usize,
    pub code_linetable: usize,
    pub code_firstlineno: usize,
    pub code_argcount: usize,
    pub code_localsplusnames: usize,
    pub code_adaptive: usize,
    pub ob_type: usize,
    pub tp_name: usize,
    pub tp_flags: usize,
    pub tp_basicsize: Option<usize>,
    pub tp_dictoffset: Option<usize>,
    pub ht_cached_keys: Option<usize>,
    pub tuple_item: usize,
    pub list_item: usize,
    pub dict_keys: usize,
    pub dict_values: usize,
    pub float_fval: usize,
    pub long_tag: usize,
    pub long_digit: usize,
    pub bytes_size: usize,
    pub bytes_sval: usize,
    pub str_state: usize,
    pub str_length: usize,
    pub str_ascii_size: usize,
    pub str_compact_size: Option<usize>,
    pub extras: Extras,
}

/// 3.13 (Include/internal/pycore_runtime.h).
pub const SHAPE_3_13: DebugShape = DebugShape {
    minor: 13,
    size: 584,
    version: 1,
    free_threaded: 2,
    interpreters_head: 5,
    interp_next: 8,
    threads_head: 9,
    imports_modules: 11,
    ceval_gil: 14,
    gil_runtime_state: 15,
    gil_locked: 17,
    gil_holder: 18,
    thread_next: 21,
    thread_interp: 22,
    current_frame: 23,
    thread_id: 24,
    native_thread_id: 25,
    datastack_chunk: 26,
    frame_previous: 29,
    frame_executable: 30,
    frame_instr_ptr: 31,
    frame_localsplus: 32,
    frame_owner: 33,
    code_filename: 35,
    code_name: 36,
    code_qualname: 37,
    code_linetable: 38,
    code_firstlineno: 39,
    code_argcount: 40,
    code_localsplusnames: 41,
    code_adaptive: 43,
    ob_type: 45,
    tp_name: 47,
    tp_flags: 49,
    tp_basicsize: None,
    tp_dictoffset: None,
    ht_cached_keys: None,
    tuple_item: 51,
    list_item: 54,
    dict_keys: 57,
    dict_values: 58,
    float_fval: 60,
    long_tag: 62,
    long_digit: 63,
    bytes_size: 65,
    bytes_sval: 66,
    str_state: 68,
    str_length: 69,
    str_ascii_size: 70,
    str_compact_size: None,
    extras: Extras {
        datastack_top: 240,
        co_flags: 48,
        co_nlocals: 80,
        code_tag_bits: 0,
        owner_cstack: 3,
        owner_interpreter: u8::MAX,
        tp_basicsize: 32,
        tp_dictoffset: 288,
        ht_cached_keys: 880,
    },
};

/// 3.14 (Include/internal/pycore_debug_offsets.h): adds `threads_main`,
/// `code_object_generation`, `tlbc_generation`, frame `stackpointer` and `tlbc_index`,
/// `co_tlbc` and a set section.
pub const SHAPE_3_14: DebugShape = DebugShape {
    minor: 14,
    size: 760,
    version: 1,
    free_threaded: 2,
    interpreters_head: 5,
    interp_next: 8,
    threads_head: 9,
    imports_modules: 12,
    ceval_gil: 15,
    gil_runtime_state: 16,
    gil_locked: 18,
    gil_holder: 19,
    thread_next: 24,
    thread_interp: 25,
    current_frame: 26,
    thread_id: 27,
    native_thread_id: 28,
    datastack_chunk: 29,
    frame_previous: 32,
    frame_executable: 33,
    frame_instr_ptr: 34,
    frame_localsplus: 35,
    frame_owner: 36,
    code_filename: 40,
    code_name: 41,
    code_qualname: 42,
    code_linetable: 43,
    code_firstlineno: 44,
    code_argcount: 45,
    code_localsplusnames: 46,
    code_adaptive: 48,
    ob_type: 51,
    tp_name: 53,
    tp_flags: 55,
    tp_basicsize: None,
    tp_dictoffset: None,
    ht_cached_keys: None,
    tuple_item: 57,
    list_item: 60,
    dict_keys: 67,
    dict_values: 68,
    float_fval: 70,
    long_tag: 72,
    long_digit: 73,
    bytes_size: 75,
    bytes_sval: 76,
    str_state: 78,
    str_length: 79,
    str_ascii_size: 80,
    str_compact_size: None,
    extras: Extras {
        datastack_top: 240,
        co_flags: 48,
        co_nlocals: 80,
        code_tag_bits: 2,
        owner_cstack: 4,
        owner_interpreter: 3,
        tp_basicsize: 32,
        tp_dictoffset: 288,
        ht_cached_keys: 880,
    },
};

/// 3.15: adds `base_frame`, profiling fields, `holds_gil`, an exception section, type sizes
/// and `ht_cached_keys`, and the compact str size.
pub const SHAPE_3_15: DebugShape = DebugShape {
    minor: 15,
    size: 888,
    version: 1,
    free_threaded: 2,
    interpreters_head: 5,
    interp_next: 8,
    threads_head: 9,
    imports_modules: 12,
    ceval_gil: 15,
    gil_runtime_state: 16,
    gil_locked: 18,
    gil_holder: 19,
    thread_next: 24,
    thread_interp: 25,
    current_frame: 26,
    thread_id: 30,
    native_thread_id: 31,
    datastack_chunk: 32,
    frame_previous: 40,
    frame_executable: 41,
    frame_instr_ptr: 42,
    frame_localsplus: 43,
    frame_owner: 44,
    code_filename: 48,
    code_name: 49,
    code_qualname: 50,
    code_linetable: 51,
    code_firstlineno: 52,
    code_argcount: 53,
    code_localsplusnames: 54,
    code_adaptive: 56,
    ob_type: 59,
    tp_name: 61,
    tp_flags: 63,
    tp_basicsize: Some(64),
    tp_dictoffset: Some(65),
    ht_cached_keys: Some(67),
    tuple_item: 69,
    list_item: 72,
    dict_keys: 79,
    dict_values: 80,
    float_fval: 82,
    long_tag: 84,
    long_digit: 85,
    bytes_size: 87,
    bytes_sval: 88,
    str_state: 90,
    str_length: 91,
    str_ascii_size: 92,
    str_compact_size: Some(93),
    extras: Extras {
        datastack_top: 264,
        co_flags: 48,
        co_nlocals: 80,
        code_tag_bits: 2,
        owner_cstack: u8::MAX,
        owner_interpreter: 3,
        tp_basicsize: 32,
        tp_dictoffset: 288,
        ht_cached_keys: 888,
    },
};

/// Every table shape we know, oldest first.
pub const SHAPES: &[&DebugShape] = &[&SHAPE_3_13, &SHAPE_3_14, &SHAPE_3_15];

/// Fields whose values have been the same in every version since 3.13: if a table read
/// with a shape holds these values there, the shape fits it. (index getter, value)
fn anchors(s: &DebugShape) -> [(usize, u64); 9] {
    [
        (s.ob_type, 8),
        (s.tp_name, 24),
        (s.tp_flags, 168),
        (s.list_item, 24),
        (s.float_fval, 16),
        (s.long_tag, 16),
        (s.long_digit, 24),
        (s.bytes_sval, 32),
        (s.str_state, 32),
    ]
}

/// Find `_PyRuntime` in a binary's data by its debug-offsets cookie.
pub fn scan_for_runtime(mem: &dyn Memory, ranges: &[(u64, u64)]) -> Option<u64> {
    let cookie = u64::from_le_bytes(*COOKIE);
    words_in(mem, ranges).find_map(|(addr, w)| (w == cookie).then_some(addr))
}

/// Layouts built from targets, kept for the life of the process (one per distinct layout).
static BUILT: Mutex<Vec<&'static Layout>> = Mutex::new(Vec::new());

/// Build the layout of the interpreter whose `_PyRuntime` is at `runtime`.
pub fn read_layout(mem: &dyn Memory, runtime: u64, version: &Version) -> Result<&'static Layout> {
    let biggest = SHAPES.iter().map(|s| s.size).max().unwrap_or(0) as usize;
    // The table may be smaller than the biggest shape (and end near a mapping's end).
    let raw = mem
        .read_vec(runtime, biggest)
        .or_else(|_| mem.read_vec(runtime, SHAPE_3_13.size as usize))
        .with_context(|| format!("could not read _PyRuntime.debug_offsets at {runtime:#x}"))?;
    let layout = layout_from_table(&raw, version)?;
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = built.iter().find(|l| ***l == layout) {
        return Ok(l);
    }
    let leaked: &'static Layout = Box::leak(Box::new(layout));
    built.push(leaked);
    Ok(leaked)
}

/// The shape to read a table of `version` with: the one of its minor version, or for a newer
/// minor version the newest one, if the table's anchors agree.
pub fn shape_for(raw: &[u8], version: &Version) -> Result<&'static DebugShape> {
    let newest = SHAPES[SHAPES.len() - 1];
    let shape = match SHAPES.iter().find(|s| s.minor == version.minor) {
        Some(s) => *s,
        None if version.major == 3 && version.minor > newest.minor => newest,
        None => bail!("Python {version} has no debug offsets we know how to read"),
    };
    let f = Fields(raw);
    let word = |i: usize| (8 * i + 8 <= raw.len()).then(|| f.u64(8 * i));
    let fits = (shape.size as usize) <= raw.len()
        && anchors(shape).iter().all(|&(i, v)| word(i) == Some(v));
    if !fits {
        if shape.minor == version.minor {
            bail!(
                "the debug offsets of Python {version} do not have the layout of 3.{} \
                 (a pre-release or a modified build?)",
                shape.minor
            );
        }
        bail!(
            "Python {version} is newer than this py-spy knows, and its debug offsets are laid \
             out differently from 3.{}'s; a newer py-spy is needed",
            shape.minor
        );
    }
    Ok(shape)
}

/// Decode a `_Py_DebugOffsets` table (`raw`, from its cookie) into a layout.
pub fn layout_from_table(raw: &[u8], version: &Version) -> Result<Layout> {
    if raw.len() < 24 || &raw[..8] != COOKIE {
        bail!("_PyRuntime does not start with the debug-offsets cookie");
    }
    let shape = shape_for(raw, version)?;
    let f = Fields(raw);
    let w = |i: usize| f.u64(8 * i);
    let table_version = Version::from_hex(w(shape.version) & 0xffff_ffff)
        .context("the debug offsets carry no valid version")?;
    if (table_version.major, table_version.minor) != (version.major, version.minor) {
        bail!("the debug offsets say Python {table_version}, the binary says {version}");
    }
    if w(shape.free_threaded) != 0 {
        bail!("free-threaded builds of Python {version} are not supported yet");
    }
    let x = shape.extras;
    let gil_base = w(shape.gil_runtime_state);
    let thread_fields = [
        w(shape.thread_next),
        w(shape.thread_interp),
        w(shape.current_frame),
        w(shape.thread_id),
        w(shape.native_thread_id),
        w(shape.datastack_chunk),
        x.datastack_top,
    ];
    let frame_end = [
        w(shape.frame_previous) + 8,
        w(shape.frame_executable) + 8,
        w(shape.frame_instr_ptr) + 8,
        w(shape.frame_owner) + 1,
    ];
    let code_names = [
        w(shape.code_filename),
        w(shape.code_name),
        w(shape.code_qualname),
        w(shape.code_linetable),
        w(shape.code_localsplusnames),
    ];
    let code_end = code_names.iter().max().copied().unwrap_or(0) + 8;
    let ascii_size = w(shape.str_ascii_size);
    let compact_size = shape.str_compact_size.map_or(ascii_size + 16, w);
    let layout = Layout {
        first: (3, version.minor, 0),
        last: (3, version.minor, 99),
        root: Root::Runtime,
        frames: FrameShape::InterpreterFrame,
        linetable: LineTableFormat::Locations311,
        runtime: RuntimeOffsets {
            interpreters_head: w(shape.interpreters_head),
            gil: GilHolder::InterpGil {
                gil_ptr: w(shape.ceval_gil),
                locked: w(shape.gil_locked).wrapping_sub(gil_base),
                holder: w(shape.gil_holder).wrapping_sub(gil_base),
            },
        },
        interp: InterpreterOffsets {
            next: w(shape.interp_next),
            threads_head: w(shape.threads_head),
            modules: w(shape.imports_modules),
        },
        thread: ThreadOffsets {
            size: thread_fields.iter().max().copied().unwrap_or(0) + 8,
            next: w(shape.thread_next),
            interp: w(shape.thread_interp),
            frame: FramePtr::InThread(w(shape.current_frame)),
            thread_id: w(shape.thread_id),
            native_thread_id: Some(w(shape.native_thread_id)),
            datastack_chunk: Some(w(shape.datastack_chunk)),
            datastack_top: Some(x.datastack_top),
        },
        frame: FrameOffsets {
            read_size: frame_end.iter().max().copied().unwrap_or(0),
            code: w(shape.frame_executable),
            code_tag_bits: x.code_tag_bits,
            previous: w(shape.frame_previous),
            instr: InstrPos::Pointer(w(shape.frame_instr_ptr)),
            entry: EntryMark::ShimOwner {
                owner: w(shape.frame_owner),
                cstack: x.owner_cstack,
                interpreter: x.owner_interpreter,
            },
            localsplus: w(shape.frame_localsplus),
            // `_PyStackChunk` is unchanged since 3.11.
            ..V3_12.frame
        },
        code: CodeOffsets {
            size: w(shape.code_adaptive).max(code_end),
            argcount: w(shape.code_argcount),
            flags: x.co_flags,
            firstlineno: w(shape.code_firstlineno),
            nlocals: x.co_nlocals,
            varnames: w(shape.code_localsplusnames),
            filename: w(shape.code_filename),
            name: w(shape.code_name),
            qualname: Some(w(shape.code_qualname)),
            linetable: w(shape.code_linetable),
            code_adaptive: w(shape.code_adaptive),
            validate_from: 8,
            validate_to: code_end,
        },
        // The state's bit positions are 3.12's.
        unicode: UnicodeOffsets {
            length: w(shape.str_length),
            state: w(shape.str_state),
            ascii_size,
            compact_size,
            data_any: compact_size,
            ..V3_12.unicode
        },
        object: ObjectOffsets {
            ob_type: w(shape.ob_type),
            ob_size: w(shape.bytes_size),
            tp_name: w(shape.tp_name),
            tp_flags: w(shape.tp_flags),
            tp_basicsize: shape.tp_basicsize.map_or(x.tp_basicsize, w),
            tp_dictoffset: shape.tp_dictoffset.map_or(x.tp_dictoffset, w),
            ht_cached_keys: Some(shape.ht_cached_keys.map_or(x.ht_cached_keys, w)),
            bytes_sval: w(shape.bytes_sval),
            tuple_items: w(shape.tuple_item),
            list_items: w(shape.list_item),
            float_fval: w(shape.float_fval),
            long_digits: w(shape.long_digit),
            ..V3_12.object
        },
        // The keys object and its entries are 3.12's; the values gained a header and
        // instance attributes moved inline in 3.13.
        dict: DictOffsets {
            ma_keys: w(shape.dict_keys),
            ma_values: w(shape.dict_values),
            values_start: 8,
            managed: ManagedDict::Inline313 { dict_back: 24 },
            ..V3_12.dict
        },
    };
    layout.check().map_err(|e| {
        anyhow::anyhow!("the debug offsets of Python {version} are implausible: {e}")
    })?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with the shape's values as found in CPython 3.15.2's binary.
    fn table_315() -> Vec<u8> {
        let values: [u64; 111] = [
            0, 0x30f02f0, 0, 346568, 912, 936, 226240, 7272, 7264, 7336, 7352, 7400, 7592, 7576,
            7584, 16, 7736, 0, 7752, 7744, 7944, 0, 888, 0, 8, 16, 72, 80, 88, 96, 176, 184, 256,
            32, 36, 40, 136, 288, 0, 88, 8, 0, 56, 80, 74, 64, 0, 216, 112, 120, 128, 136, 68, 52,
            96, 104, 208, 0, 16, 8, 424, 24, 88, 168, 32, 288, 944, 888, 40, 32, 16, 40, 24, 16,
            200, 24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 56, 176,
            112, 120, 1120, 104, 160, 24, 72, 67, 0, 8, 24, 344, 8028, 0, 4, 512,
        ];
        let mut raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw[..8].copy_from_slice(COOKIE);
        raw
    }

    #[test]
    fn reads_315() {
        let l = layout_from_table(&table_315(), &Version::new(3, 15, 2)).unwrap();
        assert_eq!(l.runtime.interpreters_head, 936);
        assert_eq!(l.interp.threads_head, 7336);
        assert_eq!(l.thread.thread_id, 176);
        assert_eq!(l.thread.frame, FramePtr::InThread(72));
        assert_eq!(l.frame.localsplus, 80);
        assert_eq!(l.code.code_adaptive, 208);
        assert_eq!(l.object.tuple_items, 32);
        assert_eq!(
            l.runtime.gil,
            GilHolder::InterpGil {
                gil_ptr: 16,
                locked: 16,
                holder: 8
            }
        );
    }

    #[test]
    fn newer_minor_only_when_compatible() {
        let mut raw = table_315();
        raw[8..16].copy_from_slice(&0x031000f0u64.to_le_bytes());
        let l = layout_from_table(&raw, &Version::new(3, 16, 0)).unwrap();
        assert_eq!(l.thread.thread_id, 176);
        // A field inserted early in the table shifts the anchors: refused, clearly.
        let mut shifted = raw[..40].to_vec();
        shifted.extend_from_slice(&0u64.to_le_bytes());
        shifted.extend_from_slice(&raw[40..]);
        let err = layout_from_table(&shifted, &Version::new(3, 16, 0)).unwrap_err();
        assert!(err.to_string().contains("newer py-spy"), "{err}");
        // A version the table contradicts is refused too.
        assert!(layout_from_table(&raw, &Version::new(3, 15, 0)).is_err());
        // And so is a free-threaded build.
        let mut ft = table_315();
        ft[16..24].copy_from_slice(&1u64.to_le_bytes());
        assert!(layout_from_table(&ft, &Version::new(3, 15, 2)).is_err());
    }
}
