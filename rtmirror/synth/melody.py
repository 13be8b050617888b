"""Melody generators: the paper's 2 s / 5-note melodies and a wider "general" mode for live use.

A Melody is a list of events (rtmirror.events) plus its note list and the per-note knob values.
Per-note knob values go out as CONTROL events at the note's onset, ordered before its NOTE_ON.
Times are quantized to the frontend frame grid (1/frame_rate, 8 ms by default), so the ground
truth from `events_to_frames` is exact frame for frame.

Monophony: notes never overlap. Consecutive notes are either separated by a gap (>= 2 frames,
the gate drops) or adjacent "legato" (the next note-on at the previous note-off) and then of a
different pitch, so each note is visible in the control frames (gate or pitch changes). Notes
that truly overlap would sound twice on a polyphonic plugin and break the ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event, sorted_events

FRAME_RATE = 125.0   # the frontend's default frame rate (8 ms frames)

# MIRRORNET.md "Data": per-note uniform ranges (normalized DIVA units). Knobs missing from the
# space are not varied (the synth's patch holds them).
PAPER_PITCHES = (62, 64, 65, 67, 69, 71, 72, 74)
PAPER_RANGES = {
    "OSC: Volume2": (0.6, 1.0),
    "VCF1: Frequency": (0.3, 0.6),
    "VCF1: Resonance": (0.1, 0.4),
    "ENV1: Attack": (0.2, 0.4),
    "ENV1: Decay": (0.3, 0.5),
    "LFO1: Rate": (0.3, 0.5),
    "OSC: Vibrato": (0.3, 0.7),
    "LFO1: Phase": (0.0, 0.3),
}

# general mode: wider per-note ranges, so a live model covers more than the paper's corner.
# A knob of the space that is in neither table is drawn uniform in [0, 1].
GENERAL_RANGES = {
    "OSC: Volume2": (0.3, 1.0),
    "VCF1: Frequency": (0.2, 0.85),   # 80 Hz .. 7.1 kHz with the shipped exp mapping
    "VCF1: Resonance": (0.0, 0.7),
    "ENV1: Attack": (0.0, 0.5),       # 1 ms .. 128 ms
    "ENV1: Decay": (0.2, 0.8),        # 7 ms .. 2 s
    "LFO1: Rate": (0.2, 0.7),
    "OSC: Vibrato": (0.0, 0.7),
    "LFO1: Phase": (0.0, 1.0),
}


@dataclass
class Melody:
    events: list[Event]
    duration_s: float
    notes: list[tuple[float, float, int, int]]          # (onset_s, offset_s, pitch, velocity)
    controls: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (n_notes,) value at note-on
    set_name: str = ""
    seed: int | None = None
    kind: str = ""

    def notes_array(self) -> np.ndarray:
        """(n_notes, 4) float64: onset_s, offset_s, pitch, velocity."""
        return np.asarray(self.notes, dtype=np.float64).reshape(-1, 4)


def _quantize(t, frame_rate: float | None):
    return t if frame_rate is None else np.round(np.asarray(t) * frame_rate) / frame_rate


def _build(notes, knob_values, space, duration_s, kind, seed, extra_events=()):
    """notes [(on, off, pitch, vel)], knob_values {name: (n,)} -> Melody with sorted events."""
    events: list[Event] = list(extra_events)
    for j, (on, off, pitch, vel) in enumerate(notes):
        for name, vals in knob_values.items():
            events.append(Event(on, CONTROL, name=name, value=float(vals[j])))
        events.append(Event(on, NOTE_ON, note=int(pitch), velocity=int(vel)))
        events.append(Event(off, NOTE_OFF, note=int(pitch)))
    return Melody(sorted_events(events), float(duration_s), [tuple(n) for n in notes],
                  {k: np.asarray(v, dtype=np.float64) for k, v in knob_values.items()},
                  space.name, seed, kind)


def _space_knobs(space: ControlSpace, ranges: dict) -> dict[str, tuple[float, float]]:
    return {c.name: ranges.get(c.name, (0.0, 1.0)) for c in space.knobs}


def paper_melody(rng: np.random.Generator, space: ControlSpace, duration_s: float = 2.0, n_notes: int = 5,
                 pad_s: float = 0.1, gap_s: float = 0.016, frame_rate: float | None = FRAME_RATE,
                 seed: int | None = None) -> Melody:
    """The paper's melody: n_notes back to back filling duration_s - pad_s, pitches from
    PAPER_PITCHES, velocity 127, per-note knob values uniform in PAPER_RANGES.

    Durations: weights uniform in [0.3, 1] normalized to the segment (the paper says only
    "random, normalized"; the floor keeps every note >= ~0.13 s). Each note's gate ends gap_s
    before the next onset (2 frames) so repeated pitches stay separate notes in the frames.
    """
    seg = duration_s - pad_s
    w = rng.uniform(0.3, 1.0, n_notes)
    bounds = _quantize(np.concatenate([[0.0], np.cumsum(w / w.sum() * seg)]), frame_rate)
    pitches = rng.choice(PAPER_PITCHES, n_notes)
    notes = []
    for j in range(n_notes):
        on, off = float(bounds[j]), float(_quantize(bounds[j + 1] - gap_s, frame_rate))
        notes.append((on, max(off, on + (1.0 / frame_rate if frame_rate else 0.008)), int(pitches[j]), 127))
    ranges = {k: v for k, v in _space_knobs(space, PAPER_RANGES).items()}
    knobs = {name: rng.uniform(lo, hi, n_notes) for name, (lo, hi) in ranges.items()}
    return _build(notes, knobs, space, duration_s, "paper", seed)


def general_melody(rng: np.random.Generator, space: ControlSpace, duration_s: float = 4.0,
                   pitch_range: tuple[int, int] = (36, 84), min_len_s: float = 0.06, max_len_s: float = 1.5,
                   rest_prob: float = 0.25, legato_prob: float = 0.3, move_prob: float = 0.3,
                   frame_rate: float | None = FRAME_RATE, seed: int | None = None) -> Melody:
    """A melody for live use: pitch random walk with leaps over pitch_range, rests, legato,
    lengths log-uniform in [min_len_s, max_len_s], velocities 30..127, knobs per note from
    GENERAL_RANGES; with probability move_prob a non-latched knob glides linearly to a new value
    within the note (a CONTROL per frame), so the model also sees knobs move inside a note.
    """
    lo_p, hi_p = pitch_range
    step = 1.0 / frame_rate if frame_rate else 0.008
    gap = 2 * step
    ranges = _space_knobs(space, GENERAL_RANGES)
    latched = {c.name for c in space.knobs if c.latch}
    notes, values, extra = [], {name: [] for name in ranges}, []
    t = float(_quantize(rng.uniform(0.0, 0.3), frame_rate))
    pitch = int(rng.integers(lo_p + 6, hi_p - 5))
    legato_next = False
    while True:
        length = float(np.exp(rng.uniform(np.log(min_len_s), np.log(max_len_s))))
        off = float(_quantize(min(t + length, duration_s - step), frame_rate))
        if off - t < min_len_s - 1e-9:
            break
        if notes:   # random walk: small steps, sometimes a leap; reflect at the range ends
            d = int(rng.integers(-12, 13)) if rng.random() < 0.2 else int(rng.integers(-3, 4))
            if legato_next and d == 0:
                d = int(rng.choice([-2, -1, 1, 2]))   # adjacent notes must differ to be seen
            p = pitch + d
            if p < lo_p or p > hi_p:
                p = pitch - d
            pitch = int(np.clip(p, lo_p, hi_p))
            if legato_next and pitch == notes[-1][2]:
                pitch = pitch + 1 if pitch < hi_p else pitch - 1
        notes.append((t, off, pitch, int(rng.integers(30, 128))))
        for name, (lo, hi) in ranges.items():
            v0 = float(rng.uniform(lo, hi))
            values[name].append(v0)
            if name not in latched and rng.random() < move_prob:
                v1 = float(rng.uniform(lo, hi))
                n_steps = int(round((off - t) / step))
                for s in range(1, n_steps):
                    extra.append(Event(t + s * step, CONTROL, name=name, value=v0 + (v1 - v0) * s / n_steps))
        legato_next = rng.random() < legato_prob
        if legato_next:
            t = off
        else:
            rest = float(rng.uniform(0.05, 0.6)) if rng.random() < rest_prob else 0.0
            t = float(_quantize(off + max(gap, rest), frame_rate))
        if t >= duration_s - min_len_s:
            break
    return _build(notes, {k: np.asarray(v) for k, v in values.items()}, space, duration_s, "general", seed, extra)


def make_melody(kind: str, rng: np.random.Generator, space: ControlSpace, duration_s: float | None = None,
                seed: int | None = None, frame_rate: float | None = FRAME_RATE) -> Melody:
    """'paper' | 'general' with that kind's default duration unless one is given."""
    kw = {"seed": seed, "frame_rate": frame_rate}
    if duration_s is not None:
        kw["duration_s"] = duration_s
    if kind == "paper":
        return paper_melody(rng, space, **kw)
    if kind == "general":
        return general_melody(rng, space, **kw)
    raise ValueError(f"unknown melody kind {kind!r} (paper | general)")
