# A small program to profile: a worker thread computing, the main thread waiting on it.
import threading
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def compute(rounds):
    total = 0
    for i in range(rounds):
        total += fib(20)
    return total


class Server:
    def __init__(self):
        self.done = threading.Event()

    def serve(self):
        while not self.done.is_set():
            compute(10)


def main():
    server = Server()
    worker = threading.Thread(target=server.serve, name="worker")
    worker.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.1)
    server.done.set()
    worker.join()


if __name__ == "__main__":
    main()
