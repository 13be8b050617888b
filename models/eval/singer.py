"""A sung or hummed line for the `real` evaluation set: glottal pulses through vowel formants.

Reserved for evaluation (models/eval/real.py); training uses other voices.

Per note (all drawn from the seed, so a render is a function of (seed, events)):
  * pitch: a scoop from below on a detached onset (80-250 cents, time constant 25-60 ms), a glide
    into a legato note (40-90 ms), vibrato (4.5-6.5 Hz, 20-70 cents) fading in on notes over
    0.3 s, a slow random drift (a few cents) and cycle-to-cycle jitter;
  * source: a Rosenberg glottal pulse (Rosenberg 1971, "Effect of glottal pulse shape on the
    quality of natural vowels", JASA 49: opening 40 % of the period, closing 16 %), differentiated
    (lip radiation), plus aspiration noise gated by the open phase;
  * filter: five vowels /a e i o u/ (cascade of four 2-pole resonators, formants from Peterson &
    Barney 1952, "Control methods used in a study of the vowels", JASA 24, adult male and female
    means; F4 3.5 / 4.1 kHz) or a hum (nasal murmur: F1 250 Hz, weak upper formants), cross-faded
    over 30 ms at note changes;
  * envelope: attack 20-80 ms, release 60-150 ms after the note-off; velocity sets the level and
    the brightness; audible in-breaths (band-passed noise) in rests over 0.35 s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, sorted_events

# Peterson & Barney (1952) mean F1-F3 (Hz), /a/ "hod", /e/ "head", /i/ "heed", /o/ "hawed", /u/ "who'd"
VOWELS = {
    "male": {"a": (730, 1090, 2440, 3500), "e": (530, 1840, 2480, 3500), "i": (270, 2290, 3010, 3500),
             "o": (570, 840, 2410, 3500), "u": (300, 870, 2240, 3500), "m": (250, 1100, 2300, 3500)},
    "female": {"a": (850, 1220, 2810, 4100), "e": (610, 2330, 2990, 4100), "i": (310, 2790, 3310, 4100),
               "o": (590, 920, 2710, 4100), "u": (370, 950, 2670, 4100), "m": (280, 1300, 2600, 4100)},
}
BANDWIDTHS = (80.0, 100.0, 140.0, 200.0)       # Hz, F1..F4
HUM_GAINS = (1.0, 0.15, 0.05, 0.02)            # the nasal murmur's weak upper formants
RANGES = {"male": (45, 67), "female": (57, 79)}   # MIDI notes each voice sings here


@dataclass(frozen=True)
class SingerConfig:
    voice: str = "female"        # "male" | "female": formants and range
    hum: bool = False            # hummed (nasal murmur) instead of sung vowels
    seed: int = 0


class Singer:
    """Synth protocol (rtmirror.synth.base): render(events, duration_s) -> (n,) float32. Notes
    only; CONTROL events are ignored. Monophonic: a note-on during a note is a legato glide."""

    def __init__(self, cfg: SingerConfig, sample_rate: int = 48000):
        if cfg.voice not in VOWELS:
            raise ValueError(f"singer voice must be one of {sorted(VOWELS)}, got {cfg.voice!r}")
        self.cfg = cfg
        self.sample_rate = int(sample_rate)
        self.name = f"singer:{cfg.voice}{'-hum' if cfg.hum else ''}"

    def _notes(self, events) -> list[tuple[float, float, int, int]]:
        notes, open_note = [], None
        for ev in sorted_events(events):
            if ev.kind == NOTE_ON:
                if open_note is not None:
                    notes.append((*open_note[:1], ev.time, *open_note[1:]))
                open_note = (ev.time, int(ev.note), int(ev.velocity))
            elif ev.kind == NOTE_OFF and open_note is not None and int(ev.note) == open_note[1]:
                notes.append((open_note[0], ev.time, open_note[1], open_note[2]))
                open_note = None
        if open_note is not None:
            notes.append((open_note[0], np.inf, open_note[1], open_note[2]))
        return sorted(notes)

    def render(self, events, duration_s: float) -> np.ndarray:
        sr = self.sample_rate
        n = int(round(duration_s * sr))
        rng = np.random.default_rng(self.cfg.seed)
        t = np.arange(n) / sr
        notes = self._notes(events)
        pitch = np.full(n, np.nan)                     # MIDI, nan where silent
        amp = np.zeros(n)
        bright = np.zeros(n)
        vowel_names = ["m"] if self.cfg.hum else ["a", "e", "i", "o", "u"]
        vowel_w = np.zeros((len(vowel_names), n))
        prev_end, prev_pitch = -np.inf, None
        for on, off, note, vel in notes:
            off = min(off, duration_s)
            i0, i1 = int(round(on * sr)), int(round(off * sr))
            release = rng.uniform(0.06, 0.15)
            i2 = min(n, i1 + int(release * sr))
            if i1 <= i0:
                continue
            legato = prev_pitch is not None and on - prev_end < 1e-3
            seg = t[i0:i2] - on
            p = np.full(len(seg), float(note))
            if legato:                                 # glide from the previous note
                glide = rng.uniform(0.04, 0.09)
                p += (prev_pitch - note) * np.clip(1.0 - seg / glide, 0.0, 1.0) ** 2
            elif rng.random() < 0.6:                   # scoop up from below
                p -= rng.uniform(0.8, 2.5) * np.exp(-seg / rng.uniform(0.025, 0.06))
            if off - on > 0.3:                         # vibrato fading in
                rate, depth = rng.uniform(4.5, 6.5), rng.uniform(0.2, 0.7)
                fade = np.clip((seg - rng.uniform(0.12, 0.3)) / 0.25, 0.0, 1.0)
                p += depth * fade * np.sin(2 * np.pi * rate * seg + rng.uniform(0, 2 * np.pi))
            p += 0.05 * np.cumsum(rng.normal(0, 1, len(seg))) / np.sqrt(sr * 0.5)   # drift
            pitch[i0:i2] = p
            attack = rng.uniform(0.02, 0.08) if not legato else 0.01
            env = np.clip(seg / attack, 0.0, 1.0)
            env = 0.5 - 0.5 * np.cos(np.pi * env)
            tail = np.clip((t[i0:i2] - off) / release, 0.0, 1.0)
            env *= 0.5 + 0.5 * np.cos(np.pi * tail)
            level = (vel / 127.0) ** 1.5
            amp[i0:i2] = np.maximum(amp[i0:i2], level * env) if not legato else level * env
            bright[i0:i2] = vel / 127.0
            k = int(rng.integers(len(vowel_names)))
            vowel_w[:, i0:i2] = 0.0
            vowel_w[k, i0:i2] = 1.0
            prev_end, prev_pitch = off, float(note)
        voiced = np.isfinite(pitch)
        f0 = 440.0 * 2.0 ** ((np.where(voiced, pitch, 60.0) - 69.0) / 12.0)
        f0 *= 1.0 + 0.004 * rng.normal(0, 1, n)        # jitter
        phase = np.cumsum(f0 / sr) % 1.0
        tp, tn = 0.4, 0.16                             # Rosenberg opening / closing shares
        flow = np.where(phase < tp, 0.5 * (1 - np.cos(np.pi * phase / tp)),
                        np.where(phase < tp + tn, np.cos(np.pi * (phase - tp) / (2 * tn)), 0.0))
        source = np.diff(flow, prepend=flow[:1]) * sr / 1000.0
        # softer notes are darker: mix in a one-pole low-passed copy
        from scipy.signal import lfilter
        dark = lfilter([0.15], [1, -0.85], source)
        source = bright * source + (1 - bright) * dark
        aspiration = rng.normal(0, 1, n) * (phase < tp + tn) * rng.uniform(0.02, 0.06)
        source = (source + aspiration) * amp
        out = np.zeros(n)
        smooth = np.ones(int(0.03 * sr)) / int(0.03 * sr)
        for k, v in enumerate(vowel_names):
            w = np.convolve(vowel_w[k], smooth, mode="same")
            if not w.any():
                continue
            out += w * self._formants(source, VOWELS[self.cfg.voice][v], hum=v == "m")
        out += self._breaths(notes, n, rng)
        peak = np.abs(out).max()
        return (0.5 * out / peak if peak > 0 else out).astype(np.float32)

    def _formants(self, x: np.ndarray, freqs, hum: bool) -> np.ndarray:
        """Cascade of 2-pole resonators, each with unit gain at DC (a Klatt-style cascade)."""
        from scipy.signal import lfilter
        y = x
        for j, (f, bw) in enumerate(zip(freqs, BANDWIDTHS)):
            r = np.exp(-np.pi * bw / self.sample_rate)
            a1, a2 = -2 * r * np.cos(2 * np.pi * f / self.sample_rate), r * r
            res = lfilter([1 + a1 + a2], [1, a1, a2], y)
            # a hum passes its upper formants only weakly: blend each with the unfiltered signal
            y = (1 - HUM_GAINS[j]) * y + HUM_GAINS[j] * res if hum and j > 0 else res
        return y

    def _breaths(self, notes, n: int, rng) -> np.ndarray:
        """In-breaths: 150-300 ms of band-passed noise ending 50 ms before a note after a rest."""
        from scipy.signal import butter, lfilter
        sr = self.sample_rate
        out = np.zeros(n)
        b, a = butter(2, [800 / (sr / 2), 4000 / (sr / 2)], btype="band")
        prev_end = 0.0
        for on, off, _, _ in notes:
            if on - prev_end > 0.35 and rng.random() < 0.7:
                length = rng.uniform(0.15, 0.3)
                i1 = int((on - 0.05) * sr)
                i0 = max(0, i1 - int(length * sr))
                if i1 > i0:
                    m = i1 - i0
                    env = np.sin(np.pi * np.arange(m) / m) ** 2
                    out[i0:i1] += rng.uniform(0.01, 0.04) * env * lfilter(b, a, rng.normal(0, 1, m))
            prev_end = min(off, n / sr)
        return out
