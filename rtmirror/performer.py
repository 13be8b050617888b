"""Performer: control frames (T, K) <-> performance events (notes, CONTROL changes, pitch bend).

The same code feeds the synth during training and the MIDI port live, so a model is trained on
exactly what a synth receiving our MIDI would play. Pure numpy/Python (no torch).

Frames -> events (`Performer.step`, offline twin `frames_to_events`):
  * gate with hysteresis: a note starts when gate >= gate_on and ends when gate < gate_off for
    `gate_off_frames` consecutive frames (a one-frame dip of a trained gate does not split a note);
  * a note lasts at least `min_note_frames` frames (an earlier gate-off or retrigger waits);
  * the pitch is "settled" when the last `pitch_stable_frames` continuous pitches lie within
    `pitch_stable_tol` semitones of each other. A trained encoder's pitch glides for a few frames
    into each new note (it was still showing the previous one); playing every pitch it passes
    through is what made the Performer play 2-4x the notes of the input (docs/PERFORMER.md);
  * onset settling: after the gate opens, the note-on waits until the pitch is settled, at most `onset_settle_frames` frames, then starts with the pitch of that frame
    (a gate that falls below gate_off meanwhile cancels it). Latency: at most that many frames;
  * retrigger on pitch change: the note is round(pitch.to_physical(v)); a sounding note is
    replaced when that differs from it by >= retrigger_semitones, the continuous pitch is more
    than 0.5 + pitch_hysteresis semitones away (jitter at a semitone boundary does not chatter)
    and the pitch is settled (a glide passing through notes does not play them;
    latency: pitch_stable_frames - 1 frames);
  * latched controls (Control.latch, e.g. ENV1 Attack/Decay) go out once per note, as CONTROL
    events at the note-on's time, ordered before it: a synth reads them at note-on;
  * other knobs go out at stream start and whenever they move by more than knob_threshold;
  * optional pitch bend (semitones, clipped to +-bend_range) for the continuous pitch around the
    sounding note;
  * non-finite values: gate -> off, others -> the previous finite value. Nothing raises.
Event time = frame_index / frame_rate; frame i is the frame passed to the (i+1)-th `step`.

Events -> frames (`events_to_frames`, the ground truth of a melody): an event at time t acts
from frame round(t * frame_rate) on (melodies are quantized to that grid, so this is exact):
  * gate 1 on frames where a note sounds (monophonic, last note-on wins; a note-off of a note
    that is no longer the sounding one is ignored);
  * pitch = the sounding note (+ pitch bend), HELD at the last note after its note-off (the
    track stays continuous; training masks pitch where the gate is off);
  * velocity = the last note-on's velocity, held;
  * knobs = sample-and-hold of their CONTROL events; latched knobs = the value in force at the
    last note-on (a CONTROL for a latched knob between notes takes effect at the next note-on);
  * before a column's first value it takes that first value (back-fill); a column that never
    gets a value is 0.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event, sorted_events


@dataclass(frozen=True)
class PerformerConfig:
    gate_on: float = 0.6               # gate >= gate_on starts a note
    gate_off: float = 0.4              # gate < gate_off ends it (hysteresis band in between)
    gate_off_frames: int = 2           # consecutive frames below gate_off that end a note
    min_note_frames: int = 2           # shortest note, in frames (8 ms each at 125 frames/s)
    pitch_stable_frames: int = 2       # frames the pitch must stay on a note before it plays (1 = at once)
    pitch_stable_tol: float = 0.25     # largest spread (max - min, semitones) of a settled pitch
    onset_settle_frames: int = 1       # longest wait of a note-on for a settled pitch (0 = none)
    retrigger: bool = True             # a pitch change on a sounding note starts a new note
    retrigger_semitones: float = 1.0   # |round(pitch) - sounding note| that retriggers
    pitch_hysteresis: float = 0.15     # semitones beyond the rounding boundary before a change counts
    legato: bool = False               # retrigger as new note-on BEFORE the old note-off (mono legato)
    knob_threshold: float = 0.005      # normalized change that sends a knob CONTROL (> threshold)
    pitch_bend: bool = False           # send PITCH_BEND for the continuous pitch around the note
    bend_range: float = 2.0            # semitones, +- (the receiving synth's bend range)
    bend_threshold: float = 0.05       # semitones of change that sends a new bend
    default_velocity: int = 100        # note-on velocity when the space has no velocity control

    def __post_init__(self) -> None:
        if not (0.0 <= self.gate_off <= self.gate_on <= 1.0):
            raise ValueError(f"need 0 <= gate_off <= gate_on <= 1, got {self.gate_off}, {self.gate_on}")
        for name in ("min_note_frames", "gate_off_frames", "pitch_stable_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.onset_settle_frames < 0:
            raise ValueError(f"onset_settle_frames must be >= 0, got {self.onset_settle_frames}")
        if not (0.0 < self.pitch_stable_tol <= 2.0):
            raise ValueError(f"pitch_stable_tol must be in (0, 2], got {self.pitch_stable_tol}")
        if self.retrigger_semitones < 1:
            raise ValueError(f"retrigger_semitones must be >= 1, got {self.retrigger_semitones}")
        if not (0.0 <= self.pitch_hysteresis < 0.5):
            raise ValueError(f"pitch_hysteresis must be in [0, 0.5), got {self.pitch_hysteresis}")
        if self.knob_threshold < 0 or self.bend_threshold < 0 or self.bend_range <= 0:
            raise ValueError("knob_threshold, bend_threshold must be >= 0 and bend_range > 0")
        if not (1 <= self.default_velocity <= 127):
            raise ValueError(f"default_velocity must be 1..127, got {self.default_velocity}")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "PerformerConfig":
        """From a TOML table / JSON manifest; unknown keys are an error (a typo must not pass)."""
        from rtmirror.checks import boolean, number

        if not isinstance(d, dict):
            raise ValueError(f"performer parameters must be a table, got {d!r}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown performer parameters: {sorted(unknown)} "
                             f"(known: {sorted(cls.__dataclass_fields__)})")
        for name, value in d.items():
            if name in _PERFORMER_FLAGS:
                boolean(name, value)
            else:
                lo, hi, integer = _PERFORMER_RANGES[name]
                number(name, value, lo, hi, integer=integer)
        return cls(**d)


# What a config file may ask for (from_dict); __post_init__ adds the relations (gate_off <= gate_on).
_PERFORMER_FLAGS = ("retrigger", "legato", "pitch_bend")
_PERFORMER_RANGES = {  # name -> (lo, hi, integer); frame counts at 125 frames/s (8 ms)
    "gate_on": (0.0, 1.0, False), "gate_off": (0.0, 1.0, False),
    "gate_off_frames": (1, 1000, True), "min_note_frames": (1, 1000, True),
    "pitch_stable_frames": (1, 1000, True), "pitch_stable_tol": (0.0, 2.0, False),
    "onset_settle_frames": (0, 125, True), "retrigger_semitones": (1.0, 127.0, False),
    "pitch_hysteresis": (0.0, 0.5, False), "knob_threshold": (0.0, 1.0, False),
    "bend_range": (0.0, 96.0, False), "bend_threshold": (0.0, 12.0, False),
    "default_velocity": (1, 127, True),
}


class Performer:
    """Streaming frames -> events with state. One frame (K,) per `step`."""

    def __init__(self, space: ControlSpace, cfg: PerformerConfig | None = None, frame_rate: float = 125.0):
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        self.space = space
        self.cfg = cfg or PerformerConfig()
        self.frame_rate = float(frame_rate)
        self._i_pitch = space.role_index("pitch")
        self._i_gate = space.role_index("gate")
        self._i_vel = space.role_index("velocity")
        if self._i_pitch is None or self._i_gate is None:
            raise ValueError(f"control space {space.name!r} needs a pitch and a gate control to perform")
        self._pitch = space.controls[self._i_pitch]
        self._vel = space.controls[self._i_vel] if self._i_vel is not None else None
        knobs = [(i, c) for i, c in enumerate(space.controls) if c.role == "knob"]
        self._latched = [(i, c.name) for i, c in knobs if c.latch]
        self._continuous = [(i, c.name) for i, c in knobs if not c.latch]
        self.reset()

    # -- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (call flush() first if a note may be sounding)."""
        self.frame_index = 0
        self._note: int | None = None      # sounding MIDI note
        self._age = 0                      # frames since its note-on
        self._below = 0                    # consecutive frames with the gate below gate_off
        self._wait: int | None = None      # frames a note-on has waited for a settled pitch (None: not waiting)
        self._recent = deque(maxlen=self.cfg.pitch_stable_frames)   # last continuous pitches (semitones)
        self._bend = 0.0                   # last bend sent (semitones)
        self._last = np.full(len(self.space), np.nan)   # last finite value seen per column
        self._sent = {name: None for _, name in self._continuous}   # last knob value sent

    @property
    def active_note(self) -> int | None:
        return self._note

    @property
    def time(self) -> float:
        return self.frame_index / self.frame_rate

    # -- streaming ------------------------------------------------------------------------
    def step(self, frame) -> list[Event]:
        """One control frame (K,) -> the events it causes, at time frame_index / frame_rate."""
        frame = np.asarray(frame, dtype=np.float64).reshape(-1)
        if frame.shape[0] != len(self.space):
            raise ValueError(f"frame has {frame.shape[0]} values, control space {self.space.name!r} has {len(self.space)}")
        t = self.time
        gate_raw = frame[self._i_gate]
        gate = gate_raw if math.isfinite(gate_raw) else 0.0   # non-finite gate = off
        finite = np.isfinite(frame)
        self._last[finite] = frame[finite]                    # others hold the last finite value
        last = self._last.tolist()    # Python floats: the checks below cost less than on numpy scalars
        out: list[Event] = []

        # continuous knobs: first frame, then on change
        for i, name in self._continuous:
            v = last[i]
            if math.isfinite(v):
                prev = self._sent[name]
                if prev is None or abs(v - prev) > self.cfg.knob_threshold:
                    self._sent[name] = float(v)
                    out.append(Event(t, CONTROL, name=name, value=float(v)))

        pitch_v = last[self._i_pitch]
        phys = float(self._pitch.to_physical(pitch_v)) if math.isfinite(pitch_v) else None
        if phys is not None:
            self._recent.append(phys)
        cfg = self.cfg
        if self._note is not None:
            self._age += 1   # frames since note-on, counting this one
            self._below = self._below + 1 if gate < cfg.gate_off else 0
            old_enough = self._age >= cfg.min_note_frames
            if self._below >= cfg.gate_off_frames and old_enough:
                out.append(Event(t, NOTE_OFF, note=self._note))
                self._note = None
            elif (cfg.retrigger and old_enough and phys is not None
                  and abs(round(phys) - self._note) >= cfg.retrigger_semitones
                  and abs(phys - self._note) > 0.5 + cfg.pitch_hysteresis
                  and self._settled()):
                # canonical order at one time: CONTROL, PITCH_BEND, NOTE_OFF, NOTE_ON; legato
                # sends the new note-on before the old note-off so a mono synth slides instead
                old = self._note
                evs = self._note_on(t, phys)
                off = Event(t, NOTE_OFF, note=old)
                out += evs + [off] if cfg.legato else evs[:-1] + [off, evs[-1]]
            elif cfg.pitch_bend and phys is not None:
                out += self._bend_to(t, phys - self._note)
        else:
            if self._wait is None and gate >= cfg.gate_on and phys is not None:
                self._wait = 0                                   # the gate opened: settle the pitch
            elif self._wait is not None and gate < cfg.gate_off:
                self._wait = None                                # closed again before the note began
            if self._wait is not None:
                if self._wait >= cfg.onset_settle_frames or self._settled():
                    self._wait = None
                    out += self._note_on(t, phys)
                else:
                    self._wait += 1
        self.frame_index += 1
        return out

    def flush(self) -> list[Event]:
        """Close the sounding note (at the current stream time). Leaves no note open."""
        out: list[Event] = []
        if self.cfg.pitch_bend and self._bend != 0.0:   # recentre (PITCH_BEND sorts before NOTE_OFF)
            out.append(Event(self.time, PITCH_BEND, value=0.0))
            self._bend = 0.0
        if self._note is not None:
            out.append(Event(self.time, NOTE_OFF, note=self._note))
            self._note = None
        self._wait = None   # a note-on still settling is dropped (it never sounded)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _note_on(self, t: float, phys: float) -> list[Event]:
        """Latched CONTROLs, bend, then NOTE_ON (the order a synth must receive them)."""
        out = [Event(t, CONTROL, name=name, value=float(self._last[i]))
               for i, name in self._latched if math.isfinite(self._last[i])]
        note = int(min(127, max(0, round(phys))))
        if self.cfg.pitch_bend:
            out += self._bend_to(t, phys - note, force=True)
        out.append(Event(t, NOTE_ON, note=note, velocity=self._velocity()))
        self._note = note
        self._age = 0
        self._below = 0
        return out

    def _settled(self) -> bool:
        """Has the continuous pitch been steady (max - min <= pitch_stable_tol) for the last
        pitch_stable_frames frames? Steadiness, not closeness to a semitone: a detuned voice must
        still start notes without the full wait and still change note under a held gate."""
        r = self._recent
        return len(r) == r.maxlen and max(r) - min(r) <= self.cfg.pitch_stable_tol

    def _velocity(self) -> int:
        if self._vel is None or not math.isfinite(self._last[self._i_vel]):
            return self.cfg.default_velocity
        return int(min(127, max(1, round(float(self._vel.to_physical(self._last[self._i_vel]))))))

    def _bend_to(self, t: float, semitones: float, force: bool = False) -> list[Event]:
        r = self.cfg.bend_range
        b = min(r, max(-r, semitones))
        if abs(b) < self.cfg.bend_threshold:
            b = 0.0   # snap small bends to centre so a steady pitch sends exactly 0
        if (force and b != self._bend) or abs(b - self._bend) > self.cfg.bend_threshold or (b == 0.0 and self._bend != 0.0):
            self._bend = b
            return [Event(t, PITCH_BEND, value=b)]
        return []


def frames_to_events(frames, space: ControlSpace, frame_rate: float = 125.0,
                     cfg: PerformerConfig | None = None, flush: bool = True) -> list[Event]:
    """Offline twin of Performer.step: frames (T, K) -> events (closed at the end if flush)."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[1] != len(space):
        raise ValueError(f"frames must be (T, {len(space)}) for space {space.name!r}, got {frames.shape}")
    p = Performer(space, cfg, frame_rate)
    events: list[Event] = []
    for frame in frames:
        events += p.step(frame)
    if flush:
        events += p.flush()
    return events


def events_to_frames(events, n_frames: int, space: ControlSpace, frame_rate: float = 125.0) -> np.ndarray:
    """Events -> ground-truth control frames (n_frames, K) float32 (rules in the module doc)."""
    K = len(space)
    out = np.full((n_frames, K), np.nan)
    i_pitch, i_gate, i_vel = space.role_index("pitch"), space.role_index("gate"), space.role_index("velocity")
    col = {c.name: i for i, c in enumerate(space.controls) if c.role == "knob"}
    latched = {c.name for c in space.controls if c.role == "knob" and c.latch}

    state = np.full(K, np.nan)    # the values in force
    if i_gate is not None:
        state[i_gate] = 0.0
    pending: dict[str, float] = {}  # latched values waiting for the next note-on
    note: int | None = None
    bend = 0.0
    cursor = 0

    def pitch_value(n: int) -> float:
        return float(space.controls[i_pitch].from_physical(n + bend))

    for ev in sorted_events(events):
        if not math.isfinite(ev.time):
            raise ValueError(f"event time must be finite: {ev}")
        f = min(n_frames, max(0, int(round(ev.time * frame_rate))))
        if f > cursor:
            out[cursor:f] = state
            cursor = f
        if ev.kind == NOTE_ON:
            note = ev.note
            for name, v in pending.items():
                state[col[name]] = v
            pending.clear()
            if i_gate is not None:
                state[i_gate] = 1.0
            if i_pitch is not None:
                state[i_pitch] = pitch_value(note)
            if i_vel is not None:
                state[i_vel] = float(space.controls[i_vel].from_physical(ev.velocity))
        elif ev.kind == NOTE_OFF:
            if note is not None and ev.note == note:
                note = None
                if i_gate is not None:
                    state[i_gate] = 0.0
        elif ev.kind == CONTROL:
            if ev.name in latched:
                pending[ev.name] = float(ev.value)
            elif ev.name in col:
                state[col[ev.name]] = float(ev.value)
        elif ev.kind == PITCH_BEND:
            bend = float(ev.value)
            if note is not None and i_pitch is not None:
                state[i_pitch] = pitch_value(note)
    out[cursor:] = state
    for k in range(K):   # back-fill each column before its first value; never set -> 0
        finite = np.flatnonzero(np.isfinite(out[:, k]))
        if finite.size == 0:
            out[:, k] = 0.0
        else:
            out[: finite[0], k] = out[finite[0], k]
    return out.astype(np.float32)
