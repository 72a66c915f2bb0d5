#!/usr/bin/env python3
"""Download, check and unpack the third-party files the tests read (not vendored, only used):

- py-spy 0.4.3's source distribution from PyPI, for its tests/integration_test.py and the
  scripts it runs, which must pass against our binary;
- the speedscope npm package, for dist/release/file-format-schema.json, which our
  speedscope output must validate against.

Usage: fetch-test-inputs.py DEST_DIR. Prints shell `export` lines naming what it unpacked.
Stdlib only; each download is checked against a pinned SHA-256 before use.
"""
import hashlib
import os
import sys
import tarfile
import urllib.request

FILES = [
    (
        "py_spy-0.4.3.tar.gz",
        "https://files.pythonhosted.org/packages/e9/66/a94b309aa5a43be455c7132d53b7b61c20d2a554e6d0f487fa7c2f392d7d/py_spy-0.4.3.tar.gz",
        "65ac4319f8c20dcd1e2ea219935c6b4fd98179b0b7faf59181eae2680a85fad4",
    ),
    (
        "speedscope-1.25.0.tgz",
        "https://registry.npmjs.org/speedscope/-/speedscope-1.25.0.tgz",
        None,  # npm publishes sha512 (checked below) rather than sha256
    ),
]
SPEEDSCOPE_SHA512_B64 = (
    "cpf9HWTZf1ijLXBJrk87Ve/54tnYx6rlf0gUThvn3ook6h63hLXVOQiMf44PT+XoV503cPfvfiT5gP5vojp6Ag=="
)


def fetch(dest, name, url):
    path = os.path.join(dest, name)
    if not os.path.exists(path):
        tmp = path + ".part"
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
            f.write(r.read())
        os.replace(tmp, path)
    return path


def main():
    dest = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/test-inputs")
    os.makedirs(dest, exist_ok=True)
    import base64

    for name, url, sha256 in FILES:
        path = fetch(dest, name, url)
        data = open(path, "rb").read()
        if sha256 is not None:
            ok = hashlib.sha256(data).hexdigest() == sha256
        else:
            ok = base64.b64encode(hashlib.sha512(data).digest()).decode() == SPEEDSCOPE_SHA512_B64
        if not ok:
            os.unlink(path)
            sys.exit("checksum mismatch for %s" % name)
        with tarfile.open(path) as t:
            t.extractall(os.path.join(dest, name.split(".t")[0]))
    pyspy_tests = os.path.join(dest, "py_spy-0.4.3", "py_spy-0.4.3", "tests")
    schema = os.path.join(dest, "speedscope-1.25.0", "package", "dist", "release",
                          "file-format-schema.json")
    for p in (pyspy_tests, schema):
        if not os.path.exists(p):
            sys.exit("missing after unpacking: %s" % p)
    print("export PYSPY_INTEGRATION_TESTS=%s" % pyspy_tests)
    print("export PYSPY_SPEEDSCOPE_SCHEMA=%s" % schema)


if __name__ == "__main__":
    main()
