"""Melody generators: the paper's recipe and the general live-use mode."""
from __future__ import annotations

import numpy as np
import pytest

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, sorted_events
from rtmirror.synth.melody import (GENERAL_RANGES, PAPER_PITCHES, PAPER_RANGES, general_melody, make_melody,
                                   paper_melody)

FR = 125.0
EXP1 = ControlSpace.load("exp1")
EXP2 = ControlSpace.load("exp2")


def _on_grid(t):
    return abs(t * FR - round(t * FR)) < 1e-6


def _check_monophonic(mel):
    ev = mel.events
    assert ev == sorted_events(ev)
    sounding = None
    for e in ev:
        if e.kind == NOTE_ON:
            assert sounding is None
            sounding = e.note
        elif e.kind == NOTE_OFF:
            assert e.note == sounding
            sounding = None
    assert sounding is None
    assert all(0 <= e.time <= mel.duration_s for e in ev)
    assert all(_on_grid(e.time) for e in ev)


@pytest.mark.parametrize("space", [EXP1, EXP2], ids=lambda s: s.name)
def test_paper_melody_recipe(space):
    for seed in range(20):
        mel = paper_melody(np.random.default_rng(seed), space, seed=seed)
        _check_monophonic(mel)
        assert mel.duration_s == 2.0 and len(mel.notes) == 5 and mel.kind == "paper" and mel.set_name == space.name
        notes = mel.notes_array()
        assert set(notes[:, 2]) <= set(PAPER_PITCHES) and np.all(notes[:, 3] == 127)
        assert notes[0, 0] == 0.0
        # back to back, filling 2 s - 0.1 s pad (to the frame grid), a 2-frame gap before each next onset
        assert abs(notes[-1, 1] + 0.016 - 1.9) <= 0.5 / FR + 1e-9
        np.testing.assert_allclose(notes[1:, 0] - notes[:-1, 1], 0.016, atol=1e-9)
        assert np.all(notes[:, 1] - notes[:, 0] >= 0.1)
        varied = {k for k in PAPER_RANGES if k in space.names}
        assert set(mel.controls) == varied
        for name, vals in mel.controls.items():
            lo, hi = PAPER_RANGES[name]
            assert vals.shape == (5,) and np.all((vals >= lo) & (vals <= hi))
        # every NOTE_ON is preceded (same time) by one CONTROL per varied knob with the note's value
        for j, on in enumerate(e for e in mel.events if e.kind == NOTE_ON):
            ctl = {e.name: e.value for e in mel.events if e.kind == CONTROL and e.time == on.time}
            assert {k: mel.controls[k][j] for k in varied} == ctl
    # exp2 varies the 3 extra knobs, exp1 does not know them
    assert "LFO1: Rate" in paper_melody(np.random.default_rng(0), EXP2).controls
    assert "LFO1: Rate" not in paper_melody(np.random.default_rng(0), EXP1).controls


def test_paper_melody_deterministic_and_varied():
    a = paper_melody(np.random.default_rng(5), EXP1)
    b = paper_melody(np.random.default_rng(5), EXP1)
    c = paper_melody(np.random.default_rng(6), EXP1)
    assert a.events == b.events and a.events != c.events
    # pitches over many seeds cover the whole set; durations vary
    ps = {p for s in range(40) for (_, _, p, _) in paper_melody(np.random.default_rng(s), EXP1).notes}
    assert ps == set(PAPER_PITCHES)


@pytest.mark.parametrize("space", [EXP1, EXP2], ids=lambda s: s.name)
def test_general_melody(space):
    stats = dict(legato=0, rests=0, moving=0, notes=0, pitches=set(), vel=set(), lens=[])
    latched = {c.name for c in space.knobs if c.latch}
    for seed in range(30):
        mel = general_melody(np.random.default_rng(seed), space, duration_s=4.0)
        _check_monophonic(mel)
        n = mel.notes_array()
        assert len(n) >= 1
        assert np.all((n[:, 2] >= 36) & (n[:, 2] <= 84))
        lens = n[:, 1] - n[:, 0]
        assert np.all(lens >= 0.06 - 1e-9) and np.all(lens <= 1.5 + 0.5 / FR)
        gaps = n[1:, 0] - n[:-1, 1]
        assert np.all(gaps >= -1e-9)
        adjacent = np.abs(gaps) < 1e-9
        assert np.all(n[1:, 2][adjacent] != n[:-1, 2][adjacent])   # legato notes differ in pitch
        assert np.all(gaps[~adjacent] >= 2 / FR - 1e-9)            # else the gate drops >= 2 frames
        stats["legato"] += adjacent.sum()
        stats["rests"] += (gaps > 0.05).sum()
        stats["notes"] += len(n)
        stats["pitches"] |= set(n[:, 2])
        stats["vel"] |= set(n[:, 3])
        stats["lens"] += list(lens)
        for name, vals in mel.controls.items():
            lo, hi = GENERAL_RANGES.get(name, (0.0, 1.0))
            assert np.all((vals >= lo) & (vals <= hi))
        # knobs moving inside a note: CONTROL events at times without a note-on; never latched ones
        onsets = {e.time for e in mel.events if e.kind == NOTE_ON}
        inside = [e for e in mel.events if e.kind == CONTROL and e.time not in onsets]
        assert not any(e.name in latched for e in inside)
        stats["moving"] += len(inside) > 0
    assert stats["legato"] > 5 and stats["rests"] > 5 and stats["moving"] > 5
    assert len(stats["pitches"]) > 30 and len(stats["vel"]) > 30
    assert min(stats["lens"]) < 0.15 and max(stats["lens"]) > 1.0


def test_make_melody_kinds():
    assert make_melody("paper", np.random.default_rng(0), EXP1).duration_s == 2.0
    assert make_melody("general", np.random.default_rng(0), EXP1, duration_s=3.0).duration_s == 3.0
    with pytest.raises(ValueError):
        make_melody("jazz", np.random.default_rng(0), EXP1)


def test_unquantized_option():
    mel = paper_melody(np.random.default_rng(0), EXP1, frame_rate=None)
    assert not all(_on_grid(on) and _on_grid(off) for on, off, _, _ in mel.notes)
    assert abs(mel.notes[-1][1] + 0.016 - 1.9) < 1e-9
    gen = general_melody(np.random.default_rng(0), EXP1, frame_rate=None)
    assert len(gen.notes) > 0 and gen.events == sorted_events(gen.events)
