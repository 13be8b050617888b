"""The wide voice (rtmirror/synth/wide.py): a random timbre per melody, deterministic, finite,
in level range, through the registry and the one render path."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from rtmirror.controls import ControlSpace
from rtmirror.events import NOTE_OFF, NOTE_ON, Event
from rtmirror.frontend import FrontendConfig
from rtmirror.synth import make_synth
from rtmirror.synth.melody import make_melody
from rtmirror.synth.wide import STYLES, WideVoice, random_patch

SPACE = ControlSpace.load("live")


def _melody(i: int):
    return make_melody("general", np.random.default_rng([7, i]), SPACE, 4.0)


def test_registry_and_rate():
    v = make_synth("wide", SPACE)
    assert isinstance(v, WideVoice) and v.sample_rate == 8000
    assert make_synth("wide", SPACE, sample_rate=16000).sample_rate == 16000


@pytest.mark.parametrize("i", range(12))
def test_random_melodies_are_deterministic_finite_and_in_level(i):
    v = make_synth("wide", SPACE)
    mel = _melody(i)
    v.vary(np.random.default_rng([1, i]))
    a = v.render(mel.events, 4.0)
    v.vary(np.random.default_rng([1, i]))
    b = v.render(mel.events, 4.0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (32000,) and np.all(np.isfinite(a))
    peak = float(np.max(np.abs(a)))
    assert 0.05 < peak <= 1.0, peak
    # sound where notes are held, (near) silence long after the last note's release
    on, off = mel.notes[0][0], mel.notes[0][1]
    seg = a[int(on * 8000): int(off * 8000)]
    assert np.sqrt(np.mean(seg**2)) > 1e-3


def test_parameters_randomize():
    patches = [random_patch(np.random.default_rng([3, i])) for i in range(200)]
    d = {k: np.array([asdict(p)[k] for p in patches]) for k in asdict(patches[0]) if k not in ("vowel", "style")}
    for k in ("saw", "tilt_db_per_oct", "attack_s", "release_s", "vibrato_semitones", "breath_db", "seed"):
        assert np.std(d[k]) > 0, k
    assert {p.style for p in patches} == set(STYLES)
    assert len({p.vowel for p in patches}) > 5
    assert np.mean(d["inharmonicity"] > 0) > 0.1 and np.mean(d["vibrato_semitones"] > 0) > 0.3
    # different patches, different sound, same notes
    mel = _melody(0)
    v = make_synth("wide", SPACE)
    v.vary(np.random.default_rng(1))
    a = v.render(mel.events, 4.0)
    v.vary(np.random.default_rng(2))
    assert not np.allclose(a, v.render(mel.events, 4.0))


def test_pitch_is_the_note():
    """A steady patch (no vibrato, scoop or drift): the spectrum's strongest low peak is f0."""
    v = WideVoice(SPACE).with_patch(vibrato_semitones=0.0, scoop_semitones=0.0, drift_cents=0.0,
                                    tremolo_depth=0.0, breath_db=-80.0, chiff_db=-80.0, inharmonicity=0.0,
                                    saw=0.0, square=0.0, triangle=0.0, sine=1.0, vowel="", style="sustained")
    for note in (45, 57, 69):
        y = v.render([Event(0.0, NOTE_ON, note=note, velocity=100), Event(1.0, NOTE_OFF, note=note)], 1.2)
        spec = np.abs(np.fft.rfft(y[800:7200] * np.hanning(6400)))
        f = np.fft.rfftfreq(6400, 1 / 8000)[np.argmax(spec)]
        assert f == pytest.approx(440 * 2 ** ((note - 69) / 12), abs=2.0)


def test_monophonic_release_is_cut_by_the_next_note():
    v = WideVoice(SPACE).with_patch(release_s=0.4, breath_db=-80.0, chiff_db=-80.0, drift_cents=0.0,
                                    vibrato_semitones=0.0)
    first = [Event(0.0, NOTE_ON, note=60, velocity=100), Event(0.5, NOTE_OFF, note=60)]
    second = [Event(0.6, NOTE_ON, note=72, velocity=100), Event(0.9, NOTE_OFF, note=72)]
    one = v.render(first, 2.0)
    assert np.max(np.abs(one[int(0.6 * 8000):int(0.8 * 8000)])) > 1e-3       # alone, the release rings on
    both, alone = v.render(first + second, 2.0), v.render(second, 2.0)
    cut = int((0.6 + 0.005) * 8000) + 1                                    # the next onset + the fade
    np.testing.assert_allclose(both[cut:], alone[cut:], atol=1e-6)
    assert np.max(np.abs(both[:int(0.6 * 8000)] - one[:int(0.6 * 8000)])) < 1e-6


def test_through_the_render_path_with_sources_and_augmentation():
    from rtmirror.synth.render import Renderer, RenderSpec, render_key
    fe = FrontendConfig()
    base = RenderSpec("wide", SPACE.to_dict(), fe.to_dict(), 2.0, {})
    mix = RenderSpec("wide", SPACE.to_dict(), fe.to_dict(), 2.0, {}, sources=(("wide", 0.5), ("builtin", 0.5)),
                     augment={"enabled": True})
    with Renderer(mix, 0) as r:
        s, t, src = r.melodies("general", 4, 12)
        s2, _, src2 = r.melodies("general", 4, 12)
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(src, src2)
    assert set(src) == {0, 1} and s.shape == (12, 250, 128) and np.all(np.isfinite(s))
    assert t.shape == (12, 250, len(SPACE))
    # a spec without sources or augmentation keeps the key it had before those fields existed
    assert "sources" not in render_key(base, "general", 0, 1) and "sources" in render_key(mix, "general", 0, 1)
