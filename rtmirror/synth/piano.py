"""PianoVoice: a struck-string piano of our own (additive, notes only) — exp3's "other instrument".

Why: the paper's exp3 adapts the encoder to a sampled piano. The sampled pianos this machine can
install are either held out for independent checks (the FluidR3 family, TimGM6mb, OPL3, MuseScore)
or reserved for our own evaluation (the csound GM bank: the exp3-piano held-out set and the real
set), so training renders this one instead and the exp3-piano set measures how it transfers.

What makes it a piano rather than the built-in voice (the textbook model of a struck string, e.g.
Fletcher & Rossing, *The Physics of Musical Instruments*, ch. 12):
  - inharmonic partials f_n = n f0 sqrt(1 + B n^2), B rising towards the treble (stiff strings);
  - three strings per note detuned by a few cents, so partials beat;
  - a hammer spectrum: brighter and louder with velocity (partial amplitude ~ n^-a, a falling with
    velocity), partials above the hammer's strike point nulled softly (strike at 1/8 of the string);
  - two-stage decay per partial: a fast "prompt" decay, then a slow "aftersound", both faster for
    higher partials and higher notes; a damper ends the note at note-off in ~80 ms;
  - a short noisy thump at the hammer strike.
Notes only: CONTROL events are ignored (a piano has no cutoff knob). Deterministic per render.
"""
from __future__ import annotations

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, Event, sorted_events


class PianoVoice:
    name = "piano"

    def __init__(self, sample_rate: int = 16000, gain: float = 0.25, max_partials: int = 24):
        if sample_rate < 4000:
            raise ValueError(f"sample_rate must be >= 4000, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        self.max_partials = int(max_partials)

    def _note(self, note: int, velocity: int, held_s: float, seed: int) -> np.ndarray:
        """One note: (held + damper tail,) float64."""
        sr = self.sample_rate
        rng = np.random.default_rng(seed)
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        v = velocity / 127.0
        length = int((held_s + 0.08 * 5) * sr)             # five damper time constants after note-off
        t = np.arange(length) / sr
        b = 1e-4 * 2 ** ((note - 60) / 12)                  # inharmonicity: ~0.0001 at middle C
        n = np.arange(1, self.max_partials + 1)
        fn = n * f0 * np.sqrt(1 + b * n ** 2)
        keep = fn < 0.45 * sr
        n, fn = n[keep], fn[keep]
        tilt = 2.2 - 1.2 * v                                # soft: dull, hard: bright
        amp = n ** -tilt * (0.25 + np.abs(np.sin(np.pi * n / 8.0)))   # strike at 1/8: soft nulls
        pitch_scale = 2 ** ((note - 60) / 24)               # higher notes decay faster
        prompt = 0.25 / (pitch_scale * (1 + 0.15 * n))      # s, fast stage
        after = 3.0 / (pitch_scale * (1 + 0.08 * n))        # s, slow stage
        damp = np.where(t < held_s, 1.0, np.exp(-(t - held_s) / 0.08))
        y = np.zeros(length)
        for k in range(len(n)):
            env = 0.7 * np.exp(-t / prompt[k]) + 0.3 * np.exp(-t / after[k])
            for cents in (-1.5, 0.0, 1.2):                  # three strings
                ph = rng.uniform(0, 2 * np.pi)
                y += amp[k] / 3 * env * np.sin(2 * np.pi * fn[k] * 2 ** (cents / 1200) * t + ph)
        thump_n = min(length, int(0.012 * sr))
        thump = rng.standard_normal(thump_n) * np.exp(-np.arange(thump_n) / (0.003 * sr))
        y[:thump_n] += 0.15 * v * thump
        return y * damp * (0.2 + 0.8 * v) ** 1.5

    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        sr = self.sample_rate
        total = int(round(duration_s * sr))
        out = np.zeros(total)
        held: dict[int, tuple[float, int]] = {}             # note -> (onset s, velocity)
        notes: list[tuple[float, float, int, int]] = []
        for ev in sorted_events(events):
            if ev.kind == NOTE_ON:
                if ev.note in held:                        # re-strike: the old one is damped
                    on, vel = held.pop(ev.note)
                    notes.append((on, ev.time, ev.note, vel))
                held[int(ev.note)] = (float(ev.time), int(ev.velocity))
            elif ev.kind == NOTE_OFF and ev.note in held:
                on, vel = held.pop(ev.note)
                notes.append((on, float(ev.time), int(ev.note), vel))
        notes += [(on, duration_s, note, vel) for note, (on, vel) in held.items()]
        for on, off, note, vel in notes:
            start = int(round(on * sr))
            if start >= total:
                continue
            y = self._note(note, max(1, min(127, vel)), max(off - on, 0.0), seed=note * 1000 + start % 997)
            end = min(total, start + len(y))
            out[start:end] += y[:end - start]
        return (out * self.gain).astype(np.float32)
