"""DCBlocker: a one-pole high-pass that removes DC before the frontend and the level gate.

A DC offset (a cheap interface, a mic preamp drifting) adds a constant to every sample: the
cochlea's lowest channels see a step at every level change and the level gate reads the offset as
signal, so a steady tone with DC 0.3 split into 17-60 notes. y[n] = x[n] - x[n-1] + r * y[n-1]
with r = exp(-2 pi fc / sr): -3 dB at fc = 10 Hz, a gain within 0.1 dB of 1 from 60 Hz up (the
lowest note played, MIDI 36, is 65 Hz), no delay to speak of (phase lead only below ~30 Hz).

`DCBlocker.process(block)` carries its state across blocks; `dc_block(x, sr)` is its offline twin
(the same arithmetic on the whole signal: equal for every block partition).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

CUTOFF_HZ = 10.0


@njit(nogil=True, cache=True)
def _run(x, out, r, state):
    """x, out (n,) float32; state (2,) float64 = (previous input, previous output), updated."""
    x1, y1 = state[0], state[1]
    for i in range(x.shape[0]):
        xi = float(x[i])
        y1 = xi - x1 + r * y1
        x1 = xi
        out[i] = y1
    state[0], state[1] = x1, y1


class DCBlocker:
    delay_samples = 0

    def __init__(self, sample_rate: int, cutoff_hz: float = CUTOFF_HZ):
        if not (0.0 < cutoff_hz < sample_rate / 2):
            raise ValueError(f"cutoff must be in (0, {sample_rate / 2}) Hz, got {cutoff_hz}")
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self._state = np.zeros(2, np.float64)
        self._primed = False

    def reset(self) -> None:
        self._state[:] = 0.0
        self._primed = False

    def process(self, block: np.ndarray) -> np.ndarray:
        """block (n,) -> (n,) float32 without DC; a non-finite output resets the state."""
        x = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        out = np.empty_like(x)
        if not self._primed and len(x):
            self._state[0] = x[0]     # the stream's first sample is the "previous" one: no step at start
            self._primed = True
        _run(x, out, self.r, self._state)
        if not np.isfinite(self._state).all():
            self._state[:] = 0.0
        return out


def dc_block(x: np.ndarray, sample_rate: int, cutoff_hz: float = CUTOFF_HZ) -> np.ndarray:
    """The whole signal at once (the offline twin of DCBlocker)."""
    return DCBlocker(sample_rate, cutoff_hz).process(x)
