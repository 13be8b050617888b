"""The one atomic-write helper: all or nothing, modes kept, unchanged media left alone."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from rtmirror.fileio import atomic_write, save_npy_atomic, write_if_changed, write_json_atomic


def test_an_exception_mid_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "take.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write("half")
            raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["take.json"]     # no temp litter


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_a_replaced_file_keeps_its_mode(tmp_path, mode):
    p = tmp_path / "x.json"
    p.write_text("{}")
    os.chmod(p, mode)
    write_json_atomic(p, {"a": 1})
    assert stat.S_IMODE(os.stat(p).st_mode) == mode
    assert json.loads(p.read_text()) == {"a": 1}


def test_a_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_npy_atomic(tmp_path / "a.npy", np.arange(3))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.npy").st_mode) == 0o644
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]


def test_nan_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "m.json", {"x": float("nan")})
    assert not (tmp_path / "m.json").exists()


def test_write_if_changed_leaves_identical_bytes_alone(tmp_path):
    p = tmp_path / "fig.png"
    assert write_if_changed(p, b"abc")
    before = os.stat(p).st_mtime_ns
    assert not write_if_changed(p, b"abc")
    assert os.stat(p).st_mtime_ns == before
    assert write_if_changed(p, b"abd") and p.read_bytes() == b"abd"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_write(tmp_path / "no" / "x.txt") as f:
            f.write("x")


def test_file_mode_refuses_to_write_over_its_input(tmp_path, capsys):
    import soundfile as sf

    from rtmirror.cli import main

    wav = tmp_path / "take.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    before = wav.read_bytes()
    (tmp_path / "link.wav").symlink_to(wav)
    for argv in (["file", str(wav), "-o", str(wav)],
                 ["file", str(wav), "-o", str(tmp_path / "link.wav")],
                 ["file", str(wav), "-o", str(tmp_path / "x.mid"), "--controls", str(tmp_path / "x.mid")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "same file" in err and "Traceback" not in err
    assert wav.read_bytes() == before
