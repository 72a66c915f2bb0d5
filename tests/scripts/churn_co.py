"""Recursive coroutines for `churn.py co`: each `await` of a coroutine that returns (never
yields) runs it to completion at once, so the chain of coroutine frames grows and shrinks
every fraction of a microsecond, and a finished coroutine's memory is handed to the next one.
"""


async def co_leaf(n):
    return n * 2


async def co_fib(n):
    if n <= 1:
        return await co_leaf(n)
    return await co_fib(n - 1) + await co_fib(n - 2)


def co_round():
    coro = co_fib(12)
    try:
        while True:
            coro.send(None)
    except StopIteration as done:
        return done.value
