"""Shared fixtures: real system components (JACK dummy server, Xvfb) and the CI rule.

Under CI=true a test that needs a missing system component FAILS (a skip would hide a broken
install); locally it skips with the reason.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

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


class JackServer:
    """A real jackd with the dummy driver under a unique name; clients find it via env vars."""

    def __init__(self, rate: int = 16000, period: int = 128):
        self.name = f"rtm{uuid.uuid4().hex[:8]}"
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen | None = None

    def start(self) -> "JackServer":
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        return self

    def stop(self) -> None:
        if "sounddevice" in sys.modules:
            # PortAudio's JACK host API aborts the interpreter at exit (pa_jack.c Terminate
            # assertion) when its server is gone: re-initialize it without JACK first.
            from rtmirror.audio_io import forget_jack
            forget_jack()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.environ.pop("JACK_DEFAULT_SERVER", None)


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
