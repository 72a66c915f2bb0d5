# Target for native-stack (--native) tests.  Python 2.7 and 3.6+.
#
#   python native_target.py DIR [spin|callback|qsort|all] [SECONDS]
#
# DIR holds the spyext module built by build_ext.py.  Runs the chosen case(s) in a loop until killed
# or until SECONDS (default 120) have passed; prints READY (flushed) once everything is imported.
#   spin:     outer() -> middle() -> spyext.spin(0.05)         C frame spyext_hot_loop, GIL held
#   callback: via_callback() -> spyext.call_back(py_leaf, 3)  C frame spyext_call_back between
#             Python frames; py_leaf busy-loops ~0.02 s in pure Python
#   qsort:    sort_with_ctypes() -> libc qsort -> ctypes callback compare() (busy work)
# Tests find line numbers by the trailing LINE_* markers.
import ctypes
import ctypes.util
import os
import sys
import time

sys.path.insert(0, os.path.abspath(sys.argv[1]))
import spyext  # noqa: E402

MODE = sys.argv[2] if len(sys.argv) > 2 else "all"
if MODE not in ("spin", "callback", "qsort", "all"):
    sys.stderr.write("native_target.py: unknown case %r (spin|callback|qsort|all)\n" % MODE)
    sys.exit(2)
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0


def load_libc():
    # The chroot roots have no ldconfig/gcc, so find_library may fail there: try the soname first.
    # (2.7's find_library even raises OSError when gcc is missing.)
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        pass
    try:
        name = ctypes.util.find_library("c")
        if name:
            return ctypes.CDLL(name)
    except OSError:
        pass
    return ctypes.CDLL(None)


LIBC = load_libc()
CMPFUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
LIBC.qsort.restype = None
LIBC.qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, CMPFUNC]


def middle():
    return spyext.spin(0.05)  # LINE_SPIN


def outer():
    return middle()  # LINE_OUTER


def py_leaf():
    end = time.time() + 0.02
    n = 0
    while time.time() < end: n += 1  # LINE_LEAF
    return n


def via_callback():
    spyext.call_back(py_leaf, 3)  # LINE_CALLBACK


def compare(a, b):
    x = 0
    for i in range(300): x += i  # LINE_COMPARE
    return (a[0] > b[0]) - (a[0] < b[0])


COMPARE = CMPFUNC(compare)  # keep a reference: the callback must outlive qsort


def sort_with_ctypes():
    n = 200
    arr = (ctypes.c_int * n)(*[(i * 7919) % n for i in range(n)])
    LIBC.qsort(arr, n, ctypes.sizeof(ctypes.c_int), COMPARE)  # LINE_QSORT
    assert list(arr) == sorted(arr)


def main():
    deadline = time.time() + SECONDS
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while time.time() < deadline:
        if MODE in ("spin", "all"):
            outer()  # LINE_CALL_OUTER
        if MODE in ("callback", "all"):
            via_callback()  # LINE_CALL_CALLBACK
        if MODE in ("qsort", "all"):
            sort_with_ctypes()  # LINE_CALL_QSORT


if __name__ == "__main__":
    main()
