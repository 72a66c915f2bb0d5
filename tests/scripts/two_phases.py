# Target for `analyze --dump --at`: after READY the main thread runs first_phase() for 1.5 s,
# then second_phase() until its parent goes away (or 60 s). Runs on every Python.
import os
import sys
import time


def spin(seconds):
    end = time.time() + seconds
    while time.time() < end: pass  # SPIN_LINE


def first_phase():
    spin(1.5)  # FIRST_LINE


def second_phase(parent):
    end = time.time() + 60
    while os.getppid() == parent and time.time() < end:
        spin(0.05)  # SECOND_LINE


if __name__ == "__main__":
    parent = os.getppid()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    first_phase()
    second_phase(parent)
