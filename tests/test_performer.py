"""Performer: frames <-> events, streaming == offline, and the properties a MIDI sink relies on."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event, sorted_events
from rtmirror.performer import Performer, PerformerConfig, events_to_frames, frames_to_events
from rtmirror.synth.melody import general_melody, paper_melody

FR = 125.0
EXP1 = ControlSpace.load("exp1")
EXP2 = ControlSpace.load("exp2")
# The note rules with no settling (note-on on the gate-on frame, retrigger on the first frame the
# pitch is another note, note-off on the first frame below gate_off): exact ground-truth frames
# give back exactly the melody's events.
IMMEDIATE = dict(pitch_stable_frames=1, pitch_stable_tol=0.5, onset_settle_frames=0, gate_off_frames=1)
EXACT = PerformerConfig(knob_threshold=0.0, min_note_frames=1, **IMMEDIATE)
DEFAULT = PerformerConfig()


def _frames(space, gate, pitch_note, knobs=None, vel=100):
    """Helper: frames from a gate track, a MIDI note track and optional knob columns."""
    T = len(gate)
    f = np.zeros((T, len(space)), np.float32)
    f[:, space.role_index("gate")] = gate
    f[:, space.role_index("pitch")] = space.controls[space.role_index("pitch")].from_physical(np.asarray(pitch_note))
    f[:, space.role_index("velocity")] = space.controls[space.role_index("velocity")].from_physical(vel)
    for name, col in (knobs or {}).items():
        f[:, space.index(name)] = col
    return f


def _check_stream(events):
    """Monophonic, every note-on closed by its note-off, latched CONTROLs right before note-ons."""
    sounding = None
    for e in events:
        if e.kind == NOTE_ON:
            assert sounding is None, f"overlapping note-on at {e.time}"
            sounding = e.note
            assert 1 <= e.velocity <= 127
        elif e.kind == NOTE_OFF:
            assert e.note == sounding, f"note-off {e.note} while {sounding} sounds"
            sounding = None
    assert sounding is None, "note left open"
    times = [e.time for e in events]
    assert times == sorted(times)


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("space", [EXP1, EXP2], ids=lambda s: s.name)
@pytest.mark.parametrize("kind", ["paper", "general"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_melody_frames_exact(space, kind, seed):
    rng = np.random.default_rng(seed)
    mel = paper_melody(rng, space) if kind == "paper" else general_melody(rng, space, duration_s=4.0)
    T = int(round(mel.duration_s * FR))
    frames = events_to_frames(mel.events, T, space, FR)
    assert frames.dtype == np.float32 and frames.shape == (T, len(space))
    events = frames_to_events(frames, space, FR, EXACT)
    _check_stream(events)
    # the notes are the melody's notes
    ons = [(round(e.time * FR), e.note, e.velocity) for e in events if e.kind == NOTE_ON]
    want = [(round(on * FR), p, v) for on, off, p, v in mel.notes]
    assert ons == want
    back = events_to_frames(events, T, space, FR)
    np.testing.assert_array_equal(back, frames)


def test_events_to_frames_semantics():
    sp = EXP1
    ev = [Event(0.08, CONTROL, name="ENV1: Attack", value=0.3), Event(0.08, CONTROL, name="VCF1: Frequency", value=0.5),
          Event(0.08, NOTE_ON, note=60, velocity=127), Event(0.16, CONTROL, name="ENV1: Attack", value=0.9),
          Event(0.24, NOTE_OFF, note=60), Event(0.32, NOTE_ON, note=72, velocity=1), Event(0.40, NOTE_OFF, note=72)]
    f = events_to_frames(ev, 60, sp, FR)
    g, p, v = f[:, sp.index("gate")], f[:, sp.index("pitch")], f[:, sp.index("velocity")]
    att, cut = f[:, sp.index("ENV1: Attack")], f[:, sp.index("VCF1: Frequency")]
    np.testing.assert_array_equal(np.flatnonzero(g), np.r_[10:30, 40:50])
    pitch = sp["pitch"].to_physical(p)
    np.testing.assert_allclose(pitch[:40], 60, atol=1e-4)     # back-filled, held after note-off
    np.testing.assert_allclose(pitch[40:], 72, atol=1e-4)
    assert v[0] == v[39] == 1.0 and v[40] == 0.0
    # latched: 0.9 sent mid-note takes effect at the next note-on only
    np.testing.assert_allclose(att[:40], 0.3)
    np.testing.assert_allclose(att[40:], 0.9)
    np.testing.assert_allclose(cut, 0.5)


def test_latched_control_precedes_its_note_on():
    T = 60
    gate = np.zeros(T)
    gate[5:20] = gate[30:50] = 1
    att = np.linspace(0, 1, T)
    f = _frames(EXP1, gate, np.full(T, 64), {"ENV1: Attack": att})
    events = frames_to_events(f, EXP1, FR)
    for i, e in enumerate(events):
        if e.kind == NOTE_ON:
            prev = [x for x in events[:i] if x.time == e.time and x.kind == CONTROL and x.name == "ENV1: Attack"]
            assert len(prev) == 1
            assert prev[0].value == pytest.approx(att[round(e.time * FR)], abs=1e-6)
    # latched controls are not sent between note-ons
    assert sum(e.kind == CONTROL and e.name == "ENV1: Attack" for e in events) == 2


# -- properties over random frames ---------------------------------------------------------------
def _random_frames(seed, T, space, noisy_gate=True):
    rng = np.random.default_rng(seed)
    f = rng.random((T, len(space))).astype(np.float32)
    # smooth-ish pitch and gate so notes form, plus noise and some non-finite values
    g = (np.cumsum(rng.normal(0, 0.3, T)) % 2 > 1).astype(np.float32)
    if noisy_gate:
        g = np.clip(g + rng.normal(0, 0.2, T), 0, 1)
    f[:, space.role_index("gate")] = g
    f[:, space.role_index("pitch")] = np.clip(np.cumsum(rng.normal(0, 0.01, T)) + 0.4, 0, 1)
    bad = rng.random(f.shape) < 0.02
    f[bad] = rng.choice([np.nan, np.inf, -np.inf], bad.sum())
    return f


cfg_strategy = st.builds(
    PerformerConfig,
    gate_on=st.floats(0.5, 0.9), gate_off=st.floats(0.1, 0.5), min_note_frames=st.integers(1, 6),
    legato=st.just(False), pitch_bend=st.booleans(), knob_threshold=st.floats(0, 0.1),
    retrigger=st.booleans(), pitch_hysteresis=st.floats(0, 0.4), gate_off_frames=st.integers(1, 3),
    pitch_stable_frames=st.integers(1, 4), pitch_stable_tol=st.floats(0.1, 1.0), onset_settle_frames=st.integers(0, 6))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), T=st.integers(1, 300), cfg=cfg_strategy,
       space=st.sampled_from([EXP1, EXP2]))
def test_properties_random_frames(seed, T, cfg, space):
    f = _random_frames(seed, T, space)
    events = frames_to_events(f, space, FR, cfg)
    _check_stream(events)
    # streaming in the same order == offline
    p = Performer(space, cfg, FR)
    streamed = [e for frame in f for e in p.step(frame)] + p.flush()
    assert streamed == events
    assert p.active_note is None
    # min note length: every note lasts >= min_note_frames frames (except one cut by the end)
    on_t = None
    for e in events:
        if e.kind == NOTE_ON:
            on_t = e.time
        elif e.kind == NOTE_OFF:
            n = round((e.time - on_t) * FR)
            assert n >= cfg.min_note_frames or round(e.time * FR) == T
    # the event list is already in the canonical order
    assert sorted_events(events) == events
    # no NaN leaks into events
    assert all(np.isfinite(e.value) for e in events)
    # pitch bends stay within range
    assert all(abs(e.value) <= cfg.bend_range for e in events if e.kind == PITCH_BEND)


def test_hysteresis_no_chatter():
    """Noise around one threshold (but inside the hysteresis band) gives exactly one note."""
    rng = np.random.default_rng(3)
    T = 400
    gate = np.zeros(T)
    gate[50:350] = 0.5 + rng.uniform(-0.09, 0.09, 300)  # hovers around 0.5, inside [0.4, 0.6)
    gate[50] = 0.7                                      # one clear onset
    f = _frames(EXP1, gate, np.full(T, 60))
    events = frames_to_events(f, EXP1, FR, PerformerConfig(gate_on=0.6, gate_off=0.4, gate_off_frames=1))
    notes = [e for e in events if e.kind == NOTE_ON]
    assert len(notes) == 1 and round(notes[0].time * FR) == 50
    assert [round(e.time * FR) for e in events if e.kind == NOTE_OFF] == [350]
    # a single threshold (on == off) on the same signal chatters: the band is what prevents it
    chatter = frames_to_events(f, EXP1, FR, PerformerConfig(gate_on=0.5, gate_off=0.5, min_note_frames=1,
                                                            gate_off_frames=1))
    assert sum(e.kind == NOTE_ON for e in chatter) > 10


def test_min_note_frames_defers_note_off():
    gate = np.zeros(30)
    gate[10] = 1   # one-frame blip
    f = _frames(EXP1, gate, np.full(30, 60))
    ev = frames_to_events(f, EXP1, FR, PerformerConfig(min_note_frames=4))
    on = [round(e.time * FR) for e in ev if e.kind == NOTE_ON]
    off = [round(e.time * FR) for e in ev if e.kind == NOTE_OFF]
    assert on == [10] and off == [14]


def test_retrigger_and_legato_and_threshold():
    T = 40
    gate = np.ones(T)
    notes = np.r_[np.full(20, 60), np.full(20, 63)].astype(float)
    f = _frames(EXP1, gate, notes)
    ev = frames_to_events(f, EXP1, FR)
    kinds = [(e.kind, e.note) for e in ev if e.kind in (NOTE_ON, NOTE_OFF)]
    assert kinds == [(NOTE_ON, 60), (NOTE_OFF, 60), (NOTE_ON, 63), (NOTE_OFF, 63)]
    leg = frames_to_events(f, EXP1, FR, PerformerConfig(legato=True))
    kinds = [(e.kind, e.note) for e in leg if e.kind in (NOTE_ON, NOTE_OFF)]
    assert kinds == [(NOTE_ON, 60), (NOTE_ON, 63), (NOTE_OFF, 60), (NOTE_OFF, 63)]
    # retrigger threshold of 4 semitones: the 3-semitone step does not retrigger
    big = frames_to_events(f, EXP1, FR, PerformerConfig(retrigger_semitones=4))
    assert sum(e.kind == NOTE_ON for e in big) == 1
    # pitch jitter at a semitone boundary (60.5 +- 0.1) does not chatter with the hysteresis
    jitter = 60.5 + np.random.default_rng(0).uniform(-0.1, 0.1, T)
    f2 = _frames(EXP1, gate, jitter)
    assert sum(e.kind == NOTE_ON for e in frames_to_events(f2, EXP1, FR)) == 1


def test_knob_threshold_and_start():
    T = 50
    cut = np.r_[np.full(10, 0.5), 0.5 + np.arange(40) * 0.001]
    f = _frames(EXP1, np.zeros(T), np.full(T, 60), {"VCF1: Frequency": cut})
    ev = [e for e in frames_to_events(f, EXP1, FR, PerformerConfig(knob_threshold=0.005)) if e.name == "VCF1: Frequency"]
    assert ev[0].time == 0.0       # sent at stream start even without a note
    vals = [e.value for e in ev]
    assert all(abs(b - a) > 0.005 for a, b in zip(vals, vals[1:]))
    # sample-and-hold reconstruction stays within the threshold
    rec = events_to_frames(ev, T, EXP1, FR)[:, EXP1.index("VCF1: Frequency")]
    assert np.max(np.abs(rec - cut)) <= 0.005 + 1e-6


def test_pitch_bend_tracks_continuous_pitch():
    T = 100
    gate = np.ones(T)
    pitch = 60 + 0.8 * np.sin(np.arange(T) / 10)   # vibrato +-0.8 st around 60
    f = _frames(EXP1, gate, pitch)
    cfg = PerformerConfig(pitch_bend=True, bend_threshold=0.02, pitch_hysteresis=0.45, retrigger_semitones=2)
    ev = frames_to_events(f, EXP1, FR, cfg)
    ons = [round(e.time * FR) for e in ev if e.kind == NOTE_ON]
    assert len(ons) == 1 and ons[0] <= cfg.onset_settle_frames
    rec = EXP1["pitch"].to_physical(events_to_frames(ev, T, EXP1, FR)[:, EXP1.index("pitch")])
    assert np.max(np.abs(rec - pitch)[ons[0]:]) <= 0.02 + 1e-3
    assert ev[-2].kind == PITCH_BEND and ev[-2].value == 0.0   # flush recentres the bend


def test_non_finite_frames_never_crash_and_gate_off():
    p = Performer(EXP1, PerformerConfig(min_note_frames=1, **IMMEDIATE), FR)
    f = _frames(EXP1, np.ones(3), np.full(3, 60))[0]
    assert any(e.kind == NOTE_ON for e in p.step(f))
    bad = f.copy()
    bad[EXP1.index("gate")] = np.nan
    assert [e.kind for e in p.step(bad)] == [NOTE_OFF]
    nanpitch = f.copy()
    nanpitch[EXP1.index("pitch")] = np.inf
    ev = p.step(nanpitch)   # pitch held at the last finite value -> note 60 again
    assert [(e.kind, e.note) for e in ev if e.kind == NOTE_ON] == [(NOTE_ON, 60)]
    allnan = np.full(len(EXP1), np.nan)
    p2 = Performer(EXP1, None, FR)
    assert p2.step(allnan) == [] and p2.flush() == []
    with pytest.raises(ValueError):
        p.step(np.zeros(3))
    assert p.flush()[0].kind == NOTE_OFF and p.active_note is None


def test_no_velocity_control_uses_default():
    sp = ControlSpace.from_dict({"name": "nv", "controls": [{"name": "pitch", "role": "pitch", "lo": 36, "hi": 96},
                                                            {"name": "gate", "role": "gate", "lo": 0, "hi": 1}]})
    f = np.array([[EXP1["pitch"].from_physical(62), 1.0]] * 5)
    ev = frames_to_events(f, sp, FR, PerformerConfig(default_velocity=77))
    assert [e.velocity for e in ev if e.kind == NOTE_ON] == [77]


def test_config_validation():
    cfg = PerformerConfig(gate_on=0.7, legato=True)
    assert PerformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown performer parameters"):
        PerformerConfig.from_dict({"gate_onn": 0.5})
    with pytest.raises(ValueError):
        PerformerConfig(gate_on=0.3, gate_off=0.5)
    for bad in (dict(min_note_frames=0), dict(gate_off_frames=0), dict(pitch_stable_frames=0),
                dict(onset_settle_frames=-1), dict(pitch_stable_tol=0.0), dict(pitch_stable_tol=2.5)):
        with pytest.raises(ValueError):
            PerformerConfig(**bad)
    with pytest.raises(ValueError):
        frames_to_events(np.zeros((3, 2)), EXP1, FR)
    with pytest.raises(ValueError, match="finite"):
        events_to_frames([Event(float("nan"), NOTE_ON, note=60, velocity=100)], 10, EXP1, FR)
    # events outside [0, n_frames) clip to the ends; an empty list gives gate 0 everywhere
    f = events_to_frames([Event(-1.0, NOTE_ON, note=60, velocity=100), Event(99.0, NOTE_OFF, note=60)], 10, EXP1, FR)
    assert np.all(f[:, EXP1.index("gate")] == 1)
    assert np.all(events_to_frames([], 5, EXP1, FR) == 0)


@pytest.mark.parametrize("space", [EXP1, EXP2], ids=lambda s: s.name)
def test_synth_hears_the_same_through_the_performer(space):
    """Melody events and Performer(events_to_frames(melody)) play the same audio on the built-in
    voice: what a model trained on the frames sends is what made the training sound."""
    from rtmirror.synth import make_synth
    synth = make_synth("builtin", space, sample_rate=8000)
    for kind, seed in (("paper", 0), ("general", 1)):
        mel = paper_melody(np.random.default_rng(seed), space) if kind == "paper" else \
            general_melody(np.random.default_rng(seed), space, duration_s=3.0)
        T = int(round(mel.duration_s * FR))
        events = frames_to_events(events_to_frames(mel.events, T, space, FR), space, FR, EXACT)
        a = synth.render(mel.events, mel.duration_s)
        b = synth.render(events, mel.duration_s)
        assert np.abs(a).max() > 0.01
        # float32 rounding of knob values through the frames only
        assert np.max(np.abs(a - b)) <= 1e-4 * np.abs(a).max()


# -- pitch settling: a trained encoder's pitch glides into each note ------------------------------
def _notes(events):
    """(note-on frame, note) of every note-on."""
    return [(round(e.time * FR), e.note) for e in events if e.kind == NOTE_ON]


@pytest.mark.parametrize("space", [EXP1, EXP2], ids=lambda s: s.name)
@pytest.mark.parametrize("seed", [3, 4])
def test_default_rules_on_exact_frames_play_the_melody_late_by_at_most_the_settling(space, seed):
    """Clean ground-truth frames: the default rules play exactly the melody's notes (pitch and
    velocity), each at most pitch_stable_frames - 1 frames late (the pitch of a new note must be
    seen that many more frames), never early."""
    mel = general_melody(np.random.default_rng(seed), space, duration_s=4.0)
    T = int(round(mel.duration_s * FR))
    events = frames_to_events(events_to_frames(mel.events, T, space, FR), space, FR, DEFAULT)
    _check_stream(events)
    got = [(round(e.time * FR), e.note, e.velocity) for e in events if e.kind == NOTE_ON]
    want = [(round(on * FR), p, v) for on, off, p, v in mel.notes]
    assert [(n, v) for _, n, v in got] == [(n, v) for _, n, v in want]
    lags = [g[0] - w[0] for g, w in zip(got, want)]
    assert 0 <= min(lags) and max(lags) <= DEFAULT.pitch_stable_frames - 1


@pytest.mark.parametrize("glitch", [1, 2])
def test_pitch_glitch_at_onset_does_not_play(glitch):
    """The gate opens while the pitch still shows another note for fewer than pitch_stable_frames
    frames (the previous note, or a swoop): one note, of the settled pitch, within the settling
    window of the gate-on, nothing of the glitch."""
    cfg = PerformerConfig(pitch_stable_frames=3, onset_settle_frames=5)
    assert glitch < cfg.pitch_stable_frames
    T = 80
    gate = np.zeros(T)
    gate[20:70] = 1
    notes = np.full(T, 55.0)                      # the previous note, held before the gate opens
    notes[20:20 + glitch] = 67.2                  # the glitch at the onset
    notes[20 + glitch:] = 60.1
    ev = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, cfg)
    _check_stream(ev)
    assert _notes(ev) == [(20 + glitch + cfg.pitch_stable_frames - 1, 60)]
    # without settling the glitch plays, then the real pitch retriggers: two notes
    legacy = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, PerformerConfig(**IMMEDIATE))
    assert [n for _, n in _notes(legacy)] == [67, 60]


def test_pitch_glide_into_a_note_starts_it_once_at_the_settled_pitch():
    """A glide across several semitones after the gate opens (what the trained encoder does):
    the note starts once, on the pitch it arrives at; the legacy rules play notes along the way."""
    cfg = PerformerConfig(pitch_stable_frames=3, pitch_stable_tol=0.25, onset_settle_frames=6)
    T = 60
    gate = np.zeros(T)
    gate[10:50] = 1
    notes = np.full(T, 72.0)
    notes[10:13] = [66.0, 63.0, 60.4]             # swoop down, within the settling window
    notes[13:] = 60.0
    ev = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, cfg)
    assert _notes(ev) == [(15, 60)]               # 60 seen on frames 13, 14, 15
    legacy = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, PerformerConfig(**IMMEDIATE))
    assert [n for _, n in _notes(legacy)] == [66, 60]


def test_unsettled_pitch_starts_the_note_at_the_end_of_the_settling_window():
    """Latency bound: a pitch that never settles still gets its note, onset_settle_frames after
    the gate opened, at the pitch of that frame."""
    cfg = PerformerConfig(pitch_stable_frames=3, onset_settle_frames=4, retrigger=False)
    T = 40
    gate = np.zeros(T)
    gate[10:30] = 1
    notes = 60 + 2.0 * (np.arange(T) % 2)          # alternates 60, 62 every frame: never settled
    ev = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, cfg)
    assert _notes(ev) == [(14, int(notes[14]))]


@pytest.mark.parametrize("n_stable", [2, 3])
def test_legato_pitch_change_retriggers_within_the_stable_frames(n_stable):
    """A real pitch change under a held gate retriggers exactly pitch_stable_frames - 1 frames
    after it; a shorter excursion to another note does not."""
    cfg = PerformerConfig(pitch_stable_frames=n_stable, onset_settle_frames=5)
    T = 100
    gate = np.ones(T)
    notes = np.r_[np.full(40, 60.0), np.full(60, 63.0)]
    notes[20:20 + n_stable - 1] = 65.0              # too short an excursion
    ev = frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, cfg)
    _check_stream(ev)
    on0 = _notes(ev)[0][0]
    assert on0 <= n_stable - 1                      # the stream starts: n_stable frames of history
    assert _notes(ev) == [(on0, 60), (40 + n_stable - 1, 63)]
    # pitch jitter just past the hysteresis but flipping sides every frame never settles
    jitter = np.where(np.arange(T) % 2 == 0, 60.0, 60.7)
    ev = frames_to_events(_frames(EXP1, gate, jitter), EXP1, FR, cfg)
    assert len(_notes(ev)) == 1


def test_gate_off_frames_bridges_a_one_frame_dip_but_not_a_gap():
    cfg = PerformerConfig(gate_off_frames=2)
    T = 80
    gate = np.zeros(T)
    gate[10:70] = 1
    gate[30] = 0.2                                  # one-frame dip: the same note goes on
    gate[50:52] = 0.1                               # two frames below gate_off: a new note
    ev = frames_to_events(_frames(EXP1, gate, np.full(T, 60)), EXP1, FR, cfg)
    _check_stream(ev)
    assert [f for f, _ in _notes(ev)] == [10, 52]
    assert [round(e.time * FR) for e in ev if e.kind == NOTE_OFF] == [51, 71]
    one = frames_to_events(_frames(EXP1, gate, np.full(T, 60)), EXP1, FR, PerformerConfig(gate_off_frames=1))
    assert [f for f, _ in _notes(one)] == [10, 31, 52]


def test_gate_closing_while_settling_plays_nothing_and_flush_drops_a_pending_note():
    cfg = PerformerConfig(pitch_stable_frames=3, onset_settle_frames=5)
    T = 30
    gate = np.zeros(T)
    gate[10:12] = 1                                 # two frames of gate on a pitch still moving
    notes = np.r_[np.full(10, 50.0), [57.0, 64.0], np.full(T - 12, 64.0)]
    assert _notes(frames_to_events(_frames(EXP1, gate, notes), EXP1, FR, cfg)) == []
    p = Performer(EXP1, cfg, FR)
    g = np.zeros(T)
    g[10:] = 1
    f = _frames(EXP1, g, notes)
    assert _notes([e for row in f[:12] for e in p.step(row)]) == []   # waiting for the pitch to settle
    assert p.flush() == [] and p.active_note is None
    assert not [e for e in p.step(f[12]) if e.kind == NOTE_ON]  # the flushed wait does not resume
