"""StreamResampler (soxr stream) latency and alignment, and load_audio."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from rtmirror.frontend import FrontendConfig, StreamResampler, load_audio, wav2aud


@pytest.mark.parametrize("in_sr,out_sr", [(48000, 16000), (44100, 8000), (16000, 8000), (8000, 16000)])
def test_stream_resampler_impulse_and_reported_delay(in_sr, out_sr):
    rs = StreamResampler(in_sr, out_sr)
    block = 128
    x = np.zeros(in_sr // 2, np.float32)
    impulse_at = in_sr // 4 + 37
    x[impulse_at] = 1.0
    expected_peak = impulse_at * out_sr / in_sr
    outs, n_in, n_out, emitted_lag = [], 0, 0, None
    prev_delay = 0.0
    for start in range(0, len(x), block):
        y = rs.process(x[start:start + block])
        outs.append(y)
        n_in += len(x[start:start + block])
        n_out += len(y)
        # the report is exactly what soxr holds back right now
        assert abs(rs.delay_samples - (n_in * out_sr / in_sr - n_out)) < 1e-6
        if emitted_lag is None and n_out > expected_peak + 1:
            # the impulse just came out: its lag is the input fed beyond it, in output samples
            emitted_lag = (n_in - 1 - impulse_at) * out_sr / in_sr
            assert emitted_lag <= rs.max_delay_samples + block * out_sr / in_sr + 2
            if n_in - block > impulse_at:  # held back by the call before, as its report said
                assert prev_delay >= (n_in - block - 1 - impulse_at) * out_sr / in_sr - 2
        prev_delay = rs.delay_samples
    y = np.concatenate(outs + [rs.flush()])
    assert abs(int(np.argmax(y)) - expected_peak) <= 1  # output is time-aligned with the input
    assert abs(len(y) - len(x) * out_sr / in_sr) <= 2
    assert emitted_lag is not None and rs.max_delay_samples > 0
    rs.reset()
    assert rs.delay_samples == 0


def test_stream_resampler_matches_offline_and_handles_bad_blocks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(48000).astype(np.float32) * 0.1
    rs = StreamResampler(48000, 16000)
    sizes = rng.integers(0, 700, 200)
    parts, pos = [], 0
    for n in sizes:
        parts.append(rs.process(x[pos:pos + n]))
        pos += n
    parts.append(rs.process(x[pos:]))
    parts.append(rs.flush())
    streamed = np.concatenate(parts)
    rs2 = StreamResampler(48000, 16000)
    whole = np.concatenate([rs2.process(x), rs2.flush()])
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    bad = x[:1000].copy()
    bad[10] = np.nan
    assert np.isfinite(StreamResampler(48000, 16000).process(bad)).all()
    with pytest.raises(ValueError, match="mono"):
        rs.process(np.zeros((10, 2), np.float32))
    for sr in (0, 5, 10_000_000):
        with pytest.raises(ValueError, match="in_sr"):
            StreamResampler(sr, 16000)


def test_load_audio_downmixes_and_resamples(tmp_path):
    sr_file = 44100
    t = np.arange(sr_file) / sr_file
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1)  # (n, 2)
    path = tmp_path / "tone.wav"
    soundfile.write(path, stereo, sr_file, subtype="PCM_16")
    x = load_audio(path, 8000)
    assert x.dtype == np.float32 and x.ndim == 1 and abs(len(x) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert abs(np.argmax(spectrum) * 8000 / len(x) - 440) < 2
    assert abs(np.abs(x).max() - 0.5) < 0.01
    spec = wav2aud(x, FrontendConfig(), sr=8000)
    assert spec.shape == (len(x) // 64, 128)
    with pytest.raises(ValueError, match="sr"):
        load_audio(path, 0)


@pytest.mark.parametrize("in_sr", [4000, 5512, 6000, 7999, 8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_live_resampler_works_at_every_accepted_rate(in_sr):
    """Stream == one shot for random block sizes, and the output length follows the rate ratio
    (rates below ~7 kHz used to raise IndexError: the ready-sample count was rounded up wrong)."""
    from rtmirror.audio_io import LiveResampler, resample

    rng = np.random.default_rng(in_sr)
    x = rng.standard_normal(int(0.3 * in_sr)).astype(np.float32)
    ref = resample(x, in_sr, 8000)
    rs, outs, pos = LiveResampler(in_sr, 8000), [], 0
    while pos < len(x):
        n = int(rng.integers(1, 700))
        outs.append(rs.process(x[pos:pos + n]))
        pos += n
    y = np.concatenate(outs + [rs.flush()])
    np.testing.assert_array_equal(y, ref)
    assert abs(len(y) - len(x) * 8000 / in_sr) <= 1
