# A program with many threads (argv[1]), each parked in a short sleep loop, for the bound on
# how long blocking mode pauses a target. Runs until its parent goes away.
import os
import threading
import time


def parked():
    while True:
        time.sleep(0.05)  # PARKED_LINE


def main(count):
    for _ in range(count):
        threading.Thread(target=parked, daemon=True).start()
    print("READY", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]))
