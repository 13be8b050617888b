"""Melody datasets: render -> read back, resume, crash safety, corruption errors, the CLI, amsynth."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from rtmirror.controls import ControlSpace
from rtmirror.frontend import FrontendConfig, wav2aud
from rtmirror.performer import events_to_frames
from rtmirror.synth import make_synth
from rtmirror.synth.dataset import DatasetConfig, DatasetError, MelodyDataset, read_manifest, render_dataset
from rtmirror.synth.melody import make_melody

AMSYNTH = "/usr/lib/vst/amsynth_vst.so"
FE = FrontendConfig()


def _inodes(d: Path) -> dict:
    return {p.name: p.stat().st_ino for p in sorted(d.glob("shard-*"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """6 exp1 paper melodies in 2 shards, rendered by 2 spawned workers."""
    d = tmp_path_factory.mktemp("tiny")
    cfg = DatasetConfig.make(synth="builtin", space="exp1", kind="paper", n=6, seed=7, shard_size=3)
    render_dataset(d, cfg, workers=2, progress=False)
    return d, cfg


def test_read_back_shapes_and_content(tiny):
    d, cfg = tiny
    ds = MelodyDataset(d, verify=True)
    K = len(ds.space)
    assert len(ds) == 6 and ds.space.names == ControlSpace.load("exp1").names and ds.frontend == FE
    man = read_manifest(d)
    assert man["complete"] and man["n_shards"] == 2 and man["synth"] == "builtin" and man["seed"] == 7
    assert man["frontend"] == FE.to_dict() and man["space"] == ControlSpace.load("exp1").to_dict()
    synth = make_synth("builtin", ds.space, sample_rate=FE.sample_rate)
    for i in range(len(ds)):
        it = ds[i]
        assert it["audio"].shape == (16000,) and it["audio"].dtype == np.float32
        assert it["spec"].shape == (250, 128) and it["spec"].dtype == np.float32
        assert it["controls"].shape == (250, K) and it["controls"].dtype == np.float32
        assert it["notes"].shape == (5, 4) and it["index"] == i
        assert isinstance(it["audio"], np.memmap) or isinstance(it["audio"].base, np.memmap)
        # the dataset is exactly its rule: melody i from rng([seed, i]), rendered, frontend, truth frames
        mel = make_melody("paper", np.random.default_rng([7, i]), ds.space, 2.0, frame_rate=FE.frame_rate)
        np.testing.assert_array_equal(it["notes"], mel.notes_array())
        np.testing.assert_array_equal(it["controls"], events_to_frames(mel.events, 250, ds.space, FE.frame_rate))
        if i < 2:
            x = synth.render(mel.events, 2.0)
            np.testing.assert_array_equal(it["audio"], x)
            np.testing.assert_array_equal(it["spec"], wav2aud(x, FE))
        assert np.abs(it["audio"]).max() > 1e-3   # not silent
    assert ds[-1]["index"] == 5
    with pytest.raises(IndexError):
        ds[6]
    assert ds.stack("spec").shape == (6, 250, 128)


def test_independent_of_sharding_and_workers(tiny, tmp_path):
    d, cfg = tiny
    one = replace(cfg, shard_size=6)
    render_dataset(tmp_path, one, workers=1, progress=False)
    a, b = MelodyDataset(d), MelodyDataset(tmp_path)
    for i in range(6):
        for k in ("audio", "spec", "controls", "notes"):
            np.testing.assert_array_equal(a[i][k], b[i][k])


def test_resume_skips_complete_shards_and_redoes_crashed(tiny, tmp_path):
    src, cfg = tiny
    d = tmp_path / "ds"
    cfg3 = replace(cfg, shard_size=2)
    render_dataset(d, cfg3, workers=1, progress=False)
    before = _inodes(d)
    render_dataset(d, cfg3, workers=1, progress=False)   # nothing to do: same shard directories
    assert _inodes(d) == before
    # a crash: shard 1 never moved into place, its temporary directory half written, manifest not final
    import shutil
    shutil.rmtree(d / "shard-00001")
    partial = d / ".tmp-shard-00001-999-deadbeef"
    partial.mkdir()
    (partial / "audio.npy").write_bytes(b"\x93NUMPY garbage")
    man = json.loads((d / "manifest.json").read_text())
    man["complete"] = False
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DatasetError, match="incomplete"):
        MelodyDataset(d)
    # a truncated file in shard 2 (e.g. disk trouble) is detected and redone too
    p = d / "shard-00002" / "spec.npy"
    p.write_bytes(p.read_bytes()[:-100])
    render_dataset(d, cfg3, workers=1, progress=False)
    after = _inodes(d)
    assert after["shard-00000"] == before["shard-00000"]
    assert not partial.exists()
    ds = MelodyDataset(d, verify=True)
    ref = MelodyDataset(src)
    for i in range(6):
        np.testing.assert_array_equal(ds[i]["spec"], ref[i]["spec"])


def test_errors_are_clear(tiny, tmp_path):
    src, cfg = tiny
    d = tmp_path / "ds"
    render_dataset(d, replace(cfg, n=2, shard_size=1), workers=1, progress=False)
    # another dataset into the same directory
    with pytest.raises(DatasetError, match="different dataset"):
        render_dataset(d, replace(cfg, n=2, shard_size=1, seed=8), workers=1, progress=False)
    # flipped bytes, same size: found by verify
    p = d / "shard-00001" / "audio.npy"
    raw = bytearray(p.read_bytes())
    raw[-5] ^= 0xFF
    p.write_bytes(bytes(raw))
    MelodyDataset(d)   # sizes still match
    with pytest.raises(DatasetError, match="checksum"):
        MelodyDataset(d, verify=True)
    # missing shard
    import shutil
    shutil.rmtree(d / "shard-00000")
    with pytest.raises(DatasetError, match="missing shard"):
        MelodyDataset(d)
    # corrupt / foreign / missing manifest
    (d / "manifest.json").write_text('{"format": "rtmirror-melody-dataset", "vers')
    with pytest.raises(DatasetError, match="corrupt manifest"):
        MelodyDataset(d)
    (d / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(DatasetError, match="not an rtmirror"):
        MelodyDataset(d)
    (d / "manifest.json").write_text(json.dumps({"format": "rtmirror-melody-dataset", "version": 99}))
    with pytest.raises(DatasetError, match="version"):
        MelodyDataset(d)
    with pytest.raises(DatasetError, match="no manifest"):
        MelodyDataset(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="corrupt manifest"):
        (d / "manifest.json").write_text("{")
        render_dataset(d, cfg, workers=1, progress=False)


def test_killed_run_resumes_to_the_same_dataset(tiny, tmp_path, capsys):
    """SIGKILL a real `rtmirror data render` mid-run: no corrupt shard; the rerun completes it."""
    d = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rtmirror", "data", "render", "--set", "exp1", "-n", "40", "--shard-size", "2",
           "--seed", "7", "--workers", "1", "--no-progress", "-o", str(d)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(d.glob("shard-*"))) < 3 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = sorted(d.glob("shard-*"))
    assert 3 <= len(shards) < 20, "the run was not caught mid-way"
    assert not read_manifest(d)["complete"]
    rc = subprocess.run(cmd, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    ds = MelodyDataset(d, verify=True)
    assert len(ds) == 40
    ref = MelodyDataset(tiny[0])
    for i in range(6):   # same seed and rule as the tiny set: identical melodies
        np.testing.assert_array_equal(ds[i]["audio"], ref[i]["audio"])
    assert not list(d.glob(".tmp-*"))
    # the info command validates it
    from rtmirror.cli import main
    assert main(["data", "info", str(d), "--verify"]) == 0
    assert "40 paper melodies" in capsys.readouterr().out


def test_general_kind_and_cli_errors(tmp_path):
    from rtmirror.cli import main
    d = tmp_path / "gen"
    assert main(["data", "render", "--set", "exp2", "--kind", "general", "-n", "2", "--duration", "3",
                 "--workers", "1", "--no-progress", "-o", str(d)]) == 0
    ds = MelodyDataset(d)
    assert ds[0]["controls"].shape == (375, 11) and ds[1]["audio"].shape == (24000,)
    gate = ds[0]["controls"][:, ds.space.index("gate")]
    assert 0 < gate.mean() < 1
    assert main(["data", "render", "--synth", "nosuch.so", "-n", "1", "--workers", "1", "--no-progress",
                 "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()   # nothing written for a synth that cannot load
    assert main(["data", "info", str(tmp_path / "nothing")]) == 2


@pytest.mark.vst
def test_amsynth_dataset(tmp_path):
    require(Path(AMSYNTH).is_file(), f"amsynth VST ({AMSYNTH}; apt: amsynth)")
    cfg = DatasetConfig.make(synth=AMSYNTH, space="exp1", kind="paper", n=2, seed=1, shard_size=2)
    render_dataset(tmp_path, cfg, workers=1, progress=False)
    ds = MelodyDataset(tmp_path, verify=True)
    assert ds.manifest["synth"] == AMSYNTH
    for i in range(2):
        it = ds[i]
        assert it["audio"].shape == (16000,) and it["spec"].shape == (250, 128)
        assert np.all(np.isfinite(it["audio"])) and np.abs(it["audio"]).max() > 1e-3
        # sound where the gate is on: spectrogram energy in gated frames exceeds the final silence
        gate = it["controls"][:, ds.space.index("gate")] > 0.5
        assert it["spec"][gate].mean() > it["spec"][-5:].mean()
