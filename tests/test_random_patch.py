"""amsynth with random patches (rtmirror/synth/patches.py): draws in range and varied, a patch
renders reproducibly, different patches sound different, the registry names it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require

from rtmirror.controls import ControlSpace
from rtmirror.events import NOTE_OFF, NOTE_ON, Event
from rtmirror.synth import make_synth
from rtmirror.synth.patches import AMSYNTH_RANDOM_PATCH, draw_patch

AMSYNTH = "/usr/lib/vst/amsynth_vst.so"
SPACE = ControlSpace.load("live")


def test_draws_are_in_range_and_vary():
    draws = [draw_patch(AMSYNTH_RANDOM_PATCH, np.random.default_rng(i)) for i in range(50)]
    for name, (kind, *args) in AMSYNTH_RANDOM_PATCH.items():
        vals = np.array([d[name] for d in draws])
        if kind == "uniform":
            assert np.all((vals >= args[0]) & (vals <= args[1])) and (np.std(vals) > 0)
        else:
            assert set(vals) <= set(args)
    assert draw_patch(AMSYNTH_RANDOM_PATCH, np.random.default_rng(3)) == draws[3]
    with pytest.raises(ValueError, match="kind"):
        draw_patch({"x": ("gauss", 0, 1)}, np.random.default_rng(0))


def test_amsynth_random_patches_render():
    require(Path(AMSYNTH).is_file(), f"amsynth VST ({AMSYNTH}, apt: amsynth)")
    s = make_synth(f"random-patch:{AMSYNTH}", SPACE, sample_rate=8000)
    ev = [Event(0.0, NOTE_ON, note=57, velocity=110), Event(0.6, NOTE_OFF, note=57)]
    s.vary(np.random.default_rng(1))
    a = s.render(ev, 0.8)
    s.vary(np.random.default_rng(1))
    np.testing.assert_array_equal(a, s.render(ev, 0.8))
    s.vary(np.random.default_rng(2))
    b = s.render(ev, 0.8)
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) > 1e-3 and np.max(np.abs(b)) > 1e-3
    assert not np.allclose(a, b)
