# A program to dump live and then from a core file (tests/core.rs): every thread holds still,
# so that both dumps must agree exactly. "spinner" runs pure Python on one line (active),
# "waiter" waits on an event (idle by py-spy's rule), the main thread sleeps (idle).
import sys
import threading
import time

numbers = getattr(__builtins__, "xrange", range)
flag = [True]
never = threading.Event()
main_thread = [None]
SLEEP_LINE = [
    n for n, text in enumerate(open(__file__), 1) if text.rstrip().endswith("# LINE_" + "SLEEP")
][0]


def main_asleep():
    # Wait until the main thread is in its sleep (seen there twice, 50 ms apart), then say
    # READY. Spinning before that could keep the main thread from getting there: 2.7's GIL is
    # not handed over fairly, and a spinning thread kept the main thread waiting for it, on
    # the line before its sleep, for longer than a test waits.
    frames = sys._current_frames
    seen = 0
    while seen < 2:
        time.sleep(0.05)
        main = frames().get(main_thread[0])
        seen = seen + 1 if main is not None and main.f_lineno == SLEEP_LINE else 0
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def spin(label, count=3, ratio=2.5, items=None):
    items = items or [1, "two", 3.0]
    main_asleep()
    # Each turn is mostly one C call that keeps the GIL: 2.7 drops and takes back the GIL
    # every 100 instructions even with no one waiting, and a dump could catch it between.
    while flag[0]: sum(numbers(100000))  # LINE_SPIN


def wait_forever(reason):
    timeout = 600.0
    # No timeout: 2.7 polls with one, and its locals would change between two dumps.
    never.wait()  # LINE_WAIT


def main(seconds):
    deadline = time.time() + seconds
    main_thread[0] = threading.current_thread().ident
    threading.Thread(target=wait_forever, args=("nothing",), name="waiter").start()
    threading.Thread(target=spin, args=("busy",), name="spinner").start()
    # One long sleep: a thread that woke now and then would take the GIL from "spinner"
    # between the two dumps. "spinner" says READY once the main thread is in it.
    remaining = max(0.0, deadline - time.time())
    time.sleep(remaining)  # LINE_SLEEP
    flag[0] = False
    never.set()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
