//! Where CPython keeps things: one [`Layout`] value per interpreter layout.
//!
//! The sections mirror CPython 3.13's `_Py_DebugOffsets` (runtime, interpreter, thread,
//! frame, code, and the object types we decode), so that for 3.13+ a `Layout` can be filled
//! from the target's own table, and for older versions from the small per-version tables
//! below. Facts come from CPython's headers (`Include/cpython/*.h`, `Include/internal/*.h`)
//! for each release, read with `offsetof` (see `tools/offsets.c`); x86_64/aarch64 LP64 only.
//!
//! Behaviour that differs between versions is a named flag ([`FrameShape`],
//! [`LineTableFormat`], ...), never a version comparison in the walkers.

use super::version::Version;

/// How a thread's frames are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameShape {
    /// 3.11: `tstate->cframe->current_frame` → `_PyInterpreterFrame`, `f_code`, `prev_instr`,
    /// `is_entry` marks frames entered from C.
    InterpreterFrame311,
}

/// How a code object maps instructions to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTableFormat {
    /// 3.11+: `co_linetable` location table (PEP 657), code units of 2 bytes.
    Locations311,
}

/// How the thread holding the GIL is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilHolder {
    /// `_PyRuntime.gilstate.tstate_current` (3.7–3.11): the running thread state, or 0.
    RuntimeTstateCurrent(u64),
}

#[derive(Debug, Clone, Copy)]
pub struct RuntimeOffsets {
    /// `_PyRuntime.interpreters.head`
    pub interpreters_head: u64,
    pub gil: GilHolder,
}

#[derive(Debug, Clone, Copy)]
pub struct InterpreterOffsets {
    pub next: u64,
    /// `interp->threads.head`: the newest thread state.
    pub threads_head: u64,
    /// `interp->modules`: `sys.modules`.
    pub modules: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ThreadOffsets {
    /// Bytes to copy for one thread state (covers every field below).
    pub size: u64,
    pub next: u64,
    pub interp: u64,
    /// `tstate->cframe` (3.11–3.12); the current frame is `cframe + frame.cframe_current_frame`.
    pub cframe: u64,
    pub thread_id: u64,
    pub native_thread_id: u64,
    /// `tstate->datastack_chunk` and `tstate->datastack_top`: where frames live (3.11+).
    pub datastack_chunk: u64,
    pub datastack_top: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct FrameOffsets {
    /// `_PyCFrame.current_frame`
    pub cframe_current_frame: u64,
    pub code: u64,
    pub previous: u64,
    /// `prev_instr` (3.11–3.12) / `instr_ptr` (3.13+): pointer into the code's bytecode.
    pub instr_ptr: u64,
    pub is_entry: u64,
    pub owner: u64,
    pub localsplus: u64,
    /// Size of `_PyStackChunk`'s header; frames follow it.
    pub chunk_header: u64,
    /// `_PyStackChunk.previous` and `.size`.
    pub chunk_previous: u64,
    pub chunk_size: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct CodeOffsets {
    /// Bytes to copy for one code object (covers every field below).
    pub size: u64,
    pub argcount: u64,
    pub posonlyargcount: u64,
    pub kwonlyargcount: u64,
    pub flags: u64,
    pub firstlineno: u64,
    pub nlocalsplus: u64,
    pub nlocals: u64,
    pub localsplusnames: u64,
    pub localspluskinds: u64,
    pub filename: u64,
    pub name: u64,
    pub qualname: u64,
    pub linetable: u64,
    /// Start of the bytecode inside the code object (`co_code_adaptive`).
    pub code_adaptive: u64,
    /// The part of the object compared to check that a cached code object is still the same:
    /// `[validate_from, validate_to)` covers the names, file, line table and counts.
    pub validate_from: u64,
    pub validate_to: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct UnicodeOffsets {
    pub length: u64,
    pub state: u64,
    /// Bit position and width of `state.kind`, and the `compact` / `ascii` bits.
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

#[derive(Debug, Clone, Copy)]
pub struct ObjectOffsets {
    pub ob_type: u64,
    pub ob_size: u64,
    pub tp_name: u64,
    pub tp_flags: u64,
    pub tp_dictoffset: u64,
    /// `PyHeapTypeObject.ht_cached_keys`: the shared keys of instance dicts.
    pub ht_cached_keys: u64,
    pub bytes_sval: u64,
    pub tuple_items: u64,
    pub list_items: u64,
    pub float_fval: u64,
    pub long_digits: u64,
    /// `PyModuleObject.md_dict`
    pub module_dict: u64,
}

/// Dict layout of 3.11+ (`PyDictObject`, `PyDictKeysObject`, split and combined tables).
#[derive(Debug, Clone, Copy)]
pub struct DictOffsets {
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
    /// Distance before an object of its managed-dict pointer and of its values pointer
    /// (3.11: `dict` at -3 words, `values` at -4 words).
    pub managed_dict_back: u64,
    pub managed_values_back: u64,
}

/// Everything version-specific the capture layer needs about one CPython layout.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// First and last version (inclusive, by (major, minor, patch)) the table was checked on.
    pub first: (u64, u64, u64),
    pub last: (u64, u64, u64),
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
    pub const MANAGED_DICT: u64 = 1 << 4;
    pub const LONG_SUBCLASS: u64 = 1 << 24;
    pub const LIST_SUBCLASS: u64 = 1 << 25;
    pub const TUPLE_SUBCLASS: u64 = 1 << 26;
    pub const BYTES_SUBCLASS: u64 = 1 << 27;
    pub const UNICODE_SUBCLASS: u64 = 1 << 28;
    pub const DICT_SUBCLASS: u64 = 1 << 29;
}

/// CPython 3.11.0–3.11.x (Include/cpython/pystate.h, Include/internal/pycore_frame.h,
/// Include/cpython/code.h, Include/internal/pycore_runtime.h, pycore_interp.h, pycore_dict.h).
pub const V3_11: Layout = Layout {
    first: (3, 11, 0),
    last: (3, 11, 99),
    frames: FrameShape::InterpreterFrame311,
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
        cframe: 56,
        thread_id: 152,
        native_thread_id: 160,
        datastack_chunk: 296,
        datastack_top: 304,
    },
    frame: FrameOffsets {
        cframe_current_frame: 8,
        code: 32,
        previous: 48,
        instr_ptr: 56,
        is_entry: 68,
        owner: 69,
        localsplus: 72,
        chunk_header: 24,
        chunk_previous: 0,
        chunk_size: 8,
    },
    code: CodeOffsets {
        size: 192,
        argcount: 56,
        posonlyargcount: 60,
        kwonlyargcount: 64,
        flags: 48,
        firstlineno: 72,
        nlocalsplus: 76,
        nlocals: 80,
        localsplusnames: 96,
        localspluskinds: 104,
        filename: 112,
        name: 120,
        qualname: 128,
        linetable: 136,
        code_adaptive: 184,
        validate_from: 8,
        validate_to: 144,
    },
    unicode: UnicodeOffsets {
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
        tp_dictoffset: 288,
        ht_cached_keys: 872,
        bytes_sval: 32,
        tuple_items: 24,
        list_items: 24,
        float_fval: 16,
        long_digits: 24,
        module_dict: 16,
    },
    dict: DictOffsets {
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
        managed_dict_back: 24,
        managed_values_back: 32,
    },
};

/// Every table we have, oldest first.
pub const TABLES: &[&Layout] = &[&V3_11];

/// The layout for `version`, if we have one.
pub fn for_version(version: &Version) -> Option<&'static Layout> {
    let v = (version.major, version.minor, version.patch);
    TABLES.iter().copied().find(|l| l.first <= v && v <= l.last)
}

impl Layout {
    /// Internal consistency of a table: every field inside the size we copy. Run on each
    /// table in tests, and on tables read from a target (3.13+) before they are trusted.
    pub fn check(&self) -> Result<(), String> {
        let t = &self.thread;
        for (name, off) in [
            ("thread.next", t.next),
            ("thread.interp", t.interp),
            ("thread.cframe", t.cframe),
            ("thread.thread_id", t.thread_id),
            ("thread.native_thread_id", t.native_thread_id),
            ("thread.datastack_chunk", t.datastack_chunk),
            ("thread.datastack_top", t.datastack_top),
        ] {
            if off + 8 > t.size || off % 8 != 0 {
                return Err(format!(
                    "{name} = {off} is outside thread state size {}",
                    t.size
                ));
            }
        }
        let c = &self.code;
        for (name, off) in [
            ("code.filename", c.filename),
            ("code.name", c.name),
            ("code.qualname", c.qualname),
            ("code.linetable", c.linetable),
            ("code.localsplusnames", c.localsplusnames),
        ] {
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
        if c.code_adaptive > c.size || c.validate_to > c.size {
            return Err("code object bytecode offset outside its size".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        for t in TABLES {
            t.check().unwrap();
        }
    }

    #[test]
    fn picks_by_version() {
        assert!(for_version(&Version::new(3, 11, 7)).is_some());
        assert!(for_version(&Version::new(3, 11, 2)).is_some());
        assert!(for_version(&Version::new(3, 16, 0)).is_none());
    }
}
