#!/usr/bin/env python3
"""Paused fidelity: does our nonblocking profile of a running program agree with a paused one?

The profiler's default pauses the target for each snapshot (paused, P); --nonblocking reads it
while it runs (N), which is cheaper for the target but reads stacks that change under the
reader. This harness checks, per interpreter and workload, that the nonblocking profile's
per-function shares agree with a paused profile of the same process within the noise of two
paused profiles, which it measures on every case.

    tools/paused_fidelity.py [--pyspy target/release/py-spy] [--python PY ...] \\
        [--workloads churn-gen,churn-calls,generators,...] [--regimes pinned,unpinned] \\
        [--duration 3] [--rate 200] [--segments 1] [--pyperformance-cache target/pyperformance] \\
        [--markdown OUT.md] [--json OUT.json] [--check] [--max-errors 2]

A case is one interpreter x workload x regime. The target is started (pinned regime: under
`taskset -c 0`, the profiler under `taskset -c 1`; unpinned: neither), and once it is running
(its READY line, plus --settle seconds; or --warmup seconds for a workload that prints none),
four recordings are taken of it, one at a time, same rate and duration, interleaved so that any
drift of the program hits both modes alike: paused P1, nonblocking N1, paused P2, nonblocking N2
(`py-spy capture --pid PID -r RATE -d SECONDS [--nonblocking]`). With --segments K each recording
is K captures of --duration seconds taken round-robin (P1 N1 P2 N2 P1 N1 ...) and added up: for
programs whose phases last about as long as a recording (pyperformance's mdp spends ~6 s per
value here, its first second in topoSort), where four single windows can fall on different
phases. The target is killed at the end of the case, whatever happened.

Shares. Each session is rendered as collapsed stacks without line numbers, twice: the default
view (`render -f raw --nolineno`) and the view with error samples (`--errors`). A function is
its name and file. Its leaf share is the samples whose innermost frame it is; its inclusive
share, the samples in whose stack it appears at least once. Both are over ALL samples of the
session (`select count(*) from samples`), error samples included, so that profiles that show
error samples differently stay comparable: an error sample counts for the frames it shows
(pseudo-frames such as `<error: ...>` or `<unreadable caller>` are no function), and for none
when the view leaves it out.

Judging, per view and per kind (leaf, inclusive):
  * Noise floor of the case: the largest |P1 - P2| over all functions.
  * Chance allowance of a function: 3 binomial standard deviations of the difference of two
    shares, sqrt(p (1 - p) (1/n_N + 1/n_P)), with p the pooled share of the function in the
    nonblocking recording and both paused ones, n_N that recording's samples and n_P the two
    paused recordings' samples together (their mean is the reference), plus one percentage
    point for the moments at which the samples fell.
  * The paused reference of a function is the mean of its P1 and P2 shares. The function
    "differs" when N1's or N2's share (each is judged) is further from that reference than
    max(noise floor, chance allowance).
  * The case agrees when no function differs, for leaf and inclusive shares alike; otherwise
    it differs, and the worst function (largest excess over what is allowed) is named with
    its numbers.
The verdict that counts is the default view's (the profile a user sees); the --errors view's
is reported beside it. Under the --errors view an error sample that kept only its innermost
frames still lacks its outer ones, so inclusive shares of outer functions (`<module>`, pyperf's
runner) fall by about the error share there: a high error share shows up as an inclusive
difference even when every leaf agrees.

The paused profile is the reference, not the truth: pausing changes the program (it slows code
that makes system calls) and where its snapshots land (seen here: pyperformance logging on
3.12, where LogRecord.__init__, which calls os.getpid() for every record, is the leaf of ~72%
of paused samples, while timing it in the program gives ~37% inclusive). A case that differs
says the two disagree beyond their own noise; which one is wrong needs a look at the case.

Output: one markdown row per case (printed as it finishes; --markdown OUT writes the table,
--json OUT everything, including the largest shares of every recording): Python version,
workload, regime, samples N (N1+N2) / P (P1+P2), the share of N's samples that are errors (and
P's), the share of N's samples the default view shows, the largest leaf and inclusive
difference N vs paused mean (default view / --errors view), the noise floor P1 vs P2 (leaf /
inclusive, default view), the verdict (default / --errors) and the worst function. --check
exits 1 when a case differs (default view), when N's error share is over --max-errors percent
(default 2), or when a case failed; a case skipped (a workload that does not start on an
interpreter) does not fail it.

Workloads (--workloads, comma-separated; default all below):
  * churn-gen, churn-calls: tests/scripts/churn.py (recursive generators; millions of short
    method calls). They print READY.
  * pyperformance benchmarks: generators, coroutines, async_tree, raytrace, hexiom, deepcopy,
    pathlib, logging, mdp, go, richards, nbody, float (or any other name of pyperformance's
    MANIFEST, such as async_tree_io; variants get their extra options from their .toml). The
    scripts come from PyPI's pyperformance==1.14.0 (`pip download --no-deps`), unpacked under
    --pyperformance-cache, run unchanged from pyperformance/data-files/benchmarks/bm_NAME/.
    They import pyperf, which is downloaded the same way, per interpreter, as the newest
    release pip finds for that Python (`pip download --no-deps --only-binary=:all:
    --python-version X.Y pyperf`; on the day this was written: 2.8.0 for 3.8, 2.10.0 for
    3.9-3.10, 2.11.0 for 3.11+), unpacked into the cache and put on the target's PYTHONPATH
    (--pyperf VERSION forces one release). psutil, which pyperf lists, is optional to it and
    not installed. Each benchmark runs in ONE process, so that the PID profiled is the one
    running the code: pyperf's worker mode, `run_benchmark.py --worker --calibrate-loops -w 0
    -n 1000000 -p 1 [extra options]` (loops doubled until one value takes pyperf's --min-time,
    0.1 s, then a million values: far longer than a case). Scripts that hold several
    benchmarks (deepcopy, logging) run their first. The target runs with the cache folder as
    its working directory (so that interpreters that run inside their own root, such as the
    provisioned ones, see the scripts and pyperf) and its own TMPDIR, removed after the case.
    A benchmark that exits before or during the recordings is skipped with the last line of
    its stderr.

Interpreters (--python, repeatable; default the one running this script; --all-pythons: every
interpreter of KNOWN_PYTHONS below that exists). Needs: Linux, taskset (pinned regime), pip
(for pyperformance workloads, run as `sys.executable -m pip` or the first pip on PATH).

Run it quietly (one case at a time: it is a benchmark of sorts), e.g.
    tools/paused_fidelity.py --pyspy target/release/py-spy \\
        --python ~/.pyenv/versions/3.12.1/bin/python3 --regimes pinned \\
        --workloads churn-gen,churn-calls --duration 3 --rate 200 --markdown out.md

Stdlib only (Python 3.7+).
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fidelity import collapsed  # noqa: E402  (the collapsed-stack line format)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHURN = os.path.join(REPO, "tests", "scripts", "churn.py")

PYPERFORMANCE_VERSION = "1.14.0"
BENCHMARKS = ["generators", "coroutines", "async_tree", "raytrace", "hexiom", "deepcopy",
              "pathlib", "logging", "mdp", "go", "richards", "nbody", "float"]
CHURN_MODES = {"churn-gen": "gen", "churn-calls": "calls", "churn-co": "co"}
DEFAULT_WORKLOADS = list(CHURN_MODES) + BENCHMARKS
# pyperf's worker mode, one process: calibrate the loops, then (for our purposes) run forever.
PYPERF_WORKER_ARGS = ["--worker", "--calibrate-loops", "-w", "0", "-n", "1000000", "-p", "1"]

HOME = os.path.expanduser("~")
KNOWN_PYTHONS = (
    [os.path.join(HOME, ".pyenv", "versions", v, "bin", "python3")
     for v in ("3.8.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0")]
    + ["/usr/bin/python3.11"]
    + [os.path.join(HOME, ".cache", "pyspy-pythons", "bin", "python" + v)
       for v in ("3.9", "3.13", "3.14", "3.15")]
)

# `function (file)` (or `function (file:line)`); anything else that starts with "<" and has
# no file (`<error: ...>`, `<unreadable caller>`, `<no Python frames>`) is a pseudo-frame.
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Skip(Exception):
    """The case cannot run (its workload does not start here): reported, not a failure."""


class Failed(Exception):
    """The case ran and something of ours went wrong: a failure for --check."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Interpreters


_VERSIONS = {}


def python_version(python):
    """(major, minor, micro) of an interpreter, or None when it does not run."""
    if python not in _VERSIONS:
        try:
            out = subprocess.run(
                [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                timeout=60)
            _VERSIONS[python] = tuple(int(x) for x in out.stdout.strip().split("."))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            _VERSIONS[python] = None
    return _VERSIONS[python]


def vstr(v):
    return ".".join(str(x) for x in v) if v else "?"


# ---------------------------------------------------------------------------------------------
# pyperformance and pyperf, from PyPI


def pip_command():
    for cmd in ([sys.executable, "-m", "pip"], ["pip3"], ["pip"]):
        try:
            r = subprocess.run(cmd + ["--version"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    return None


def unpack(archive, dest):
    """Unpack a wheel or an sdist into dest (done once: dest is kept)."""
    if os.path.isdir(dest):
        return dest
    tmp = dest + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp)
    os.rename(tmp, dest)
    return dest


class Pyperformance(object):
    """The cache: pyperformance's benchmark scripts and, per Python version, a pyperf."""

    def __init__(self, cache, pyperf_pin=None):
        self.cache = os.path.abspath(cache)
        self.pyperf_pin = pyperf_pin
        self._benchmarks = None
        self._pyperf = {}
        self._pip = None

    def pip_download(self, spec, dest, extra=()):
        """`pip download --no-deps SPEC` into dest, unless dest already holds a download.
        Returns the archive's path."""
        def found():
            names = sorted(n for n in os.listdir(dest)
                           if n.endswith((".whl", ".tar.gz", ".zip")))
            return os.path.join(dest, names[-1]) if names else None
        os.makedirs(dest, exist_ok=True)
        if found():
            return found()
        if self._pip is None:
            self._pip = pip_command() or []
        if not self._pip:
            raise Skip("no pip to download %s with" % spec)
        cmd = self._pip + ["download", "--no-deps", "--disable-pip-version-check", "-q",
                           "-d", dest] + list(extra) + [spec]
        log("  $ " + " ".join(cmd))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=600)
        if r.returncode != 0 or not found():
            tail = (r.stdout.strip().splitlines() or ["no output"])[-1]
            raise Skip("pip download %s failed: %s" % (spec, tail))
        return found()

    def benchmarks_dir(self):
        if self._benchmarks is None:
            archive = self.pip_download(
                "pyperformance==" + PYPERFORMANCE_VERSION,
                os.path.join(self.cache, "downloads", "pyperformance-" + PYPERFORMANCE_VERSION))
            root = unpack(archive, os.path.join(self.cache,
                                                "pyperformance-" + PYPERFORMANCE_VERSION))
            for dirpath, dirnames, _ in os.walk(root):
                if dirpath.endswith(os.path.join("data-files", "benchmarks")):
                    self._benchmarks = dirpath
                    break
            else:
                raise Skip("no data-files/benchmarks in pyperformance " + PYPERFORMANCE_VERSION)
        return self._benchmarks

    def benchmark(self, name):
        """(script, extra options) of a benchmark name of pyperformance's MANIFEST."""
        base = self.benchmarks_dir()
        own = os.path.join(base, "bm_" + name)
        if os.path.isdir(own):
            return os.path.join(own, "run_benchmark.py"), extra_opts(
                os.path.join(own, "pyproject.toml"))
        manifest = os.path.join(base, "MANIFEST")
        if os.path.exists(manifest):
            with open(manifest) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == name:
                        m = re.match(r"<local:(\w+)>", parts[1])
                        if m:
                            d = os.path.join(base, "bm_" + m.group(1))
                            return os.path.join(d, "run_benchmark.py"), extra_opts(
                                os.path.join(d, "bm_%s.toml" % name))
        raise Skip("no benchmark %r in pyperformance %s" % (name, PYPERFORMANCE_VERSION))

    def pyperf_for(self, version):
        """Folder to put on PYTHONPATH for pyperf on this Python version, and pyperf's version."""
        key = version[:2]
        if key not in self._pyperf:
            if self.pyperf_pin:
                spec, sub = "pyperf==" + self.pyperf_pin, "pyperf-" + self.pyperf_pin
                extra = []
            else:
                py = "%d.%d" % key
                spec, sub = "pyperf", "pyperf-for-py" + py
                extra = ["--only-binary=:all:", "--python-version", py]
            archive = self.pip_download(spec, os.path.join(self.cache, "downloads", sub), extra)
            m = re.match(r"pyperf-([^-]+)(?:-|\.tar)", os.path.basename(archive))
            release = m.group(1) if m else "?"
            root = unpack(archive, os.path.join(self.cache, "pyperf-" + release))
            # An sdist unpacks into pyperf-X/ holding the package folder pyperf/.
            for dirpath, dirnames, files in os.walk(root):
                if "pyperf" in dirnames and os.path.exists(
                        os.path.join(dirpath, "pyperf", "__init__.py")):
                    self._pyperf[key] = (dirpath, release)
                    break
            else:
                raise Skip("no pyperf package in " + os.path.basename(archive))
        return self._pyperf[key]


def extra_opts(toml):
    """`extra_opts = [...]` of a benchmark's .toml (a list of strings), or []."""
    if not os.path.exists(toml):
        return []
    with open(toml) as f:
        for line in f:
            m = re.match(r"\s*extra_opts\s*=\s*(\[.*\])\s*$", line)
            if m:
                try:
                    return [str(x) for x in json.loads(m.group(1).replace("'", '"'))]
                except ValueError:
                    return []
    return []


# ---------------------------------------------------------------------------------------------
# Target and profiler


def workload_command(args, python, workload, pyperformance, tmp):
    """(argv, cwd, env additions, waits for READY, notes) of a workload on an interpreter."""
    life = 4 * args.segments * (args.duration + 15) + 60
    if workload in CHURN_MODES:
        return ([python, CHURN, CHURN_MODES[workload], str(life)], None, {}, True, {})
    version = python_version(python)
    if version < (3, 8):
        raise Skip("pyperformance %s needs Python 3.8+" % PYPERFORMANCE_VERSION)
    script, opts = pyperformance.benchmark(workload)
    path, release = pyperformance.pyperf_for(version)
    env = {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    notes = {"pyperf": release, "extra_opts": opts}
    return ([python, script] + PYPERF_WORKER_ARGS + opts, pyperformance.cache, env, False, notes)


def tail_of(path, default):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read().strip().splitlines() if l.strip()]
    except OSError:
        lines = []
    return lines[-1][:300] if lines else default


class Target(object):
    def __init__(self, argv, cwd, env_extra, pinned, args, tmp):
        self.tmp = tmp
        self.out = os.path.join(tmp, "target-stdout.txt")
        self.err = os.path.join(tmp, "target-stderr.txt")
        self.tmpdir = os.path.join(tmp, "target-tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update(env_extra)
        env["TMPDIR"] = self.tmpdir
        if cwd:
            env["PWD"] = cwd
        cmd = (["taskset", "-c", str(args.target_cpu)] if pinned else []) + argv
        self.cmd = cmd
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=cwd, env=env, start_new_session=True)
        self.pid = self.proc.pid

    def why_gone(self):
        return "exited %s: %s" % (self.proc.returncode, tail_of(self.err, "no stderr"))

    def wait_running(self, ready, warmup, settle, timeout=60.0):
        start = time.time()
        while True:
            if self.proc.poll() is not None:
                raise Skip("target " + self.why_gone())
            if ready:
                with open(self.out, "rb") as f:
                    if b"READY" in f.read():
                        break
                if time.time() - start > timeout:
                    raise Skip("no READY line within %.0f s" % timeout)
            elif time.time() - start >= warmup:
                break
            time.sleep(0.02)
        if ready and settle:
            time.sleep(settle)
        if self.proc.poll() is not None:
            raise Skip("target " + self.why_gone())

    def kill(self):
        """SIGINT first (a benchmark's `finally` cleans up), SIGKILL after 2 s; the whole
        process group (the target was started in its own session)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGINT)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def capture(args, pid, path, nonblocking, pinned):
    cmd = (["taskset", "-c", str(args.profiler_cpu)] if pinned else []) + [
        args.pyspy, "capture", "--pid", str(pid), "-o", path, "-r", str(args.rate),
        "-d", str(args.duration), "--hideprogress"] + (["--nonblocking"] if nonblocking else [])
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=args.duration + 60)
    except subprocess.TimeoutExpired:
        raise Failed("capture timed out: " + " ".join(cmd))
    if r.returncode != 0 or not os.path.exists(path):
        raise Failed("capture exited %s: %s" % (r.returncode, r.stdout.strip()[-300:]))
    return r.stdout.strip()


def run_pyspy(args, argv):
    r = subprocess.run([args.pyspy] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    if r.returncode != 0:
        raise Failed("py-spy %s exited %s: %s" % (" ".join(argv[:2]), r.returncode,
                                                  r.stderr.strip()[-300:]))
    return r.stdout


def query_count(args, session, where=""):
    out = run_pyspy(args, ["query", session, "select count(*) from samples" + where,
                           "--format", "csv"])
    return int(out.strip().splitlines()[-1].strip().strip('"'))


# ---------------------------------------------------------------------------------------------
# Shares


def parse_raw(text):
    """Collapsed stacks -> list of (frames outermost first, count). A frame is ("func (file)",
    True) for a function, (text, False) for a pseudo-frame."""
    stacks = []
    for parts, n in collapsed(text.splitlines()):
        frames = []
        for part in parts:
            m = FRAME.match(part)
            if m:
                frames.append(("%s (%s)" % (m.group("func"), m.group("file")), True))
            else:
                frames.append((part, False))
        stacks.append((frames, n))
    return stacks


def view_counts(stacks):
    """Per function, the samples it is the leaf of and the samples whose stack it is in."""
    leaf, incl = {}, {}
    shown = no_leaf = pseudo = 0
    for frames, n in stacks:
        shown += n
        if any(not real for _, real in frames):
            pseudo += n
        if frames and frames[-1][1]:
            leaf[frames[-1][0]] = leaf.get(frames[-1][0], 0) + n
        else:
            no_leaf += n
        for name in set(name for name, real in frames if real):
            incl[name] = incl.get(name, 0) + n
    return {"shown": shown, "with_pseudo_frame": pseudo, "no_function_leaf": no_leaf,
            "leaf": leaf, "incl": incl}


VIEWS = (("default", []), ("errors", ["--errors"]))
ORDER = ("P1", "N1", "P2", "N2")


def load_session(args, session, capture_text):
    """Counts of one session file: all samples, error samples, idle samples, and per view
    the functions' leaf and inclusive counts."""
    total = query_count(args, session)
    errors = query_count(args, session, " where error is not null")
    try:
        idle = query_count(args, session, " where not active")
    except Failed:
        idle = None
    rec = {"samples": total, "errors": errors, "idle": idle, "capture": capture_text,
           "views": {}}
    for view, flags in VIEWS:
        text = run_pyspy(args, ["render", session, "-f", "raw", "--nolineno", "-o", "-"] + flags)
        rec["views"][view] = view_counts(parse_raw(text))
    return rec


def merge(parts):
    """One recording from its segments' counts, with shares over all its samples."""
    total = sum(p["samples"] for p in parts)
    idles = [p["idle"] for p in parts]
    rec = {"samples": total, "errors": sum(p["errors"] for p in parts),
           "idle": None if None in idles else sum(idles),
           "capture": [p["capture"] for p in parts], "views": {}}
    for view, _ in VIEWS:
        st = {"leaf": {}, "incl": {}}
        for key in ("shown", "with_pseudo_frame", "no_function_leaf"):
            st[key] = sum(p["views"][view][key] for p in parts)
        for kind in ("leaf", "incl"):
            for p in parts:
                for k, n in p["views"][view][kind].items():
                    st[kind][k] = st[kind].get(k, 0) + n
            st[kind] = {k: n / float(total) for k, n in st[kind].items()} if total else {}
        rec["views"][view] = st
    return rec


def chance(p, n1, n2):
    """3 binomial standard deviations of the difference of two shares p with n1 and n2
    samples, plus one percentage point."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p = min(max(p, 0.0), 1.0)
    return 3.0 * math.sqrt(p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)) + 0.01


def compare(recs, view, kind):
    """Nonblocking against paused for one view and kind of share."""
    p1, n1, p2, n2 = (recs[k]["views"][view][kind] for k in ("P1", "N1", "P2", "N2"))
    c = {k: recs[k]["samples"] for k in ("P1", "N1", "P2", "N2")}
    n_paused = c["P1"] + c["P2"]
    keys = set(p1) | set(p2) | set(n1) | set(n2)
    floor = max([abs(p1.get(k, 0.0) - p2.get(k, 0.0)) for k in keys] or [0.0])
    worst_delta, differs, biggest = 0.0, [], None
    for k in keys:
        a, b = p1.get(k, 0.0), p2.get(k, 0.0)
        ref = (a + b) / 2.0
        entry = None
        for name, shares in (("N1", n1), ("N2", n2)):
            s = shares.get(k, 0.0)
            d = abs(s - ref)
            pooled = (s * c[name] + a * c["P1"] + b * c["P2"]) / float(c[name] + n_paused or 1)
            allowed = max(floor, chance(pooled, c[name], n_paused))
            if d > worst_delta:
                worst_delta = d
            item = {"function": k, "kind": kind, "N1": n1.get(k, 0.0), "N2": n2.get(k, 0.0),
                    "P1": a, "P2": b, "paused": ref, "delta": d, "allowed": allowed,
                    "excess": d - allowed, "off": name}
            if entry is None or item["excess"] > entry["excess"]:
                entry = item
        if biggest is None or entry["delta"] > biggest["delta"]:
            biggest = entry
        if entry["excess"] > 0:
            differs.append(entry)
    differs.sort(key=lambda e: -e["excess"])
    return {"max_delta": worst_delta, "floor": floor, "differs": differs[:10],
            "n_differ": len(differs), "biggest": biggest}


def judge(recs):
    out = {}
    for view, _ in VIEWS:
        res = {kind: compare(recs, view, kind) for kind in ("leaf", "incl")}
        bad = res["leaf"]["differs"] + res["incl"]["differs"]
        bad.sort(key=lambda e: -e["excess"])
        res["verdict"] = "differs" if bad else "agrees"
        res["worst"] = bad[0] if bad else max(
            (r["biggest"] for r in (res["leaf"], res["incl"]) if r["biggest"]),
            key=lambda e: e["excess"], default=None)
        out[view] = res
    return out


# ---------------------------------------------------------------------------------------------
# One case


def one_case(args, python, workload, regime, pyperformance):
    pinned = regime == "pinned"
    tmp = tempfile.mkdtemp(prefix="paused-fidelity-")
    row = {"python": vstr(python_version(python)), "interpreter": python,
           "workload": workload, "regime": regime}
    target = None
    try:
        argv, cwd, env, ready, notes = workload_command(args, python, workload, pyperformance,
                                                        tmp)
        row.update(notes)
        target = Target(argv, cwd, env, pinned, args, tmp)
        row["command"] = target.cmd
        target.wait_running(ready, args.warmup, args.settle)
        parts = dict((name, []) for name in ORDER)
        for seg in range(args.segments):
            for name in ORDER:
                session = os.path.join(tmp, "%s-%d.pyspy" % (name, seg))
                text = capture(args, target.pid, session, name.startswith("N"), pinned)
                if target.proc.poll() is not None:
                    raise Skip("target %s during recording %s" % (target.why_gone(), name))
                parts[name].append((session, text))
        target.kill()
        target = None
        row["recordings"] = dict(
            (name, merge([load_session(args, s, t) for s, t in parts[name]])) for name in ORDER)
        row["judged"] = judge(row["recordings"])
        if args.keep_sessions:
            dest = os.path.join(args.keep_sessions, "%s-%s-%s" % (row["python"], workload,
                                                                   regime))
            os.makedirs(dest, exist_ok=True)
            for name in ORDER:
                for s, _ in parts[name]:
                    shutil.copy(s, os.path.join(dest, os.path.basename(s)))
    except Skip as e:
        row["skipped"] = str(e)
    except (Failed, subprocess.TimeoutExpired, OSError) as e:
        row["failed"] = str(e)
    finally:
        if target is not None:
            target.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return row


# ---------------------------------------------------------------------------------------------
# Report


HEADER = ("| Python | workload | regime | samples N / P | errors N % (P %) | default view shows "
          "% of N | max leaf Δ N−P, default / --errors | max incl Δ N−P, default / --errors "
          "| noise floor P1−P2, leaf / incl | verdict, default / --errors | worst function "
          "(default view) |\n|---|---|---|---|---|---|---|---|---|---|---|")


def pct(x):
    return "%.1f" % (100.0 * x)


def describe(e):
    if not e:
        return "-"
    return "%s %s: N1 %s, N2 %s vs P %s (P1 %s, P2 %s), allowed ±%s" % (
        e["kind"], e["function"].replace("|", "\\|"), pct(e["N1"]), pct(e["N2"]),
        pct(e["paused"]), pct(e["P1"]), pct(e["P2"]), pct(e["allowed"]))


def error_share(row, names):
    s = sum(row["recordings"][n]["samples"] for n in names)
    return sum(row["recordings"][n]["errors"] for n in names) / float(s or 1)


def fmt_row(row):
    lead = "| %s | %s | %s |" % (row["python"], row["workload"], row["regime"])
    if "recordings" not in row or "judged" not in row:
        what = ("skipped: " + row["skipped"]) if "skipped" in row else \
            ("FAILED: " + row.get("failed", "?"))
        return lead + " %s | | | | | | | |" % what.replace("|", "\\|")
    r, j = row["recordings"], row["judged"]
    n = r["N1"]["samples"] + r["N2"]["samples"]
    p = r["P1"]["samples"] + r["P2"]["samples"]
    shown = (r["N1"]["views"]["default"]["shown"] + r["N2"]["views"]["default"]["shown"]) / \
        float(n or 1)
    d, e = j["default"], j["errors"]
    worst = describe(d["worst"])
    if d["verdict"] == "agrees":
        worst = "(largest) " + worst
    return lead + " %d / %d | %s (%s) | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |" % (
        n, p, pct(error_share(row, ("N1", "N2"))), pct(error_share(row, ("P1", "P2"))),
        pct(shown),
        pct(d["leaf"]["max_delta"]), pct(e["leaf"]["max_delta"]),
        pct(d["incl"]["max_delta"]), pct(e["incl"]["max_delta"]),
        pct(d["leaf"]["floor"]), pct(d["incl"]["floor"]),
        d["verdict"], e["verdict"], worst)


def bad_reason(args, row):
    if "failed" in row:
        return "failed"
    if "judged" not in row:
        return None
    if row["judged"]["default"]["verdict"] != "agrees":
        return "differs"
    if 100.0 * error_share(row, ("N1", "N2")) > args.max_errors:
        return "error share over %g%%" % args.max_errors
    return None


def trimmed(row):
    """The row for --json: each recording's shares cut to functions of 0.1% or more."""
    out = dict(row)
    if "recordings" in row:
        recs = {}
        for name, rec in row["recordings"].items():
            rec = dict(rec)
            rec["views"] = {
                v: dict(st, leaf={k: x for k, x in st["leaf"].items() if x >= 0.001},
                        incl={k: x for k, x in st["incl"].items() if x >= 0.001})
                for v, st in rec["views"].items()}
            recs[name] = rec
        out["recordings"] = recs
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pyspy", default=os.path.join(REPO, "target", "release", "py-spy"),
                    help="the profiler binary (default: target/release/py-spy)")
    ap.add_argument("--python", action="append", default=[],
                    help="interpreter to run the targets with (repeatable; default: this one)")
    ap.add_argument("--all-pythons", action="store_true",
                    help="every interpreter of KNOWN_PYTHONS that exists")
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--regimes", default="pinned,unpinned",
                    help="pinned (target on --target-cpu, profiler on --profiler-cpu), "
                         "unpinned, or both (default: %(default)s)")
    ap.add_argument("--target-cpu", type=int, default=0)
    ap.add_argument("--profiler-cpu", type=int, default=1)
    ap.add_argument("--duration", type=int, default=3, help="seconds per recording")
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    ap.add_argument("--segments", type=int, default=1,
                    help="take each recording as this many captures of --duration seconds, "
                         "round-robin (P1 N1 P2 N2 P1 N1 ...), for programs whose phases last "
                         "about as long as a recording (default 1)")
    ap.add_argument("--warmup", type=float, default=1.5,
                    help="seconds to wait for a target that prints no READY (default 1.5)")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to wait after a target's READY (default 0.5)")
    ap.add_argument("--pyperformance-cache", default=os.path.join(REPO, "target", "pyperformance"))
    ap.add_argument("--pyperf", metavar="VERSION",
                    help="use this pyperf release for every interpreter")
    ap.add_argument("--markdown", metavar="OUT")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--keep-sessions", metavar="DIR",
                    help="copy each case's four session files into DIR/VERSION-WORKLOAD-REGIME/")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a case differs (default view), its nonblocking error share "
                         "is over --max-errors, or it failed")
    ap.add_argument("--max-errors", type=float, default=2.0,
                    help="percent of the nonblocking samples (default 2)")
    args = ap.parse_args()

    args.pyspy = os.path.abspath(args.pyspy)
    if not os.access(args.pyspy, os.X_OK):
        ap.error("no profiler binary at " + args.pyspy)
    pythons = list(args.python)
    if args.all_pythons:
        pythons += [p for p in KNOWN_PYTHONS if os.path.exists(p)]
    pythons = pythons or [sys.executable]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    for r in regimes:
        if r not in ("pinned", "unpinned"):
            ap.error("unknown regime %r" % r)
    if "pinned" in regimes and not shutil.which("taskset"):
        ap.error("the pinned regime needs taskset")
    pyperformance = Pyperformance(args.pyperformance_cache, args.pyperf)

    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["Paused fidelity (tools/paused_fidelity.py), %s: %s, %s s per recording at %d Hz, "
             "order P1 N1 P2 N2. Shares in %% of all samples of a recording; Δ is the largest "
             "|N1 or N2 − mean(P1, P2)| over functions; pinned: target on CPU %d, profiler on "
             "CPU %d." % (started, args.pyspy, ("%d x %d" % (args.segments, args.duration))
                          if args.segments > 1 else args.duration, args.rate, args.target_cpu,
                          args.profiler_cpu), "", HEADER]
    print("\n".join(lines), flush=True)
    rows, bad = [], []
    for python in pythons:
        if python_version(python) is None:
            row = {"python": python, "workload": "*", "regime": "*",
                   "failed": "interpreter does not run"}
            rows.append(row)
            bad.append(fmt_row(row))
            print(fmt_row(row), flush=True)
            continue
        for workload in workloads:
            for regime in regimes:
                log("%s %s %s ..." % (python, workload, regime))
                row = one_case(args, python, workload, regime, pyperformance)
                rows.append(row)
                line = fmt_row(row)
                lines.append(line)
                print(line, flush=True)
                if bad_reason(args, row):
                    bad.append("%s (%s)" % (line, bad_reason(args, row)))
    pyperfs = sorted(set((r["python"], r["pyperf"]) for r in rows if r.get("pyperf")))
    if pyperfs:
        lines += ["", "pyperf on the targets' PYTHONPATH: " + ", ".join(
            "%s: %s" % pv for pv in pyperfs) + "."]
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rate": args.rate, "duration": args.duration, "segments": args.segments,
                       "pyspy": args.pyspy,
                       "started": started, "cases": [trimmed(r) for r in rows]},
                      f, indent=1, default=str)
    if bad:
        print("\n%d case(s) differ, have too many errors or failed:" % len(bad))
        for line in bad:
            print(line)
    if args.check and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
