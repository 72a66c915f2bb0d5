#!/usr/bin/env bash
# Session-file size against py-spy 0.4.3's raw output for the same data: a 10-thread program
# (bench/ten_threads.py) sampled at 100 Hz for 60 s by both at once, nonblocking. py-spy
# records with --idle --threads (every thread, idle or not, with thread ids: what a session
# keeps, as every view can be rendered from it). Prints both sizes and bytes per sample.
#
#   bash bench/session-size.sh [PY_SPY_0.4.3] [PYTHON] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-target/reference-py-spy-0.4.3/bin/py-spy}
py=${2:-python3}
secs=${3:-60}
cargo build --release -q
out=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$out"' EXIT
"$py" bench/ten_threads.py $((secs + 15)) > "$out/ready" &
pid=$!
until grep -q READY "$out/ready" 2>/dev/null; do sleep 0.1; done
"$ref" record --pid "$pid" --nonblocking -r 100 -d "$secs" -f raw --idle --threads \
  --hideprogress -o "$out/py-spy.txt" > /dev/null &
refpid=$!
target/release/py-spy capture --pid "$pid" --nonblocking -r 100 -d "$secs" -o "$out/run.pyspy" \
  --hideprogress 2> "$out/capture.txt"
wait $refpid
target/release/py-spy render "$out/run.pyspy" -f raw --idle --threads -o "$out/ours.txt" 2>/dev/null
samples=$(awk '{s += $NF} END {print s}' "$out/ours.txt")
ref_samples=$(awk '{s += $NF} END {print s}' "$out/py-spy.txt")
session=$(stat -c %s "$out/run.pyspy")
raw=$(stat -c %s "$out/py-spy.txt")
ours_raw=$(stat -c %s "$out/ours.txt")
echo "10 threads, 100 Hz, ${secs} s, nonblocking:"
echo "  session file:            $session bytes, $samples samples, $(awk "BEGIN {printf \"%.2f\", $session / $samples}") bytes/sample"
echo "  py-spy 0.4.3 raw output: $raw bytes, $ref_samples samples, $(awk "BEGIN {printf \"%.2f\", $raw / $ref_samples}") bytes/sample"
echo "  (our raw render of the session with the same options: $ours_raw bytes)"
echo "  session / py-spy raw = $(awk "BEGIN {printf \"%.3f\", $session / $raw}")"
