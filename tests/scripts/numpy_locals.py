# Target for the numpy test: a frame whose locals are numpy scalars of every kind py-spy reads.
import os
import time

import numpy as np


def hold():
    flag = np.bool_(True)
    u8 = np.uint8(200)
    u16 = np.uint16(60000)
    u32 = np.uint32(4000000000)
    u64 = np.uint64(2**63)
    i8 = np.int8(-5)
    i16 = np.int16(-300)
    i32 = np.int32(-70000)
    i64 = np.int64(-7)
    f32 = np.float32(1.5)
    f64 = np.float64(2.25)
    c128 = np.complex128(1 + 2j)
    print("READY", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)  # HOLD_LINE


hold()
