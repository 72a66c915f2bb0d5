//! CPython 3.13+ describes its own layout in `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`,
//! the first field of `_PyRuntime`): a cookie, the version, and for each struct a profiler
//! reads (runtime, interpreter, thread, frame, code, and the object types) its size and the
//! offsets of its fields. We read that table from the target and build a [`Layout`] from it.
//!
//! The table's own shape changes between minor versions (fields are inserted), so we keep,
//! per minor version, a [`DebugShape`]: where each field we use sits in it
//! ([`DebugIndices`], generated from the headers into `debug_indices.rs` by
//! `tools/offsets/debug-indices.sh`), and the few facts the table does not give and that
//! differ between versions ([`Extras`]: the top of the frame stack, `co_nlocals`,
//! frame-owner values, ...). Facts it does not give that have not changed since 3.11 or
//! earlier are the named fragments of `tables.rs` (stack chunks, str state bits, dict keys).
//!
//! Which shape a version is read with is `registry.rs`'s decision: its own minor version's,
//! or, for a newer minor version (3.16+), the newest one, used only when the table proves
//! compatible: its anchor fields, whose values have not changed since 3.13, hold the
//! expected values at the expected places. Otherwise the version is unsupported.

use super::debug_indices::{DebugIndices, INDICES_3_13, INDICES_3_14, INDICES_3_15};
use super::layout::*;
use super::tables::{
    dict_3_11, MODULE_MD_DICT, STACK_CHUNK_HEADER, STACK_CHUNK_PREVIOUS, STACK_CHUNK_SIZE,
    STR_ASCII_BIT, STR_COMPACT_BIT, STR_KIND_SHIFT,
};
use super::version::Version;
use crate::capture::os::memory::{words_in, Fields, Memory};
use anyhow::{bail, Context, Result};
use std::sync::Mutex;

/// `_Py_DebugOffsets.cookie`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Facts a layout needs that `_Py_DebugOffsets` does not carry, per minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// `_PyInterpreterFrame.stacktop` (3.13) / `stackpointer` (3.14+).
    pub stack_top: StackTop,
    /// `offsetof(PyGenObject, gi_iframe)`.
    pub gen_iframe: u64,
    /// Opcodes the frame walk needs (see `walker::moment`).
    pub ops: Option<FrameOps>,
}

/// How to read one minor version's `_Py_DebugOffsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugShape {
    /// Where each field we use sits (generated from the headers).
    pub indices: DebugIndices,
    pub extras: Extras,
}

impl DebugShape {
    pub fn minor(&self) -> u64 {
        self.indices.minor
    }
}

/// 3.13 (Include/internal/pycore_runtime.h, pycore_frame.h).
pub const SHAPE_3_13: DebugShape = DebugShape {
    indices: INDICES_3_13,
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
        stack_top: StackTop::Index(64),
        // PyObject_HEAD, gi_weakreflist, gi_name, gi_qualname, gi_exc_state (two pointers),
        // gi_origin_or_finalizer, four chars, padded to 8.
        gen_iframe: 72,
        // Lib/_opcode_metadata.py
        ops: Some(FrameOps {
            returns: [36, 103, 239, 240],
        }),
    },
};

/// 3.14 (Include/internal/pycore_debug_offsets.h): adds `threads_main`,
/// `code_object_generation`, `tlbc_generation`, frame `stackpointer` and `tlbc_index`,
/// `co_tlbc` and a set section; `_PyStackRef` tags the code pointer, and frames owned by the
/// interpreter are shims too.
pub const SHAPE_3_14: DebugShape = DebugShape {
    indices: INDICES_3_14,
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
        stack_top: StackTop::Pointer(64),
        // PyObject_HEAD, gi_weakreflist, gi_name, gi_qualname, gi_exc_state (two pointers),
        // gi_origin_or_finalizer, four chars, padded to 8.
        gen_iframe: 72,
        // Lib/_opcode_metadata.py
        ops: Some(FrameOps {
            returns: [35, 246, 35, 246],
        }),
    },
};

/// 3.15: adds `base_frame`, profiling fields, `holds_gil`, an exception section, type sizes
/// and `ht_cached_keys`, and the compact str size.
pub const SHAPE_3_15: DebugShape = DebugShape {
    indices: INDICES_3_15,
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
        stack_top: StackTop::Pointer(64),
        // PyObject_HEAD, gi_weakreflist, gi_name, gi_qualname, gi_exc_state (two pointers),
        // gi_origin_or_finalizer, four chars, padded to 8.
        gen_iframe: 72,
        // Lib/_opcode_metadata.py
        ops: Some(FrameOps {
            returns: [33, 245, 33, 245],
        }),
    },
};

/// Every table shape we know, oldest first.
pub const SHAPES: &[&DebugShape] = &[&SHAPE_3_13, &SHAPE_3_14, &SHAPE_3_15];

/// Fields whose values have been the same in every version since 3.13: if a table read
/// with a shape holds these values there, the shape fits it. (index, value)
fn anchors(ix: &DebugIndices) -> [(usize, u64); 9] {
    [
        (ix.ob_type, 8),
        (ix.tp_name, 24),
        (ix.tp_flags, 168),
        (ix.list_item, 24),
        (ix.float_fval, 16),
        (ix.long_tag, 16),
        (ix.long_digit, 24),
        (ix.bytes_sval, 32),
        (ix.str_state, 32),
    ]
}

/// Find `_PyRuntime` in a binary's data by its debug-offsets cookie.
pub fn scan_for_runtime(mem: &dyn Memory, ranges: &[(u64, u64)]) -> Option<u64> {
    let cookie = u64::from_le_bytes(*COOKIE);
    words_in(mem, ranges).find_map(|(addr, w)| (w == cookie).then_some(addr))
}

/// The bytes of the `_Py_DebugOffsets` table at `runtime`: as many as the biggest shape
/// takes, or the smallest shape's (the table may end near a mapping's end).
pub fn read_table(mem: &dyn Memory, runtime: u64) -> Result<Vec<u8>> {
    let biggest = SHAPES.iter().map(|s| s.indices.size).max().unwrap_or(0) as usize;
    mem.read_vec(runtime, biggest)
        .or_else(|_| mem.read_vec(runtime, SHAPE_3_13.indices.size as usize))
        .with_context(|| format!("could not read _PyRuntime.debug_offsets at {runtime:#x}"))
}

/// Layouts built from targets, kept for the life of the process (one per distinct layout).
static BUILT: Mutex<Vec<&'static Layout>> = Mutex::new(Vec::new());

/// Build the layout of the interpreter whose `_PyRuntime` is at `runtime`, reading its table
/// with `shape` (the one `registry::source_for` chose).
pub fn read_layout(
    mem: &dyn Memory,
    runtime: u64,
    version: &Version,
    shape: &DebugShape,
) -> Result<&'static Layout> {
    let raw = read_table(mem, runtime)?;
    let layout = layout_from_table(&raw, version, shape)?;
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = built.iter().find(|l| ***l == layout) {
        return Ok(l);
    }
    let leaked: &'static Layout = Box::leak(Box::new(layout));
    built.push(leaked);
    Ok(leaked)
}

/// Does the table `raw` of `version` have `shape`'s layout: is it big enough, with the
/// anchors' values in place? `shape` is the version's own, or the newest for a newer 3.x.
pub fn check_shape(raw: &[u8], version: &Version, shape: &DebugShape) -> Result<()> {
    let ix = &shape.indices;
    let f = Fields(raw);
    let word = |i: usize| (8 * i + 8 <= raw.len()).then(|| f.u64(8 * i));
    let fits =
        (ix.size as usize) <= raw.len() && anchors(ix).iter().all(|&(i, v)| word(i) == Some(v));
    if fits {
        return Ok(());
    }
    if shape.minor() == version.minor {
        bail!(
            "the debug offsets of Python {version} do not have the layout of 3.{} \
             (a pre-release or a modified build?)",
            shape.minor()
        );
    }
    bail!(
        "Python {version} is newer than this py-spy knows, and its debug offsets are laid \
         out differently from 3.{}'s; a newer py-spy is needed",
        shape.minor()
    );
}

/// Largest offset a debug-offsets table may hold (`_PyRuntime` is a few hundred KiB).
const MAX_OFFSET: u64 = 16 << 20;

/// Decode a `_Py_DebugOffsets` table (`raw`, from its cookie) of `version` into a layout,
/// reading it with `shape`.
pub fn layout_from_table(raw: &[u8], version: &Version, shape: &DebugShape) -> Result<Layout> {
    if raw.len() < 24 || &raw[..8] != COOKIE {
        bail!("_PyRuntime does not start with the debug-offsets cookie");
    }
    check_shape(raw, version, shape)?;
    let ix = &shape.indices;
    let f = Fields(raw);
    // Offsets are read from the target: one beyond any struct's size is damage, said as such
    // (and kept from overflowing the sums below).
    let implausible = std::cell::Cell::new(None);
    let w = |i: usize| {
        let v = f.u64(8 * i);
        if v > MAX_OFFSET && implausible.get().is_none() {
            implausible.set(Some((i, v)));
        }
        v.min(MAX_OFFSET)
    };
    let table_version = Version::from_hex(f.u64(8 * ix.version) & 0xffff_ffff)
        .context("the debug offsets carry no valid version")?;
    if (table_version.major, table_version.minor) != (version.major, version.minor) {
        bail!("the debug offsets say Python {table_version}, the binary says {version}");
    }
    if f.u64(8 * ix.free_threaded) != 0 {
        bail!("free-threaded builds of Python {version} are not supported yet");
    }
    let x = shape.extras;
    let gil_base = w(ix.gil_runtime_state);
    let thread_fields = [
        w(ix.thread_next),
        w(ix.thread_interp),
        w(ix.current_frame),
        w(ix.thread_id),
        w(ix.native_thread_id),
        w(ix.datastack_chunk),
        x.datastack_top,
    ];
    let frame_end = [
        w(ix.frame_previous) + 8,
        w(ix.frame_executable) + 8,
        w(ix.frame_instr_ptr) + 8,
        w(ix.frame_owner) + 1,
        x.stack_top.end(),
    ];
    let code_names = [
        w(ix.code_filename),
        w(ix.code_name),
        w(ix.code_qualname),
        w(ix.code_linetable),
        w(ix.code_localsplusnames),
    ];
    let code_end = code_names.iter().max().copied().unwrap_or(0) + 8;
    let ascii_size = w(ix.str_ascii_size);
    let compact_size = ix.str_compact_size.map_or(ascii_size + 16, w);
    let layout = Layout {
        first: (3, version.minor, 0),
        last: (3, version.minor, 99),
        root: Root::Runtime,
        frames: FrameShape::InterpreterFrame,
        linetable: LineTableFormat::Locations311,
        runtime: RuntimeOffsets {
            interpreters_head: w(ix.interpreters_head),
            gil: GilHolder::InterpGil {
                gil_ptr: w(ix.ceval_gil),
                locked: w(ix.gil_locked).wrapping_sub(gil_base),
                holder: w(ix.gil_holder).wrapping_sub(gil_base),
            },
        },
        interp: InterpreterOffsets {
            next: w(ix.interp_next),
            threads_head: w(ix.threads_head),
            modules: w(ix.imports_modules),
        },
        thread: ThreadOffsets {
            size: thread_fields.iter().max().copied().unwrap_or(0) + 8,
            next: w(ix.thread_next),
            interp: w(ix.thread_interp),
            frame: FramePtr::InThread(w(ix.current_frame)),
            thread_id: w(ix.thread_id),
            native_thread_id: Some(w(ix.native_thread_id)),
            datastack_chunk: Some(w(ix.datastack_chunk)),
            datastack_top: Some(x.datastack_top),
        },
        frame: FrameOffsets {
            read_size: frame_end.iter().max().copied().unwrap_or(0),
            code: w(ix.frame_executable),
            code_tag_bits: x.code_tag_bits,
            previous: w(ix.frame_previous),
            instr: InstrPos::Pointer(w(ix.frame_instr_ptr)),
            entry: EntryMark::ShimOwner {
                owner: w(ix.frame_owner),
                cstack: x.owner_cstack,
                interpreter: x.owner_interpreter,
            },
            localsplus: w(ix.frame_localsplus),
            // Not in the table; the same since 3.11 (see the fragment).
            chunk_header: STACK_CHUNK_HEADER,
            chunk_previous: STACK_CHUNK_PREVIOUS,
            chunk_size: STACK_CHUNK_SIZE,
            stack_top: x.stack_top,
            gen: GenLink::Embedded(x.gen_iframe),
        },
        code: CodeOffsets {
            size: w(ix.code_adaptive).max(code_end),
            argcount: w(ix.code_argcount),
            flags: x.co_flags,
            firstlineno: w(ix.code_firstlineno),
            nlocals: x.co_nlocals,
            varnames: w(ix.code_localsplusnames),
            filename: w(ix.code_filename),
            name: w(ix.code_name),
            qualname: Some(w(ix.code_qualname)),
            linetable: w(ix.code_linetable),
            code_adaptive: w(ix.code_adaptive),
            // Not in the table: `co_stacksize` and `co_nlocalsplus` lie beside `co_argcount`
            // and `co_firstlineno` (argcount, posonlyargcount, kwonlyargcount, stacksize,
            // firstlineno, nlocalsplus: ints, 3.11-3.15), taken only where the table's two
            // agree with that order.
            frame_words: (w(ix.code_firstlineno) == w(ix.code_argcount) + 16)
                .then(|| (w(ix.code_argcount) + 12, w(ix.code_firstlineno) + 4)),
            ops: x.ops,
            validate_from: 8,
            validate_to: code_end,
        },
        unicode: UnicodeOffsets {
            format: StrFormat::Pep393,
            length: w(ix.str_length),
            state: w(ix.str_state),
            // Not in the table: `state`'s bit positions, the same since 3.3.
            kind_shift: STR_KIND_SHIFT,
            compact_bit: STR_COMPACT_BIT,
            ascii_bit: STR_ASCII_BIT,
            ascii_size,
            compact_size,
            data_any: compact_size,
        },
        object: ObjectOffsets {
            ob_type: w(ix.ob_type),
            ob_size: w(ix.bytes_size),
            tp_name: w(ix.tp_name),
            tp_flags: w(ix.tp_flags),
            tp_basicsize: ix.tp_basicsize.map_or(x.tp_basicsize, w),
            tp_dictoffset: ix.tp_dictoffset.map_or(x.tp_dictoffset, w),
            ht_cached_keys: Some(ix.ht_cached_keys.map_or(x.ht_cached_keys, w)),
            bytes_sval: w(ix.bytes_sval),
            tuple_items: w(ix.tuple_item),
            list_items: w(ix.list_item),
            float_fval: w(ix.float_fval),
            long_digits: w(ix.long_digit),
            // The table's `lv_tag` is 3.12's tagged size; 2.7's `int` is long gone.
            ints: IntFormat::LvTag,
            int27: None,
            // Not in the table; the same in every release.
            module_dict: MODULE_MD_DICT,
        },
        // The keys object and its entries are not in the table and are the same since 3.11
        // (see the fragment). In 3.13 the values gained a header (`PyDictValues.values` at 8,
        // pycore_dict.h) and instance attributes moved inline (pycore_object.h).
        dict: dict_3_11(
            w(ix.dict_keys),
            w(ix.dict_values),
            8,
            ManagedDict::Inline313 { dict_back: 24 },
        ),
    };
    if let Some((i, v)) = implausible.get() {
        bail!("the debug offsets of Python {version} are implausible: word {i} is {v:#x}");
    }
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
        let l = layout_from_table(&table_315(), &Version::new(3, 15, 2), &SHAPE_3_15).unwrap();
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

    /// A newer minor version is read with the newest shape (`registry::source_for`'s
    /// choice) only when its anchors agree.
    #[test]
    fn newer_minor_only_when_compatible() {
        let read = |raw: &[u8], v| layout_from_table(raw, &v, &SHAPE_3_15);
        let mut raw = table_315();
        raw[8..16].copy_from_slice(&0x031000f0u64.to_le_bytes());
        let l = read(&raw, Version::new(3, 16, 0)).unwrap();
        assert_eq!(l.thread.thread_id, 176);
        // A field inserted early in the table shifts the anchors: refused, clearly.
        let mut shifted = raw[..40].to_vec();
        shifted.extend_from_slice(&0u64.to_le_bytes());
        shifted.extend_from_slice(&raw[40..]);
        let err = read(&shifted, Version::new(3, 16, 0)).unwrap_err();
        assert!(err.to_string().contains("newer py-spy"), "{err}");
        // A version the table contradicts is refused too.
        assert!(read(&raw, Version::new(3, 15, 0)).is_err());
        // And so is a free-threaded build.
        let mut ft = table_315();
        ft[16..24].copy_from_slice(&1u64.to_le_bytes());
        assert!(read(&ft, Version::new(3, 15, 2)).is_err());
    }
}
