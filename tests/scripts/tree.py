# Target for `dump --subprocesses`: a process tree of three Pythons and one program that is
# not Python. The parent starts a child Python (two threads) and `sleep`; the child starts a
# grandchild Python (`sleep` is -1 where it cannot be started). Each waits in a function of its own and leaves when its parent is gone.
# The parent prints `PIDS {"child": C, "grandchild": G}` and READY once all are in place.
import json
import os
import subprocess
import sys
import threading
import time


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.05)  # WAIT_LINE


def child_helper(parent):
    wait_for_parent(parent)


def grandchild():
    say("READY")
    wait_for_parent(os.getppid())


def child():
    parent = os.getppid()
    helper = threading.Thread(target=child_helper, args=(parent,), name="child-helper")
    helper.daemon = True
    helper.start()
    g = subprocess.Popen([sys.executable, __file__, "grandchild"], stdout=subprocess.PIPE)
    g.stdout.readline()
    say("READY %d" % g.pid)
    wait_for_parent(parent)
    g.kill()


def parent():
    c = subprocess.Popen([sys.executable, __file__, "child"], stdout=subprocess.PIPE)
    grand = int(c.stdout.readline().split()[1])
    try:
        s = subprocess.Popen(["sleep", "300"])
    except OSError:  # a root without coreutils (the provisioned interpreters)
        s = None
    say("PIDS " + json.dumps({"child": c.pid, "grandchild": grand, "sleep": s.pid if s else -1}))
    say("READY")
    try:
        while True:
            time.sleep(0.05)  # PARENT_LINE
    finally:
        if s:
            s.kill()
        c.kill()


if __name__ == "__main__":
    {"child": child, "grandchild": grandchild}.get(sys.argv[1] if len(sys.argv) > 1 else "", parent)()
