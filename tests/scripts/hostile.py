# Hostile targets for tests/hostile.rs (Python 3.6+). `hostile.py MODE [ARG]`:
#   many N          N threads parked in short sleeps
#   thread-churn    a thread started and ended about every millisecond
#   code-churn      new functions compiled, called and freed all the time: each `f_N` is
#                   compiled from a file named `<gen-N>`, so a frame's name and file agree
#   odd-modules     sys.modules["threading"] replaced by an int
#   odd-active      threading._active replaced by ARG: list, selfref, strkeys or huge
#   exit-after S    busy for S seconds, then exits
# Every mode busies a thread in `busy`. With HOSTILE_STALLS=PATH and HOSTILE_METER naming
# tests/scripts/stallmeter.c built as a shared library, a native thread (outside the GIL)
# sleeps 1 ms at a time and appends `MONOTONIC_END STALL_MS` to PATH for each wake-up more
# than 3 ms late: how long the program was stopped, measured from inside.
# Prints READY when set up; runs until its parent goes away (exit-after: until S passed).
import os
import sys
import threading
import time


def parked():
    while True:
        time.sleep(0.05)


def short_lived():
    sum(range(100))


def churn_threads():
    while True:
        t = threading.Thread(target=short_lived)
        t.start()
        t.join()
        time.sleep(0.001)


def churn_code():
    i = 0
    while True:
        i += 1
        ns = {}
        source = "def f_%d(n):\n    return sum(range(n))\n" % i
        exec(compile(source, "<gen-%d>" % i, "exec"), ns)
        ns["f_%d" % i](2000)  # CHURN_CALL_LINE


def busy(deadline):
    n = 0
    while deadline is None or time.monotonic() < deadline:
        n += 1  # BUSY_LINE


def main():
    mode = sys.argv[1]
    arg = sys.argv[2] if len(sys.argv) > 2 else None
    stalls = os.environ.get("HOSTILE_STALLS")
    if stalls:
        import ctypes

        meter = ctypes.CDLL(os.environ["HOSTILE_METER"])
        meter.start_meter.argtypes = [ctypes.c_char_p]
        if meter.start_meter(stalls.encode()) != 0:
            raise SystemExit("could not start the stall meter")
    if mode == "exit-after":
        print("READY", flush=True)
        busy(time.monotonic() + float(arg))
        return
    start_busy = lambda: threading.Thread(target=busy, args=(None,), name="busy", daemon=True).start()
    if mode == "many":
        for _ in range(int(arg)):
            threading.Thread(target=parked, daemon=True).start()
    elif mode == "thread-churn":
        threading.Thread(target=churn_threads, name="churner", daemon=True).start()
    elif mode == "code-churn":
        threading.Thread(target=churn_code, name="compiler", daemon=True).start()
    elif mode == "odd-modules":
        start_busy()
        threading.Thread(target=parked, name="parked", daemon=True).start()
        sys.modules["threading"] = 42
    elif mode == "odd-active":
        # After the threads have started: starting or ending one needs the real `_active`.
        start_busy()
        threading.Thread(target=parked, name="parked", daemon=True).start()
        if arg == "list":
            threading._active = [1, 2, 3]
        elif arg == "selfref":
            d = {}
            d[threading.get_ident()] = d
            threading._active = d
        elif arg == "strkeys":
            threading._active = {"a": threading.current_thread(), None: 1, 2**70: 3}
        elif arg == "huge":
            threading._active = dict((i, i) for i in range(200000))
    if not mode.startswith("odd-"):
        start_busy()
    print("READY", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
