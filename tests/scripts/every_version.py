# Target for the per-version tests; runs unchanged on every Python from 2.7 to 3.15.
# Threads: the main thread asleep with locals of every common type; "spinner" busy in a loop
# (it holds the GIL most of the time); "sleeper" asleep at the bottom of a 5-deep recursion;
# "producer" asleep inside a generator. Prints READY once all are in place; exits when its
# parent goes away.
import os
import sys
import threading
import time

started = []
lock = threading.Lock()


def mark():
    with lock:
        started.append(threading.current_thread().name)


def spin():
    mark()
    n = 0
    while 1: n += 1  # SPIN_LINE


def recurse(depth):
    if depth == 0:
        mark()
        while True:
            time.sleep(0.05)  # SLEEP_LINE
    return recurse(depth - 1)  # RECURSE_LINE


def numbers(limit):
    mark()
    n = 0
    while n < limit:
        time.sleep(0.05)  # GENERATOR_LINE
        n += 1
        yield n


def produce():
    total = 0
    for item in numbers(10 ** 9):  # PRODUCE_LINE
        total += item


class Box(object):
    def __init__(self, label):
        self.label = label


def main():
    parent = os.getppid()
    for name, target, args in (("spinner", spin, ()), ("sleeper", recurse, (4,)),
                               ("producer", produce, ())):
        t = threading.Thread(target=target, args=args, name=name)
        t.daemon = True
        t.start()
    while len(started) < 3:
        time.sleep(0.01)
    count = 42
    negative = -7
    big = 2 ** 70
    ratio = 1.5
    text = "hello"
    flag = True
    nothing = None
    items = [1, 2, 3]
    pair = ("a", 2)
    mapping = {"key": 1}
    box = Box("boxed")
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while os.getppid() == parent:
        time.sleep(0.05)  # MAIN_LINE


if __name__ == "__main__":
    main()  # CALL_MAIN
