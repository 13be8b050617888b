"""Rooms and microphones: what happens to a sound between the instrument and the frontend, as a
training-target augmentation applied to rendered audio before wav2aud.

    dry -> room (direct path + exponentially decaying noise tail, RT60 from a range, a
           direct-to-reverberant ratio, predelay)
        -> mic (2nd-order low-cut, presence peak)
        -> + noise (white..brown, mains hum 50/60 Hz with harmonics) at an SNR from a range
        -> level (peak dBFS from a range)

Each stage applies with its probability. Everything is drawn from the `rng` the caller passes
(the render path seeds it per melody), so the result is deterministic from that seed.
The exponentially decaying Gaussian noise tail is the standard statistical model of a diffuse
late reverberation (energy decays 60 dB in RT60: amplitude exp(-3 ln(10) t / RT60); Schroeder,
"New method of measuring reverberation time", JASA 37, 1965, for the backward-integration
measurement the tests use).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.signal import fftconvolve, lfilter


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = False
    reverb_prob: float = 0.7
    rt60_s: tuple[float, float] = (0.2, 1.2)
    drr_db: tuple[float, float] = (-6.0, 12.0)      # direct-to-reverberant energy ratio
    predelay_s: tuple[float, float] = (0.0, 0.02)
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (15.0, 40.0)      # signal power / (noise + hum) power, whole clip
    hum_prob: float = 0.3                           # share of noisy clips that carry mains hum
    eq_prob: float = 0.7
    lowcut_hz: tuple[float, float] = (40.0, 200.0)
    presence_db: tuple[float, float] = (0.0, 6.0)
    presence_hz: tuple[float, float] = (2000.0, 3500.0)
    level_dbfs: tuple[float, float] = (-45.0, -6.0)  # peak level of the result

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"augment.enabled must be true or false, got {self.enabled!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_prob"):
                if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                    raise ValueError(f"augment.{f.name} must be in [0, 1], got {v!r}")
            elif isinstance(v, (tuple, list)):
                if len(v) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v) or v[0] > v[1]:
                    raise ValueError(f"augment.{f.name} must be [lo, hi] with lo <= hi, got {v!r}")
                object.__setattr__(self, f.name, (float(v[0]), float(v[1])))
        if self.rt60_s[0] <= 0 or self.lowcut_hz[0] <= 0 or self.presence_hz[0] <= 0:
            raise ValueError("augment.rt60_s, lowcut_hz and presence_hz must be > 0")
        if self.level_dbfs[1] > 0:
            raise ValueError(f"augment.level_dbfs must be <= 0 dBFS, got {list(self.level_dbfs)}")

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys in [augment]: {sorted(unknown)} (known: {sorted(f.name for f in fields(cls))})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def room_ir(rt60_s: float, sr: int, rng: np.random.Generator, drr_db: float = 0.0,
            predelay_s: float = 0.0) -> np.ndarray:
    """Impulse response (n,) float64: a unit direct path at 0, then Gaussian noise under
    exp(-3 ln10 t / rt60) from predelay on, scaled so direct / tail energy = drr_db; n covers 60 dB."""
    n = int(math.ceil((rt60_s + predelay_s) * sr)) + 1
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)
    d = int(round(predelay_s * sr))
    tail[: d + 1] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-20))
    tail[0] = 1.0
    return tail


def rt60_of(ir: np.ndarray, sr: int) -> float:
    """RT60 of an impulse response from Schroeder's backward integral, fit over -5..-25 dB (T20 x 3)."""
    e = np.cumsum((ir[1:] ** 2)[::-1])[::-1]         # the direct path (sample 0) left out
    db = 10 * np.log10(e / e[0] + 1e-30)
    i = np.nonzero((db <= -5) & (db >= -25))[0]
    slope = np.polyfit(i / sr, db[i], 1)[0]           # dB per second
    return -60.0 / slope


def colored_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise (n,) with power spectrum ~ 1/f^alpha (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec * f ** (-alpha / 2), n)
    y -= y.mean()
    return y / max(float(np.std(y)), 1e-12)


def mains_hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS hum (n,): 50 or 60 Hz and its harmonics below 0.45 sr, odd ones stronger (buzz)."""
    f0 = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / sr
    y = np.zeros(n)
    for h in range(1, int(0.45 * sr / f0) + 1):
        a = rng.uniform(0.3, 1.0) / h ** rng.uniform(0.5, 2.0) * (1.0 if h % 2 else 0.5)
        y += a * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return y / max(float(np.std(y)), 1e-12)


def _biquad_highpass(fc: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth 2nd-order high-pass (RBJ audio EQ cookbook form, Q = 1/sqrt 2)."""
    w = 2 * np.pi * fc / sr
    alpha = np.sin(w) / (2 * (1 / math.sqrt(2)))
    c = np.cos(w)
    b = np.array([(1 + c) / 2, -(1 + c), (1 + c) / 2])
    a = np.array([1 + alpha, -2 * c, 1 - alpha])
    return b / a[0], a / a[0]


def _biquad_peak(fc: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Peaking EQ (RBJ audio EQ cookbook)."""
    A = 10 ** (gain_db / 40)
    w = 2 * np.pi * fc / sr
    alpha = np.sin(w) / (2 * q)
    c = np.cos(w)
    b = np.array([1 + alpha * A, -2 * c, 1 - alpha * A])
    a = np.array([1 + alpha / A, -2 * c, 1 - alpha / A])
    return b / a[0], a / a[0]


def augment_parts(audio: np.ndarray, sr: int, cfg: AugmentConfig, rng: np.random.Generator):
    """-> (signal (n,), noise (n,), info dict): the room- and mic-treated signal and the added noise,
    both already at the final level; their sum is `augment`'s result."""
    x = np.asarray(audio, dtype=np.float64)
    n = len(x)
    info: dict = {}
    if rng.random() < cfg.reverb_prob:
        info["rt60_s"] = float(rng.uniform(*cfg.rt60_s))
        ir = room_ir(info["rt60_s"], sr, rng, float(rng.uniform(*cfg.drr_db)), float(rng.uniform(*cfg.predelay_s)))
        x = fftconvolve(x, ir)[:n]
    if rng.random() < cfg.eq_prob:
        info["lowcut_hz"] = float(rng.uniform(*cfg.lowcut_hz))
        x = lfilter(*_biquad_highpass(info["lowcut_hz"], sr), x)
        fc = min(float(rng.uniform(*cfg.presence_hz)), 0.45 * sr)
        info["presence_db"] = float(rng.uniform(*cfg.presence_db))
        x = lfilter(*_biquad_peak(fc, info["presence_db"], 1.0, sr), x)
    noise = np.zeros(n)
    p_sig = float(np.mean(x**2)) if n else 0.0
    if p_sig > 0 and rng.random() < cfg.noise_prob:
        info["snr_db"] = float(rng.uniform(*cfg.snr_db))
        noise = colored_noise(n, float(rng.uniform(0.0, 2.0)), rng)
        if rng.random() < cfg.hum_prob:
            share = float(rng.uniform(0.3, 1.0))           # of the noise power that is hum
            noise = math.sqrt(1 - share) * noise + math.sqrt(share) * mains_hum(n, sr, rng)
            info["hum"] = True
        noise *= math.sqrt(p_sig / 10 ** (info["snr_db"] / 10) / max(float(np.mean(noise**2)), 1e-30))
    peak = float(np.max(np.abs(x + noise))) if n else 0.0
    info["level_dbfs"] = float(rng.uniform(*cfg.level_dbfs))
    g = 10 ** (info["level_dbfs"] / 20) / peak if peak > 0 else 0.0
    return x * g, noise * g, info


def augment(audio: np.ndarray, sr: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Room, mic, noise and level applied to mono audio (n,) at sr -> (n,) float32."""
    sig, noise, _ = augment_parts(audio, sr, cfg, rng)
    return (sig + noise).astype(np.float32)
