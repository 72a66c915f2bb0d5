"""Recursive generators and coroutines with one function per level of the tree they walk
(`walk_0` calls `walk_1`, ... ; `co_0` awaits `co_1`, ...), for tests/whole_stacks.rs: a stack
read whole must show the levels one after another from `walk_0` (or `co_0`) down, so a stack
that lost levels (a generator linked to an ancestor of its caller) is seen, which a profile
of one recursive function cannot show.

    python levels.py gen|co [SECONDS]

Prints READY once it runs its loop; exits after SECONDS (default 60) or when its parent goes.
"""
import os
import sys
import time

LEVELS = 12

# The functions are written out from one template per kind, so that each level has its own
# name (and the file stays valid Python 2.7 syntax: coroutines need 3.5+).
GEN = """
def walk_%(k)d(node):
    if node[0] is not None:
        for v in %(next)s(node[0]):
            yield v
    yield node[1]
    if node[2] is not None:
        for v in %(next)s(node[2]):
            yield v
"""
CO = """
async def co_%(k)d(node):
    total = 0
    if node[0] is not None:
        total += await %(next)s(node[0])
    total += node[1]
    if node[2] is not None:
        total += await %(next)s(node[2])
    return total
"""
LAST = """
def walk_last(node):
    yield node[1]


async def co_last(node):
    return node[1]
"""


def define(mode):
    template = GEN if mode == "gen" else CO
    prefix = "walk_" if mode == "gen" else "co_"
    source = []
    for k in range(LEVELS):
        following = prefix + (str(k + 1) if k + 1 < LEVELS else "last")
        source.append(template % {"k": k, "next": following})
    source.append(LAST)
    exec(compile("".join(source), __file__, "exec"), globals())


def build(lo, hi, depth=0):
    if lo >= hi or depth > LEVELS:
        return None
    mid = (lo + hi) // 2
    return (build(lo, mid, depth + 1), mid, build(mid + 1, hi, depth + 1))


def gen_round(root):
    total = 0
    for v in walk_0(root):  # noqa: F821 (defined by `define`)
        total += v
    return total


def co_round(root):
    coro = co_0(root)  # noqa: F821
    try:
        while True:
            coro.send(None)
    except StopIteration as done:
        return done.value


def main():
    mode = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    if mode not in ("gen", "co"):
        raise SystemExit("mode: gen or co")
    define(mode)
    root = build(0, 4000)
    step = gen_round if mode == "gen" else co_round
    parent = os.getppid()
    print("READY")
    sys.stdout.flush()
    end = time.time() + seconds
    while time.time() < end and os.getppid() == parent:
        for _ in range(20):
            step(root)


if __name__ == "__main__":
    main()
