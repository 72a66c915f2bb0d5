/* Prints the struct offsets the capture layer needs, from one CPython version's headers.
 * Build against an installed Python (its include/pythonX.Y, which has internal/):
 *   gcc -I PREFIX/include/python3.11 tools/offsets.c -o /tmp/offsets && /tmp/offsets
 * The output is the source of the numbers in src/capture/layout.rs. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_runtime.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_dict.h>
#include <stddef.h>
#include <stdio.h>
#define P(s,f) printf("%-40s %zu\n", #s "." #f, offsetof(s,f))
#define S(s) printf("%-40s %zu\n", "sizeof " #s, sizeof(s))
int main(){
 P(_PyRuntimeState, interpreters.head);
 P(_PyRuntimeState, interpreters.main);
 P(_PyRuntimeState, gilstate.tstate_current);
 P(_PyRuntimeState, ceval.gil.locked);
 P(_PyRuntimeState, ceval.gil.last_holder);
 P(PyInterpreterState, next);
 P(PyInterpreterState, threads.head);
 P(PyInterpreterState, modules);
 P(PyInterpreterState, sysdict);
 P(PyThreadState, prev); P(PyThreadState, next); P(PyThreadState, interp);
 P(PyThreadState, cframe); P(PyThreadState, thread_id); P(PyThreadState, native_thread_id);
 P(PyThreadState, datastack_chunk); P(PyThreadState, datastack_top); P(PyThreadState, datastack_limit);
 S(PyThreadState);
 P(_PyCFrame, current_frame); P(_PyCFrame, previous);
 P(_PyInterpreterFrame, f_func); P(_PyInterpreterFrame, f_code); P(_PyInterpreterFrame, previous);
 P(_PyInterpreterFrame, prev_instr); P(_PyInterpreterFrame, stacktop); P(_PyInterpreterFrame, is_entry); P(_PyInterpreterFrame, owner); P(_PyInterpreterFrame, localsplus);
 P(_PyStackChunk, previous); P(_PyStackChunk, size); P(_PyStackChunk, top); P(_PyStackChunk, data);
 P(PyCodeObject, co_consts); P(PyCodeObject, co_names); P(PyCodeObject, co_exceptiontable);
 P(PyCodeObject, co_flags); P(PyCodeObject, co_argcount); P(PyCodeObject, co_posonlyargcount); P(PyCodeObject, co_kwonlyargcount);
 P(PyCodeObject, co_stacksize); P(PyCodeObject, co_firstlineno); P(PyCodeObject, co_nlocalsplus); P(PyCodeObject, co_nlocals); P(PyCodeObject, co_nplaincellvars); P(PyCodeObject, co_ncellvars); P(PyCodeObject, co_nfreevars);
 P(PyCodeObject, co_localsplusnames); P(PyCodeObject, co_localspluskinds); P(PyCodeObject, co_filename); P(PyCodeObject, co_name); P(PyCodeObject, co_qualname); P(PyCodeObject, co_linetable);
 P(PyCodeObject, co_code_adaptive); S(PyCodeObject);
 P(PyObject, ob_type); P(PyVarObject, ob_size);
 P(PyTypeObject, tp_name); P(PyTypeObject, tp_flags); P(PyTypeObject, tp_dictoffset); P(PyTypeObject, tp_basicsize);
 P(PyHeapTypeObject, ht_cached_keys);
 P(PyASCIIObject, length); P(PyASCIIObject, state); S(PyASCIIObject); S(PyCompactUnicodeObject);
 P(PyBytesObject, ob_sval); P(PyTupleObject, ob_item); P(PyListObject, ob_item); P(PyFloatObject, ob_fval);
 P(PyLongObject, ob_digit);
 P(PyDictObject, ma_used); P(PyDictObject, ma_keys); P(PyDictObject, ma_values);
 P(PyDictKeysObject, dk_log2_size); P(PyDictKeysObject, dk_log2_index_bytes); P(PyDictKeysObject, dk_kind); P(PyDictKeysObject, dk_nentries); P(PyDictKeysObject, dk_indices);
 S(PyDictKeyEntry); S(PyDictUnicodeEntry);
 P(PyGenObject, gi_iframe);
 return 0;
}
