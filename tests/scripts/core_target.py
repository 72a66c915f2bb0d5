# A program to dump live and then from a core file (tests/core.rs): every thread holds still,
# so that both dumps must agree exactly. "spinner" runs pure Python on one line (active),
# "waiter" waits on an event (idle by py-spy's rule), the main thread sleeps (idle).
import sys
import threading
import time

numbers = getattr(__builtins__, "xrange", range)
flag = [True]
ready = threading.Event()
never = threading.Event()


def spin(label, count=3, ratio=2.5, items=None):
    items = items or [1, "two", 3.0]
    ready.set()
    # Each turn is mostly one C call that keeps the GIL: 2.7 drops and takes back the GIL
    # every 100 instructions even with no one waiting, and a dump could catch it between.
    while flag[0]: sum(numbers(100000))  # LINE_SPIN


def wait_forever(reason):
    timeout = 600.0
    # No timeout: 2.7 polls with one, and its locals would change between two dumps.
    never.wait()  # LINE_WAIT


def main(seconds):
    deadline = time.time() + seconds
    threading.Thread(target=spin, args=("busy",), name="spinner").start()
    threading.Thread(target=wait_forever, args=("nothing",), name="waiter").start()
    ready.wait()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    # One long sleep: a thread that woke now and then would take the GIL from "spinner"
    # between the two dumps.
    time.sleep(max(0.0, deadline - time.time()))  # LINE_SLEEP
    flag[0] = False
    never.set()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
