"""PianoVoice (exp3's training piano): deterministic, finite, notes only, and piano-like where it
matters for the encoder: stretched partials, decay while held, damped at note-off, brighter
when struck harder."""
from __future__ import annotations

import numpy as np
import pytest

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event
from rtmirror.synth import make_synth
from rtmirror.synth.piano import PianoVoice

SR = 16000


def one_note(note=60, vel=90, held=1.0, dur=2.0, synth=None):
    synth = synth or PianoVoice(SR)
    return synth.render([Event(0.1, NOTE_ON, note=note, velocity=vel), Event(0.1 + held, NOTE_OFF, note=note)], dur)


def test_registry_determinism_and_notes_only():
    p = make_synth("piano", ControlSpace.load("exp1"), SR)
    assert isinstance(p, PianoVoice) and p.sample_rate == SR
    a = one_note(synth=p)
    assert a.dtype == np.float32 and len(a) == 2 * SR and np.isfinite(a).all() and 0.01 < np.abs(a).max() < 1.0
    np.testing.assert_array_equal(a, one_note(synth=p))
    knob = [Event(0.5, CONTROL, name="VCF1: Frequency", value=0.9)]
    b = p.render([Event(0.1, NOTE_ON, note=60, velocity=90), *knob, Event(1.1, NOTE_OFF, note=60)], 2.0)
    np.testing.assert_array_equal(a, b)                       # a piano has no knobs


@pytest.mark.parametrize("note", [36, 60, 84])
def test_partials_are_stretched(note):
    """The 8th partial lies above 8 x f0 (stiff strings), by more in the treble."""
    x = one_note(note, held=1.5, dur=1.8)[int(0.2 * SR):int(1.2 * SR)].astype(np.float64)
    f0 = 440 * 2 ** ((note - 69) / 12)
    k = 8 if 8 * f0 < 0.45 * SR else 3
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    freqs = np.fft.rfftfreq(8 * len(x), 1 / SR)
    band = (freqs > k * f0 * 0.99) & (freqs < k * f0 * 1.05)
    peak = freqs[band][np.argmax(spec[band])]
    assert peak > k * f0 * 1.0005


def test_decays_while_held_and_is_damped_at_note_off():
    x = one_note(60, held=1.0, dur=2.0)
    rms = lambda a, b: np.sqrt(np.mean(x[int(a * SR):int(b * SR)] ** 2))
    assert rms(0.9, 1.05) < 0.6 * rms(0.12, 0.27)             # a struck string decays
    assert rms(1.4, 1.6) < 0.01 * rms(0.9, 1.05)              # the damper ends it


def test_harder_is_brighter_and_louder():
    def centroid(a):
        s = np.abs(np.fft.rfft(a[int(0.1 * SR):int(0.4 * SR)]))
        f = np.fft.rfftfreq(len(a[int(0.1 * SR):int(0.4 * SR)]), 1 / SR)
        return float((s * f).sum() / s.sum())
    soft, hard = one_note(vel=30), one_note(vel=120)
    assert np.abs(hard).max() > 2 * np.abs(soft).max()
    assert centroid(hard) > 1.2 * centroid(soft)
