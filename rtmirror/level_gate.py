"""LevelGate: a floor under the model's gate, on the input's own level.

The frontend's AGC lifts quiet input by up to `agc_max_gain` (40 dB by default), so room noise
or hum reaches the encoder looking like a played note (the shipped model gates white noise on at
every level from -55 to -80 dBFS). The gate floor looks at the level BEFORE the AGC and forces
the gate off unless a frame's RMS is above both
  - an absolute floor (`open_dbfs`; digital silence and near-silence never play), and
  - the room's own noise floor + `margin_db`: a tracker that follows the level down at once and
    up only slowly (`noise_rise_db_per_s`), so steady noise or hum learns its own threshold
    within a frame, while a sung note (far above what preceded it) passes at its first frame.
Hysteresis: an open gate closes only `hysteresis_db` below the opening threshold.

Frames are the frontend's: frame i covers samples [i*hop, (i+1)*hop) at the model's rate, the
same framing as CochlearStream, and any block partition gives the same flags (state carried).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LevelGateConfig:
    open_dbfs: float = -75.0            # absolute floor: never open below this frame RMS
    close_dbfs: float = -81.0           # an open gate closes below this (absolute part)
    margin_db: float | None = 12.0      # open only this far above the tracked noise floor (None: off)
    hysteresis_db: float = 6.0          # the relative part closes this much lower
    noise_rise_db_per_s: float = 6.0    # how fast the noise-floor estimate may rise
    noise_start_dbfs: float = -40.0     # the estimate before any input: assume a noisy room

    def __post_init__(self) -> None:
        values = (self.open_dbfs, self.close_dbfs, self.hysteresis_db, self.noise_rise_db_per_s,
                  self.noise_start_dbfs, 0.0 if self.margin_db is None else self.margin_db)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("level gate settings must be finite numbers")
        if self.close_dbfs > self.open_dbfs:
            raise ValueError(f"close_dbfs ({self.close_dbfs}) must not exceed open_dbfs ({self.open_dbfs})")
        if self.hysteresis_db < 0 or self.noise_rise_db_per_s < 0:
            raise ValueError("hysteresis_db and noise_rise_db_per_s must be >= 0")


class LevelGate:
    def __init__(self, hop: int, cfg: LevelGateConfig | None = None, frame_rate: float = 125.0):
        if hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        self.hop = int(hop)
        self.cfg = cfg or LevelGateConfig()
        self._rise_per_frame = self.cfg.noise_rise_db_per_s / float(frame_rate)
        self.reset()

    def reset(self) -> None:
        self._acc = 0.0          # sum of squares of the frame in progress
        self._fill = 0           # samples in the frame in progress
        self.is_open = False
        self.last_dbfs = -math.inf
        self.noise_dbfs = self.cfg.noise_start_dbfs

    def _decide(self, level: float) -> bool:
        c = self.cfg
        open_at, close_at = c.open_dbfs, c.close_dbfs
        if c.margin_db is not None:
            open_at = max(open_at, self.noise_dbfs + c.margin_db)
            close_at = max(close_at, self.noise_dbfs + c.margin_db - c.hysteresis_db)
        # the noise floor follows the level down at once, up by at most rise_per_frame
        self.noise_dbfs = min(level, self.noise_dbfs + self._rise_per_frame) if math.isfinite(level) \
            else max(-200.0, self.noise_dbfs - 200.0)
        return level > open_at if not self.is_open else level >= close_at

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
                level = 10.0 * math.log10(ms) if ms > 0 else -math.inf
                self.is_open = self._decide(level)
                self.last_dbfs = level
                out.append(self.is_open)
                self._acc, self._fill = 0.0, 0
        return np.array(out, dtype=bool)
