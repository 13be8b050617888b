"""`--record` streams to disk (rtmirror.midi.MidiFileRecorder): the file on disk parses after every
single write the recorder makes, holds a prefix of the take, and the recorder keeps only what it
has not written yet. (The process-level check, SIGKILL mid-take, is in tests/test_stop.py.)"""
from __future__ import annotations

import io

import mido

from rtmirror.midi import MidiFileRecorder


def parsed(data: bytes) -> list[tuple]:
    mid = mido.MidiFile(file=io.BytesIO(data))
    return [tuple(m.bytes()) for m in mid.tracks[0] if not m.is_meta]


class SnapshotFile:
    """Wraps the recorder's open file: after each write, a copy of the whole file as a kill at
    that moment would leave it."""

    def __init__(self, f, path, snapshots):
        self._f, self._path, self._snaps = f, path, snapshots

    def write(self, b):
        n = self._f.write(b)
        self._snaps.append(self._path.read_bytes())
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_the_file_parses_after_every_write_and_holds_a_prefix_of_the_take(tmp_path):
    path = tmp_path / "take.mid"
    rec = MidiFileRecorder(path, flush_s=3600.0)          # flushes only when told to
    rec.flush()                                           # creates the file: an empty take
    assert parsed(path.read_bytes()) == []
    snaps: list[bytes] = []
    rec._f = SnapshotFile(rec._f, path, snaps)
    sent = []
    for block in range(5):                                # 5 flushes of 20 messages each
        for i in range(10):
            t = block + 0.05 * i
            for m in ((0x90, 60 + i, 100), (0x80, 60 + i, 0)):
                rec.send(t, m)
                sent.append(m)
        assert len(rec._pending) == 20                    # only the unwritten part in memory
        rec.flush()
        assert rec._pending == [] and rec.written == len(sent)
    assert len(snaps) == 5 * 3                            # three writes per flush
    counts = []
    for snap in snaps:
        got = parsed(snap)                                # a kill after any write: readable
        assert got == sent[:len(got)]                     # ... and a prefix of the take
        counts.append(len(got))
    assert counts == sorted(counts) and counts[-1] == len(sent)
    rec._f = rec._f._f
    rec.close()
    t, times = 0, []
    for m in mido.MidiFile(path):                         # times survive the appends
        t += m.time
        if not m.is_meta:
            times.append(round(t, 3))
    assert times[:4] == [0.0, 0.0, 0.05, 0.05] and times[-1] == 4.45


def test_a_held_note_reaches_the_disk_without_new_messages(tmp_path):
    """The engine calls check() twice a second: a note-on followed by silence is on disk within
    flush_s even though nothing else is sent."""
    import time
    path = tmp_path / "held.mid"
    rec = MidiFileRecorder(path, flush_s=0.05)
    rec.flush()
    rec.send(0.0, (0x90, 60, 100))
    time.sleep(0.06)
    rec.check()
    assert parsed(path.read_bytes()) == [(0x90, 60, 100)]
    rec.close()


def test_a_message_earlier_than_the_written_ones_is_not_sent_back_in_time(tmp_path):
    path = tmp_path / "late.mid"
    rec = MidiFileRecorder(path, flush_s=3600.0)
    rec.send(1.0, (0x90, 60, 100))
    rec.flush()
    rec.send(0.5, (0x80, 60, 0))                          # e.g. a stop-time flush stamped earlier
    rec.close()
    msgs = list(mido.MidiFile(path))
    notes = [m for m in msgs if not m.is_meta]
    assert [m.type for m in notes] == ["note_on", "note_off"] and all(m.time >= 0 for m in msgs)
    assert abs(sum(m.time for m in msgs) - 1.0) < 1e-3
