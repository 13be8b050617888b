"""Single-producer / single-consumer float32 ring buffer for the audio callback -> worker hop.

The producer (audio callback) only advances `_written`; the consumer (worker) only advances
`_read`. Both are monotonically increasing Python ints, rebound atomically under the GIL, so
neither side takes a lock. The storage is preallocated; `write` copies with numpy slicing
(no Python objects per sample). On overflow the producer drops the whole incoming block and
counts it: the callback never waits, and the samples already queued stay contiguous.

Waking the consumer: every write sets a threading.Event (`wait()` on the consumer side), so the
worker starts on a block as soon as it is written instead of polling; `written_at` is the
time.perf_counter() of the newest write, for the worker's queue + compute figure. Event.set
takes the Event's internal lock for a few instructions (no wait while the consumer sleeps).
"""
from __future__ import annotations

import threading
import time

import numpy as np


class Ring:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.float32)
        self._written = 0          # total samples ever written (producer-owned)
        self._read = 0             # total samples ever consumed (consumer-owned)
        self.dropped_samples = 0   # producer side: samples refused because the ring was full
        self.discarded_samples = 0  # consumer side: samples skipped to bound latency
        self.written_at = 0.0      # time.perf_counter() of the newest write
        self._ready = threading.Event()

    # -- producer -------------------------------------------------------------------------
    def free(self) -> int:
        return self.capacity - (self._written - self._read)

    def write(self, block: np.ndarray) -> bool:
        """Copy a 1-D block in; if it does not fit, drop it all and count. Returns True if written."""
        n = len(block)
        if n > self.free():
            self.dropped_samples += n
            return False
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = block[:first]
        if first < n:
            self._buf[:n - first] = block[first:]
        self._written += n
        self._wrote()
        return True

    def _wrote(self) -> None:
        self.written_at = time.perf_counter()
        self._ready.set()

    def write_frames(self, frames: np.ndarray, channel: int | None = None) -> bool:
        """From a (n, channels) block: one channel, or the mean of all (mono downmix), in place."""
        n, n_ch = frames.shape
        if n > self.free():
            self.dropped_samples += n
            return False
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        for src, dst in ((frames[:first], self._buf[start:start + first]),
                         (frames[first:], self._buf[:n - first])):
            if len(src) == 0:
                continue
            if channel is not None:
                dst[:] = src[:, channel]
            elif n_ch == 1:
                dst[:] = src[:, 0]
            else:
                np.add.reduce(src, axis=1, out=dst)
                dst *= np.float32(1.0 / n_ch)
        self._written += n
        self._wrote()
        return True

    # -- consumer -------------------------------------------------------------------------
    def available(self) -> int:
        return self._written - self._read

    def wait(self, timeout: float) -> int:
        """Until samples are queued, wake() is called or `timeout` s passed; returns available().
        The flag is cleared before the check, so a write after the check always ends the wait."""
        self._ready.clear()
        n = self.available()
        if n == 0:
            self._ready.wait(timeout)
            n = self.available()
        return n

    def wake(self) -> None:
        """End a consumer's wait without data (stop requests)."""
        self._ready.set()

    def read(self, out: np.ndarray) -> int:
        """Copy up to len(out) samples into out; returns how many."""
        n = min(len(out), self.available())
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start:start + first]
        if first < n:
            out[first:n] = self._buf[:n - first]
        self._read += n
        return n

    def discard(self, n: int) -> int:
        """Skip the oldest n queued samples (consumer-side overload drop); returns how many."""
        n = max(0, min(int(n), self.available()))
        self._read += n
        self.discarded_samples += n
        return n

    @property
    def total_written(self) -> int:
        return self._written
