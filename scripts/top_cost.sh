#!/usr/bin/env bash
# What `top` costs: runs ours and another py-spy (default: py-spy 0.4.3 in /work/peers) in
# turn on examples/demo.py for SECONDS each inside tmux, PAIRS times, and prints each run's
# CPU time (user+system of the whole process, from /proc) per second watched, then the
# median of each. Also times `dump` (wall time of 20 runs) for both.
# Usage: scripts/top_cost.sh [SECONDS] [PAIRS] [OTHER_PY_SPY] [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
pairs=${2:-3}
other=${3:-/work/peers/bin/py-spy}
python=${4:-python3}
ours=target/release/py-spy
"$python" examples/demo.py >/dev/null &
demo=$!
trap 'kill $demo 2>/dev/null || true; tmux -L topcost kill-server 2>/dev/null || true' EXIT
sleep 1
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A runs
ticks=$(getconf CLK_TCK)
for pair in $(seq "$pairs"); do
  for bin in "$ours" "$other"; do
    tmux -L topcost -f /dev/null new-session -d -x 100 -y 30 "$bin top --pid $demo"
    sleep 1
    pid=$(pgrep -f -n "^$bin top --pid $demo")
    start=$(cpu_of "$pid")
    sleep "$secs"
    end=$(cpu_of "$pid")
    tmux -L topcost send-keys q
    sleep 0.5
    tmux -L topcost kill-server 2>/dev/null || true
    ms=$(echo "scale=1; 1000 * ($end - $start) / $ticks / $secs" | bc)
    echo "pair $pair: $bin top: $ms ms CPU per second watched"
    runs[$bin]="${runs[$bin]:-} $ms"
  done
done
for bin in "$ours" "$other"; do
  echo "$bin top: median $(echo ${runs[$bin]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms CPU per second watched"
done
for bin in "$ours" "$other"; do
  t0=$(date +%s.%N)
  for _ in $(seq 20); do "$bin" dump --pid "$demo" >/dev/null; done
  t1=$(date +%s.%N)
  echo "$bin dump: $(echo "scale=1; 1000 * ($t1 - $t0) / 20" | bc) ms per dump (wall, 20 runs)"
done
