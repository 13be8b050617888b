"""LevelGate: a floor under the model's gate, on the input's own level.

The frontend's AGC lifts quiet input by up to `agc_max_gain` (40 dB by default), so room noise
or hum at -60 dBFS reaches the encoder looking like a played note. The gate floor looks at the
level BEFORE the AGC: while a frame's RMS stays under the floor the gate is forced off, so
silence, hum and noise play no notes. Hysteresis (open above `open_dbfs`, close below
`close_dbfs`) keeps a level hovering at the floor from chattering.

Frames are the frontend's: frame i covers samples [i*hop, (i+1)*hop) at the model's rate, the
same framing as CochlearStream, and any block partition gives the same flags (state carried).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LevelGateConfig:
    open_dbfs: float = -50.0    # a closed gate opens when a frame's RMS rises above this
    close_dbfs: float = -56.0   # an open gate closes when a frame's RMS falls below this

    def __post_init__(self) -> None:
        if not (math.isfinite(self.open_dbfs) and math.isfinite(self.close_dbfs)):
            raise ValueError("level gate thresholds must be finite dBFS values")
        if self.close_dbfs > self.open_dbfs:
            raise ValueError(f"close_dbfs ({self.close_dbfs}) must not exceed open_dbfs ({self.open_dbfs})")


class LevelGate:
    def __init__(self, hop: int, cfg: LevelGateConfig | None = None):
        if hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        self.hop = int(hop)
        self.cfg = cfg or LevelGateConfig()
        # thresholds on the per-frame mean square (no log per frame)
        self._open_ms = 10.0 ** (self.cfg.open_dbfs / 10.0)
        self._close_ms = 10.0 ** (self.cfg.close_dbfs / 10.0)
        self.reset()

    def reset(self) -> None:
        self._acc = 0.0          # sum of squares of the frame in progress
        self._fill = 0           # samples in the frame in progress
        self.is_open = False
        self.last_dbfs = -math.inf

    def process(self, x: np.ndarray) -> np.ndarray:
        """x (n,) at the model rate -> (frames completed in this call,) bool: gate allowed."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        out = []
        pos = 0
        while pos < len(x):
            take = min(self.hop - self._fill, len(x) - pos)
            seg = x[pos:pos + take]
            self._acc += float(np.dot(seg, seg))
            self._fill += take
            pos += take
            if self._fill == self.hop:
                ms = self._acc / self.hop
                self.is_open = ms > self._open_ms if not self.is_open else ms >= self._close_ms
                self.last_dbfs = 10.0 * math.log10(ms) if ms > 0 else -math.inf
                out.append(self.is_open)
                self._acc, self._fill = 0.0, 0
        return np.array(out, dtype=bool)
