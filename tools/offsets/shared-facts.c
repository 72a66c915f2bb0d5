/* Prints the facts the 3.13+ layouts take from shared fragments in src/capture/python/tables.rs
 * because _Py_DebugOffsets does not publish them, for the CPython 3.11+ whose headers it is
 * compiled against (each must print the same as for the version the fragment is named after):
 *   for inc in .../include/python3.X ...; do
 *     gcc -w -I"$inc" -I"$(dirname "$inc")" -o /tmp/facts tools/offsets/shared-facts.c && /tmp/facts
 *   done */
#define Py_BUILD_CORE 1
#include "Python.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#include "internal/pycore_moduleobject.h"
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_interpframe_structs.h"
#endif
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>

static int bit_of(PyASCIIObject *o) {
    uint32_t w;
    memcpy(&w, (char *)o + offsetof(PyASCIIObject, state), 4);
    for (int i = 0; i < 32; i++) if (w >> i & 1) return i;
    return -1;
}

int main(void) {
    PyASCIIObject o;
    printf("# CPython %s\n", PY_VERSION);
    printf("stack chunk: header (data) %zu, previous %zu, size %zu\n", offsetof(_PyStackChunk, data),
           offsetof(_PyStackChunk, previous), offsetof(_PyStackChunk, size));
    memset(&o, 0, sizeof o); o.state.kind = 1; int kind = bit_of(&o);
    memset(&o, 0, sizeof o); o.state.compact = 1; int compact = bit_of(&o);
    memset(&o, 0, sizeof o); o.state.ascii = 1; int ascii = bit_of(&o);
    printf("str state: kind bit %d, compact bit %d, ascii bit %d\n", kind, compact, ascii);
    printf("module: md_dict %zu\n", offsetof(PyModuleObject, md_dict));
    printf("dict: ma_used %zu; keys: dk_log2_size %zu, dk_log2_index_bytes %zu, dk_kind %zu, "
           "dk_nentries %zu, dk_indices %zu; entry %zu, unicode entry %zu\n",
           offsetof(PyDictObject, ma_used), offsetof(PyDictKeysObject, dk_log2_size),
           offsetof(PyDictKeysObject, dk_log2_index_bytes), offsetof(PyDictKeysObject, dk_kind),
           offsetof(PyDictKeysObject, dk_nentries), offsetof(PyDictKeysObject, dk_indices),
           sizeof(PyDictKeyEntry), sizeof(PyDictUnicodeEntry));
#if PY_VERSION_HEX >= 0x030D0000
    printf("dict values: values %zu\n", offsetof(PyDictValues, values));
#endif
    return 0;
}
