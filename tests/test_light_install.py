"""The light install: `pip install .` in a clean venv (no torch, no Qt) runs the live app's
console commands, and a command that needs an extra says which in one line."""
from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory):
    env_dir = tmp_path_factory.mktemp("light") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # a copy of the tree, so the build writes nothing into the checkout
    src = tmp_path_factory.mktemp("src") / "rtmirror"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "datasets", "runs",
                                                             "checkpoints", "*.egg-info", "build"))
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return env_dir


def _run(env_dir, *args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run([str(env_dir / "bin" / "rtmirror"), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.mark.slow
def test_light_install_runs_file_and_demo_without_torch(light_venv, tmp_path):
    py = light_venv / "bin" / "python"
    for absent in ("torch", "PyQt6", "dawdreamer"):
        r = subprocess.run([str(py), "-c", f"import {absent}"], capture_output=True)
        assert r.returncode != 0, f"{absent} is installed by the light install"
    sr = 16000
    t = np.arange(sr) / sr
    x = np.concatenate([np.zeros(sr // 4), 0.3 * np.sin(2 * np.pi * 330 * t), np.zeros(sr // 4)]).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, sr)
    r = _run(light_venv, "file", "in.wav", "-o", "out.mid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out.mid").stat().st_size > 0
    r = _run(light_venv, "demo", "--melody", "--fast", "--no-gui", "--seconds", "3", "--out", "demo.mid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "demo.mid").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("command", [["train", "tiny"], ["export", "x", "-o", "y.onnx"], ["eval"], ["gui"]])
def test_a_missing_extra_is_one_line(light_venv, tmp_path, command):
    r = _run(light_venv, *command, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'rtmirror[" in lines[0], r.stderr
