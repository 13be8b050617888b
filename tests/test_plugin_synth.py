"""PluginSynth through DawDreamer with the real amsynth VST (Debian `amsynth`), and its parameter maps."""
from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

from conftest import require
from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event
from rtmirror.synth import make_synth
from rtmirror.synth.builtin import control_mapping
from rtmirror.synth.plugin import ParamMap, PluginError, automation_curve, plugin_value

AMSYNTH = "/usr/lib/vst/amsynth_vst.so"
SR = 16000

pytestmark = pytest.mark.vst


@pytest.fixture(scope="module")
def amsynth_present(tmp_path_factory):
    require(os.path.exists(AMSYNTH), "amsynth (apt: amsynth)")
    require(importlib.util.find_spec("dawdreamer") is not None, "DawDreamer (pip: rtmirror[train])")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg"))   # amsynth writes its bank there


@pytest.fixture(scope="module")
def amsynth(amsynth_present):
    return make_synth(AMSYNTH, ControlSpace.load("exp2"), sample_rate=SR)


def ctl(t, name, v):
    return Event(t, CONTROL, name=name, value=v)


def peak_hz(y, sr=SR):
    seg = y.astype(np.float64) * np.hanning(len(y))
    mag = np.abs(np.fft.rfft(seg, 8 * len(seg)))
    return float(np.fft.rfftfreq(8 * len(seg), 1 / sr)[np.argmax(mag)])


def centroid(y, sr=SR):
    p = np.abs(np.fft.rfft(y.astype(np.float64) * np.hanning(len(y)))) ** 2
    return float((p * np.fft.rfftfreq(len(y), 1 / sr)).sum() / p.sum())


def midi_hz(note):
    return 440.0 * 2 ** ((note - 69) / 12)


def test_a_melody_renders_at_the_right_pitches(amsynth):
    notes = [62, 65, 69, 72]
    events = [ctl(0, "ENV1: Sustain", 1.0), ctl(0, "VCF1: Frequency", 0.45)]
    for i, n in enumerate(notes):
        events += [Event(0.4 * i, NOTE_ON, note=n, velocity=127), Event(0.4 * i + 0.35, NOTE_OFF, note=n)]
    # a fifth note bent up 2 semitones (amsynth's default bend range)
    events += [Event(1.6, PITCH_BEND, value=2.0), Event(1.6, NOTE_ON, note=60, velocity=127),
               Event(1.95, NOTE_OFF, note=60)]
    y = amsynth.render(events, 2.0)
    assert y.shape == (2 * SR,) and y.dtype == np.float32 and np.all(np.isfinite(y))
    for i, n in enumerate(notes + [62]):
        seg = y[int((0.4 * i + 0.05) * SR):int((0.4 * i + 0.33) * SR)]
        assert np.sqrt(np.mean(seg.astype(np.float64) ** 2)) > 0.01
        assert peak_hz(seg) == pytest.approx(midi_hz(n), rel=0.015), (i, n)
    # note-off releases to (near) silence before the next note
    gap = y[int(0.37 * SR + 0.2 * SR * 0):int(0.399 * SR)]
    assert np.abs(gap).max() < np.abs(y[int(0.1 * SR):int(0.3 * SR)]).max()


def test_cutoff_changes_brightness_also_mid_render(amsynth):
    """The first cutoff is set before the render, the second arrives mid-render (as a MIDI CC)."""
    events = [ctl(0, "ENV1: Sustain", 1.0), ctl(0, "VCF1: Frequency", 0.3),
              Event(0.0, NOTE_ON, note=48, velocity=127), Event(0.45, NOTE_OFF, note=48),
              ctl(0.5, "VCF1: Frequency", 0.6),
              Event(0.5, NOTE_ON, note=48, velocity=127), Event(0.95, NOTE_OFF, note=48)]
    y = amsynth.render(events, 1.0)
    dark, bright = y[int(0.1 * SR):int(0.4 * SR)], y[int(0.6 * SR):int(0.9 * SR)]
    assert centroid(bright) > 1.3 * centroid(dark)   # amsynth at 130 Hz: ~132 Hz -> ~191 Hz measured


def test_fresh_engine_renders_are_reproducible(amsynth):
    events = [Event(0.05, NOTE_ON, note=64, velocity=100), ctl(0.2, "VCF1: Resonance", 0.5),
              Event(0.4, NOTE_OFF, note=64)]
    assert np.array_equal(amsynth.render(events, 0.5), amsynth.render(events, 0.5))


def test_map_laws_match_what_amsynth_displays(amsynth_present):
    """Our physical value, through the map's law, lands on the same value in amsynth's own display."""
    import dawdreamer as dd
    space = ControlSpace.load("exp2")
    m = ParamMap.load("amsynth")
    engine = dd.RenderEngine(44100, 64)          # keep a reference: the plugin lives with its engine
    proc = engine.make_plugin_processor("am", AMSYNTH)
    names = [d["name"] for d in proc.get_parameters_description()]
    for control, scale in [("ENV1: Attack", 1.0), ("ENV1: Decay", 1.0), ("LFO1: Rate", 1.0),
                           ("VCF1: Frequency", 1 / 261.626)]:
        rule = m.rules[control]
        for v in (0.2, 0.4, 0.6):
            x = float(control_mapping(control, space).to_physical(v))
            n = plugin_value(rule, v, space)
            if not 0.0 < n < 1.0:
                continue                       # outside amsynth's range: clipped, nothing to compare
            i = names.index(rule.param)
            proc.set_parameter(i, n)
            shown = float(proc.get_parameter_text(i))
            assert shown == pytest.approx(x * scale, rel=0.01), (control, v)


def test_shipped_maps_parse_and_cover_the_control_sets():
    for name in ("amsynth", "diva"):
        m = ParamMap.load(name)
        for set_name in ("exp1", "exp2", "live"):
            space = ControlSpace.load(set_name)
            for c in space.knobs:
                assert c.name in m.rules or c.name in m.ignore, (name, c.name)
            for p in space.patch:
                assert p in m.rules or p in m.ignore, (name, p)


def test_diva_map_is_identity_on_diva_names():
    m = ParamMap.load("diva")
    space = ControlSpace.load("exp2")
    for control in space.knobs:
        rule = m.rules[control.name]
        assert rule.param == control.name
        assert plugin_value(rule, 0.37, space) == pytest.approx(0.37)
    # the paper's fixed overrides (the MirrorNet paper's data section, arXiv 2110.05695)
    assert m.defaults["ENV1: Sustain"] == 0.0
    assert m.defaults["OSC: Volume1"] == 0.0 and m.defaults["OSC: Volume3"] == 0.0


def test_missing_file_and_not_a_plugin(amsynth_present, tmp_path):
    space = ControlSpace.load("exp1")
    with pytest.raises(FileNotFoundError, match="plugin not found"):
        make_synth(str(tmp_path / "nothing.so"), space, param_map="amsynth")
    fake = tmp_path / "fake_amsynth.so"
    fake.write_bytes(b"\x7fELF this is not a shared object")
    with pytest.raises(PluginError, match="could not load"):
        make_synth(str(fake), space)
    with pytest.raises(ValueError, match="no shipped parameter map"):
        make_synth(str(tmp_path / "other.vst3"), space)


def _amsynth_map(**changes) -> dict:
    import tomllib
    from importlib import resources
    d = tomllib.loads(resources.files("rtmirror.resources").joinpath("synth_maps", "amsynth.toml").read_text())
    for k, v in changes.items():
        d["params"][k] = v
    return d


def test_unknown_plugin_parameter_in_the_map_is_a_clear_error(amsynth_present):
    bad = _amsynth_map(**{"VCF1: Frequency": {"param": "filter_cutof", "cc": 74}})
    with pytest.raises(ValueError, match="filter_cutof"):
        make_synth(AMSYNTH, ControlSpace.load("exp1"), param_map=bad)


def test_a_plugin_that_renders_silence_is_refused(amsynth_present):
    mute = _amsynth_map(**{"OSC: Volume2": {"param": "master_vol", "range": [0.0, 0.0], "cc": 7}})
    with pytest.raises(PluginError, match="silence"):
        make_synth(AMSYNTH, ControlSpace.load("exp1"), param_map=mute)


def test_bad_map_values_are_clear_errors():
    with pytest.raises(ValueError, match="law"):
        ParamMap.from_dict({"params": {"VCF1: Frequency": {"param": "x", "law": "cubic"}}})
    with pytest.raises(ValueError, match="missing"):
        ParamMap.from_dict({"params": {"VCF1: Frequency": {"param": "x", "law": "exp", "mult": 1.0}}})
    with pytest.raises(ValueError, match="normalized"):
        ParamMap.from_dict({"defaults": {"x": 2.0}})
    assert math.isclose(plugin_value(ParamMap.from_dict({"params": {"VCF1: Frequency": {
        "param": "x", "law": "exp", "mult": 261.626, "base": 16.0, "lo": -0.5, "hi": 1.5}}}).rules["VCF1: Frequency"],
        math.log(261.626 / 20) / math.log(1000), ControlSpace.load("exp1")), 0.25, abs_tol=1e-9)


def test_automation_changes_act_from_the_start_of_their_block():
    a = automation_curve(0.2, [(100, 0.7), (300, 0.4)], 400, 64)
    assert np.all(a[:64] == 0.2) and np.all(a[64:256] == 0.7) and np.all(a[256:] == 0.4)
    # what DawDreamer samples at block starts is the value of the last change inside each block
    starts = a[::64]
    assert list(starts) == [0.2, 0.7, 0.7, 0.7, 0.4, 0.4, 0.4]
