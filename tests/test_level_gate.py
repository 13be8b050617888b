"""LevelGate: the floor under the gate — partition invariance, hysteresis, and the shipped model
playing no notes from quiet noise or hum (the AGC alone would lift them into notes)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtmirror.level_gate import LevelGate, LevelGateConfig


def _flags(x, hop, sizes):
    g = LevelGate(hop)
    out, pos = [], 0
    for n in sizes:
        out.append(g.process(x[pos:pos + n]))
        pos += n
    out.append(g.process(x[pos:]))
    return np.concatenate(out)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=20), st.integers(0, 2**31 - 1), st.integers(0, 1500))
def test_any_partition_gives_the_same_flags(sizes, seed, zeros):
    """Also with a muted start (the learning phase reads a periodicity window across blocks)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(3000) * np.repeat(10.0 ** rng.uniform(-4, -1, 30), 100)).astype(np.float32)
    x = np.concatenate([np.zeros(zeros, np.float32), x])
    whole = LevelGate(64).process(x)
    assert len(whole) == len(x) // 64
    np.testing.assert_array_equal(_flags(x, 64, sizes), whole)


def test_thresholds_and_hysteresis():
    hop = 64
    def tone(dbfs, frames):   # a sine with the given RMS, whole frames
        t = np.arange(frames * hop)
        return (np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * t / 16)).astype(np.float32)
    g = LevelGate(hop, LevelGateConfig(open_dbfs=-50, close_dbfs=-56, margin_db=None))   # absolute part only
    assert not g.process(tone(-53, 10)).any()          # between the thresholds, from closed: stays closed
    assert g.process(tone(-45, 3)).all()               # above open: opens in its first frame
    assert g.process(tone(-53, 10)).all()              # between the thresholds, from open: stays open
    assert not g.process(tone(-60, 3)).any()           # below close: closes in its first frame
    assert not g.process(np.zeros(hop * 5, np.float32)).any()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="must not exceed"):
        LevelGateConfig(open_dbfs=-60, close_dbfs=-50)
    with pytest.raises(ValueError):
        LevelGate(0)
    with pytest.raises(ValueError, match="finite"):
        LevelGateConfig(margin_db=float("nan"))


def test_noise_floor_tracking():
    """Steady noise learns its own threshold at once; a note far above it opens in its first
    frame; digital silence counts as a quiet room (silence_room_dbfs), not as -200 dBFS."""
    hop, rng = 64, np.random.default_rng(1)
    def noise(dbfs, frames):
        return (rng.standard_normal(frames * hop) * 10 ** (dbfs / 20)).astype(np.float32)
    g = LevelGate(hop)                                  # defaults: -75 dBFS floor, 12 dB margin
    assert not g.process(noise(-50, 250)).any()         # 2 s of loud room noise: never opens
    note = noise(-20, 30)
    flags = g.process(note)
    assert flags[0] and flags.all()                     # a note 30 dB above it: first frame
    g.reset()
    assert not g.process(np.zeros(hop * 20, np.float32)).any()
    assert g.noise_dbfs == LevelGateConfig().silence_room_dbfs
    assert not g.process(noise(-58, 1))[0]              # near the quiet room's own level: closed
    g.reset()
    g.process(np.zeros(hop * 20, np.float32))
    assert g.process(noise(-50, 5))[0]                  # 20 dB above a quiet room after silence: opens


def _notes_from(pipeline, x, block=128):
    from rtmirror.events import NOTE_ON
    events = []
    for i in range(0, len(x), block):
        events += pipeline.process(x[i:i + block]).events
    events += pipeline.finish().events
    return [e for e in events if e.kind == NOTE_ON]


@pytest.mark.parametrize("kind", ["noise", "hum"])
def test_shipped_model_plays_no_notes_from_quiet_noise_or_hum(kind):
    """-60 dBFS white noise / 50 Hz hum with harmonics: the AGC lifts them 40 dB, the model alone
    gates them on; the level gate (noise-floor tracking) keeps them silent."""
    from rtmirror.engine import Pipeline
    from rtmirror.runtime import EncoderRuntime

    sr = 16000
    rng = np.random.default_rng(7)
    t = np.arange(4 * sr) / sr
    if kind == "noise":
        x = rng.standard_normal(len(t))
    else:
        x = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3, 5))
    x = (x / np.sqrt(np.mean(x ** 2)) * 10 ** (-60 / 20)).astype(np.float32)
    rt = EncoderRuntime()
    assert _notes_from(Pipeline(rt, sr), x) == []
    # the same input without the floor (thresholds below any level): the model alone gates it on,
    # so the floor is what keeps it silent
    rt.reset()
    ungated = Pipeline(rt, sr, level_gate=LevelGateConfig(open_dbfs=-200, close_dbfs=-200, margin_db=None))
    if kind == "noise":
        assert len(_notes_from(ungated, x)) >= 1


def test_a_melody_still_plays_through_the_floor():
    from rtmirror.controls import ControlSpace
    from rtmirror.engine import Pipeline
    from rtmirror.runtime import EncoderRuntime
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import make_melody

    rt = EncoderRuntime()
    space = ControlSpace.load("live")
    mel = make_melody("general", np.random.default_rng([990001, 0]), space, duration_s=4.0)
    synth = make_synth("builtin", space, sample_rate=16000)
    x = synth.render(mel.events, mel.duration_s)
    notes = _notes_from(Pipeline(rt, 16000), x)
    assert len(notes) >= max(1, len(mel.notes) // 2)


def test_file_mode_gate_floor_option(tmp_path):
    """`rtmirror file`: -60 dBFS noise plays no notes; a quiet melody (-68 dBFS, after silence)
    plays by default and not with --gate-floor -60 — the option reaches the pipeline."""
    import mido
    import soundfile as sf

    from rtmirror.testing.probe import demo_audio
    from rtmirror.cli import main
    from rtmirror.controls import ControlSpace

    def rms_to(x, dbfs):
        return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)

    def notes(x, *extra):
        wav, out = tmp_path / "in.wav", tmp_path / "out.mid"
        sf.write(wav, x, 16000, subtype="FLOAT")
        assert main(["file", str(wav), "-o", str(out), *extra]) == 0
        return [m for m in mido.MidiFile(out).tracks[0] if m.type == "note_on" and m.velocity > 0]

    assert notes(rms_to(np.random.default_rng(3).standard_normal(3 * 16000), -60)) == []
    melody, _ = demo_audio(ControlSpace.load("live"), 3.0, 16000, seed=5)
    quiet = np.concatenate([np.zeros(16000, np.float32), rms_to(melody, -68)])
    assert len(notes(quiet)) >= 1
    assert notes(quiet, "--gate-floor", "-60") == []


def test_the_room_after_a_muted_start_is_learnt_fast_but_not_a_note():
    """After a muted start, aperiodic frames (noise, hum) in the first learn_s may raise the
    estimate at noise_learn_db_per_s: -35 dBFS room noise closes the gate within learn_s. A note
    (periodic) right after the zeros climbs only at the slow rate (it stays open for 2 s: learning
    it as the room would close it). A stream that starts with sound has no learning phase after a
    later mute."""
    hop, frame_rate, rng = 128, 125.0, np.random.default_rng(7)
    cfg = LevelGateConfig()
    def noise(dbfs, frames):
        return (rng.standard_normal(frames * hop) * 10 ** (dbfs / 20)).astype(np.float32)
    learn = int(round(cfg.learn_s * frame_rate))             # frames of the learning phase
    g = LevelGate(hop, cfg, frame_rate)
    g.process(np.zeros(hop * 50, np.float32))
    flags = g.process(noise(-35, 3 * learn))
    assert flags[0] and not flags[learn:].any()               # opens on the unknown room, learnt in learn_s
    g.reset()
    g.process(np.zeros(hop * 50, np.float32))
    t = np.arange(250 * hop) / (hop * frame_rate)
    note = sum(np.sin(2 * np.pi * 220 * h * t) / h for h in (1, 2, 3))
    note = (note / np.sqrt(np.mean(note ** 2)) * 10 ** (-35 / 20)).astype(np.float32)
    assert g.process(note).all()                              # a quiet note right after the zeros: kept
    assert g.noise_dbfs <= cfg.silence_room_dbfs + cfg.noise_rise_db_per_s * 250 / frame_rate + 1e-9
    g.reset()
    g.process(noise(-60, 10))                                 # sound first: no learning phase after it
    g.process(np.zeros(hop * 50, np.float32))
    before = g.noise_dbfs
    g.process(noise(-35, learn))
    assert g.noise_dbfs <= before + cfg.noise_rise_db_per_s * learn / frame_rate + 1e-9


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_periodicity_tells_notes_from_noise_and_hum(seed):
    """Harmonic tones of 75-1000 Hz (random partials) score above PERIODIC; white and brown noise
    and 50/60 Hz mains hum with harmonics score below it."""
    from rtmirror.level_gate import PERIODIC, periodicity
    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(512) / sr
    f0 = float(np.exp(rng.uniform(np.log(75), np.log(1000))))
    amps = rng.uniform(0.1, 1.0, 5)
    tone = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 6.28)) for h, a in enumerate(amps)
               if f0 * (h + 1) < sr / 2)
    mains = float(rng.choice([50.0, 60.0]))
    hum = sum(np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.28)) / h for h in (1, 2, 3))
    assert periodicity(tone, sr) > PERIODIC
    assert periodicity(rng.standard_normal(512), sr) < PERIODIC
    assert periodicity(np.cumsum(rng.standard_normal(512)), sr) < PERIODIC
    assert periodicity(hum, sr) < PERIODIC
