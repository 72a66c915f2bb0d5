#!/usr/bin/env python3
"""Fidelity check: does our profile of a real program agree with py-spy 0.4.3's?

For each interpreter and workload (tests/fidelity/workloads.py: stdlib code nobody here
wrote), one target process is recorded at the same time by three profilers: ours, and two
py-spy 0.4.3 instances (A and B). A against B is the noise floor: two runs of the same
profiler on the same process at the same moment differ only by when their samples fell.
Ours against A is then judged against that floor.

    tools/fidelity.py --ours target/release/py-spy --pyspy PATH/py-spy \\
        [--python PY ...] [--workloads a,b] [--duration S] [--rate R] [--quick] \\
        [--markdown OUT.md] [--json OUT.json] [--check]

Two more recordings follow, each alone on the same process: py-spy 0.4.3 non-blocking
(R) and py-spy 0.4.3 paused, its default (P). Three profilers and the target on two cores
starve py-spy, whose sequential reads then fail on up to half of its samples, and its errors
fall on the deepest, fastest-changing stacks: A and B agree with each other, biased alike.
Neither reference is the truth either: R reads stacks that change under it (before 3.11 it
follows freed frames; from 3.11 it keeps chains that broke off), and P changes what the
target does by pausing it 200 times a second (most in code that makes system calls). Where
ours is outside the noise of A and B, a function is explained when it is within chance of
R, of P or of S (below), or when ours counts more samples in it than A by no more than the
samples A lost to errors beyond ours (while A lost under a quarter); the case then "agrees
with a reference". S is the target sampling itself (SIGPROF, on the workloads
whose work runs on the main thread, on Python 3.6-3.10, whose interpreter checks for signals
between nearly every two instructions): no reader from outside, no pause. An inclusive share
that one profile undercounts by no more than its cut stacks (they lose their outer frames:
py-spy's chains that broke off, our error samples' partial chains) counts as within.

Per profiler it reports: samples written, errors, the share of samples with no Python
frame ("empty"), the share of stacks that do not reach the thread's entry frame ("cut"),
profiler CPU per sample, and the largest difference of any function's leaf (self) share and
inclusive (total) share against A. A function "differs" when ours is further from A than
chance allows (3 binomial standard deviations of the two sample sizes, plus one point) and
further than B is from A. --check exits 1 when any function differs, when ours writes fewer
than 90% of A's samples (samples are thread stacks for both), or when a run fails.

Stdlib only (Python 3.7+).
"""
import argparse
import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS_PY = os.path.join(HERE, "..", "tests", "fidelity", "workloads.py")

# (workload, extra record flags). `threads` is also judged with --threads --gil: the shares of
# the thread holding the GIL.
CASES = [
    ("tokenize", []),
    ("regex", []),
    ("http", ["--idle"]),
    ("template", []),
    ("email", []),
    # --idle: py-spy 0.4.3 cannot tell idle threads before 3.11 without pausing (it calls the
    # sleeping main thread active), so without it the two disagree on which samples count.
    ("threads", ["--idle"]),
    ("threads", ["--threads", "--gil"]),
    ("asyncio", []),
    ("logging", []),
]
QUICK = ["tokenize", "regex", "threads", "asyncio"]
# Workloads whose work all runs on the main thread, where the program's own samples (SIGPROF,
# handled on the main thread) are a reference.
OWN_SAMPLES = {"tokenize", "regex", "template", "email", "logging"}

# Frames a complete stack starts with (after any thread or process label): the main
# module, a thread's bootstrap (`_bootstrap`, 2.7's `__bootstrap`), or runpy's entry.
ENTRY_FUNCTIONS = {"<module>", "_bootstrap", "_run_module_as_main", "_run_code"}

LABEL = re.compile(r"^(thread|process) \(|^process \d+:")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def collapsed(lines):
    """Collapsed-stack lines -> (frame texts outermost first, count), thread and process
    labels left out (also used by tools/paused_fidelity.py)."""
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        parts = (part.strip() for part in stack.split(";")) if stack else ()
        yield [part for part in parts if part and not LABEL.match(part)], n


def parse_raw(path):
    """Collapsed stacks -> list of (frames root first as (func, file), count)."""
    stacks = []
    with open(path) as f:
        for parts, n in collapsed(f):
            frames = []
            for part in parts:
                if part == "<no Python frames>":
                    continue
                m = FRAME.match(part)
                if m:
                    frames.append((m.group("func"), os.path.basename(m.group("file"))))
                else:
                    frames.append((part, ""))
            stacks.append((frames, n))
    return stacks


def profile_stats(stacks):
    """Shares of a raw profile. Our error samples (rendered with --errors) count like py-spy's
    cut stacks when they carry the innermost frames of a chain that broke off, and are left
    out (as py-spy leaves out its errors) when they carry none."""
    leaf, incl = {}, {}
    empty = cut = partial = total = 0
    for frames, n in stacks:
        if frames and frames[0][0].startswith("<error"):
            frames = frames[1:]
            if not frames:
                continue
            partial += n
        total += n
        if not frames:
            empty += n
            continue
        root = frames[0][0].rsplit(".", 1)[-1]
        if root not in ENTRY_FUNCTIONS and not root.endswith("bootstrap"):
            cut += n
        key = "%s (%s)" % frames[-1]
        leaf[key] = leaf.get(key, 0) + n
        for fr in set(frames):
            k = "%s (%s)" % fr
            incl[k] = incl.get(k, 0) + n
    share = lambda d: {k: v / total for k, v in d.items()} if total else {}
    return {
        "samples": total,
        "empty": empty / total if total else 0.0,
        "cut": cut / total if total else 0.0,
        "partial": partial / total if total else 0.0,
        "leaf": share(leaf),
        "incl": share(incl),
    }


def tolerance(p, n1, n2):
    """Largest difference of a share p between two independent samples that chance explains
    (3 standard deviations), plus one point for the profilers' differing sampling moments."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = min(max(p, 0.0), 1.0)
    return 3 * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)) + 0.01


def compare(ours, a, b, kind):
    """Largest |ours - a| and |b - a| over functions, and the functions where ours differs
    from both py-spys by more than chance and more than they differ from each other. An
    inclusive share py-spy undercounts by no more than its cut stacks (which lose their outer
    frames) is explained by them."""
    keys = set(ours[kind]) | set(a[kind]) | set(b[kind])
    worst_ours = worst_noise = 0.0
    differs = []
    for k in keys:
        po, pa, pb = ours[kind].get(k, 0.0), a[kind].get(k, 0.0), b[kind].get(k, 0.0)
        d, noise = abs(po - pa), abs(pb - pa)
        worst_ours = max(worst_ours, d)
        worst_noise = max(worst_noise, noise)

        def off(p, ref, ref_stats):
            tol = max(tolerance(p, ours["samples"], ref_stats["samples"]), noise)
            return not within(kind, p, ours, ref, ref_stats, tol)

        if off(po, pa, a) and off(po, pb, b):
            differs.append((k, po, pa, pb))
    differs.sort(key=lambda x: -abs(x[1] - x[2]))
    return worst_ours, worst_noise, differs


def within(kind, p, ours, ref, ref_stats, tol):
    """Whether our share p is explained by a reference's share ref: within tol, or, for an
    inclusive share, lower or higher by no more than the cut stacks of the profile that
    undercounts (a stack cut short loses its outer frames: ours are the partial chains of
    error samples, py-spy's the chains it kept though they broke off)."""
    if kind == "incl" and ref < p <= ref + ref_stats["cut"] + tol:
        return True
    if kind == "incl" and p < ref <= p + ours["cut"] + tol:
        return True
    return abs(p - ref) <= tol


EXPLAINED = "agrees with a reference (py-spy alone or paused, py-spy's lost samples, own samples)"


def judge(row):
    """The verdict of one case: ours within the noise of A and B; or, where it is not,
    every function that differs is within chance of py-spy run alone (R; an inclusive share
    R undercounts by no more than its cut stacks counts as within); or it differs."""
    unexplained = []

    def near(ref, kind, k, po):
        pr = ref[kind].get(k, 0.0)
        tol = tolerance(pr, row["ours"]["samples"], ref["samples"])
        return within(kind, po, row["ours"], pr, ref, tol)

    refs = [row[n] for n in ("r", "p", "s") if n in row]
    # A reference that lost a quarter of its samples to errors is not one: its errors fall on
    # the stacks that change fastest (and its losses would explain nearly anything).
    lost = min(lost_share(row[n]) for n in ("a", "b", "r"))
    for kind in ("leaf", "incl"):
        _, _, differs = compare(row["ours"], row["a"], row["b"], kind)
        row[kind + "_differs"] = differs[:5]
        for k, po, pa, _ in differs:
            if not any(near(ref, kind, k, po) for ref in refs) and \
                    not (lost <= 0.25 and lost_by_py_spy(row["ours"], row["a"], po, pa)):
                pr = row["r"][kind].get(k, 0.0)
                unexplained.append((kind, k, po, pa, pr))
    unexplained.sort(key=lambda x: -abs(x[2] - x[3]))
    row["unexplained"] = unexplained[:5]
    if not (row["leaf_differs"] or row["incl_differs"]):
        return "agrees"
    if not unexplained:
        return EXPLAINED
    if lost > 0.25:
        return "not judged: py-spy lost %.0f%% of its samples to errors" % (100 * lost)
    return "differs"


def lost_by_py_spy(ours, a, po, pa):
    """Whether ours counts more samples in a function than py-spy A by no more than the
    samples A lost to errors beyond ours (plus chance): a sample py-spy could not read is
    missing from its counts, and its errors fall on the stacks that change fastest."""
    excess = po * ours["samples"] - pa * a["samples"]
    lost = (a.get("errors") or 0) - (ours.get("errors") or 0)
    return 0 < excess <= lost + 3 * math.sqrt(max(pa * a["samples"], 1.0))


def lost_share(stats):
    errors = stats.get("errors") or 0
    return errors / max(errors + stats["samples"], 1)


def start_target(python, workload, seconds, tmp, env=None):
    # The target's stderr goes to a file: a pipe nobody reads would stall a chatty target.
    err_path = os.path.join(tmp, "target-stderr.txt")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [python, WORKLOADS_PY, workload, str(seconds)],
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            env=dict(os.environ, **(env or {})),
        )
    line = proc.stdout.readline().decode(errors="replace")
    if not line.startswith("READY"):
        proc.kill()
        proc.wait()
        with open(err_path, errors="replace") as f:
            text = f.read()
        return None, (text.strip().splitlines() or ["no READY"])[-1]
    time.sleep(0.5)
    return proc, None


def run_profilers(cmds, timeout):
    """Run every command at once; returns (stdout, cpu seconds, exit code) for each."""
    procs = []
    for cmd in cmds:
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        )
    results = [None] * len(procs)
    deadline = time.time() + timeout
    pending = {p.pid: i for i, p in enumerate(procs)}
    while pending:
        if time.time() > deadline:
            for pid in pending:
                os.killpg(pid, signal.SIGINT)
            deadline = time.time() + 10
        reaped = False
        for pid in list(pending):
            got, status, ru = os.wait4(pid, os.WNOHANG)
            if got == 0:
                continue
            reaped = True
            i = pending.pop(pid)
            procs[i].returncode = os.waitstatus_to_exitcode(status)
            out = procs[i].stdout.read().decode(errors="replace")
            results[i] = (out, ru.ru_utime + ru.ru_stime, procs[i].returncode)
        if not reaped:
            time.sleep(0.02)
    return results


def errors_of(out):
    m = re.search(r"Errors: (\d+)", out)
    return int(m.group(1)) if m else None


def one_case(args, python, workload, flags, tmp):
    proc, why = start_target(python, workload, args.duration + 30, tmp)
    if proc is None:
        return {"skipped": why}
    try:
        names = ("ours", "a", "b", "r", "p")
        outs = [os.path.join(tmp, n + ".txt") for n in names]
        base = ["record", "--pid", str(proc.pid), "-f", "raw", "-r", str(args.rate),
                "-d", str(args.duration)] + flags
        # Ours keeps its session and shows error samples (--errors), so that the chains that
        # broke off count as py-spy's cut stacks do; the default view is rendered after.
        session = os.path.join(tmp, "ours.pyspy")
        modes = (["--nonblocking", "--errors", "--session", session], ["--nonblocking"],
                 ["--nonblocking"], ["--nonblocking"], [])
        cmds = [[exe] + base + mode + ["-o", out]
                for exe, mode, out in zip((args.ours,) + (args.pyspy,) * 4, modes, outs)]
        # Ours, A and B at the same time; the reference after them, alone.
        results = run_profilers(cmds[:3], args.duration + 20)
        results += run_profilers(cmds[3:4], args.duration + 20)
        results += run_profilers(cmds[4:], args.duration + 20)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    row = {}
    own = own_samples(args, python, workload, tmp)
    if own is not None:
        row["s"] = own
    default_view = os.path.join(tmp, "ours-default.txt")
    subprocess.run([args.ours, "render", session, "-f", "raw", "-o", default_view] + flags,
                   capture_output=True)
    if os.path.exists(default_view):
        row["ours_default"] = profile_stats(parse_raw(default_view))
    for name, out, (text, cpu, code) in zip(names, outs, results):
        if code != 0 or not os.path.exists(out):
            return {"failed": "%s exited %s: %s" % (name, code, text.strip()[-300:])}
        st = profile_stats(parse_raw(out))
        st["errors"] = errors_of(text)
        st["cpu_per_sample_us"] = cpu * 1e6 / max(st["samples"], 1)
        row[name] = st
    for kind in ("leaf", "incl"):
        worst, noise, _ = compare(row["ours"], row["a"], row["b"], kind)
        row[kind + "_diff"] = worst
        row[kind + "_noise"] = noise
    row["verdict"] = judge(row)
    return row


def own_samples(args, python, workload, tmp):
    """The program's own view (S): a fresh target that samples itself with SIGPROF (see
    tests/fidelity/workloads.py), for the workloads whose work all runs on the main thread.
    Nothing reads it from outside, nothing pauses it: what py-spy and ours should both see,
    but for the few instructions a signal handler waits for (it runs at the next point the
    interpreter checks for signals)."""
    if workload not in OWN_SAMPLES or not own_samples_usable(python):
        return None
    path = os.path.join(tmp, "own.txt")
    if os.path.exists(path):
        os.remove(path)
    env = {"FIDELITY_SELF_SAMPLE": path, "FIDELITY_SELF_RATE": str(args.rate),
           "FIDELITY_SELF_SECONDS": str(args.duration)}
    proc, _ = start_target(python, workload, args.duration + 30, tmp, env)
    if proc is None:
        return None
    try:
        proc.wait(timeout=args.duration + 20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if not os.path.exists(path):
        return None
    st = profile_stats(parse_raw(path))
    st["errors"] = 0
    return st


def own_samples_usable(python):
    """A signal handler runs where the interpreter next checks for signals. Python 3.0-3.10
    check between nearly all instructions, so the frame interrupted is the one that ran;
    2.7 checks every 100 instructions, and 3.11+ only at calls, returns into the interpreter
    and backward jumps, so time spent in C code is counted at a later Python frame (on 3.12
    `tokenize`, the C tokenizer's time lands in the `namedtuple` built after each token):
    there the program's own samples are no reference."""
    v = version_of(python).split(".")
    try:
        major, minor = int(v[0]), int(v[1])
    except (ValueError, IndexError):
        return False
    return major == 3 and minor <= 10


@functools.lru_cache(maxsize=None)
def version_of(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def fmt_row(version, workload, flags, row):
    o, a, b = row["ours"], row["a"], row["b"]
    pct = lambda x: "%.1f" % (100 * x)
    return "| %s | %s%s | %d / %d / %d | %s / %s / %s | %s / %s / %s | %s (%s) / %s / %s | %s (%s) | %s (%s) | %.0f / %.0f | %s |" % (
        version, workload, (" " + " ".join(flags)) if flags else "",
        o["samples"], a["samples"], b["samples"],
        o["errors"], a["errors"], b["errors"],
        pct(o["empty"]), pct(a["empty"]), pct(b["empty"]),
        pct(o["cut"]), pct(o["partial"]), pct(a["cut"]), pct(b["cut"]),
        pct(row["leaf_diff"]), pct(row["leaf_noise"]),
        pct(row["incl_diff"]), pct(row["incl_noise"]),
        o["cpu_per_sample_us"], a["cpu_per_sample_us"],
        row["verdict"] if row["verdict"] != "differs" else
        "differs: " + ", ".join("%s %s %s vs %s (alone %s%s)" % (
            kind, k, pct(po), pct(pa), pct(pr),
            ", own %s" % pct(row["s"][kind].get(k, 0.0)) if "s" in row else "")
            for kind, k, po, pa, pr in row["unexplained"][:3]),
    )


HEADER = (
    "| Python | workload | samples ours / A / B | errors ours / A / B | empty % ours / A / B "
    "| cut % ours (of which error samples' partial chains) / A / B | leaf Δ max, ours−A (A−B) | total Δ max, ours−A (A−B) "
    "| CPU µs/sample ours / A | verdict |\n|---|---|---|---|---|---|---|---|---|---|"
)


def rejudge(path):
    """Print the table again from a --json file (after a change to the verdict rules)."""
    with open(path) as f:
        rows = json.load(f)
    print(HEADER)
    for row in rows:
        if "ours" not in row:
            print("| %s | %s | %s |" % (row["python"], row["workload"],
                                       row.get("skipped") or row.get("failed")))
            continue
        row["verdict"] = judge(row)
        print(fmt_row(row["python"], row["workload"], row["flags"], row))


def reported_only(args, version, workload, flags):
    """--report-only names workloads ("asyncio") or cases ("threads --threads --gil"), on
    every version or, prefixed with one ("3.12:threads --threads --gil"), on that one."""
    case = " ".join([workload] + flags)
    for x in args.report_only.split(","):
        x = x.strip()
        if ":" in x:
            v, x = x.split(":", 1)
            if not (version == v or version.startswith(v + ".")):
                continue
        if x and x in (workload, case):
            return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours")
    ap.add_argument("--pyspy", help="py-spy 0.4.3")
    ap.add_argument("--rejudge", metavar="JSON", help="print the table of an earlier --json run")
    ap.add_argument("--python", action="append", default=[])
    ap.add_argument("--workloads", help="comma-separated subset")
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="4 workloads, 3 s each")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a case differs (not judged and reported-only cases do not)")
    ap.add_argument("--report-only", default="",
                    help="comma-separated workloads (or cases: 'threads --threads --gil') that "
                         "are compared and printed but do not fail --check (known differences "
                         "the README explains)")
    args = ap.parse_args()
    if args.rejudge:
        rejudge(args.rejudge)
        return
    if not (args.ours and args.pyspy):
        ap.error("--ours and --pyspy are required")
    if args.quick:
        args.duration = min(args.duration, 3)
    pythons = args.python or [sys.executable]
    wanted = args.workloads.split(",") if args.workloads else (QUICK if args.quick else None)
    cases = [(w, f) for w, f in CASES if wanted is None or w in wanted]

    lines = [HEADER]
    print(HEADER, flush=True)
    results, bad = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for python in pythons:
            version = version_of(python)
            for workload, flags in cases:
                row = one_case(args, python, workload, flags, tmp)
                # With --check, a case that differs is recorded once more on a fresh target
                # and fails only if it differs again: with dozens of functions per case
                # judged at three standard deviations, one chance miss is to be expected now
                # and then.
                if args.check and row.get("verdict") == "differs" and \
                        not reported_only(args, version, workload, flags):
                    print("| %s | %s | differs once, recording again |" % (version, workload),
                          flush=True)
                    row = one_case(args, python, workload, flags, tmp)
                results.append({"python": version, "workload": workload, "flags": flags, **row})
                if "skipped" in row or "failed" in row:
                    line = "| %s | %s | %s |" % (version, workload,
                                                  row.get("skipped") or row.get("failed"))
                    if "failed" in row:
                        bad.append(line)
                else:
                    line = fmt_row(version, workload, flags, row)
                    short = row["ours"]["samples"] < 0.9 * row["a"]["samples"]
                    known = reported_only(args, version, workload, flags)
                    if (row["verdict"] == "differs" or short) and not known:
                        bad.append(line)
                    if known:
                        line += " (reported, not judged: see README)"
                print(line, flush=True)
                lines.append(line)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if bad:
        print("\n%d case(s) where ours disagrees with py-spy beyond the noise, writes under "
              "90%% of its samples, or failed:" % len(bad))
        for line in bad:
            print(line)
    if args.check and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
