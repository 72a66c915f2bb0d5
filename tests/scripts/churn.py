"""Frame churn for the nonblocking-against-paused tests: stacks that change shape every
microsecond, the hardest case for reading a running program from outside.

    python churn.py gen [SECONDS]     # recursive generators (`yield from` down a tree)
    python churn.py calls [SECONDS]   # short methods called millions of times (vector maths)
    python churn.py co [SECONDS]      # recursive coroutines that return (`await` down a tree)

Prints READY once it runs its loop; exits after SECONDS (default 60) or when its parent goes.
"""
import os
import sys
import time


class Node(object):
    def __init__(self, left, value, right):
        self.left = left
        self.value = value
        self.right = right

    def walk(self):
        if self.left is not None:
            for v in self.left.walk():
                yield v
        yield self.value
        if self.right is not None:
            for v in self.right.walk():
                yield v


def build(lo, hi):
    if lo >= hi:
        return None
    mid = (lo + hi) // 2
    return Node(build(lo, mid), mid, build(mid + 1, hi))


def gen_round(root):
    total = 0
    for v in root.walk():
        total += v
    return total


class Vec(object):
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z

    def __sub__(self, o):
        return Vec(self.x - o.x, self.y - o.y, self.z - o.z)

    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z

    def scale(self, k):
        return Vec(self.x * k, self.y * k, self.z * k)


def visible(points, light):
    hits = 0
    for p in points:
        d = light - p
        if d.dot(d) > 1.0:
            hits += 1
        p.scale(0.5)
    return hits


def calls_round(points, light):
    return visible(points, light)


def main():
    mode = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    parent = os.getppid()
    if mode == "gen":
        root = build(0, 2000)
        step = lambda: gen_round(root)
    elif mode == "calls":
        points = [Vec(i * 0.1, i * 0.2, i * 0.3) for i in range(500)]
        light = Vec(1.0, 2.0, 3.0)
        step = lambda: calls_round(points, light)
    elif mode == "co":
        # Coroutines need 3.5+: in a module of their own, so that this file runs on 2.7.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from churn_co import co_round

        step = co_round
    else:
        raise SystemExit("mode: gen, calls or co")
    print("READY")
    sys.stdout.flush()
    end = time.time() + seconds
    # The clock and the parent are looked at every 50 rounds: a system call in every round
    # would be time a paused read overcounts (a pause interrupts it).
    while time.time() < end and os.getppid() == parent:
        for _ in range(50):
            step()


if __name__ == "__main__":
    main()
