"""Room and microphone variants for the `real` evaluation set, all drawn from one seed.

Reserved for evaluation (models/eval/real.py); training has its own augmentation.

A variant, applied to a dry render in this order:
  1. reverb: a synthetic room impulse response: the direct sound, 4-10 early reflections in
     5-50 ms, and an exponentially decaying noise tail with the drawn RT60 (0.2-1.2 s; -60 dB at
     RT60) whose upper band (> 4 kHz) decays twice as fast (air and wall absorption), mixed at
     the drawn direct-to-reverberant ratio (-3..+10 dB);
  2. microphone: a 2nd-order Butterworth low-cut (60-200 Hz) and a presence peak (+2..+6 dB at
     2.5-6 kHz, Q 1; the peaking biquad of R. Bristow-Johnson's "Audio EQ Cookbook"), on one
     variant in three also a low-pass at 8-14 kHz (a cheap capsule);
  3. noise: pink noise (1/f power) and mains hum (50 or 60 Hz, 5 harmonics falling 6 dB each),
     together at the drawn SNR (15-40 dB) against the signal's RMS while a note sounds;
  4. level: the peak scaled to the drawn level (-45..-6 dBFS).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RoomVariant:
    rt60_s: float
    drr_db: float
    predelay_s: float
    lowcut_hz: float
    presence_hz: float
    presence_db: float
    lowpass_hz: float | None
    snr_db: float
    hum_hz: float
    hum_share: float             # of the noise power that is hum
    peak_dbfs: float
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def draw_variant(seed: int) -> RoomVariant:
    rng = np.random.default_rng(seed)
    return RoomVariant(
        rt60_s=float(rng.uniform(0.2, 1.2)), drr_db=float(rng.uniform(-3.0, 10.0)),
        predelay_s=float(rng.uniform(0.002, 0.02)), lowcut_hz=float(rng.uniform(60.0, 200.0)),
        presence_hz=float(rng.uniform(2500.0, 6000.0)), presence_db=float(rng.uniform(2.0, 6.0)),
        lowpass_hz=float(rng.uniform(8000.0, 14000.0)) if rng.random() < 1 / 3 else None,
        snr_db=float(rng.uniform(15.0, 40.0)), hum_hz=float(rng.choice([50.0, 60.0])),
        hum_share=float(rng.uniform(0.0, 0.8)), peak_dbfs=float(rng.uniform(-45.0, -6.0)), seed=int(seed))


def impulse_response(v: RoomVariant, sample_rate: int) -> np.ndarray:
    """(n,) float64 room impulse response: direct sound at the pre-delay, unit gain."""
    from scipy.signal import butter, lfilter

    rng = np.random.default_rng([v.seed, 1])
    sr = sample_rate
    n = int((v.predelay_s + 1.5 * v.rt60_s) * sr)
    t = np.arange(n) / sr
    d0 = int(v.predelay_s * sr)
    tail = rng.normal(0.0, 1.0, n) * (t >= v.predelay_s + 0.005)
    b, a = butter(2, 4000 / (sr / 2))
    low = lfilter(b, a, tail)
    high = tail - low
    after = np.maximum(t - v.predelay_s, 0.0)
    tail = low * 10 ** (-3 * after / v.rt60_s) + high * 10 ** (-6 * after / v.rt60_s)   # -60 dB at RT60
    early = np.zeros(n)
    for _ in range(int(rng.integers(4, 11))):
        k = d0 + int(rng.uniform(0.005, 0.05) * sr)
        if k < n:
            early[k] += rng.uniform(0.2, 0.7) * rng.choice([-1.0, 1.0])
    reverb = early + tail
    # direct-to-reverberant ratio: direct energy 1 against the rest's energy
    reverb *= np.sqrt(10 ** (-v.drr_db / 10) / max(float(np.sum(reverb ** 2)), 1e-12))
    reverb[d0] += 1.0
    return reverb


def _peaking(f0: float, gain_db: float, q: float, sr: int):
    """Audio EQ Cookbook peaking filter -> (b, a)."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain])
    return b / a[0], a / a[0]


def _pink(n: int, rng) -> np.ndarray:
    """Pink noise (power ~ 1/f) by shaping white noise's spectrum; unit RMS."""
    spec = np.fft.rfft(rng.normal(0.0, 1.0, n))
    f = np.arange(len(spec), dtype=np.float64)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def apply_variant(x: np.ndarray, v: RoomVariant, sample_rate: int, active: np.ndarray) -> np.ndarray:
    """Dry (n,) -> (n,) float32 through the room, microphone, noise and level of v.
    active: (n,) bool, where a note sounds (the SNR's signal RMS is taken there)."""
    from scipy.signal import butter, fftconvolve, lfilter

    sr = sample_rate
    n = len(x)
    rng = np.random.default_rng([v.seed, 2])
    y = fftconvolve(np.asarray(x, np.float64), impulse_response(v, sr))[:n]
    b, a = butter(2, v.lowcut_hz / (sr / 2), btype="high")
    y = lfilter(b, a, y)
    b, a = _peaking(v.presence_hz, v.presence_db, 1.0, sr)
    y = lfilter(b, a, y)
    if v.lowpass_hz is not None and v.lowpass_hz < sr / 2:
        b, a = butter(2, v.lowpass_hz / (sr / 2))
        y = lfilter(b, a, y)
    sig_rms = float(np.sqrt(np.mean(y[active] ** 2))) if active.any() else float(np.sqrt(np.mean(y ** 2)))
    t = np.arange(n) / sr
    hum = sum(0.5 ** k * np.sin(2 * np.pi * v.hum_hz * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(5))
    hum /= max(float(np.sqrt(np.mean(hum ** 2))), 1e-12)
    noise = np.sqrt(1 - v.hum_share) * _pink(n, rng) + np.sqrt(v.hum_share) * hum
    noise *= sig_rms * 10 ** (-v.snr_db / 20) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    y = y + noise
    peak = float(np.abs(y).max())
    if peak > 0:
        y *= 10 ** (v.peak_dbfs / 20) / peak
    return y.astype(np.float32)
