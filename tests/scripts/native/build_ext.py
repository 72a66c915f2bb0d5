"""Build the spyext test extension (spyext.c, same folder) for one CPython interpreter.

Stdlib only; runs on Python 2.7 and 3.6+.  Prints the path of the built module on stdout (last line).

HOW A TEST SHOULD BUILD, per kind of interpreter
------------------------------------------------
* pyenv builds (~/.pyenv/versions/X/bin/python) and Debian's /usr/bin/python3.11 (needs the host
  package python3.11-dev / libpython3.11-dev for Python.h): the interpreter builds for itself
      PYTHON build_ext.py OUTDIR
  It compiles with the host's `cc` (or `gcc`, or $CC) against sysconfig's include dir.
* chroot interpreters (~/.cache/pyspy-pythons/bin/pythonX.Y, see ../shared/pythons/README.md):
  their roots hold neither a C compiler nor Python headers (the provisioned packages are only
  pythonX.Y, -minimal and -stdlib), so building inside the root is impossible.  Build on the host
  instead, with any host Python, naming the target:
      python3 build_ext.py OUTDIR --target ~/.cache/pyspy-pythons/bin/python3.14 --fetch-headers
  --target runs the interpreter once to read its version, EXT_SUFFIX and include dir, finds its
  root from the host side (/proc/PID/root of that probe process) and compiles on the host with the
  host's cc.  Headers are taken, in this order, from: ROOT/<include dir> (if a -dev package was
  ever unpacked into the root), --include DIR, the headers cache
  ($PYSPY_PY_HEADERS or ~/.cache/pyspy-python-headers)/X.Y.  --fetch-headers fills the cache:
  it downloads Debian's libpythonX.Y-dev (2.7/3.9: bullseye, 3.13: trixie, 3.14/3.15: sid; same
  source version as the provisioned interpreter) with apt-get, reusing the package lists that
  `provision` left in $PYSPY_PYTHONS/.apt (no change to the system's apt/dpkg state), and unpacks
  it with dpkg -x.  Debian's pythonX.Y/pyconfig.h includes <x86_64-linux-gnu/pythonX.Y/pyconfig.h>,
  so the cache's usr/include is added with -idirafter (host system headers still win).
  The module links only against old glibc symbols (clock_gettime@GLIBC_2.17), so a module built on
  bookworm loads in the bullseye (glibc 2.31) roots too.  OUTDIR must be visible inside the root at
  the same path: use a folder under /tmp or pass OUTDIR on the target's command line (the wrapper
  bind-mounts the folder of every path argument).
  Without --target, inside such a root, this script stops with an explanation.
"""
from __future__ import print_function

import ast
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "spyext.c")
CFLAGS = ["-O2", "-g", "-fno-omit-frame-pointer", "-fPIC", "-shared", "-Wall"]
DEBIAN_SUITE = {"2.7": "bullseye", "3.9": "bullseye", "3.13": "trixie", "3.14": "sid", "3.15": "sid"}

# Runs inside the target interpreter (any of 2.7, 3.6+): prints a dict literal, then waits on stdin
# so that the host can read /proc/PID/root of the still-running process.
PROBE = r"""
import sys, sysconfig
info = {"version": "%d.%d" % sys.version_info[:2], "full": sys.version.split()[0]}
info["suffix"] = sysconfig.get_config_var("EXT_SUFFIX") or sysconfig.get_config_var("SO")
if sys.version_info[0] == 2:
    from distutils import sysconfig as dsc   # Debian's 2.7 sysconfig says /usr/local/include
    info["include"] = dsc.get_python_inc()
    info["platinclude"] = dsc.get_python_inc(plat_specific=True)
else:
    paths = sysconfig.get_paths()
    info["include"] = paths["include"]
    info["platinclude"] = paths.get("platinclude", paths["include"])
info["multiarch"] = sysconfig.get_config_var("MULTIARCH") or ""
sys.stdout.write(repr(info) + "\n")
sys.stdout.flush()
sys.stdin.read()
"""


def die(msg):
    sys.stderr.write("build_ext.py: " + msg + "\n")
    sys.exit(1)


def which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def find_compiler():
    cc = os.environ.get("CC")
    if cc:
        return cc.split()
    for name in ("cc", "gcc", "clang"):
        if which(name):
            return [name]
    return None


def probe_self():
    ns = {}
    code = PROBE.replace("sys.stdin.read()", "")
    import io
    old = sys.stdout
    sys.stdout = buf = (io.BytesIO() if sys.version_info[0] == 2 else io.StringIO())
    try:
        exec(code, ns)
    finally:
        sys.stdout = old
    return ast.literal_eval(buf.getvalue().strip()), "/"


def probe_target(python):
    p = subprocess.Popen([python, "-c", PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = p.stdout.readline()
    try:
        root = os.readlink("/proc/%d/root" % p.pid)  # the wrapper execs: this PID is the interpreter
    except OSError:
        root = "/"
    p.stdin.close()
    p.wait()
    if not line:
        die("could not probe %s (exit %s)" % (python, p.returncode))
    return ast.literal_eval(line.decode("utf-8").strip()), root


def in_root(root, path):
    return path if root == "/" else os.path.join(root, path.lstrip("/"))


def headers_cache(version):
    base = os.environ.get("PYSPY_PY_HEADERS") or os.path.expanduser("~/.cache/pyspy-python-headers")
    return os.path.join(base, version)


def fetch_headers(info):
    """Download Debian's libpythonX.Y-dev into the headers cache, using provision's apt lists."""
    v = info["version"]
    suite = DEBIAN_SUITE.get(v)
    if suite is None:
        die("--fetch-headers: no Debian suite known for Python %s" % v)
    apt = os.path.join(os.environ.get("PYSPY_PYTHONS") or os.path.expanduser("~/.cache/pyspy-pythons"), ".apt")
    lists = os.path.join(apt, "lists", suite)
    if not os.path.isdir(lists):
        die("--fetch-headers: %s missing: run ../shared/pythons/provision %s first" % (lists, v))
    opts = ["-o", "Dir::Etc::SourceList=%s/sources.%s.list" % (apt, suite),
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", "Dir::State::Lists=" + lists,
            "-o", "Dir::Cache=%s/cache/%s" % (apt, suite), "-o", "Dir::State::status=%s/empty-status" % apt,
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]
    tmp = tempfile.mkdtemp(prefix="pyhdr-")
    try:
        subprocess.check_call(["apt-get"] + opts + ["-q", "download", "libpython%s-dev" % v],
                              cwd=tmp, stdout=sys.stderr)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if len(debs) != 1:
            die("--fetch-headers: expected one .deb, got %r" % debs)
        if "_" + info["full"].split("+")[0] not in debs[0]:
            sys.stderr.write("build_ext.py: warning: %s does not match interpreter %s\n" % (debs[0], info["full"]))
        dest = headers_cache(v)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.makedirs(dest)
        subprocess.check_call(["dpkg", "-x", os.path.join(tmp, debs[0]), dest])
        for name in os.listdir(os.path.join(dest, "usr")):   # keep only usr/include (drop libpython.a)
            if name != "include":
                shutil.rmtree(os.path.join(dest, "usr", name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def include_flags(info, root, extra):
    """-I flags for Python.h: the interpreter's own include dir (inside its root), else --include,
    else the headers cache."""
    v = info["version"]
    candidates = [(in_root(root, info["include"]), in_root(root, info["platinclude"]), in_root(root, "/usr/include"))]
    if extra:
        if os.path.exists(os.path.join(extra, "Python.h")):
            candidates.append((extra, extra, None))
        else:  # a prefix such as an unpacked -dev package
            candidates.append((os.path.join(extra, "usr/include/python" + v), None, os.path.join(extra, "usr/include")))
    cache = headers_cache(v)
    candidates.append((os.path.join(cache, "usr/include/python" + v), None, os.path.join(cache, "usr/include")))
    for inc, plat, after in candidates:
        if os.path.exists(os.path.join(inc, "Python.h")):
            flags = ["-I", inc]
            if plat and plat != inc and os.path.isdir(plat):
                flags += ["-I", plat]
            if after and os.path.isdir(after) and after != "/usr/include":
                flags += ["-idirafter", after]   # Debian: <x86_64-linux-gnu/pythonX.Y/pyconfig.h>
            return flags
    die("no Python.h for Python %s (root %s; looked in %s).\n"
        "  Chroot interpreter: rerun with --fetch-headers (Debian package libpython%s-dev),\n"
        "  host /usr/bin/python3.11: apt-get install libpython3.11-dev."
        % (v, root, ", ".join(c[0] for c in candidates), v))


def main(argv):
    args = list(argv)
    target = extra = None
    fetch = False
    if "--fetch-headers" in args:
        args.remove("--fetch-headers")
        fetch = True
    for opt in ("--target", "--include"):
        if opt in args:
            i = args.index(opt)
            if i + 1 >= len(args):
                die(opt + " needs a value")
            val = args[i + 1]
            del args[i:i + 2]
            if opt == "--target":
                target = val
            else:
                extra = os.path.abspath(val)
    if len(args) != 1:
        die("usage: build_ext.py OUTDIR [--target PYTHON] [--fetch-headers] [--include DIR]")
    outdir = os.path.abspath(args[0])

    info, root = probe_target(target) if target else probe_self()
    cc = find_compiler()
    if cc is None:
        die("no C compiler (cc/gcc/clang/$CC) here. If this is a provisioned chroot interpreter, run on\n"
            "  the host instead:  python3 %s %s --target <its wrapper, e.g. ~/.cache/pyspy-pythons/bin/python%s>"
            " --fetch-headers" % (os.path.abspath(__file__), outdir, info["version"]))
    if fetch and not os.path.exists(os.path.join(in_root(root, info["include"]), "Python.h")) \
            and not os.path.exists(os.path.join(headers_cache(info["version"]), "usr/include/python%s/Python.h" % info["version"])):
        fetch_headers(info)
    flags = include_flags(info, root, extra)

    if not os.path.isdir(outdir):
        os.makedirs(outdir)
    out = os.path.join(outdir, "spyext" + info["suffix"])
    cmd = cc + CFLAGS + flags + [SOURCE, "-o", out]
    sys.stderr.write("build_ext.py: Python %s (root %s): %s\n" % (info["full"], root, " ".join(cmd)))
    rc = subprocess.call(cmd)
    if rc != 0:
        die("compiler failed (exit %d)" % rc)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
