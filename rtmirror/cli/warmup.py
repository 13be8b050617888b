"""`rtmirror warmup`: compile (or load from cache) the cochlear frontend's kernels for this CPU and
open the shipped model, so the first `rtmirror live`/`file` starts at once. `make run` and `make
test` run it after installing; a second process loads the compiled kernels from numba's cache."""
from __future__ import annotations

import argparse
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lanes", type=int, choices=(4, 8), default=None,
                   help="filter layout to compile (default: this CPU's)")


def run(args) -> int:
    import numpy as np

    from rtmirror.frontend import CochlearStream, FrontendConfig
    from rtmirror.frontend.cochlea import resolve_lanes
    from rtmirror.runtime import EncoderRuntime

    t0 = time.monotonic()
    lanes = resolve_lanes(args.lanes)
    CochlearStream(FrontendConfig(), lanes=lanes).process(np.zeros(256, np.float32))
    runtime = EncoderRuntime()
    runtime.step(np.zeros((1, 128), np.float32))
    print(f"rtmirror warmup: frontend ({lanes} lanes) and model {runtime.path.name} ready "
          f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0
