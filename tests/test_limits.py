"""Limits checked before anything is allocated, and configs range-checked: the audio reader, the
frontend / performer / CC map / training configs, the modes of replaced files, a refused resume."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import soundfile as sf

from rtmirror.audio_file import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_audio_header, read_audio


def _wav_header(rate: int, n_bytes: int, channels: int = 1, bits: int = 8) -> bytes:
    """A canonical PCM WAV header announcing n_bytes of sample data."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
            + b"data" + struct.pack("<I", n_bytes))


@pytest.mark.parametrize("seed", range(3))
def test_header_rate_outside_the_range_is_refused_inside_is_read(tmp_path, seed):
    rng = np.random.default_rng(seed)
    rates = np.concatenate([rng.integers(1, 2**31 - 1, 6), [MIN_SAMPLE_RATE - 1, MIN_SAMPLE_RATE,
                                                           MAX_SAMPLE_RATE, MAX_SAMPLE_RATE + 1]])
    for rate in rates:
        p = tmp_path / f"r{rate}.wav"
        p.write_bytes(_wav_header(int(rate), 800) + bytes(800))
        if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            x, sr = read_audio(p)
            assert sr == rate and x.shape == (800,)
        else:
            with pytest.raises(ValueError, match=rf"{p.name}: the header says {rate} Hz, outside"):
                read_audio(p)


def test_a_long_file_is_refused_from_its_header(tmp_path):
    """4 h 10 min at 4 kHz, 8-bit: a 60 MB sparse file; refused by the header, nothing read."""
    n = 4000 * (4 * 3600 + 600)
    p = tmp_path / "long.wav"
    with open(p, "wb") as f:
        f.write(_wav_header(4000, n))
        f.truncate(44 + n)
    assert check_audio_header(p, max_seconds=5 * 3600)[0] == n
    with pytest.raises(ValueError, match="over the 14400 s limit; cut it"):
        read_audio(p)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(3200, np.float32), 16000)
    with pytest.raises(ValueError, match="--wav .*short.wav: 0 s long, over the 0 s limit"):
        read_audio(short, max_seconds=0.1, what="--wav")


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_mono_mix_equals_the_mean_of_the_channels(tmp_path, channels):
    rng = np.random.default_rng(channels)
    x = rng.uniform(-0.9, 0.9, (70_001, channels)).astype(np.float32)   # > one read block
    p = tmp_path / "x.wav"
    sf.write(p, x, 44100, subtype="FLOAT")
    mono, sr = read_audio(p)
    ref, _ = sf.read(p, dtype="float32", always_2d=True)
    assert sr == 44100
    np.testing.assert_allclose(mono, ref.mean(axis=1), rtol=0, atol=1e-7)


def test_empty_nonfinite_folder_missing(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    x = np.zeros(100, np.float32)
    x[50] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    (tmp_path / "dir.wav").mkdir()
    for name, match in [("empty.wav", "no audio samples"), ("inf.wav", "non-finite"),
                        ("dir.wav", "not a file"), ("none.wav", "no such file"), ]:
        with pytest.raises(ValueError, match=match):
            read_audio(tmp_path / name)


def test_frontend_config_ranges():
    from rtmirror.frontend.config import FrontendConfig
    d = FrontendConfig().to_dict()
    assert FrontendConfig.from_dict(d) == FrontendConfig()
    for key, bad in [("n_channels", 129), ("n_channels", True), ("frame_ms", float("inf")), ("frame_ms", 1e9),
                     ("frame_ms", "8"), ("tc_ms", -1.0), ("tc_ms", float("nan")), ("shift", 1.5),
                     ("shift", 3), ("factor", -3), ("agc_tau_s", 0.0), ("agc_max_gain", float("inf")),
                     ("agc_target_rms", 2.0)]:
        with pytest.raises(ValueError, match=key):
            FrontendConfig.from_dict({**d, key: bad})


def test_performer_from_dict_types_and_ranges():
    from rtmirror.performer import PerformerConfig
    d = PerformerConfig().to_dict()
    assert PerformerConfig.from_dict(d) == PerformerConfig()
    for key, value in d.items():
        bad = 1 if isinstance(value, bool) else "x"
        with pytest.raises(ValueError, match=key):
            PerformerConfig.from_dict({key: bad})
    for key, bad in [("onset_settle_frames", 10_000), ("default_velocity", 128), ("bend_range", float("inf"))]:
        with pytest.raises(ValueError, match=key):
            PerformerConfig.from_dict({key: bad})


def test_level_gate_ranges():
    from rtmirror.level_gate import LevelGateConfig
    for kw in ({"open_dbfs": 50.0, "close_dbfs": 40.0}, {"noise_min_dbfs": -1e9}, {"margin_db": -1.0}):
        with pytest.raises(ValueError):
            LevelGateConfig(**kw)


@pytest.mark.parametrize("text, match", [
    ('[controls."VCF1: Frequency"]\ncc = "74"\n', "cc must be an integer"),
    ('[controls."VCF1: Frequency"]\ncc = 74.0\n', "cc must be an integer"),
    ('[controls."VCF1: Frequency"]\ncc = 74\nhires = 1\n', "hires must be true or false"),
    ('controls = 3\n', "controls must be a table"),
    ('[midi]\nmax_rate_hz = 1e9\n', "max_rate_hz must be"),
    ('[midi]\nthreshold = inf\n', "threshold must be"),
    ('[midi]\nbend_range = 0\n', "bend_range must be"),
    ('[midy]\n', "unknown sections"),
])
def test_cc_map_types_are_checked_and_name_the_file(tmp_path, text, match):
    from rtmirror.midi.ccmap import CCMap
    p = tmp_path / "map.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        CCMap.load(p)
    assert str(info.value).startswith(str(p)) and "\n" not in str(info.value)


def test_training_config_every_range_is_checked(tmp_path):
    pytest.importorskip("torch")
    from rtmirror.models.train.config_check import RANGES
    from rtmirror.models.train.trainer import load_config

    def refused(toml: str, match: str) -> None:
        p = tmp_path / "c.toml"
        p.write_text(toml)
        with pytest.raises(ValueError, match=match) as info:
            load_config(p)
        assert str(info.value).startswith(str(p)) and "\n" not in str(info.value)

    for (section, key), (lo, hi, integer) in RANGES.items():
        for bad in (hi * 2 + 1, lo - 1, '"1"'):
            body = f"{key} = {bad}\n" if section is None else f"[{section}]\n{key} = {bad}\n"
            refused(body, key)
    refused(f"threads = {(os.cpu_count() or 1) + 1}\n", "threads must be an integer in \\[1, ")
    refused("threads = 100000\n", "threads")
    refused('name = "../x"\n', "name must be")
    refused("threadz = 1\n", "unknown config key 'threadz' \\(known: .*'threads'")
    refused("[frontend]\nframe_ms = inf\n", "frame_ms")
    refused("[performer]\ngate_on = \"high\"\n", "gate_on")
    refused("[checkpoint\n", "not valid TOML")


def test_replaced_outputs_keep_their_mode_new_ones_get_the_umask(tmp_path):
    import mido

    from rtmirror.cli import main
    mid = tmp_path / "in.mid"
    mf = mido.MidiFile()
    mf.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                                     mido.Message("note_off", note=60, time=240)]))
    mf.save(str(mid))
    new, kept = tmp_path / "new.wav", tmp_path / "kept.wav"
    kept.write_bytes(b"old")
    kept.chmod(0o444)
    mask = os.umask(0o022)
    try:
        assert main(["render", str(mid), "-o", str(new)]) == 0
        assert main(["render", str(mid), "-o", str(kept)]) == 0
    finally:
        os.umask(mask)
    assert new.stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o444 and kept.read_bytes()[:4] == b"RIFF"


def test_a_refused_train_leaves_the_run_folder_alone(tmp_path, capsys):
    pytest.importorskip("torch")
    from rtmirror.cli import main
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "model.safetensors").write_bytes(b"weights")
    (run / "checkpoint" / "config.json").write_text(json.dumps({"train_config": {"name": "other", "seed": 5}}))
    (run / "config.json").write_text("the run's own config\n")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for extra in ([], ["--resume"]):
        assert main(["train", "tiny", "--out", str(run), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(run / "checkpoint") in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
