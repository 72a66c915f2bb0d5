#!/usr/bin/env bash
# Build py-spy and profile the demo program as a user would: record it for 3 seconds into a
# flamegraph (keeping the session file), describe and analyze that session (info, analyze, an
# SQL query), render it again as speedscope JSON and raw stacks with other options, then dump
# a live snapshot of its threads with locals.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
bin=target/release/py-spy
out=target/demo
mkdir -p "$out"

"$bin" record -d 3 -o "$out/demo.svg" --session "$out/demo.pyspy" -- python3 examples/demo.py
"$bin" render "$out/demo.pyspy" -f speedscope -o "$out/demo.speedscope.json" --idle --threads
echo "== what the session holds:"
"$bin" info "$out/demo.pyspy"
echo "== where the time went (own and total, by function):"
"$bin" analyze "$out/demo.pyspy" --limit 5
echo "== SQL over the samples: each thread's share of samples holding the GIL:"
"$bin" query "$out/demo.pyspy" "select thread_name, round(100.0 * sum(gil) / count(*), 1) as gil_percent from samples group by thread"
echo "== busiest stacks, idle threads included, one root frame per thread:"
"$bin" render "$out/demo.pyspy" -f raw -o - --idle --threads \
  | awk '{print $NF "\t" $0}' | sort -nr | cut -f2- | head -5 | cut -c1-240

python3 examples/demo.py &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 1
echo "== live dump:"
"$bin" dump --pid "$pid" --locals
echo "== open $out/demo.svg in a browser, or load $out/demo.speedscope.json in https://www.speedscope.app"
echo "== the binary is $PWD/$bin: \`cargo install --path .\` puts py-spy on your PATH (or: export PATH=\"$PWD/target/release:\$PATH\")"
