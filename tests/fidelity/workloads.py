"""Real code for the fidelity check: each workload runs widely used pure-Python code from the
standard library (nothing of ours), the way programs use it, until a deadline.

    python workloads.py NAME [MAX_SECONDS]

Prints "READY <pid>" once the workload is running. Exits at the deadline or when the
process that started it goes away.

With FIDELITY_SELF_SAMPLE=PATH in its environment, the process samples itself instead of
being profiled from outside: SIGPROF every 1/FIDELITY_SELF_RATE (default 200) seconds of
CPU time, from READY for FIDELITY_SELF_SECONDS (default 4), each signal counting the stack of
the frame it interrupted; the counts are written to PATH as collapsed stacks, then the
process exits. No reading from outside, no pause: the program's own view, for the workloads
whose work runs on the main thread (Python runs signal handlers there). Runs on Python 2.7 and 3.6+ (a workload the interpreter
cannot run says so on stderr and exits with status 3).

Workloads:
  tokenize   the tokenize module over stdlib sources (generator pipelines)
  regex      re.compile of many distinct patterns (sre_parse/sre_compile), cache purged
  http       http.server answering urllib requests from the main thread over a socket
  template   difflib.HtmlDiff tables, string.Template and textwrap (HTML generation)
  email      email parsing and generation of multipart messages
  threads    three threads of Fraction arithmetic and difflib (a thread pool at work)
  asyncio    an asyncio task tree: gather, queues, nested coroutines, sleep(0)
  logging    logging through formatters and filters into a memory stream
"""
from __future__ import print_function

import os
import sys
import threading
import time

PARENT = os.getppid()


def alive(deadline):
    return time.time() < deadline and os.getppid() == PARENT


def ready():
    path = os.environ.get("FIDELITY_SELF_SAMPLE")
    if path:
        sample_self(path, float(os.environ.get("FIDELITY_SELF_RATE", "200")),
                    float(os.environ.get("FIDELITY_SELF_SECONDS", "4")))
    sys.stdout.write("READY %d\n" % os.getpid())
    sys.stdout.flush()


def sample_self(path, rate, seconds):
    """Count the interrupted stack at each SIGPROF; write them out and exit after `seconds`."""
    import signal
    counts = {}

    def frame_name(f):
        co = f.f_code
        return "%s (%s:%d)" % (getattr(co, "co_qualname", co.co_name), co.co_filename,
                               f.f_lineno)

    def on_prof(signum, frame):
        names = []
        while frame is not None:
            names.append(frame_name(frame))
            frame = frame.f_back
        key = ";".join(reversed(names))
        counts[key] = counts.get(key, 0) + 1

    def finish():
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(path + ".tmp", "w") as out:
            for key, n in sorted(counts.items()):
                out.write("%s %d\n" % (key, n))
        os.rename(path + ".tmp", path)
        os._exit(0)

    signal.signal(signal.SIGPROF, on_prof)
    signal.setitimer(signal.ITIMER_PROF, 1.0 / rate, 1.0 / rate)
    timer = threading.Timer(seconds, finish)
    timer.daemon = True
    timer.start()


def stdlib_sources(count):
    import inspect
    import textwrap as tw
    import string as st
    import difflib as dl
    import fractions as fr
    out = []
    for mod in (tw, st, dl, fr, inspect):
        path = mod.__file__
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        try:
            with open(path) as f:
                out.append(f.read())
        except (IOError, OSError):
            pass
    return out[:count]


def run_tokenize(deadline):
    import tokenize
    try:
        from StringIO import StringIO  # 2.7: byte strings
    except ImportError:
        from io import StringIO
    sources = stdlib_sources(4)
    ready()
    while alive(deadline):
        for src in sources:
            names = 0
            for tok in tokenize.generate_tokens(StringIO(src).readline):
                if tok[0] == tokenize.NAME:
                    names += 1
            if not alive(deadline):
                return


def run_regex(deadline):
    import re
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    ready()
    n = 0
    while alive(deadline):
        n += 1
        w = words[n % len(words)]
        pattern = r"(?P<head>%s|%d)[-_]?(\d{1,%d})(?:\.(?P<tail>[a-z]+))?\s*(?=;|$)|[%s]+" % (
            w, n, n % 7 + 1, w)
        re.compile(pattern, re.IGNORECASE if n % 2 else 0)
        if n % 50 == 0:
            re.purge()


def run_http(deadline):
    try:
        from http.server import HTTPServer, BaseHTTPRequestHandler
        from urllib.request import urlopen
    except ImportError:
        from BaseHTTPServer import HTTPServer, BaseHTTPRequestHandler
        from urllib2 import urlopen

    body = ("<html><body>" + "<p>line %d</p>" * 200 + "</body></html>") % tuple(range(200))
    body = body.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, name="http-server")
    t.daemon = True
    t.start()
    url = "http://127.0.0.1:%d/page" % port
    ready()
    while alive(deadline):
        resp = urlopen(url)
        data = resp.read()
        resp.close()
        assert len(data) == len(body)
    server.shutdown()


def run_template(deadline):
    import difflib
    import string
    import textwrap
    a = ["line %d of the first text, with some words in it" % i for i in range(60)]
    b = [s.replace("words", "other words") if i % 7 == 0 else s for i, s in enumerate(a)]
    page = string.Template("<html><head><title>$title</title></head><body>$table<p>$note</p></body></html>")
    ready()
    n = 0
    while alive(deadline):
        n += 1
        table = difflib.HtmlDiff(wrapcolumn=40).make_table(a, b, "a", "b", context=True)
        note = textwrap.fill(" ".join(a[:20]), width=50 + n % 20)
        page.substitute(title="diff %d" % n, table=table, note=note)


def run_email(deadline):
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    import email
    ready()
    n = 0
    while alive(deadline):
        n += 1
        msg = MIMEMultipart()
        msg["Subject"] = "Report %d" % n
        msg["From"] = "sender@example.org"
        msg["To"] = "receiver@example.org"
        for i in range(3):
            msg.attach(MIMEText("part %d of message %d\n" % (i, n) * 20))
        text = msg.as_string()
        parsed = email.message_from_string(text)
        for part in parsed.walk():
            part.get_payload(decode=True)


def fraction_work(stop):
    from fractions import Fraction
    import difflib
    total = Fraction(0)
    i = 1
    while not stop():
        total += Fraction(1, i) - Fraction(1, i + 1)
        i += 1
        if i % 200 == 0:
            difflib.SequenceMatcher(None, "abcd" * 20, "abdc" * 20).ratio()
            total = Fraction(0)


def run_threads(deadline):
    stop = lambda: not alive(deadline)
    workers = [threading.Thread(target=fraction_work, args=(stop,), name="worker-%d" % i)
               for i in range(3)]
    for w in workers:
        w.daemon = True
        w.start()
    ready()
    while alive(deadline):
        time.sleep(0.05)


def run_asyncio(deadline):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import aio_tree
    aio_tree.main(deadline, ready, lambda: alive(deadline))


def run_logging(deadline):
    import logging
    try:
        from StringIO import StringIO  # 2.7: byte strings
    except ImportError:
        from io import StringIO
    stream = StringIO()
    logger = logging.getLogger("fidelity")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s"))

    class Every(logging.Filter):
        def filter(self, record):
            return record.args[0] % 3 != 0

    handler.addFilter(Every())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    ready()
    n = 0
    while alive(deadline):
        n += 1
        logger.info("request %d served in %.3f ms", n, n * 0.001)
        logger.debug("details %d: %s", n, {"n": n})
        if n % 1000 == 0:
            stream.seek(0)
            stream.truncate()


WORKLOADS = {
    "tokenize": run_tokenize,
    "regex": run_regex,
    "http": run_http,
    "template": run_template,
    "email": run_email,
    "threads": run_threads,
    "asyncio": run_asyncio,
    "logging": run_logging,
}


def main():
    name = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    if name == "asyncio" and sys.version_info < (3, 6):
        sys.stderr.write("asyncio workload needs Python 3.6+\n")
        sys.exit(3)
    WORKLOADS[name](time.time() + seconds)


if __name__ == "__main__":
    main()
