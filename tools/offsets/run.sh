#!/bin/sh
# Print the struct offsets src/capture/python/tables.rs is built from, for one installed CPython.
# usage: tools/offsets/run.sh PREFIX      (e.g. ~/.pyenv/versions/3.12.1)
# Needs that Python's headers (PREFIX/include/pythonX.Y, with internal/). 3.13+ publish their
# offsets in _PyRuntime.debug_offsets instead: debug-indices.sh generates where its fields
# are, shared-facts.c prints what it does not publish; see docs/adding-a-python-version.md.
set -e
prefix=$1
inc=$(ls -d "$prefix"/include/python* | head -1)
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
gcc -O0 -w -DNDEBUG -I"$here" -I"$inc" -I"$inc/internal" -o "$out/offsets" "$here/offsets.c"
"$out/offsets"
rm -rf "$out"
