"""The asyncio workload of workloads.py (Python 3.6+): a tree of tasks, as a server's request
handlers make: a supervisor gathers workers, workers await nested coroutines that compute,
pass items through a queue and yield to the loop."""
import asyncio
import json


async def parse_item(raw):
    await asyncio.sleep(0)
    return json.loads(raw)


async def transform(item):
    total = 0
    for k, v in sorted(item.items()):
        total += len(k) * v
    await asyncio.sleep(0)
    return total


async def handle(raw):
    item = await parse_item(raw)
    return await transform(item)


async def producer(queue, alive):
    n = 0
    while alive():
        n += 1
        await queue.put(json.dumps({"id": n, "size": n % 97, "weight": n % 13}))


async def worker(queue, alive):
    done = 0
    while alive():
        raw = await queue.get()
        done += await handle(raw)
        queue.task_done()


async def supervisor(alive, ready):
    queue = asyncio.Queue(maxsize=64)
    tasks = [asyncio.ensure_future(producer(queue, alive))]
    tasks += [asyncio.ensure_future(worker(queue, alive)) for _ in range(4)]
    ready()
    while alive():
        await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()


def main(deadline, ready, alive):
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(supervisor(alive, ready))
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()
