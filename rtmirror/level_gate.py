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

Digital silence is not a room: a frame that is mostly exact zeros (a muted input, an interface
that starts with zeros, a dropout) keeps the gate closed and leaves the noise-floor estimate as it
was, so after a mute or a dropout the room the gate had learnt is back at the first frame (before,
a second of zeros dragged it to -200 dBFS, and the 6 dB/s climb back let room noise play notes
for half a minute). Only zeros before any sound (a muted start: no room heard yet) lower it, to
a quiet room (`silence_room_dbfs`), so a quiet note after a muted start plays. The room after a
muted start is unknown, so for the first `learn_s` of sound a frame that does not sound like a
note (no periodicity at 70-1000 Hz in the last 32 ms: noise, 50/60 Hz hum) may raise the
estimate at `noise_learn_db_per_s`, up to `learn_max_dbfs`: room noise of -45 dBFS or hum of
-40 dBFS is learnt in a fraction of a second (at 6 dB/s they played notes for 1.7-2.5 s). A note
(periodic) right after the zeros climbs at the slow rate as before: learning it as the room
would close the gate on it and, with legato notes that never let the estimate fall, on the
phrase after it. After that phase every climb is `noise_rise_db_per_s`, slow enough that a held
note is not learnt as the room for seconds. Dips shorter than DIP_FRAMES
(a 20 ms dropout, smeared by the resampler into near-silence) do not lower the estimate. The
estimate never falls below `noise_min_dbfs` (near-silence such as dither).

Frames are the frontend's: frame i covers samples [i*hop, (i+1)*hop) at the model's rate, the
same framing as CochlearStream, and any block partition gives the same flags (state carried).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


DIP_FRAMES = 4   # 32 ms at 8 ms frames: a shorter dip does not lower the noise estimate
PERIOD_S = 0.032             # the window the learning phase looks for a note's periodicity in
PITCH_HZ = (70.0, 1000.0)    # periods looked for
PERIODIC = 0.5               # normalized autocorrelation peak above which a frame sounds like a note


def periodicity(w: np.ndarray, sample_rate: float) -> float:
    """w (n,) -> the highest normalized autocorrelation at a lag of 1/1000..1/70 s after its first
    negative value, on the first difference (so that rumble does not count)."""
    d = np.diff(np.asarray(w, np.float64))
    d = d - d.mean()
    n = len(d)
    lo, hi = int(sample_rate / PITCH_HZ[1]), min(int(sample_rate / PITCH_HZ[0]), n // 2)
    if hi <= lo:
        return 0.0
    spec = np.fft.rfft(d, 2 * n)
    ac = np.fft.irfft(spec * spec.conj(), 2 * n)[:hi + 1]
    if not ac[0] > 0:
        return 0.0
    r = ac / ac[0] * n / (n - np.arange(hi + 1))        # unbiased: per overlapping sample
    neg = np.flatnonzero(r < 0)                         # a period is a peak after the first dip:
    if not len(neg):                                    # short lags of low-frequency sound (hum,
        return 0.0                                      # rumble) correlate without one
    start = max(lo, int(neg[0]))
    return float(np.max(r[start:])) if start <= hi else 0.0


@dataclass(frozen=True)
class LevelGateConfig:
    open_dbfs: float = -75.0            # absolute floor: never open below this frame RMS
    close_dbfs: float = -81.0           # an open gate closes below this (absolute part)
    margin_db: float | None = 12.0      # open only this far above the tracked noise floor (None: off)
    hysteresis_db: float = 6.0          # the relative part closes this much lower
    noise_rise_db_per_s: float = 6.0    # how fast the noise-floor estimate may rise
    noise_learn_db_per_s: float = 40.0  # ... on aperiodic frames in the first learn_s after a muted start
    learn_s: float = 0.75
    learn_max_dbfs: float = -30.0       # ... but not above this
    noise_start_dbfs: float = -40.0     # the estimate before any input: assume a noisy room
    noise_min_dbfs: float = -100.0      # the estimate never falls below this
    zero_fraction: float = 0.25         # frames with more exact-zero samples than this are digital silence
    silence_room_dbfs: float = -66.0    # digital silence lowers the estimate to this at most

    def __post_init__(self) -> None:
        values = (self.open_dbfs, self.close_dbfs, self.hysteresis_db, self.noise_rise_db_per_s,
                  self.noise_learn_db_per_s, self.learn_s, self.learn_max_dbfs,
                  self.noise_start_dbfs, self.noise_min_dbfs, self.zero_fraction, self.silence_room_dbfs,
                  0.0 if self.margin_db is None else self.margin_db)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("level gate settings must be finite numbers")
        if self.close_dbfs > self.open_dbfs:
            raise ValueError(f"close_dbfs ({self.close_dbfs}) must not exceed open_dbfs ({self.open_dbfs})")
        if self.hysteresis_db < 0 or self.noise_rise_db_per_s < 0:
            raise ValueError("hysteresis_db and noise_rise_db_per_s must be >= 0")
        if not (0.0 <= self.zero_fraction < 1.0):
            raise ValueError(f"zero_fraction must be in [0, 1), got {self.zero_fraction}")
        from rtmirror.checks import number
        for name in ("open_dbfs", "close_dbfs", "noise_start_dbfs", "noise_min_dbfs", "silence_room_dbfs",
                     "learn_max_dbfs"):
            number(name, getattr(self, name), -240.0, 20.0)   # dBFS: -240 is below any float32 signal
        if self.margin_db is not None:
            number("margin_db", self.margin_db, 0.0, 120.0)
        number("hysteresis_db", self.hysteresis_db, 0.0, 120.0)
        number("noise_rise_db_per_s", self.noise_rise_db_per_s, 0.0, 1000.0)
        number("noise_learn_db_per_s", self.noise_learn_db_per_s, 0.0, 1000.0)
        number("learn_s", self.learn_s, 0.0, 60.0)


class LevelGate:
    def __init__(self, hop: int, cfg: LevelGateConfig | None = None, frame_rate: float = 125.0):
        if hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        self.hop = int(hop)
        self.cfg = cfg or LevelGateConfig()
        self._rise_per_frame = self.cfg.noise_rise_db_per_s / float(frame_rate)
        self._learn_per_frame = self.cfg.noise_learn_db_per_s / float(frame_rate)
        self._learn_total = int(round(self.cfg.learn_s * frame_rate))   # frames of the learning phase
        self._rate = self.hop * float(frame_rate)                      # samples per second
        self._window = max(int(round(PERIOD_S * self._rate)), 8)       # samples the periodicity sees

        self.reset()

    def reset(self) -> None:
        self._acc = 0.0          # sum of squares of the frame in progress
        self._fill = 0           # samples in the frame in progress
        self._zeros = 0          # exact-zero samples in the frame in progress
        self._after_silence = 1 << 30   # frames since the last digital-silence frame
        self._heard = False             # a frame that was not digital silence has been seen
        self._learn_frames = 0          # frames left in the learning phase (armed by a muted start)
        self._tail = np.zeros(0)        # the last samples before this call (the periodicity window)
        self._recent = deque([-math.inf] * (DIP_FRAMES - 1), maxlen=DIP_FRAMES - 1)   # last levels (dBFS)
        self.is_open = False
        self.last_dbfs = -math.inf
        self.noise_dbfs = self.cfg.noise_start_dbfs

    def _decide(self, level: float, window: np.ndarray | None) -> bool:
        c = self.cfg
        open_at, close_at = c.open_dbfs, c.close_dbfs
        if c.margin_db is not None:
            open_at = max(open_at, self.noise_dbfs + c.margin_db)
            close_at = max(close_at, self.noise_dbfs + c.margin_db - c.hysteresis_db)
        # the noise floor follows the level down at once (not below noise_min_dbfs), up by at most
        # rise_per_frame
        up = self.noise_dbfs + self._rise_per_frame
        if self._learn_frames > 0:       # the room after a muted start: fast, up to learn_max_dbfs
            self._learn_frames -= 1
            # a whole window of sound (not the edge of the silence) that is not a note
            if (up < c.learn_max_dbfs and window is not None and len(np.trim_zeros(window, "f")) == self._window
                    and periodicity(window, self._rate) < PERIODIC):
                up = max(up, min(self.noise_dbfs + self._learn_per_frame, c.learn_max_dbfs))
        # down only to the loudest of the last DIP_FRAMES frames (a dip shorter than that, e.g. a
        # 20 ms dropout smeared by the resampler, does not teach a quieter room), and not on the
        # frame right after silence
        down = max(level, *self._recent) if self._after_silence >= 2 else math.inf
        self._after_silence += 1
        self._recent.append(level)
        self.noise_dbfs = max(c.noise_min_dbfs, min(down, up))
        return level > open_at if not self.is_open else level >= close_at

    def _frame(self, ms: float, zeros: int, window: np.ndarray | None) -> bool:
        """One completed frame: its mean square, exact-zero count and the last samples up to its
        end (the periodicity window; None when no learning phase can need it) -> gate allowed."""
        level = 10.0 * math.log10(ms) if ms > 0 else -math.inf
        if zeros > self.cfg.zero_fraction * self.hop:
            # digital silence: closed; the room it knew stays (the levels before the silence keep
            # guarding against its smeared edge); before any sound, the room is assumed quiet
            self.is_open = False
            if not self._heard:
                self.noise_dbfs = min(self.noise_dbfs, self.cfg.silence_room_dbfs)
                self._learn_frames = self._learn_total
                self._recent.extend([-math.inf] * (DIP_FRAMES - 1))
            self._after_silence = 0
        else:
            self._heard = True
            self.is_open = self._decide(level, window)
        self.last_dbfs = level
        return self.is_open

    def process(self, x: np.ndarray) -> np.ndarray:
        """x (n,) at the model rate -> (frames completed in this call,) bool: gate allowed."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        buf = None                                       # tail + x, while a learning phase may read it
        if self._learn_frames > 0 or not self._heard:
            buf = np.concatenate([self._tail, x])
            self._tail = buf[-self._window:]
        base = len(buf) - len(x) if buf is not None else 0

        def window(end: int) -> np.ndarray | None:       # the samples up to x[end]
            return None if buf is None else buf[max(0, base + end - self._window):base + end]

        out = []
        pos = 0
        if self._fill:                                   # finish the frame in progress
            take = min(self.hop - self._fill, len(x))
            seg = x[:take]
            self._acc += float(np.dot(seg, seg))
            self._zeros += int(take - np.count_nonzero(seg))
            self._fill += take
            pos = take
            if self._fill == self.hop:
                out.append(self._frame(self._acc / self.hop, self._zeros, window(pos)))
                self._acc, self._fill, self._zeros = 0.0, 0, 0
        n_full = (len(x) - pos) // self.hop              # whole frames: sums in one go
        if n_full:
            frames = x[pos:pos + n_full * self.hop].reshape(n_full, self.hop)
            sums = np.einsum("ij,ij->i", frames, frames)
            zeros = self.hop - np.count_nonzero(frames, axis=1)
            out += [self._frame(float(a) / self.hop, int(z), window(pos + (j + 1) * self.hop))
                    for j, (a, z) in enumerate(zip(sums, zeros))]
            pos += n_full * self.hop
        if pos < len(x):                                 # the start of the next frame
            seg = x[pos:]
            self._acc = float(np.dot(seg, seg))
            self._zeros = int(len(seg) - np.count_nonzero(seg))
            self._fill = len(seg)
        return np.array(out, dtype=bool)
