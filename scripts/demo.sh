#!/usr/bin/env bash
# Build py-spy, start the demo program, and dump its threads (with locals), as a user would.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
python3 examples/demo.py &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 1
target/release/py-spy dump --pid "$pid" --locals
