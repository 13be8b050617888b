"""The window under a real X server (Xvfb, Qt's xcb platform), in a subprocess so the platform
differs from the offscreen tests: `rtmirror gui FILE.wav` opens, plays the file through the
engine, grabs a screenshot and quits by itself (QTimer.singleShot)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def melody_wav(tmp_path_factory):
    import soundfile as sf

    from rtmirror.controls import ControlSpace
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import general_melody

    space = ControlSpace.load("live")
    mel = general_melody(np.random.default_rng(11), space, duration_s=4.0)
    x = make_synth("builtin", space, sample_rate=16000).render(mel.events, mel.duration_s)
    path = tmp_path_factory.mktemp("xvfb") / "melody.wav"
    sf.write(path, 0.5 * x / max(1e-9, float(np.abs(x).max())), 16000)
    return path


@pytest.mark.xvfb
def test_window_opens_under_xvfb_grabs_and_quits_itself(xvfb_display, melody_wav, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "window.png"
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    proc = subprocess.run(
        [sys.executable, "-m", "rtmirror.cli", "gui", str(melody_wav), "--no-midi", "--quit-after", "3.5",
         "--screenshot", str(shot), "--size", "1200x800", "--record-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    img = imread(str(shot))                                # (h, w, 3|4) floats in [0, 1]
    assert img.shape[:2] == (800, 1200)
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    # A dark window: mostly dark pixels, and a lit spectrogram (many distinct bright colours).
    assert np.median(rgb.mean(axis=1)) < 80
    bright = rgb[rgb.max(axis=1) > 150]
    assert len(np.unique(bright, axis=0)) > 50
