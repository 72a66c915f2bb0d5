# Target for the --subprocesses test: this process starts a child Python process running
# child_work(); both spin in their own functions until the parent goes away or time is up.
import os
import subprocess
import sys
import time


def child_work(seconds):
    end = time.time() + seconds
    parent = os.getppid()
    while time.time() < end and os.getppid() == parent:
        sum(i * i for i in range(1000))  # CHILD_LINE


def parent_work(seconds):
    child = subprocess.Popen([sys.executable, __file__, "child", str(seconds)])
    print("READY", flush=True)
    end = time.time() + seconds
    parent = os.getppid()
    while time.time() < end and os.getppid() == parent:
        sum(i * i for i in range(1000))  # PARENT_LINE
    child.kill()


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child_work(float(sys.argv[2]))
    else:
        parent_work(float(sys.argv[1]))
