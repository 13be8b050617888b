"""Key/scale lock: notes snapped to a scale, as voice-to-MIDI tools offer it.

    Scale.parse("C", "minor").snap(61)  -> 60 or 62 (the nearer scale note; ties toward the
                                           continuous pitch, else upward)
    ScaleLock(scale).process(events)    -> the Performer's events with every note on the scale
    ScaleLock("auto")                   -> notes pass unchanged until KeyDetector is confident

KeyDetector: Krumhansl-Schmuckler key finding, the correlation of the duration-weighted
pitch-class histogram with the Krumhansl-Kessler probe-tone profiles (C. L. Krumhansl,
"Cognitive Foundations of Musical Pitch", 1990, table 2.1; Krumhansl & Kessler 1982).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, PITCH_BEND, Event

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic-minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major-pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "chromatic": tuple(range(12)),
}
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_TONIC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Krumhansl-Kessler probe-tone ratings, tonic first (source in the module docstring)
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Scale:
    tonic: int          # pitch class 0..11 (0 = C)
    mode: str           # a key of MODES

    def __post_init__(self) -> None:
        if not (0 <= self.tonic < 12) or self.mode not in MODES:
            raise ValueError(f"bad scale {self.tonic}, {self.mode!r}")

    @classmethod
    def parse(cls, key: str, mode: str = "major") -> "Scale":
        """'C', 'F#', 'Bb', 'c#' and a mode name (see MODES)."""
        k = key.strip()
        if not k or k[0].upper() not in _TONIC or k[1:] not in ("", "#", "b", "s"):
            raise ValueError(f"--key must be a note name like C, F#, Bb (got {key!r})")
        tonic = (_TONIC[k[0].upper()] + {"": 0, "#": 1, "s": 1, "b": -1}[k[1:]]) % 12
        if mode not in MODES:
            raise ValueError(f"--scale must be one of {', '.join(MODES)} (got {mode!r})")
        return cls(tonic, mode)

    @property
    def name(self) -> str:
        return f"{NAMES[self.tonic]} {self.mode}"

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.tonic + d) % 12 for d in MODES[self.mode])

    def snap(self, note: int, pitch: float | None = None) -> int:
        """The nearest note of the scale; a tie goes toward `pitch` (the continuous pitch), else up."""
        pcs = self.pitch_classes
        if note % 12 in pcs:
            return int(note)
        for d in range(1, 7):
            up, down = (note + d) % 12 in pcs, (note - d) % 12 in pcs
            if up and down:
                return int(note - d if pitch is not None and pitch < note else note + d)
            if up or down:
                return int(note + d if up else note - d)
        return int(note)


class KeyDetector:
    """Streaming key estimate from the notes played so far (duration-weighted pitch classes)."""

    def __init__(self, min_notes: int = 8, min_classes: int = 4, margin: float = 0.05):
        self.hist = np.zeros(12)
        self.n = 0
        self.min_notes, self.min_classes, self.margin = min_notes, min_classes, margin
        self.current: Scale | None = None

    def add_note(self, note: int, duration_s: float) -> None:
        self.hist[int(note) % 12] += max(0.05, float(duration_s))
        self.n += 1
        best, score, second = _best_key(self.hist)
        if self.n < self.min_notes and np.count_nonzero(self.hist) < self.min_classes:
            return
        # hysteresis: a new key must beat the current one by `margin` in correlation
        if self.current is None or (best != self.current and score - _corr(self.hist, self.current) > self.margin):
            self.current = best

    def estimate(self) -> Scale | None:
        return self.current


def _corr(hist: np.ndarray, s: Scale) -> float:
    prof = KK_MAJOR if s.mode == "major" else KK_MINOR
    return float(np.corrcoef(hist, np.roll(prof, s.tonic))[0, 1]) if hist.std() > 0 else 0.0


def _best_key(hist: np.ndarray) -> tuple[Scale, float, float]:
    scores = sorted(((_corr(hist, Scale(t, m)), Scale(t, m)) for t in range(12) for m in ("major", "minor")),
                    key=lambda x: -x[0])
    return scores[0][1], scores[0][0], scores[1][0]


def detect_key(notes) -> Scale | None:
    """Offline twin of KeyDetector: notes = [(midi note, duration_s), ...] in playing order."""
    d = KeyDetector()
    for note, dur in notes:
        d.add_note(note, dur)
    return d.estimate()


class ScaleLock:
    """Performer events -> events with every note-on on the scale. A note-off closes the note its
    note-on was snapped to; a retrigger that snaps onto the sounding note is dropped (with its
    note-off), so note-ons and note-offs stay balanced. Bends are re-expressed around the
    snapped note."""

    def __init__(self, scale: "Scale | str", bend_range: float = 2.0):
        self.auto = scale == "auto"
        self.detector = KeyDetector() if self.auto else None
        self.scale = None if self.auto else scale
        self.bend_range = float(bend_range)
        self.reset()

    def reset(self) -> None:
        if self.auto:
            self.detector = KeyDetector()
        self._map: dict[int, int] = {}          # played note -> sounding (snapped) note
        self._count: dict[int, int] = {}        # sounding note -> note-ons it carries
        self._onset: dict[int, float] = {}      # played note -> note-on time (for the detector)

    def process(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for e in events:
            if e.kind == NOTE_ON:
                scale = self.scale if not self.auto else self.detector.estimate()
                snapped = scale.snap(e.note) if scale is not None else e.note
                self._map[e.note] = snapped
                self._onset[e.note] = e.time
                self._count[snapped] = self._count.get(snapped, 0) + 1
                if self._count[snapped] == 1:
                    out.append(Event(e.time, NOTE_ON, note=snapped, velocity=e.velocity))
            elif e.kind == NOTE_OFF:
                snapped = self._map.pop(e.note, e.note)
                if self.auto and e.note in self._onset:
                    self.detector.add_note(e.note, e.time - self._onset.pop(e.note))
                n = self._count.get(snapped, 0)
                if n <= 1:
                    self._count.pop(snapped, None)
                    out.append(Event(e.time, NOTE_OFF, note=snapped))
                else:
                    self._count[snapped] = n - 1
            elif e.kind == PITCH_BEND and self._map:
                played, snapped = next(reversed(self._map.items()))
                bend = float(np.clip(e.value + played - snapped, -self.bend_range, self.bend_range))
                out.append(Event(e.time, PITCH_BEND, value=bend))
            else:
                out.append(e)
        return out

    @property
    def name(self) -> str:
        if not self.auto:
            return self.scale.name
        est = self.detector.estimate()
        return f"auto ({est.name})" if est is not None else "auto (listening)"
