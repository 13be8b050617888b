"""Control spaces: the shipped sets, physical mappings, (de)serialization and clear errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmirror.controls import Control, ControlSpace, available_sets

EXP1_NAMES = ["pitch", "gate", "velocity", "OSC: Volume2", "VCF1: Frequency", "VCF1: Resonance",
              "ENV1: Attack", "ENV1: Decay"]


def test_shipped_sets():
    assert {"exp1", "exp2", "live"} <= set(available_sets())
    e1, e2 = ControlSpace.load("exp1"), ControlSpace.load("exp2")
    assert e1.names == EXP1_NAMES
    assert e2.names == EXP1_NAMES + ["LFO1: Rate", "OSC: Vibrato", "LFO1: Phase"]
    for sp in (e1, e2, ControlSpace.load("live")):
        assert [sp.controls[sp.role_index(r)].role for r in ("pitch", "gate", "velocity")] == ["pitch", "gate", "velocity"]
        # every knob has a distinct CC; patch values name no controlled knob
        ccs = [c.cc for c in sp.knobs]
        assert None not in ccs and len(set(ccs)) == len(ccs)
        assert not set(sp.patch) & set(sp.names)
    # envelope times and LFO phase are read at note-on
    assert {c.name for c in e2.knobs if c.latch} == {"ENV1: Attack", "ENV1: Decay", "LFO1: Phase"}
    # the paper's ENV1: Sustain is 0; the live set sustains
    assert e1.patch["ENV1: Sustain"] == 0.0 and ControlSpace.load("live").patch["ENV1: Sustain"] > 0


def test_documented_physical_values():
    sp = ControlSpace.load("exp2")
    assert sp["pitch"].to_physical(0.0) == 36 and sp["pitch"].to_physical(1.0) == 96
    assert sp["pitch"].to_physical(1 / 60) == pytest.approx(37)
    f = sp["VCF1: Frequency"]
    assert f.to_physical(0.3) == pytest.approx(158.9, rel=1e-3) and f.to_physical(0.6) == pytest.approx(1262, rel=1e-3)
    a = sp["ENV1: Attack"]
    assert a.to_physical(0.2) == pytest.approx(0.001 * 2 ** 2.8) and a.to_physical(0.4) == pytest.approx(0.001 * 2 ** 5.6)
    assert sp["velocity"].to_physical(1.0) == 127 and sp["velocity"].to_physical(0.0) == 1
    assert sp["LFO1: Phase"].to_physical(0.5) == 180


@settings(max_examples=25, deadline=None)
@given(v=st.floats(0, 1), name=st.sampled_from(ControlSpace.load("exp2").names))
def test_physical_round_trip_and_monotone(v, name):
    c = ControlSpace.load("exp2")[name]
    x = c.to_physical(v)
    assert float(c.from_physical(x)) == pytest.approx(v, abs=1e-9)
    if v <= 0.99:   # strictly increasing (every shipped control has hi > lo)
        assert c.to_physical(v + 0.01) > x
    # out of range values clip
    assert c.to_physical(2.0) == c.to_physical(1.0) and c.to_physical(-1.0) == c.to_physical(0.0)


def test_arrays_and_clipping():
    c = ControlSpace.load("exp1")["VCF1: Frequency"]
    v = np.linspace(-0.5, 1.5, 21)
    x = c.to_physical(v)
    assert x.shape == v.shape and np.all(np.diff(x) >= 0) and x[0] == 20 and x[-1] == pytest.approx(20000)
    np.testing.assert_allclose(c.from_physical(x), np.clip(v, 0, 1), atol=1e-12)
    assert c.from_physical(0.0) == 0.0   # below range (and <= 0 on an exp curve) clips, no NaN


@pytest.mark.parametrize("name", ["exp1", "exp2", "live"])
def test_dict_round_trip(name):
    sp = ControlSpace.load(name)
    assert ControlSpace.from_dict(sp.to_dict()) == sp
    import json
    assert ControlSpace.from_dict(json.loads(json.dumps(sp.to_dict()))) == sp


def test_user_toml(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text("""
[controls.pitch]
role = "pitch"
lo = 48.0
hi = 72.0
[controls.gate]
role = "gate"
[controls.cutoff]
curve = "exp"
lo = 100.0
hi = 5000.0
cc = 74
[sets.lead]
controls = ["pitch", "gate", "cutoff"]
patch = { "ENV1: Sustain" = 0.5 }
""")
    for spec in (f"{p}:lead", str(p)):
        sp = ControlSpace.load(spec)
        assert sp.name == "lead" and sp.names == ["pitch", "gate", "cutoff"] and sp.patch == {"ENV1: Sustain": 0.5}
        assert sp["cutoff"].to_physical(1.0) == pytest.approx(5000)
    with pytest.raises(KeyError, match="unknown control set"):
        ControlSpace.load(f"{p}:bass")
    with pytest.raises(FileNotFoundError):
        ControlSpace.load(str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text('[controls.x]\nrole = "knob"\nwidth = 3\n[sets.a]\ncontrols = ["x"]\n')
    with pytest.raises(ValueError, match="unknown fields"):
        ControlSpace.load(str(bad))
    bad.write_text('[sets.a]\ncontrols = ["ghost"]\n[sets.b]\ncontrols = []\n')
    with pytest.raises(ValueError, match="undeclared"):
        ControlSpace.load(f"{bad}:a")
    with pytest.raises(ValueError, match="name a set"):
        ControlSpace.load(str(bad))


def test_unknown_shipped_set():
    with pytest.raises(KeyError, match="exp9"):
        ControlSpace.load("exp9")


@pytest.mark.parametrize("kw, msg", [
    (dict(role="bogus"), "role"),
    (dict(curve="log"), "curve"),
    (dict(curve="exp", lo=0.0, hi=1.0), "exp curve"),
    (dict(lo=1.0, hi=1.0), "differ"),
    (dict(lo=math.nan), "finite"),
    (dict(cc=120), "cc"),
])
def test_control_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Control(name="x", **kw)


def test_space_validation():
    p = Control("p", role="pitch", lo=36, hi=96)
    with pytest.raises(ValueError, match="duplicate"):
        ControlSpace("s", (p, p))
    with pytest.raises(ValueError, match="more than one pitch"):
        ControlSpace("s", (p, Control("q", role="pitch", lo=0, hi=1)))
    with pytest.raises(ValueError, match="patch value"):
        ControlSpace("s", (p,), patch={"ENV1: Sustain": 1.5})
    with pytest.raises(ValueError, match="invalid control space"):
        ControlSpace.from_dict({"controls": []})
    with pytest.raises(KeyError, match="not in space"):
        ControlSpace.load("exp1").index("LFO1: Rate")
