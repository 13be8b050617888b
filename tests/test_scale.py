"""Key/scale lock: snapping, key detection (stream == offline), balanced note streams."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from midi_checks import balanced
from rtmirror.events import NOTE_OFF, NOTE_ON, Event
from rtmirror.scale import MODES, KeyDetector, Scale, ScaleLock, detect_key


def test_snap_tables():
    c_major = Scale.parse("C", "major")
    assert [c_major.snap(n) for n in range(60, 72)] == [60, 62, 62, 64, 64, 65, 67, 67, 69, 69, 71, 71]
    assert c_major.snap(61, pitch=60.6) == 60 and c_major.snap(61, pitch=61.4) == 62
    a_minor = Scale.parse("A", "minor")
    assert a_minor.pitch_classes == c_major.pitch_classes
    assert Scale.parse("Bb", "major").tonic == 10 and Scale.parse("f#", "minor").tonic == 6
    for mode, steps in MODES.items():
        s = Scale.parse("D", mode)
        limit = 1 if len(steps) >= 7 else 2
        assert all(abs(s.snap(n) - n) <= limit and s.snap(n) % 12 in s.pitch_classes for n in range(40, 90))


@pytest.mark.parametrize("key, mode", [("H", "major"), ("C", "aeolian-ish"), ("", "major")])
def test_bad_key_or_scale_is_refused(key, mode):
    with pytest.raises(ValueError, match="--key|--scale"):
        Scale.parse(key, mode)


def test_key_detection_on_scale_melodies():
    """Melodies that run through the scale once, then dwell on the tonic triad with the other
    scale tones passing through: at least 22 of the 24 major/minor keys found, and the streaming
    detector always agrees with the offline one."""
    found = 0
    for tonic in range(12):
        for mode in ("major", "minor"):
            rng = np.random.default_rng(tonic * 2 + (mode == "minor"))
            triad = [0, 4 if mode == "major" else 3, 7]
            notes = [(60 + (tonic + d) % 12, 0.15) for d in MODES[mode]]
            for _ in range(24):
                if rng.random() < 0.6:
                    pc, dur = (tonic + triad[rng.choice(3, p=[0.5, 0.25, 0.25])]) % 12, rng.uniform(0.3, 0.8)
                else:
                    pc, dur = (tonic + MODES[mode][rng.integers(7)]) % 12, rng.uniform(0.1, 0.25)
                notes.append((60 + pc, dur))
            found += detect_key(notes) == Scale(tonic, mode)
            d = KeyDetector()
            for n, dur in notes:
                d.add_note(n, dur)
            assert d.estimate() == detect_key(notes)
    assert found >= 22


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(48, 84), st.booleans()), min_size=1, max_size=40),
       st.sampled_from(["major", "minor-pentatonic", "blues"]))
def test_lock_keeps_streams_balanced_and_on_the_scale(notes, mode):
    """Random monophonic streams, legato (new note-on before the old note-off) or not."""
    events, t, sounding = [], 0.0, None
    for note, legato in notes:
        t += 0.1
        if note == sounding:
            continue
        if sounding is not None and not legato:
            events.append(Event(t, NOTE_OFF, note=sounding))
        events.append(Event(t, NOTE_ON, note=note, velocity=90))
        if sounding is not None and legato:
            events.append(Event(t, NOTE_OFF, note=sounding))
        sounding = note
    if sounding is not None:
        events.append(Event(t + 0.1, NOTE_OFF, note=sounding))
    scale = Scale.parse("E", mode)
    out = ScaleLock(scale).process(events)
    msgs = [(0, (0x90 if e.kind == NOTE_ON else 0x80, e.note, 90 if e.kind == NOTE_ON else 0))
            for e in out if e.kind in (NOTE_ON, NOTE_OFF)]
    assert balanced(msgs)
    assert all(e.note % 12 in scale.pitch_classes for e in out if e.kind == NOTE_ON)


def test_file_mode_with_a_key(tmp_path, capsys):
    import mido
    import soundfile as sf

    from rtmirror.cli import main
    from rtmirror.runtime import EncoderRuntime
    from rtmirror.testing.probe import demo_audio

    audio, _ = demo_audio(EncoderRuntime().space, 4.0, 16000, seed=5)
    sf.write(tmp_path / "in.wav", audio, 16000)
    assert main(["file", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.mid"), "--key", "D", "--scale", "major-pentatonic"]) == 0
    pcs = Scale.parse("D", "major-pentatonic").pitch_classes
    ons = [m.note for m in mido.MidiFile(tmp_path / "o.mid") if m.type == "note_on" and m.velocity > 0]
    assert ons and all(n % 12 in pcs for n in ons)
    assert main(["file", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o2.mid"), "--key", "X"]) == 2
    assert "--key" in capsys.readouterr().err
