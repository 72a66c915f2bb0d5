# Workload for the session-size benchmark: ten threads doing varied pure-Python work (a few
# recursive shapes, different depths and lines), so stacks vary the way a real program's do.
# Runs for the number of seconds given (default 70), or until its parent goes away.
import os
import sys
import threading
import time


def leaf_a(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def leaf_b(n):
    return sorted(range(n, 0, -1))[0]


def leaf_c(n):
    return "".join(str(i) for i in range(n // 10))


def descend(depth, kind, n):
    if depth == 0:
        if kind == 0:
            return leaf_a(n)
        if kind == 1:
            return leaf_b(n)
        return leaf_c(n)
    return descend(depth - 1, kind, n)


def worker(index, deadline, parent):
    i = 0
    while time.time() < deadline and os.getppid() == parent:
        descend(5 + (i + index) % 12, (i * 7 + index) % 3, 2000 + 100 * (i % 5))
        if index % 3 == 0:
            time.sleep(0.001)
        i += 1


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 70
    deadline = time.time() + seconds
    parent = os.getppid()
    threads = [
        threading.Thread(target=worker, args=(k, deadline, parent), name="worker-%d" % k)
        for k in range(9)
    ]
    for t in threads:
        t.start()
    print("READY", flush=True)
    worker(9, deadline, parent)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
