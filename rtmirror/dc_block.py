"""DCBlocker: a one-pole high-pass that removes DC before the frontend and the level gate.

A DC offset (a cheap interface, a mic preamp drifting) adds a constant to every sample: the
cochlea's lowest channels see a step at every level change and the level gate reads the offset as
signal, so a steady tone with DC 0.3 split into 17-60 notes. y[n] = x[n] - x[n-1] + r * y[n-1]
with r = exp(-2 pi fc / sr): -3 dB at fc = 10 Hz, a gain within 0.1 dB of 1 from 60 Hz up (the
lowest note played, MIDI 36, is 65 Hz), no delay to speak of (phase lead only below ~30 Hz).

Digital silence stays digital silence: after ZERO_RUN exact-zero input samples in a row (a muted
input, a dropout; real audio is never exactly 0 for 2 ms) the output is exact 0 too, not the
filter's decaying tail, so the level gate still sees the silence as silence (a tail it took for a
very quiet room would lower its noise floor). The state keeps running underneath, so the signal
after the silence comes out as it would have.

`DCBlocker.process(block)` carries its state across blocks; `dc_block(x, sr)` is its offline twin
(the same arithmetic on the whole signal: equal for every block partition).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

CUTOFF_HZ = 10.0
ZERO_RUN = 32     # exact-zero input samples in a row after which the output is exact zero


@njit(nogil=True, cache=True)
def _run(x, out, r, state):
    """x, out (n,) float32; state (3,) float64 = (previous input, previous output, exact zeros
    in a row so far), updated."""
    x1, y1, zeros = state[0], state[1], state[2]
    for i in range(x.shape[0]):
        xi = float(x[i])
        y1 = xi - x1 + r * y1
        x1 = xi
        zeros = zeros + 1.0 if xi == 0.0 else 0.0
        out[i] = 0.0 if zeros >= ZERO_RUN else y1
    state[0], state[1], state[2] = x1, y1, min(zeros, 1e9)


class DCBlocker:
    delay_samples = 0

    def __init__(self, sample_rate: int, cutoff_hz: float = CUTOFF_HZ):
        if not (0.0 < cutoff_hz < sample_rate / 2):
            raise ValueError(f"cutoff must be in (0, {sample_rate / 2}) Hz, got {cutoff_hz}")
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self._state = np.zeros(3, np.float64)
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
