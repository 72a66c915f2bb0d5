# Needs Python 3.6+ (non-ASCII identifiers, threading.Barrier); every_version.py covers 2.7.
# Target for the dump tests: four differently shaped threads, each parked on a known line.
# Prints READY once every thread is in place. Exits when its parent goes away.
import json
import os
import sys
import threading
import time

ready = threading.Barrier(4)


class Producer:
    def __init__(self, count):
        self.count = count

    def items(self):
        n = 0
        while True:
            ready_once()
            time.sleep(0.05)  # GENERATOR_LINE
            n += 1
            yield n

    def run(self):
        for item in self.items():  # METHOD_LINE
            pass


def récursion_ü(depth):
    if depth == 0:
        ready_once()
        while True:
            time.sleep(0.05)  # RECURSION_LEAF_LINE
    return récursion_ü(depth - 1)  # RECURSION_LINE


def spin():
    ready_once()
    n = 0
    while True: n += 1  # SPIN_LINE


_seen = set()


def ready_once():
    name = threading.current_thread().name
    if name not in _seen:
        _seen.add(name)
        ready.wait()


def expected_stacks():
    """What CPython itself says the other threads are doing: {name: [[function, file, line]]}."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = {}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        stack = []
        while frame is not None:
            code = frame.f_code
            name = getattr(code, "co_qualname", code.co_name)
            stack.append([name, os.path.basename(code.co_filename), frame.f_lineno])
            frame = frame.f_back
        out[names.get(ident, str(ident))] = stack
    return out


def main():
    count = 42
    big = -(2**100)
    ratio = 0.25
    flag = True
    nothing = None
    text = "héllo wörld"
    empty = ""
    long_text = "x" * 5000
    blob = b"ab\x00"
    pair = (1, "two")
    items = [1, 2, 3]
    mapping = {"a": 1}
    control = "a\x00b\x1b[2Jc\x7f"
    nested = [1]
    nested.append(nested)
    floats = (3.0, 1e16, -0.0, 0.00001)
    threads = [
        threading.Thread(target=Producer(3).run, name="producer", daemon=True),
        threading.Thread(target=récursion_ü, args=(20,), name="recursive-ünicode", daemon=True),
        threading.Thread(target=spin, name="spinner", daemon=True),
    ]
    for t in threads:
        t.start()
    ready_once()
    time.sleep(0.2)
    print("EXPECT " + json.dumps(expected_stacks()), flush=True)
    print("READY", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)  # MAIN_LINE


if __name__ == "__main__":
    main()  # MODULE_LINE
