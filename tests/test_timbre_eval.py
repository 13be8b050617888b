"""Timbre on real sound (models/eval/timbre.py): the default patch, the distance's invariances,
that the true knobs beat the default patch on a built-in-voice input, the per-family summary, and
the whole path through the shipped model on a one-melody set."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event
from rtmirror.frontend.cochlea import wav2aud
from rtmirror.frontend.config import FrontendConfig
from rtmirror.models.eval import timbre as TB
from rtmirror.performer import PerformerConfig, events_to_frames
from rtmirror.synth import make_synth
from rtmirror.synth.builtin import DEFAULTS
from rtmirror.synth.render import render_audio

FE = FrontendConfig()
SPACE = ControlSpace.load("live")
DURATION = 3.0
NOTES = [(0.2, 0.9, 57, 90), (1.0, 1.8, 64, 70), (1.9, 2.6, 60, 110)]    # (on, off, MIDI, velocity)
# a patch far from the default one: dark, resonant, slow attack, quieter
KNOBS = {"OSC: Volume2": 0.5, "VCF1: Frequency": 0.32, "VCF1: Resonance": 0.75, "ENV1: Attack": 0.55,
         "ENV1: Decay": 0.3}


def melody_events() -> list[Event]:
    ev = [Event(0.0, CONTROL, name=k, value=v) for k, v in KNOBS.items()]
    for on, off, p, v in NOTES:
        ev += [Event(on, NOTE_ON, note=p, velocity=v), Event(off, NOTE_OFF, note=p)]
    return ev


@pytest.fixture(scope="module")
def truth():
    """(input spectrogram (T, 128), true controls (T, K), voiced (T,)): the built-in voice at
    48 kHz, resampled to the frontend's rate (not the 8 kHz render the resynthesis uses)."""
    synth = make_synth("builtin", SPACE, sample_rate=48000)
    x = render_audio(synth, melody_events(), DURATION, FE.sample_rate)
    ref = wav2aud(x, FE)
    controls = events_to_frames(melody_events(), len(ref), SPACE, FE.frame_rate)
    voiced = TB.voiced_frames(np.array([n[:2] for n in NOTES]), len(ref), FE.frame_rate)
    return ref, controls, voiced


def test_default_patch_replaces_only_knobs():
    rng = np.random.default_rng(0)
    c = rng.random((50, len(SPACE))).astype(np.float32)
    before = c.copy()
    d = TB.default_patch(c, SPACE)
    assert np.array_equal(c, before)                                               # the input is kept
    for k, ctl in enumerate(SPACE.controls):
        if ctl.role == "knob":
            want = SPACE.patch.get(ctl.name, DEFAULTS[ctl.name])
            assert np.all(d[:, k] == np.float32(want))
        else:
            assert np.array_equal(d[:, k], c[:, k])
    assert {SPACE.controls[k].role for k in TB.knob_defaults(SPACE)} == {"knob"}


def test_true_knobs_are_closer_than_the_default_patch(truth):
    ref, controls, voiced = truth
    d_inf, d_def = TB.melody_distances(ref, controls, voiced, SPACE, FE, PerformerConfig(), DURATION)
    assert 0.0 <= d_inf < 0.5 * d_def, (d_inf, d_def)
    # knobs wrong the other way (bright, no resonance) are farther than the true ones too
    wrong = controls.copy()
    wrong[:, SPACE.index("VCF1: Frequency")] = 0.8
    wrong[:, SPACE.index("VCF1: Resonance")] = 0.0
    d_wrong = TB.spectral_distance(ref, TB.resynth_spec(wrong, SPACE, FE, PerformerConfig(), DURATION), voiced)
    assert d_wrong > 2 * d_inf


def test_distance_zero_on_identical_and_gain_invariant(truth):
    ref, controls, voiced = truth
    est = TB.resynth_spec(TB.default_patch(controls, SPACE), SPACE, FE, PerformerConfig(), DURATION)
    assert TB.spectral_distance(ref, ref, voiced) == 0.0
    assert TB.spectral_distance(ref, 0.01 * ref, voiced) == pytest.approx(0.0, abs=1e-6)    # float32 rounding
    d = TB.spectral_distance(ref, est, voiced)
    assert d > 0.05
    assert TB.spectral_distance(7.5 * ref, est, voiced) == pytest.approx(d, rel=1e-9)
    # through the frontend: a quieter input (-20 dB) scores the same once the AGC has settled
    synth = make_synth("builtin", SPACE, sample_rate=48000)
    x = render_audio(synth, melody_events(), DURATION, FE.sample_rate)
    quiet = wav2aud(0.1 * x, FE)
    late = voiced & (np.arange(len(ref)) >= FE.frame_rate * 1.0)
    assert TB.spectral_distance(quiet, est, late) == pytest.approx(TB.spectral_distance(ref, est, late), abs=0.01)


def test_distance_edges():
    a = np.abs(np.random.default_rng(1).normal(size=(10, 128)))
    assert math.isnan(TB.spectral_distance(a, a, np.zeros(10, bool)))
    assert TB.spectral_distance(a, np.zeros_like(a)) == pytest.approx(0.5)         # silence vs sound
    b = np.zeros_like(a)
    b[:, 0], a2 = 1.0, np.zeros_like(a)
    a2[:, 1] = 1.0
    assert TB.spectral_distance(a2, b) == pytest.approx(1.0)                      # disjoint spectra
    assert TB.spectral_distance(a, a[:7]) == 0.0                                   # cut to the shorter


def test_voiced_frames():
    m = TB.voiced_frames(np.array([[0.1, 0.2], [0.5, 0.504]]), 80, 125.0)
    assert np.flatnonzero(m).tolist() == list(range(12, 25)) + [62]
    assert not TB.voiced_frames(np.zeros((0, 2)), 5, 125.0).any()


def test_summary_per_family():
    scores = {0: {"family": "flute", "d_inferred": 0.1, "d_default": 0.2},
              1: {"family": "cello", "d_inferred": 0.3, "d_default": 0.2},
              15: {"family": "flute", "d_inferred": 0.2, "d_default": 0.4},
              2: {"family": "cello", "d_inferred": math.nan, "d_default": math.nan},
              16: {"family": "cello", "d_inferred": 0.1, "d_default": 0.3}}
    s = TB.timbre_summary(scores)
    assert list(s) == ["flute", "cello", "all"]                                    # the set's order
    assert s["flute"] == pytest.approx({"n": 2, "d_inferred": 0.15, "d_default": 0.3, "improvement": 0.5,
                                        "closer": 1.0})
    assert s["cello"] == pytest.approx({"n": 2, "d_inferred": 0.2, "d_default": 0.25, "improvement": 0.2,
                                        "closer": 0.5})
    assert s["all"]["n"] == 4 and s["all"]["closer"] == pytest.approx(0.75)
    assert s["all"]["improvement"] == pytest.approx(1 - 0.175 / 0.275)
    md = TB.timbre_markdown(s)
    assert "| flute | 2 | 0.150 | 0.300 | +50.0 % | 100 % |" in md and "| **all** | 4 |" in md
    assert TB.timbre_summary({})["all"]["n"] == 0


def test_timbre_scores_through_the_shipped_model(tmp_path):
    """One built-in-voice melody as a tiny real set, through the shipped .onnx in file timing."""
    import soundfile as sf

    from rtmirror.models.eval.real import SAMPLE_RATE, RealSet
    from rtmirror.runtime import default_model_path

    x = 0.25 * render_audio(make_synth("builtin", SPACE, sample_rate=SAMPLE_RATE), melody_events(), DURATION,
                            SAMPLE_RATE)
    sf.write(tmp_path / "0000.wav", x, SAMPLE_RATE, subtype="PCM_24")
    rs = RealSet(tmp_path, [tmp_path / "0000.wav"],
                 [{"family": "test", "notes": [list(map(float, n)) for n in NOTES]}])
    out = TB.timbre_scores(default_model_path(), rs, [0], progress=False)
    r = out[0]
    assert r["family"] == "test" and r["voiced_frames"] == int(TB.voiced_frames(
        rs.notes(0)[0], int(DURATION * FE.frame_rate), FE.frame_rate).sum())
    assert 0.0 < r["d_inferred"] < 1.0 and 0.0 < r["d_default"] < 1.0
