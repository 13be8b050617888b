"""Shared fixtures: real system components (JACK dummy server, Xvfb) and the CI rule.

Under CI=true a test that needs a missing system component FAILS (a skip would hide a broken
install); locally it skips with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from rtmirror.testing.jack import JackServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, what: str) -> None:
    """Skip locally / fail under CI when a system component is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required system component is missing: {what}", pytrace=False)
    pytest.skip(f"missing system component: {what}")


def _portaudio_ok() -> bool:
    try:
        import sounddevice  # noqa: F401
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def require_portaudio():
    require(_portaudio_ok(), "PortAudio (apt: libportaudio2)")


@pytest.fixture(scope="session")
def jack_server():
    """A JACK dummy server at 16 kHz / 128-sample periods for the whole session."""
    require(shutil.which("jackd") is not None and shutil.which("jack_wait") is not None,
            "JACK (apt: jackd2)")
    server = JackServer().start()
    time.sleep(0.2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def xvfb_display():
    """A real X server (Xvfb) for Qt's xcb platform; yields the DISPLAY string."""
    require(shutil.which("Xvfb") is not None, "Xvfb (apt: xvfb)")
    display = f":{90 + os.getpid() % 800}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = f"/tmp/.X{display[1:]}-lock"
    for _ in range(100):
        if os.path.exists(lock):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    yield display
    proc.terminate()
    proc.wait(timeout=10)
