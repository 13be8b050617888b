"""Rooms and microphones (rtmirror/synth/augment.py): RT60 of the room IRs, SNR as asked,
levels in range, determinism, config validation."""
from __future__ import annotations

import numpy as np
import pytest

from rtmirror.synth.augment import (AugmentConfig, augment, augment_parts, colored_noise, mains_hum,
                                    room_ir, rt60_of)

SR = 8000


@pytest.mark.parametrize("rt60", [0.2, 0.5, 0.8, 1.2])
def test_room_ir_has_the_rt60_asked(rt60):
    for seed in range(3):
        ir = room_ir(rt60, SR, np.random.default_rng(seed), drr_db=0.0, predelay_s=0.01)
        assert ir[0] == 1.0 and np.all(np.isfinite(ir))
        assert rt60_of(ir, SR) == pytest.approx(rt60, rel=0.1)


def test_drr():
    for drr in (-6.0, 0.0, 12.0):
        ir = room_ir(0.6, SR, np.random.default_rng(1), drr_db=drr)
        assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(drr, abs=1e-6)


def _tone(seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(4 * SR) / SR
    return (0.5 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) * (t > 0.3) * (t < 3.0)).astype(np.float32)


def test_snr_and_level_as_drawn():
    cfg = AugmentConfig(enabled=True, noise_prob=1.0, hum_prob=0.5)
    for seed in range(20):
        sig, noise, info = augment_parts(_tone(seed), SR, cfg, np.random.default_rng(seed))
        snr = 10 * np.log10(np.mean(sig**2) / np.mean(noise**2))
        assert 15.0 <= info["snr_db"] <= 40.0 and snr == pytest.approx(info["snr_db"], abs=1e-6)
        peak_db = 20 * np.log10(np.max(np.abs(sig + noise)))
        assert -45.0 <= info["level_dbfs"] <= -6.0 and peak_db == pytest.approx(info["level_dbfs"], abs=1e-4)


def test_deterministic_from_the_seed_and_random_across_seeds():
    cfg = AugmentConfig(enabled=True)
    x = _tone()
    a = augment(x, SR, cfg, np.random.default_rng([5, 1]))
    np.testing.assert_array_equal(a, augment(x, SR, cfg, np.random.default_rng([5, 1])))
    assert not np.allclose(a, augment(x, SR, cfg, np.random.default_rng([5, 2])))
    assert a.dtype == np.float32 and a.shape == x.shape and np.all(np.isfinite(a))


def test_reverb_lengthens_the_tail():
    cfg = AugmentConfig(enabled=True, reverb_prob=1.0, rt60_s=(1.0, 1.0), drr_db=(0.0, 0.0), noise_prob=0.0,
                        eq_prob=0.0)
    x = _tone()
    y = augment(x, SR, cfg, np.random.default_rng(0))
    after = slice(int(3.1 * SR), int(3.4 * SR))     # the dry tone stopped at 3.0 s
    assert np.max(np.abs(x[after])) == 0 and np.sqrt(np.mean(y[after] ** 2)) > 1e-3 * np.max(np.abs(y))


def test_noise_colours_and_hum():
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(SR * 4, 1 / SR)
    for alpha in (0.0, 1.0, 2.0):
        p = np.abs(np.fft.rfft(colored_noise(SR * 4, alpha, rng))) ** 2
        lo, hi = p[(f > 50) & (f < 200)].mean(), p[(f > 2000) & (f < 3500)].mean()
        slope = np.log10(hi / lo) / np.log10(2750 / 125)
        assert slope == pytest.approx(-alpha, abs=0.3)
    h = mains_hum(SR * 4, SR, rng)
    p = np.abs(np.fft.rfft(h)) ** 2
    f0 = f[np.argmax(p)]
    assert np.std(h) == pytest.approx(1.0) and (f0 % 50 < 1e-6 or f0 % 60 < 1e-6)


def test_config_validation():
    for bad in ({"rt60_s": [1.0, 0.5]}, {"snr_db": [10.0]}, {"noise_prob": 1.5}, {"level_dbfs": [-10.0, 3.0]},
                {"rt60_s": [0.0, 1.0]}, {"enabled": 1}, {"room": 1}):
        with pytest.raises(ValueError, match="augment"):
            AugmentConfig.from_dict(bad)
    cfg = AugmentConfig.from_dict({"enabled": True, "rt60_s": [0.3, 0.9]})
    assert cfg.rt60_s == (0.3, 0.9) and AugmentConfig.from_dict(cfg.to_dict()) == cfg
