#!/usr/bin/env python3
"""Print the `_Py_DebugOffsets` table of a CPython 3.13+ binary (libpython or a static
executable) as one decimal 64-bit word per line, for tests/golden/debug-offsets-3.X.txt.

usage: tools/offsets/debug-table.py BINARY WORDS

`_PyRuntime` is statically initialised and starts with the table, so the table is in the file:
its first 8-byte aligned `xdebugpy` cookie followed by a plausible version word (0x030X....)."""
import struct
import sys

path, words = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
at = 0
while True:
    at = data.find(b"xdebugpy", at)
    if at < 0:
        sys.exit(f"{path}: no _Py_DebugOffsets table")
    version = struct.unpack_from("<Q", data, at + 8)[0]
    if at % 8 == 0 and version >> 24 == 3:
        break
    at += 1
print(f"# {words} words of _Py_DebugOffsets from {path} (file offset {at}), "
      f"by tools/offsets/debug-table.py")
for i in range(words):
    print(struct.unpack_from("<Q", data, at + 8 * i)[0])
