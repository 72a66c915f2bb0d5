# Target for `top`: two threads, each busy in a function of its own, for SECONDS (argument,
# default 600) or until killed; then it exits.
import sys
import threading
import time


def crunch(end):
    n = 0
    while time.time() < end:
        for i in range(200):
            n += i * i  # CRUNCH_LINE
    return n


def churn(end):
    n = 0
    while time.time() < end:
        n += len(str(list(range(300))))  # CHURN_LINE
    return n


if __name__ == "__main__":
    end = time.time() + (float(sys.argv[1]) if len(sys.argv) > 1 else 600)
    worker = threading.Thread(target=crunch, args=(end,), name="cruncher")
    worker.daemon = True
    worker.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    churn(end)
