"""The wide voice: a target synth with many timbres, so a model trained on it hears more than the
built-in voice. It plays training TARGETS only (the synth in the loop stays the built-in voice).

Each melody gets its own random patch (`vary(rng)`, called by the render path before a melody):

    partials   additive, up to 0.45 * sr: a mix of saw (1/k), square (odd 1/k), triangle (odd 1/k^2)
               and a pure sine, a spectral tilt, optional inharmonicity f_k = k f0 sqrt(1 + B k^2)
               (stiff strings, bells), and a formant envelope (3 resonances of a random vowel)
    pitch      vibrato (delayed, 4-7 Hz, up to 0.6 semitone), a scoop into the note (from 0.3-2
               semitones below), slow random drift of a few cents
    envelope   bowed/blown (slow attack 40-300 ms, brightness rising with the attack), sustained
               (fast attack) or plucked (exponential decay, no sustain); release 20-400 ms;
               tremolo 3-8 Hz up to 30 % depth
    noise      breath: band-passed noise following the envelope, -35..-10 dB below the tone, plus a
               short chiff at the onset

Monophonic like a voice or a wind: a note cuts the previous note's release at its onset (5 ms fade).
Velocity and `OSC: Volume2` (when the melody sets it) scale the level; other knobs are ignored:
this voice has no DIVA controls, and its notes (pitch, gate, velocity) are what training may use.
Deterministic: the same patch and events give the same samples (noise comes from the patch's seed).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import lfilter

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event, sorted_events
from rtmirror.synth.base import event_sample, n_samples

# Vowel formants (Hz) F1, F2, F3 of an adult male voice (Peterson & Barney 1952, JASA 24(2), Table II
# averages, rounded): a wide spread of spectral envelopes for the partials.
VOWEL_FORMANTS = {
    "i": (270, 2290, 3010), "I": (390, 1990, 2550), "E": (530, 1840, 2480), "ae": (660, 1720, 2410),
    "a": (730, 1090, 2440), "O": (570, 840, 2410), "U": (440, 1020, 2240), "u": (300, 870, 2240),
    "V": (640, 1190, 2390), "3": (490, 1350, 1690),
}
STYLES = ("bowed", "sustained", "plucked")
MAX_PARTIALS = 64
FADE_S = 0.005              # fade of a release cut by the next note
PEAK = 0.9                  # the loudest note (velocity 127, volume 1) peaks near this


@dataclass(frozen=True)
class WidePatch:
    """One timbre of the wide voice; `random_patch(rng)` draws one."""
    saw: float = 1.0                  # waveform mix weights (normalized inside)
    square: float = 0.0
    triangle: float = 0.0
    sine: float = 0.0
    tilt_db_per_oct: float = 0.0      # extra spectral slope
    inharmonicity: float = 0.0        # B in f_k = k f0 sqrt(1 + B k^2)
    vowel: str = ""                   # "" = no formant envelope
    formant_shift: float = 1.0        # formant frequencies x this
    formant_depth: float = 0.0        # 0 = flat, 1 = full resonance peaks
    style: str = "sustained"          # bowed | sustained | plucked
    attack_s: float = 0.01
    decay_s: float = 0.3              # plucked: time constant of the decay
    sustain: float = 0.8
    release_s: float = 0.1
    brightness_attack: float = 0.0    # high partials lag the envelope (bowed/blown onsets)
    vibrato_semitones: float = 0.0
    vibrato_hz: float = 5.5
    vibrato_delay_s: float = 0.2
    scoop_semitones: float = 0.0      # start this far below the note ...
    scoop_s: float = 0.06             # ... and reach it with this time constant
    drift_cents: float = 0.0
    tremolo_depth: float = 0.0
    tremolo_hz: float = 5.0
    breath_db: float = -80.0          # breath noise level re the tone
    breath_hz: float = 1500.0         # centre of the breath band
    chiff_db: float = -80.0           # onset noise burst level re the tone
    seed: int = 0                     # noise and drift


def random_patch(rng: np.random.Generator) -> WidePatch:
    """A random timbre: every field drawn from the ranges in the module docstring."""
    mix = rng.dirichlet([0.6, 0.6, 0.6, 0.6])
    style = str(rng.choice(STYLES, p=[0.4, 0.35, 0.25]))
    attack = {"bowed": rng.uniform(0.04, 0.3), "sustained": rng.uniform(0.003, 0.04),
              "plucked": rng.uniform(0.001, 0.008)}[style]
    vowel = str(rng.choice(sorted(VOWEL_FORMANTS))) if rng.random() < 0.6 else ""
    return WidePatch(
        saw=float(mix[0]), square=float(mix[1]), triangle=float(mix[2]), sine=float(mix[3]),
        tilt_db_per_oct=float(rng.uniform(-6.0, 2.0)),
        inharmonicity=float(10 ** rng.uniform(-5, -2.5)) if rng.random() < 0.25 else 0.0,
        vowel=vowel, formant_shift=float(rng.uniform(0.8, 1.25)),
        formant_depth=float(rng.uniform(0.3, 1.0)) if vowel else 0.0,
        style=style, attack_s=float(attack),
        decay_s=float(rng.uniform(0.2, 1.5) if style == "plucked" else rng.uniform(0.05, 0.5)),
        sustain=float(0.0 if style == "plucked" else rng.uniform(0.5, 1.0)),
        release_s=float(rng.uniform(0.02, 0.4)),
        brightness_attack=float(rng.uniform(0.5, 3.0)) if style == "bowed" else 0.0,
        vibrato_semitones=float(rng.uniform(0.05, 0.6)) if rng.random() < 0.5 else 0.0,
        vibrato_hz=float(rng.uniform(4.0, 7.0)), vibrato_delay_s=float(rng.uniform(0.05, 0.4)),
        scoop_semitones=float(rng.uniform(0.3, 2.0)) if rng.random() < 0.3 else 0.0,
        scoop_s=float(rng.uniform(0.02, 0.1)),
        drift_cents=float(rng.uniform(0.0, 8.0)),
        tremolo_depth=float(rng.uniform(0.05, 0.3)) if rng.random() < 0.3 else 0.0,
        tremolo_hz=float(rng.uniform(3.0, 8.0)),
        breath_db=float(rng.uniform(-35.0, -10.0)) if rng.random() < 0.5 else -80.0,
        breath_hz=float(rng.uniform(600.0, 3000.0)),
        chiff_db=float(rng.uniform(-20.0, -3.0)) if rng.random() < 0.3 else -80.0,
        seed=int(rng.integers(0, 2**31 - 1)))


def _notes(events: list[Event], n: int, sr: int, space: ControlSpace) -> list[tuple[int, int, int, float]]:
    """Events -> [(start sample, end sample, MIDI note, gain)] of a monophonic line; gain from
    velocity and OSC: Volume2 (its value at the note-on, physical via the space when it has it)."""
    volume = float(space.patch.get("OSC: Volume2", 1.0))
    notes, open_note = [], None
    for ev in sorted_events(events):
        s = min(event_sample(ev.time, sr), n)
        if ev.kind == CONTROL and ev.name == "OSC: Volume2":
            volume = float(np.clip(ev.value, 0.0, 1.0))
        elif ev.kind == NOTE_ON and ev.velocity > 0:
            if open_note is not None:
                notes.append((*open_note[:1], s, *open_note[1:]))
            open_note = (s, int(ev.note), (ev.velocity / 127.0) * volume)
        elif ev.kind in (NOTE_OFF, NOTE_ON) and open_note is not None and ev.note == open_note[1]:
            notes.append((open_note[0], s, open_note[1], open_note[2]))
            open_note = None
    if open_note is not None:
        notes.append((open_note[0], n, open_note[1], open_note[2]))
    return [nt for nt in notes if nt[1] > nt[0]]


class WideVoice:
    """The wide voice as a `Synth`: `vary(rng)` draws the next melody's patch; `render(events, s)`."""

    name = "wide"

    def __init__(self, space: ControlSpace, sample_rate: int = 8000, patch: WidePatch | None = None):
        self.space = space
        self.sample_rate = int(sample_rate)
        self.patch = patch or random_patch(np.random.default_rng(0))

    def vary(self, rng: np.random.Generator) -> None:
        self.patch = random_patch(rng)

    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        sr, p = self.sample_rate, self.patch
        n = n_samples(duration_s, sr)
        out = np.zeros(n, np.float64)
        notes = _notes(events, n, sr, self.space)
        rng = np.random.default_rng(p.seed)
        for j, (s0, s1, note, gain) in enumerate(notes):
            next_on = notes[j + 1][0] if j + 1 < len(notes) else n
            tail = int(round(5 * p.release_s * sr))            # -43 dB after 5 time constants
            end = min(n, s1 + tail, max(next_on, s1) + int(FADE_S * sr))
            if end <= s0:
                continue
            seg = self._note(end - s0, s1 - s0, note, rng)
            if end > next_on > s0:                             # the next note cuts this release
                k = next_on - s0
                fade = np.clip(1.0 - np.arange(len(seg) - k) / (FADE_S * sr), 0.0, 1.0)
                seg[k:] *= fade
            out[s0:end] += gain * seg
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def _note(self, length: int, held: int, note: int, rng: np.random.Generator) -> np.ndarray:
        """One note of `length` samples, key held for `held` of them -> (length,) float64, peak ~PEAK."""
        sr, p = self.sample_rate, self.patch
        t = np.arange(length) / sr
        env = self._envelope(t, held / sr)                                    # (length,)
        # pitch in semitones around the note: vibrato (faded in after its delay), scoop, drift
        vib_in = np.clip((t - p.vibrato_delay_s) / 0.2, 0.0, 1.0)
        semis = p.vibrato_semitones * vib_in * np.sin(2 * np.pi * p.vibrato_hz * t + rng.uniform(0, 2 * np.pi))
        semis -= p.scoop_semitones * np.exp(-t / max(p.scoop_s, 1e-3))
        if p.drift_cents > 0:
            knots = rng.standard_normal(int(t[-1] * 4) + 2) * p.drift_cents / 100.0
            semis += np.interp(t * 4, np.arange(len(knots)), knots)
        f0 = 440.0 * 2.0 ** ((note - 69 + semis) / 12.0)                     # (length,) Hz
        phase = 2 * np.pi * np.cumsum(f0) / sr
        f_note = 440.0 * 2.0 ** ((note - 69) / 12.0)
        k = np.arange(1, MAX_PARTIALS + 1)
        stretch = np.sqrt(1.0 + p.inharmonicity * k**2)
        fk = k * stretch * f_note
        amp = self._partial_amps(k, fk)
        amp[fk >= 0.45 * sr] = 0.0
        keep = np.nonzero(amp > 1e-4 * amp.max())[0]
        y = np.zeros(length)
        for i in keep:
            a = amp[i]
            if p.brightness_attack > 0:    # partial k follows env^(1 + b (k-1) / 8)
                a = a * env ** (p.brightness_attack * (k[i] - 1) / 8.0)
            y += a * np.sin(phase * k[i] * stretch[i])
        y *= env
        if p.tremolo_depth > 0:
            y *= 1.0 - p.tremolo_depth * 0.5 * (1 + np.sin(2 * np.pi * p.tremolo_hz * t))
        peak = float(np.max(np.abs(y))) if length else 0.0
        y *= PEAK / max(peak, 1e-9) * float(np.max(env))
        if p.breath_db > -79 or p.chiff_db > -79:
            y += self._noise(t, env, length, rng)
        return y

    def _envelope(self, t: np.ndarray, held_s: float) -> np.ndarray:
        p = self.patch
        a = np.clip(t / max(p.attack_s, 1e-4), 0.0, 1.0)
        if p.style == "bowed":
            a = a ** 1.5                                            # a bow or breath builds up
        after = np.maximum(t - p.attack_s, 0.0)
        level = p.sustain + (1.0 - p.sustain) * np.exp(-after / max(p.decay_s, 1e-3))
        env = a * level
        held_level = float(np.interp(held_s, t, env)) if len(t) else 0.0
        rel = t > held_s
        env[rel] = held_level * np.exp(-(t[rel] - held_s) / max(p.release_s, 1e-3))
        return env

    def _partial_amps(self, k: np.ndarray, fk: np.ndarray) -> np.ndarray:
        p = self.patch
        odd = (k % 2 == 1).astype(float)
        amp = (p.saw / k + p.square * odd / k + p.triangle * odd / k**2 + p.sine * (k == 1))
        amp = amp * 2.0 ** (np.log2(k) * p.tilt_db_per_oct / 6.02)
        if p.vowel:
            env = np.zeros_like(fk)
            for i, f in enumerate(VOWEL_FORMANTS[p.vowel]):
                fc = f * p.formant_shift
                bw = 60.0 + 0.06 * fc
                env += (0.5 ** i) / (1.0 + ((fk - fc) / bw) ** 2)
            amp = amp * ((1.0 - p.formant_depth) + p.formant_depth * env / env.max())
        return amp

    def _noise(self, t: np.ndarray, env: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """Breath (band-passed noise under the envelope) and the onset chiff, levels re PEAK."""
        p, sr = self.patch, self.sample_rate
        w = rng.standard_normal(length)
        fc = min(p.breath_hz, 0.4 * sr)
        r = np.exp(-np.pi * (0.6 * fc) / sr)                        # 2-pole resonator, Q ~ 1.7
        band = lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], w)
        band /= max(float(np.std(band)), 1e-9)
        gain = PEAK * 0.3 * 10 ** (p.breath_db / 20) * env
        gain = gain + PEAK * 0.3 * 10 ** (p.chiff_db / 20) * np.exp(-t / 0.02)
        return band * gain

    def with_patch(self, **fields) -> "WideVoice":
        return WideVoice(self.space, self.sample_rate, replace(self.patch, **fields))

    def __repr__(self) -> str:
        return f"WideVoice(space={self.space.name!r}, sample_rate={self.sample_rate})"
