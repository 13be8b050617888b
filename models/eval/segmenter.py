"""A plain causal note segmenter: a frame-wise pitch track (f0 + voicing confidence) -> notes.

Used on PESTO's streaming pitch track as an anchor (tools/anchors/pesto_notes.py imports this
file by path: numpy only, no rtmirror import). Each decision uses only frames up to the one it
is made at, and a note's onset is stamped with the time of that frame, so the stamps are what a
live player of this segmenter would send (less compute time).

Rules, frame by frame (frame k: time t[k] = when its pitch is known, midi[k], confidence c[k]):
  * voiced: c >= on_confidence to start, stays voiced while c >= off_confidence (hysteresis);
  * note-on: `hold` consecutive voiced frames whose rounded pitch agrees -> a note of that
    pitch starts, stamped at the last of those frames;
  * pitch change: inside a note, `hold` consecutive voiced frames farther than change_semitones
    from the note's pitch, agreeing on one rounded pitch -> the note ends and the new one starts
    at the last of them (a glide or vibrato within change_semitones stays one note);
  * note-off: `release` consecutive unvoiced frames -> the note ends at the first of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmenterConfig:
    on_confidence: float = 0.5
    off_confidence: float = 0.35
    hold: int = 3                   # frames (30 ms at PESTO's 10 ms step)
    release: int = 3                # frames
    change_semitones: float = 0.7   # farther than this from the note's pitch counts as a new pitch


def segment(times, midi, confidence, cfg: SegmenterConfig = SegmenterConfig()) -> list[tuple[float, float, int]]:
    """(T,) frame times s, (T,) MIDI pitch (fractional), (T,) confidence in [0, 1] ->
    [(onset s, offset s, MIDI note)] in time order, never overlapping. A note still open at the
    end closes at the last frame's time."""
    times = np.asarray(times, dtype=np.float64)
    midi = np.asarray(midi, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if not (times.shape == midi.shape == conf.shape) or times.ndim != 1:
        raise ValueError(f"segment: times, midi, confidence must be equal 1-D arrays, got "
                         f"{times.shape}, {midi.shape}, {conf.shape}")
    notes: list[tuple[float, float, int]] = []
    voiced = False
    note: int | None = None          # the sounding note's pitch
    onset = 0.0
    run_pitch, run_len = None, 0     # candidate pitch and how many frames agree on it
    unvoiced_len, unvoiced_since = 0, 0.0
    for t, p, c in zip(times, midi, conf):
        voiced = bool(c >= (cfg.off_confidence if voiced else cfg.on_confidence)) and bool(np.isfinite(p))
        if not voiced:
            run_pitch, run_len = None, 0
            if unvoiced_len == 0:
                unvoiced_since = float(t)
            unvoiced_len += 1
            if note is not None and unvoiced_len >= cfg.release:
                notes.append((onset, unvoiced_since, note))
                note = None
            continue
        unvoiced_len = 0
        q = int(round(p))
        if note is not None and abs(p - note) <= cfg.change_semitones:
            run_pitch, run_len = None, 0              # still the same note
            continue
        run_len = run_len + 1 if q == run_pitch else 1
        run_pitch = q
        if run_len >= cfg.hold:
            if note is not None:
                notes.append((onset, float(t), note))
            note, onset = q, float(t)
            run_pitch, run_len = None, 0
    if note is not None:
        notes.append((onset, float(times[-1]) if len(times) else onset, note))
    return notes
