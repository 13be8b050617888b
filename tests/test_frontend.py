"""The NSL cochlear frontend: filter table, parity with naplib and with a plain scipy transcription,
streaming == offline over random partitions, AGC, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.signal import lfilter

from rtmirror.frontend import CochlearStream, FrontendConfig, wav2aud
from repo_tools import load_tool
from rtmirror.frontend.filterbank import LANE_WIDTHS, channel_filter, filter_layout, load_table

NAPLIB_FACTOR = {-2: "linear", -1: "half-wave", 0: "boolean", 0.1: 0.1}


def make_signal(sr: int, seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    """A chirp over the whole band plus a little noise: every channel gets something to do."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0, f1 = 100.0, 0.45 * sr
    chirp = np.sin(2 * np.pi * f0 * seconds / math.log(f1 / f0) * (np.exp(t / seconds * math.log(f1 / f0)) - 1))
    return level * (chirp + 0.3 * rng.standard_normal(t.size))




def plain_wav2aud(x, frame_ms, tc_ms, factor, shift) -> np.ndarray:
    """NSL wav2aud transcribed plainly with scipy lfilter (MATLAB's column-major reshape for tc=0)."""
    octave = 2.0 ** (4 + shift)  # samples per ms
    hop = round(frame_ms * octave)
    n_frames = len(x) // hop
    alpha = math.exp(-1 / (tc_ms * octave)) if tc_ms > 0 else 0.0
    beta = math.exp(-1 / (0.5 * octave))

    def haircell(y):
        if factor > 0:
            y = 1.0 / (1.0 + np.exp(-y / factor))
        elif factor == 0:
            y = (y > 0).astype(float)
        elif factor == -1:
            y = np.maximum(y, 0)
        if factor != -2:
            y = lfilter([1.0], [1.0, -beta], y)
        return y

    out = np.zeros((n_frames, 128))
    y_high = haircell(lfilter(*channel_filter(128), x))
    for ch in range(127, -1, -1):
        y = haircell(lfilter(*channel_filter(ch), x))
        d = np.maximum(y - y_high, 0)
        y_high = y
        if alpha:
            out[:, ch] = lfilter([1.0], [1.0, -alpha], d)[hop - 1:n_frames * hop:hop]
        else:
            out[:, ch] = d[:n_frames * hop].reshape(n_frames, hop).mean(axis=1)
    return out


def assert_close_rel(got, ref, rel=1e-5):
    assert got.shape == ref.shape
    err = np.abs(got.astype(np.float64) - ref).max()
    assert err <= rel * np.abs(ref).max(), f"max abs error {err:.3g} vs max |ref| {np.abs(ref).max():.3g}"


def test_filter_table_identical_to_naplib():
    naplib_features = pytest.importorskip("naplib.features")
    make_filter_table = load_tool("make_filter_table")
    naplib_table_path, read_mat = make_filter_table.naplib_table_path, make_filter_table.read_mat

    ours = load_table()
    assert ours.shape == (26, 129)
    np.testing.assert_array_equal(ours, read_mat(naplib_table_path()))
    np.testing.assert_array_equal(ours, np.asarray(naplib_features.auditory_spectrogram.__globals__["COCHBA"]))


@pytest.mark.parametrize("lanes", LANE_WIDTHS)
@pytest.mark.parametrize("factor", [-2, -1, 0, 0.1])
@pytest.mark.parametrize("frame_ms,tc_ms", [(8, 8), (4, 16), (16, 4), (2, 64)])
def test_parity_with_naplib(factor, frame_ms, tc_ms, lanes):
    naplib_features = pytest.importorskip("naplib.features")
    x = make_signal(16000, 0.5, seed=1)
    cfg = FrontendConfig(frame_ms=frame_ms, tc_ms=tc_ms, factor=factor, shift=0, normalization="none")
    ref = naplib_features.auditory_spectrogram(x, 16000, frame_ms, tc_ms, NAPLIB_FACTOR[factor])
    got = wav2aud(x, cfg, lanes=lanes)
    assert got.dtype == np.float32 and got.shape == (len(x) // cfg.hop, 128)
    assert_close_rel(got, ref[:len(got)])


@pytest.mark.parametrize("lanes", LANE_WIDTHS)
@pytest.mark.parametrize("factor", [-2, -1, 0, 0.1])
@pytest.mark.parametrize("shift,frame_ms,tc_ms", [(-1, 8, 8), (-1, 4, 0), (0, 8, 0), (0, 10, 8), (-2, 16, 8)])
def test_parity_with_plain_transcription(factor, shift, frame_ms, tc_ms, lanes):
    """Octave shifts (the paper's [8, 8, -2, -1] at 8 kHz) and tc = 0, which naplib gets wrong."""
    cfg = FrontendConfig(frame_ms=frame_ms, tc_ms=tc_ms, factor=factor, shift=shift, normalization="none")
    x = make_signal(cfg.sample_rate, 0.5, seed=2)
    assert_close_rel(wav2aud(x, cfg, lanes=lanes), plain_wav2aud(x, frame_ms, tc_ms, factor, shift))


@pytest.mark.parametrize("lanes", LANE_WIDTHS)
def test_filter_layout_covers_every_channel_once(lanes):
    layout = filter_layout(lanes)
    real = layout.lane_channel[layout.lane_channel >= 0]
    assert sorted(real.tolist()) == list(range(129))
    assert np.all(layout.lane_channel[len(real):] == -1)  # padding only at the end
    assert np.all(np.diff(layout.group_order) <= 0)
    # every group runs at least the order of each of its channels, and each order's range is contiguous
    lane_order = np.array([0 if ch < 0 else len(channel_filter(int(ch))[1]) - 1 for ch in layout.lane_channel])
    assert np.all(lane_order.reshape(layout.n_groups, lanes).max(axis=1) == layout.group_order)
    for order, (g0, g1) in zip(layout.orders, layout.order_groups):
        assert g1 > g0 and np.all(layout.group_order[g0:g1] == order)
    covered = np.concatenate([np.arange(g0, g1) for g0, g1 in layout.order_groups])
    assert sorted(covered.tolist()) == list(range(layout.n_groups))
    with pytest.raises(ValueError, match="lanes"):
        filter_layout(16)


def test_lane_widths_agree_and_the_default_follows_the_cpu(monkeypatch):
    """The 4- and 8-lane kernels run the same filters; they differ only where a padded tap adds an
    exact 0 (float64 rounding, far below the float32 output). The default width is the CPU's."""
    from rtmirror.frontend import _simd

    for cfg in (FrontendConfig(), FrontendConfig(shift=0, factor=0.1, tc_ms=0, normalization="none")):
        x = make_signal(cfg.sample_rate, 0.5, seed=3)
        x4, x8 = wav2aud(x, cfg, lanes=4), wav2aud(x, cfg, lanes=8)
        assert_close_rel(x4, x8.astype(np.float64), rel=1e-6)
        stream = CochlearStream(cfg, lanes=4)
        assert stream.lanes == 4
        np.testing.assert_array_equal(np.concatenate([stream.process(x[i:i + 77], copy=True)
                                                      for i in range(0, len(x), 77)]), x4)
    monkeypatch.delenv(_simd.LANES_ENV, raising=False)
    assert CochlearStream().lanes == (8 if _simd.compile_target_has_avx512() else 4)
    monkeypatch.setenv(_simd.LANES_ENV, "4")
    assert CochlearStream().lanes == 4
    monkeypatch.setenv(_simd.LANES_ENV, "16")
    with pytest.raises(ValueError, match="RTMIRROR_FRONTEND_LANES"):
        CochlearStream()
    with pytest.raises(ValueError, match="lanes"):
        wav2aud(x, lanes=2)


def test_trailing_partial_frame_dropped():
    cfg = FrontendConfig(normalization="none")
    x = make_signal(cfg.sample_rate, 0.25)
    full = wav2aud(x, cfg)
    cut = wav2aud(x[:len(x) - cfg.hop // 2], cfg)
    assert cut.shape[0] == full.shape[0] - 1
    np.testing.assert_array_equal(cut, full[:-1])


def plain_agc(x, cfg: FrontendConfig) -> np.ndarray:
    """The documented AGC: one-pole power tracker, gain = target / rms, capped; starts at gain 1."""
    c = 1 - math.exp(-1 / (cfg.agc_tau_s * cfg.sample_rate))
    power = cfg.agc_target_rms ** 2
    y = np.empty_like(x, dtype=np.float64)
    for i, v in enumerate(x):
        power += c * (v * v - power)
        y[i] = v * min(cfg.agc_max_gain, cfg.agc_target_rms / math.sqrt(max(power, 1e-300)))
    return y


def test_agc_is_the_documented_gain_then_the_cochlea():
    cfg = FrontendConfig(normalization="agc", agc_tau_s=0.05)
    x = make_signal(cfg.sample_rate, 0.5, seed=3, level=0.5)
    x[: len(x) // 3] *= 1e-4  # quiet start: the gain sits at its cap, then tracks the loud part
    ref = wav2aud(plain_agc(x, cfg), FrontendConfig(normalization="none", agc_tau_s=0.05))
    assert_close_rel(wav2aud(x, cfg), ref.astype(np.float64), rel=1e-5)


@pytest.mark.parametrize("factor", [-2, -1, 0, 0.1])
def test_digital_silence_gives_zero_frames(factor):
    cfg = FrontendConfig(factor=factor, normalization="none")
    assert np.abs(wav2aud(np.zeros(cfg.sample_rate // 2), cfg)).max() < 1e-12


def test_agc_silence_stays_quiet_and_levels_are_evened():
    cfg = FrontendConfig(normalization="agc", agc_tau_s=0.1)
    sr = cfg.sample_rate
    assert np.abs(wav2aud(np.zeros(sr), cfg)).max() < 1e-12
    hiss = wav2aud(1e-5 * np.random.default_rng(0).standard_normal(sr), cfg)
    normal = wav2aud(make_signal(sr, 1.0, level=0.1), cfg)
    assert hiss[-40:].mean() < 0.02 * normal[-40:].mean()  # gain cap 100: 1e-3 rms vs 0.1
    loud = wav2aud(make_signal(sr, 1.0, level=0.8), cfg)
    soft = wav2aud(make_signal(sr, 1.0, level=0.05), cfg)
    tail = slice(-40, None)  # after ~3 time constants the gains have converged
    assert np.abs(loud[tail] - soft[tail]).max() < 0.05 * loud[tail].max()


def test_unitseq_offline_only():
    cfg = FrontendConfig(normalization="unitseq", shift=0, factor=0.1)
    x = make_signal(16000, 0.25, level=3.0) + 0.5
    z = (x - x.mean()) / x.std(ddof=1)
    np.testing.assert_array_equal(wav2aud(x, cfg), wav2aud(z, FrontendConfig(normalization="none", shift=0, factor=0.1)))
    with pytest.raises(ValueError, match="offline"):
        CochlearStream(cfg)


BLOCK_SIZES = st.one_of(st.sampled_from([0, 1, 7, 63, 64, 65, 128, 1000]), st.integers(0, 3000))


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(BLOCK_SIZES, min_size=1, max_size=40),
       cfg_index=st.integers(0, 3), as_float32=st.booleans(), lanes=st.sampled_from(LANE_WIDTHS))
def test_stream_equals_offline_for_any_partition(sizes, cfg_index, as_float32, lanes):
    cfg = [FrontendConfig(),  # the default: agc, 8 kHz, linear
           FrontendConfig(frame_ms=10, tc_ms=0, factor=0.1, shift=0, normalization="none"),
           FrontendConfig(frame_ms=4, tc_ms=16, factor=-1, shift=0, normalization="agc"),
           FrontendConfig(frame_ms=8, tc_ms=4, factor=0, shift=-1, normalization="none")][cfg_index]
    x = make_signal(cfg.sample_rate, 1.0 if cfg.shift == 0 else 2.0, seed=len(sizes))
    if as_float32:
        x = x.astype(np.float32)
    stream = CochlearStream(cfg, lanes=lanes)
    frames, pos = [], 0
    for n in sizes:
        frames.append(stream.process(x[pos:pos + n], copy=True))
        pos += n
    frames.append(stream.process(x[pos:]))
    got = np.concatenate(frames)
    np.testing.assert_array_equal(got, wav2aud(x, cfg, lanes=lanes))
    stream.reset()
    np.testing.assert_array_equal(stream.process(x), wav2aud(x, cfg, lanes=lanes))


ODD_BLOCK_SIZES = st.one_of(st.sampled_from([1, 3, 5, 7, 63, 65, 127, 129, 255, 257]),
                            st.integers(0, 700).map(lambda k: 2 * k + 1))


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(ODD_BLOCK_SIZES, min_size=1, max_size=60),
       cfg_index=st.integers(0, 2), as_float32=st.booleans(), lanes=st.sampled_from(LANE_WIDTHS))
def test_stream_equals_offline_for_odd_blocks(sizes, cfg_index, as_float32, lanes):
    """Odd-length blocks only (every other call starts on an odd sample index), with 1-sample runs,
    odd hops (17, 5 samples) and non-finite samples: equal bits to wav2aud on the whole signal."""
    cfg = [FrontendConfig(frame_ms=8, tc_ms=8, factor=-2, shift=0, normalization="none"),
           FrontendConfig(frame_ms=1.0625, tc_ms=4, factor=0.1, shift=0, normalization="agc"),  # hop 17
           FrontendConfig(frame_ms=5, tc_ms=0, factor=-1, shift=-4, normalization="none")][cfg_index]  # hop 5
    assert cfg.hop % 2 == (0 if cfg_index == 0 else 1)
    x = make_signal(cfg.sample_rate, 0.6, seed=len(sizes))
    x[[11, 12, 301]] = [np.nan, np.inf, -np.inf]
    clean = x.copy()
    clean[~np.isfinite(clean)] = 0.0
    if as_float32:
        x, clean = x.astype(np.float32), clean.astype(np.float32)
    stream = CochlearStream(cfg, lanes=lanes)
    frames, pos = [], 0
    for n in sizes + [1] * 5:
        frames.append(stream.process(x[pos:pos + n], copy=True))
        pos += n
    frames.append(stream.process(x[pos:]))
    np.testing.assert_array_equal(np.concatenate(frames), wav2aud(clean, cfg, lanes=lanes))
    assert stream.nonfinite_count == 3


def test_stream_replaces_and_counts_nonfinite():
    cfg = FrontendConfig()
    x = make_signal(cfg.sample_rate, 0.5)
    bad = x.copy()
    bad[[10, 500, 501, 3000]] = [np.nan, np.inf, -np.inf, np.nan]
    clean = bad.copy()
    clean[~np.isfinite(clean)] = 0.0
    stream = CochlearStream(cfg)
    got = np.concatenate([stream.process(bad[i:i + 100], copy=True) for i in range(0, len(bad), 100)])
    assert stream.nonfinite_count == 4
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, wav2aud(clean, cfg))
    stream.reset()
    assert stream.nonfinite_count == 0


def test_stream_output_buffer_reused():
    stream = CochlearStream(FrontendConfig())
    block = make_signal(8000, 128 / 8000)
    stream.process(block)
    first = stream.process(block)
    assert first.shape == (2, 128) and first.dtype == np.float32
    second = stream.process(block)
    assert np.shares_memory(first, second)  # steady state: no new buffer
    assert stream.process(np.zeros(0, np.float32)).shape == (0, 128)


@pytest.mark.parametrize("x,match", [
    (np.zeros(0), "empty"),
    (np.array([0.0, np.nan, 1.0]), "non-finite"),
    (np.array([0.0, np.inf]), "non-finite"),
    (np.zeros((800, 2)), "mono"),
    (np.zeros(800, dtype=np.int16), "integer PCM"),
    (np.zeros(800, dtype=np.complex64), "float"),
])
def test_bad_input_offline(x, match):
    with pytest.raises(ValueError, match=match):
        wav2aud(x, FrontendConfig())


def test_bad_sample_rate_and_config():
    x = np.zeros(800)
    with pytest.raises(ValueError, match="load_audio"):
        wav2aud(x, FrontendConfig(), sr=44100)
    for sr in (0, -8000, 1e9, float("nan"), 8000.5):
        with pytest.raises(ValueError, match="sample rate|sr"):
            wav2aud(x, FrontendConfig(), sr=sr)
    assert wav2aud(x, FrontendConfig(), sr=8000).shape == (12, 128)
    with pytest.raises(ValueError, match="factor"):
        wav2aud(x, FrontendConfig(factor=-3))
    with pytest.raises(ValueError, match="mono"):
        CochlearStream().process(np.zeros((64, 2), np.float32))


def test_generated_filter_kernels_are_current():
    make_filter_kernels = load_tool("make_filter_kernels")

    for path, source in make_filter_kernels.generated().items():
        assert path.read_text() == source, \
            f"{path.name} is stale: run python tools/make_filter_kernels.py"


def test_group_delay_report_matches_scipy():
    from scipy.signal import group_delay

    from rtmirror.frontend.filterbank import center_frequencies, group_delay_samples

    cfg = FrontendConfig()
    reported = CochlearStream(cfg).group_delay_s
    assert reported.shape == (128,)
    for ch in (0, 20, 64, 127):
        _, gd = group_delay(channel_filter(ch), w=[center_frequencies(cfg.shift)[ch]], fs=cfg.sample_rate)
        assert abs(reported[ch] * cfg.sample_rate - gd[0]) < 1e-4 * gd[0]
    assert np.all(np.diff(group_delay_samples()[:128]) < 0.5)  # broadly: lower CF, longer delay


def test_stream_takes_any_float_layout():
    """float32/float64 blocks go to the kernel as they are; strided, byte-swapped and float16 blocks
    through a float64 copy: the same frames either way."""
    cfg = FrontendConfig(normalization="none")
    x = make_signal(cfg.sample_rate, 0.25).astype(np.float16)
    ref = wav2aud(x.astype(np.float64), cfg)
    for block in (x, x.astype(np.float32), x.astype(">f8"), np.repeat(x.astype(np.float32), 2)[::2]):
        stream = CochlearStream(cfg)
        got = np.concatenate([stream.process(block[i:i + 100], copy=True) for i in range(0, len(block), 100)])
        np.testing.assert_array_equal(got, ref)
