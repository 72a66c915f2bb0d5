# -*- coding: utf-8 -*-
# Target for tests/versions.rs's locals_as_python_writes_them; runs on every Python from 2.7.
# One thread, asleep in main() with locals whose dump text is checked exactly: bytes (str on
# 2.7) with every quoting and escaping case, cut ones among them; str cut among escapes; and
# containers holding ints longer than the length budget. Prints EXPECT and Python's own repr
# of each local, then READY; exits when its parent goes away.
import json
import os
import sys
import time


def main():
    parent = os.getppid()
    xml = b'<root a="1">'
    apostrophe = b"it's"
    both_quotes = b'it\'s "q"'
    escapes = b'\t\n\r\x00\x1f\x7f\x80\xff\\'
    no_bytes = b""
    long_bytes = b"<" + b"ab" * 200
    zeros = b"\x00" * 100
    late_quote = b"it's" + b"x" * 200 + b'"'
    text = "héllo"
    controls = "a\x00" * 100
    small_big = (1, 2 ** 100, 3)
    huge = 2 ** 1000
    huge_tuple = (2 ** 1000,)
    huge_list = [1, 2 ** 400, 3]
    huge_dict = {"k": 2 ** 500}
    huge_negative = [-(2 ** 400)]
    huge_nested = [[(2 ** 1000,)]]
    sys.stdout.write("EXPECT %s\n" % json.dumps(
        dict((k, repr(v)) for k, v in locals().items() if k != "parent")))
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while os.getppid() == parent:
        time.sleep(0.05)  # MAIN_LINE


if __name__ == "__main__":
    main()  # CALL_MAIN
