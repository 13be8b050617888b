"""Silence, dropouts and DC through the real Pipeline with the shipped model: exact zeros do not
teach the level gate a quieter room, and a DC offset neither plays nor splits notes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtmirror.dc_block import DCBlocker, dc_block
from rtmirror.engine import Pipeline
from rtmirror.events import NOTE_ON
from rtmirror.level_gate import LevelGate, LevelGateConfig
from rtmirror.runtime import EncoderRuntime

SR = 16000


def notes(x, block=128):
    pipe = Pipeline(EncoderRuntime(), SR)
    events = []
    for i in range(0, len(x), block):
        events += pipe.process(x[i:i + block]).events
    events += pipe.finish().events
    return [e for e in events if e.kind == NOTE_ON]


def at_dbfs(x, dbfs):
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize("kind, level", [("noise", -60), ("hum", -40), ("noise", -45), ("hum", -30)])
def test_room_noise_after_a_muted_start_is_learnt_within_a_second(kind, level):
    """Before: after 2 s of zeros, -60 dBFS noise played ~500 notes and -40 dBFS hum 44 over the
    next 22-28 s; with the 6 dB/s climb alone -30 dBFS hum still played until 4.2 s. Now -60 dBFS
    noise plays nothing and nothing plays later than 1 s after the zeros end."""
    rng = np.random.default_rng(3)
    t = np.arange(6 * SR) / SR
    room = rng.standard_normal(len(t)) if kind == "noise" else sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3))
    x = np.concatenate([np.zeros(2 * SR, np.float32), at_dbfs(room, level)])
    late = [e for e in notes(x) if e.time > 3.0]
    assert late == []
    if level <= -60:
        assert notes(x) == []


@pytest.mark.parametrize("kind, level", [("noise", -60), ("hum", -40), ("noise", -45)])
def test_a_mute_mid_stream_brings_the_learnt_room_back_at_once(kind, level):
    """Room noise or hum, then 2 s of exact zeros (a muted mic), then the same room: the zeros
    leave the gate's room as it was, so nothing plays after the mute (recovery within a frame),
    and the estimate after it equals the one of the same stream without the zeros."""
    rng = np.random.default_rng(5)
    t = np.arange(8 * SR) / SR
    room = rng.standard_normal(len(t)) if kind == "noise" else sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3))
    room = at_dbfs(room, level)
    cut = 4 * SR
    muted = np.concatenate([room[:cut], np.zeros(2 * SR, np.float32), room[cut:]])
    assert [e for e in notes(muted) if e.time > 4.0] == []          # nothing from the mute on
    with_zeros, without = LevelGate(128, LevelGateConfig(), 125.0), LevelGate(128, LevelGateConfig(), 125.0)
    with_zeros.process(muted[:cut + 2 * SR])
    without.process(room[:cut])
    assert with_zeros.noise_dbfs == without.noise_dbfs               # the zeros changed nothing
    a, b = with_zeros.process(room[cut:]), without.process(room[cut:])
    np.testing.assert_array_equal(a, b)
    assert with_zeros.noise_dbfs == without.noise_dbfs


def test_dropouts_do_not_lower_the_noise_floor():
    """20 ms of exact zeros every 300 ms in -60 dBFS noise: still no notes, and the gate's
    estimate stays at the noise (not -200 dBFS)."""
    rng = np.random.default_rng(4)
    x = at_dbfs(rng.standard_normal(4 * SR), -60)
    for start in range(SR // 2, len(x) - SR // 50, int(0.3 * SR)):
        x[start:start + SR // 50] = 0.0
    assert notes(x) == []
    gate = LevelGate(64, LevelGateConfig(), 125.0)
    gate.process(np.zeros(8000, np.float32))
    assert gate.noise_dbfs == LevelGateConfig().silence_room_dbfs     # zeros: a quiet room, not -200
    gate.process(at_dbfs(rng.standard_normal(8000), -50))
    assert -51.5 < gate.noise_dbfs < -49                              # learnt: 16 dB at 40 dB/s


def test_a_steady_tone_with_dc_is_one_note():
    t = np.arange(2 * SR) / SR
    tone = 0.2 * np.sin(2 * np.pi * 220 * t)
    env = np.clip(np.minimum(t / 0.01, (2.0 - t) / 0.05), 0, 1)
    x = np.concatenate([np.zeros(SR // 2), tone * env, np.zeros(SR // 2)]) + 0.3
    clean = notes(np.concatenate([np.zeros(SR // 2), tone * env, np.zeros(SR // 2)]).astype(np.float32))
    assert 1 <= len(clean) <= 2 and len(notes(x.astype(np.float32))) == len(clean)


def test_dc_alone_plays_nothing():
    assert notes(np.full(3 * SR, 0.3, np.float32)) == []


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=30), st.integers(0, 2**31 - 1))
def test_dc_blocker_stream_equals_offline(sizes, seed):
    x = (np.random.default_rng(seed).standard_normal(sum(sizes)) + 0.5).astype(np.float32)
    ref = dc_block(x, 8000)
    blk, out, pos = DCBlocker(8000), [], 0
    for n in sizes:
        out.append(blk.process(x[pos:pos + n]))
        pos += n
    np.testing.assert_array_equal(np.concatenate(out), ref)


def test_dc_blocker_keeps_digital_silence_silent():
    """A mute mid-signal: from the ZERO_RUN-th zero on the output is exact 0 (not the filter's
    tail, which the level gate would take for a very quiet room); around it the output is the
    plain one-pole filter's, so the signal after the mute is unchanged."""
    from rtmirror.dc_block import ZERO_RUN
    rng = np.random.default_rng(8)
    x = (0.2 + 0.1 * rng.standard_normal(3 * SR)).astype(np.float32)
    x[SR:2 * SR] = 0.0
    y = dc_block(x, SR)
    r = DCBlocker(SR).r
    plain, x1, y1 = np.empty(len(x)), float(x[0]), 0.0
    for i, xi in enumerate(x.astype(np.float64)):
        y1 = xi - x1 + r * y1
        x1 = xi
        plain[i] = y1
    assert np.all(y[SR + ZERO_RUN - 1:2 * SR] == 0.0)
    np.testing.assert_allclose(y[:SR + ZERO_RUN - 1], plain[:SR + ZERO_RUN - 1], atol=1e-6)
    np.testing.assert_allclose(y[2 * SR:], plain[2 * SR:], atol=1e-6)
    assert np.count_nonzero(y[:SR] == 0.0) < 5          # a signal's own zeros are not silence


def test_dc_blocker_removes_dc_and_keeps_the_lowest_note():
    sr = 8000
    t = np.arange(4 * sr) / sr
    y = dc_block((0.5 + np.sin(2 * np.pi * 65.4 * t)).astype(np.float32), sr)[2 * sr:]
    assert abs(y.mean()) < 5e-3
    assert 20 * np.log10(np.sqrt(2 * np.mean(y ** 2))) > -0.1        # MIDI 36 within 0.1 dB


def midi_messages(x, block=128, **encoder_kw):
    """The messages `rtmirror file` would write for x (shipped model, default CC map)."""
    from rtmirror.midi import MidiEncoder, MidiOut
    pipe = Pipeline(EncoderRuntime(), SR)
    out = MidiOut(MidiEncoder(pipe.space, **encoder_kw), [])
    msgs = []
    for i in range(0, len(x), block):
        r = pipe.process(x[i:i + block])
        msgs += out.send_frames(r.events, r.times)
    r = pipe.finish()
    return msgs + out.send_frames(r.events, r.times)


def test_no_ccs_stream_while_nothing_sounds():
    """Before: ~150 CC messages per second kept streaming in silence with no note playing. Now
    room noise and zeros send none, and in a tone with rests the CCs stop 0.5 s after each
    note-off and resume (newest values first) at the next note-on."""
    rng = np.random.default_rng(5)
    room = np.concatenate([np.zeros(SR, np.float32), at_dbfs(rng.standard_normal(3 * SR), -55)])
    assert [m for _, m in midi_messages(room) if m[0] & 0xF0 == 0xB0] == []
    streamed = [m for _, m in midi_messages(room, cc_in_silence=True) if m[0] & 0xF0 == 0xB0]
    assert len(streamed) > 0                      # the model's knobs do move in noise: asked for, sent

    t = np.arange(4 * SR) / SR
    tone = (0.2 * np.sin(2 * np.pi * 220 * t) * ((t % 2.0) < 0.6)).astype(np.float32)   # 0.6 s on, 1.4 s off
    tone += at_dbfs(rng.standard_normal(len(t)), -60)
    msgs = midi_messages(tone)
    offs = [tm for tm, m in msgs if m[0] & 0xF0 == 0x80]
    ons = [tm for tm, m in msgs if m[0] & 0xF0 == 0x90]
    assert len(ons) >= 2
    sounding, last_off = False, -np.inf
    for tm, m in msgs:
        kind = m[0] & 0xF0
        if kind == 0x90:
            sounding = True
        elif kind == 0x80:
            sounding, last_off = False, tm
        elif kind == 0xB0 and m[1] != 123:
            assert sounding or tm - last_off < 0.5 + 1e-6 or tm in ons, f"CC at {tm:.3f} s in silence"
    assert offs
