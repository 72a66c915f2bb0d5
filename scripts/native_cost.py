#!/usr/bin/env python3
"""Profiler CPU per sample with --native: ours against py-spy 0.4.3, side by side.

    python3 scripts/native_cost.py --ours target/release/py-spy --theirs PEER/bin/py-spy \
        [--python PY ...] [--rate 200] [--seconds 5] [--pairs 2]

For each interpreter: builds the test extension (tests/scripts/native), starts
native_target.py (a hot C loop, a C call back into Python, ctypes' qsort with a Python
comparison) and runs `record --native -f raw -r RATE -d SECONDS --pid PID` with each binary in
turn, pairs alternating. CPU is the profiler's user+sys time (wait4), samples the sum of the
raw counts. Prints a Markdown table of medians: CPU per sample (µs), achieved rate, and the
ratio ours/theirs.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join(HERE, "..", "tests", "scripts", "native")


def run_profiler(binary, pid, rate, seconds, out):
    start = time.time()
    proc = subprocess.Popen(
        [binary, "record", "--native", "-f", "raw", "-r", str(rate), "-d", str(seconds),
         "-o", out, "--pid", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    samples = 0
    if os.path.exists(out):
        with open(out) as f:
            for line in f:
                line = line.rstrip()
                if line:
                    samples += int(line.rsplit(" ", 1)[1])
    return usage.ru_utime + usage.ru_stime, samples, wall, status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--theirs", required=True)
    ap.add_argument("--python", action="append")
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=2)
    a = ap.parse_args()
    pythons = a.python or [sys.executable]
    print("| Python | ours µs/sample | py-spy µs/sample | ours/py-spy | ours rate | py-spy rate |")
    print("|---|---|---|---|---|---|")
    for py in pythons:
        work = tempfile.mkdtemp(prefix="native-cost-")
        subprocess.run([py, os.path.join(NATIVE, "build_ext.py"), work], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = subprocess.Popen([py, os.path.join(NATIVE, "native_target.py"), work, "all",
                                   "600"], stdout=subprocess.PIPE)
        target.stdout.readline()
        figures = {"ours": [], "theirs": []}
        try:
            for _ in range(a.pairs):
                for name, binary in (("ours", a.ours), ("theirs", a.theirs)):
                    out = os.path.join(work, name + ".txt")
                    cpu, n, wall, status = run_profiler(binary, target.pid, a.rate, a.seconds, out)
                    if status != 0 or n == 0:
                        print("%s failed on %s (status %d)" % (name, py, status), file=sys.stderr)
                        continue
                    figures[name].append((cpu / n * 1e6, n / wall))
        finally:
            target.kill()
            target.wait()
        ours = statistics.median(f[0] for f in figures["ours"])
        theirs = statistics.median(f[0] for f in figures["theirs"])
        print("| %s | %.0f | %.0f | %.2f | %.0f/s | %.0f/s |" % (
            os.path.basename(os.path.dirname(os.path.dirname(py))) or py, ours, theirs,
            ours / theirs, statistics.median(f[1] for f in figures["ours"]),
            statistics.median(f[1] for f in figures["theirs"])))


if __name__ == "__main__":
    main()
