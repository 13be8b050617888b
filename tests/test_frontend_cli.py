"""`rtmirror spectrogram IN.wav -o OUT.png`."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from rtmirror.cli import main
from rtmirror.cli.spectrogram import frequency_ticks
from rtmirror.frontend.filterbank import center_frequencies


def test_spectrogram_png(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.stack([0.2 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1), sr)
    png = tmp_path / "out" / "spec.png"
    assert main(["spectrogram", str(wav), "-o", str(png)]) == 0
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert not list(png.parent.glob("*.tmp.png"))
    assert main(["spectrogram", str(tmp_path / "missing.wav"), "-o", str(png)]) == 2


@pytest.mark.parametrize("shift", [0, -1])
def test_frequency_ticks_sit_on_their_channels(shift):
    ticks, labels = frequency_ticks(shift)
    assert "1 k" in labels
    cf = center_frequencies(shift)
    for pos, label in zip(ticks, labels):
        hz = float(label.replace(" k", "")) * (1000 if "k" in label else 1)
        k = int(round(pos))
        assert abs(np.log2(cf[k] / hz)) < 1 / 48  # within half a channel (24 per octave)
