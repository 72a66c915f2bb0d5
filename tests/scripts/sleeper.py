# Minimal target that runs on every Python (2.7 too): prints READY, sleeps until killed.
import time
import sys
sys.stdout.write("READY\n")
sys.stdout.flush()
while True:
    time.sleep(0.1)
