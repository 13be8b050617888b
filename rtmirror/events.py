"""Performance events: what the Performer emits and synths / MIDI sinks consume.

Times are seconds from the start of the stream, so one list drives a synth at any sample rate
(sample-accurate: sample = round(time * sr)) and a MIDI file at any tempo.
At equal times the order is: CONTROL, PITCH_BEND, NOTE_OFF, NOTE_ON — so a latched envelope
value is sent before the note-on it shapes, and a retrigger closes the old note first.
"""
from __future__ import annotations

from dataclasses import dataclass

NOTE_ON = "note_on"
NOTE_OFF = "note_off"
CONTROL = "control"
PITCH_BEND = "pitch_bend"

_ORDER = {CONTROL: 0, PITCH_BEND: 1, NOTE_OFF: 2, NOTE_ON: 3}


@dataclass(frozen=True, slots=True)
class Event:
    time: float            # seconds from stream start
    kind: str              # NOTE_ON | NOTE_OFF | CONTROL | PITCH_BEND
    note: int = -1         # MIDI note number (note events)
    velocity: int = 0      # 1..127 (NOTE_ON)
    name: str = ""         # control name for CONTROL, e.g. "VCF1: Frequency"
    value: float = 0.0     # CONTROL: normalized [0, 1]; PITCH_BEND: semitones

    def sort_key(self) -> tuple[float, int]:
        return (self.time, _ORDER[self.kind])


def sorted_events(events) -> list[Event]:
    return sorted(events, key=Event.sort_key)
