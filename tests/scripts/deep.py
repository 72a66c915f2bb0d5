# Target for cost tests: one thread, DEPTH frames of pure-Python recursion, then a busy loop.
import os
import sys


def recurse(depth):
    if depth <= 1:
        return busy_leaf()
    return recurse(depth - 1)  # RECURSE_LINE


def busy_leaf():
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    parent = os.getppid()
    n = 0
    while os.getppid() == parent:
        n += 1  # BUSY_LINE


if __name__ == "__main__":
    recurse(int(sys.argv[1]) - 2)  # DEPTH frames: <module>, recurse x (DEPTH-2), busy_leaf
