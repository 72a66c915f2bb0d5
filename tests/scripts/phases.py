# Target for the record/render tests (runs on every Python, 2.7 too). The main thread spends about two thirds of its time in
# heavy() and one third in light(), each a busy loop on a single line; a thread named
# "napper" sleeps in nap() the whole time. Prints READY once both are running; exits after
# the number of seconds given (default 60) or when its parent goes away.
import os
import sys
import threading
import time

clock = getattr(time, "perf_counter", time.time)  # 2.7 has no perf_counter


def heavy(seconds):  # HEAVY_DEF
    end = clock() + seconds
    while clock() < end: pass  # HEAVY_LINE


def light(seconds):  # LIGHT_DEF
    end = clock() + seconds
    while clock() < end: pass  # LIGHT_LINE


def nap():
    while True:
        time.sleep(1000)  # NAP_LINE


def main(seconds):  # MAIN_DEF
    parent = os.getppid()
    napper = threading.Thread(target=nap, name="napper")
    napper.daemon = True
    napper.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    deadline = clock() + seconds
    while clock() < deadline and os.getppid() == parent:
        heavy(0.02)  # CALL_HEAVY
        light(0.01)  # CALL_LIGHT


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60)  # CALL_MAIN
