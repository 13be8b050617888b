"""MIDI facts the tests check on every message stream, whatever model produced it."""
from __future__ import annotations


def notes_balanced(messages) -> bool:
    """messages: raw MIDI messages (status, data1, data2), in order. True when every note-off
    closes a sounding note, no note is struck twice without a note-off, and nothing sounds at
    the end."""
    sounding = set()
    for m in messages:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            if m[1] in sounding:
                return False
            sounding.add(m[1])
        elif m[0] & 0xF0 in (0x80, 0x90):
            if m[1] not in sounding:
                return False
            sounding.discard(m[1])
    return not sounding


def balanced(timed_messages) -> bool:
    """The same over (time, message) pairs, as engines and recorders keep them."""
    return notes_balanced(m for _, m in timed_messages)


def note_timeline(events) -> list[tuple[float, int | None]]:
    """Performer events -> [(time, sounding note or None)] at every note change (monophonic)."""
    sounding, timeline = None, []
    for e in events:
        if e.kind == "note_on":
            sounding = e.note
            timeline.append((e.time, sounding))
        elif e.kind == "note_off" and e.note == sounding:
            sounding = None
            timeline.append((e.time, None))
    return timeline
