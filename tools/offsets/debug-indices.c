/* Prints where each `_Py_DebugOffsets` field py-spy reads sits in the table, as 8-byte word
 * indices (offsetof / 8: every field is a uint64_t), for the CPython 3.13+ whose headers it is
 * compiled against; tools/offsets/debug-indices.sh runs it for each version and writes
 * src/capture/python/debug_indices.rs. With the argument `struct` it prints the Rust struct
 * those values fill instead. */
#define Py_BUILD_CORE 1
#include "Python.h"
#if PY_VERSION_HEX < 0x030D0000
#  error "_Py_DebugOffsets exists from CPython 3.13 on"
#elif PY_VERSION_HEX < 0x030E0000
#  include "internal/pycore_runtime.h"
#else
#  include "internal/pycore_debug_offsets.h"
#endif
#include <stdio.h>
#include <stddef.h>
#include <string.h>

/* (Rust field, _Py_DebugOffsets member) for every field of every version we read. */
#define REQUIRED(X) \
    X(version, version) \
    X(free_threaded, free_threaded) \
    X(interpreters_head, runtime_state.interpreters_head) \
    X(interp_next, interpreter_state.next) \
    X(threads_head, interpreter_state.threads_head) \
    X(imports_modules, interpreter_state.imports_modules) \
    X(ceval_gil, interpreter_state.ceval_gil) \
    X(gil_runtime_state, interpreter_state.gil_runtime_state) \
    X(gil_locked, interpreter_state.gil_runtime_state_locked) \
    X(gil_holder, interpreter_state.gil_runtime_state_holder) \
    X(thread_next, thread_state.next) \
    X(thread_interp, thread_state.interp) \
    X(current_frame, thread_state.current_frame) \
    X(thread_id, thread_state.thread_id) \
    X(native_thread_id, thread_state.native_thread_id) \
    X(datastack_chunk, thread_state.datastack_chunk) \
    X(frame_previous, interpreter_frame.previous) \
    X(frame_executable, interpreter_frame.executable) \
    X(frame_instr_ptr, interpreter_frame.instr_ptr) \
    X(frame_localsplus, interpreter_frame.localsplus) \
    X(frame_owner, interpreter_frame.owner) \
    X(code_filename, code_object.filename) \
    X(code_name, code_object.name) \
    X(code_qualname, code_object.qualname) \
    X(code_linetable, code_object.linetable) \
    X(code_firstlineno, code_object.firstlineno) \
    X(code_argcount, code_object.argcount) \
    X(code_localsplusnames, code_object.localsplusnames) \
    X(code_adaptive, code_object.co_code_adaptive) \
    X(ob_type, pyobject.ob_type) \
    X(tp_name, type_object.tp_name) \
    X(tp_flags, type_object.tp_flags) \
    X(tuple_item, tuple_object.ob_item) \
    X(list_item, list_object.ob_item) \
    X(dict_keys, dict_object.ma_keys) \
    X(dict_values, dict_object.ma_values) \
    X(float_fval, float_object.ob_fval) \
    X(long_tag, long_object.lv_tag) \
    X(long_digit, long_object.ob_digit) \
    X(bytes_size, bytes_object.ob_size) \
    X(bytes_sval, bytes_object.ob_sval) \
    X(str_state, unicode_object.state) \
    X(str_length, unicode_object.length) \
    X(str_ascii_size, unicode_object.asciiobject_size)

/* Fields only some versions have: every name, then the ones this version has. */
#define OPTIONAL_NAMES(X) \
    X(tp_basicsize, type_object.tp_basicsize, "3.15") \
    X(tp_dictoffset, type_object.tp_dictoffset, "3.15") \
    X(ht_cached_keys, heap_type_object.ht_cached_keys, "3.15") \
    X(str_compact_size, unicode_object.compactunicodeobject_size, "3.15")
#if PY_VERSION_HEX >= 0x030F0000
#  define OPTIONAL_PRESENT(X) OPTIONAL_NAMES(X)
#else
#  define OPTIONAL_PRESENT(X)
#endif

#define INDEX(member) (offsetof(_Py_DebugOffsets, member) / 8)

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "struct") == 0) {
        printf("/// Index (in 8-byte words from the start of `_Py_DebugOffsets`) of each field we read,\n"
               "/// for one minor version's table; `None` where that version's table lacks the field.\n"
               "#[derive(Debug, Clone, Copy, PartialEq, Eq)]\n"
               "pub struct DebugIndices {\n"
               "    pub minor: u64,\n"
               "    /// `sizeof(_Py_DebugOffsets)` in bytes.\n"
               "    pub size: u64,\n");
#define REQ_FIELD(name, member) printf("    /// `%s`\n    pub %s: usize,\n", #member, #name);
#define OPT_FIELD(name, member, since) \
        printf("    /// `%s` (%s+)\n    pub %s: Option<usize>,\n", #member, since, #name);
        REQUIRED(REQ_FIELD)
        OPTIONAL_NAMES(OPT_FIELD)
        printf("}\n");
        return 0;
    }
    printf("/// CPython %d.%d (headers of %s).\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_VERSION);
    printf("pub const INDICES_%d_%d: DebugIndices = DebugIndices {\n", PY_MAJOR_VERSION,
           PY_MINOR_VERSION);
    printf("    minor: %d,\n    size: %zu,\n", PY_MINOR_VERSION, sizeof(_Py_DebugOffsets));
#define REQ_VALUE(name, member) printf("    %s: %zu,\n", #name, INDEX(member));
    REQUIRED(REQ_VALUE)
    struct { const char *field; size_t index; } present[] = {
#define OPT_ENTRY(name, member, since) {#name, INDEX(member)},
        OPTIONAL_PRESENT(OPT_ENTRY)
        {NULL, 0},
    };
#define OPT_VALUE(name, member, since) do { \
        size_t i = 0; \
        while (present[i].field && strcmp(present[i].field, #name) != 0) i++; \
        if (present[i].field) printf("    %s: Some(%zu),\n", #name, present[i].index); \
        else printf("    %s: None,\n", #name); \
    } while (0);
    OPTIONAL_NAMES(OPT_VALUE)
    printf("};\n");
    return 0;
}
