"""Every way to stop a live run, through a real JACK dummy server, in subprocesses.

Each test starts `rtmirror live` (or `rtmirror gui` under QT_QPA_PLATFORM=offscreen) on a WAV of
tone bursts (a note sounds 1 s in every 1.5 s) with the probe encoder and a JACK virtual MIDI
port, records that port with a JackMidiRecorder, stops the process mid-note one way or another,
and checks: every note-on the recorder saw was closed and All Notes Off (CC 123) came last, the
process exited within a bound, and the `--record` file is a readable, balanced MIDI file. Also:
SIGKILL mid-take leaves a readable file with all but the last second, the JACK server dying
under the process (MIDI only, and audio input + MIDI) ends it within a bound with a clear
message, and a synth port that goes away and comes back mid-note gets that note closed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from midi_checks import notes_balanced as balanced

from rtmirror.testing.jack import JackMidiRecorder as Recorder

pytestmark = pytest.mark.jack

SR = 16000
BOUND_S = 12.0          # a stop request -> process gone (rtmirror.cli.live.STOP_BOUND_S is 10 s)
NOTE_ON = 0x90


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from rtmirror.testing.probe import write_probe_model
    return write_probe_model(tmp_path_factory.mktemp("probe") / "probe.onnx")


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory):
    import soundfile as sf
    t = np.arange(SR * 40) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    tone[(t % 1.5) < 0.5] = 0.0          # 0.5 s silence, 1 s note
    path = tmp_path_factory.mktemp("wav") / "tones.wav"
    sf.write(path, tone, SR)
    return path


def is_on(m) -> bool:
    return m[0] & 0xF0 == NOTE_ON and m[2] > 0


def live_cmd(command, wav, probe, name, *extra):
    wav_arg = ["--wav", str(wav)] if command == "live" else [str(wav)]
    gui = ["--no-gui"] if command == "live" else []
    return ([sys.executable, "-m", "rtmirror", command, *gui, *wav_arg, "--model", str(probe),
             "--midi-api", "jack", "--virtual", name, *extra])


def wait_port(name: str, proc, timeout: float = 120.0) -> None:
    import rtmidi
    probe_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="stop-probe")
    try:
        t0 = time.monotonic()
        # a cold Numba cache compiles the cochlear kernel first (~30 s of CPU on a loaded machine)
        while time.monotonic() - t0 < timeout and proc.poll() is None:
            if any(name in p for p in probe_in.get_ports()):
                return
            time.sleep(0.05)
    finally:
        probe_in.delete()
    out, err = proc.communicate(timeout=20) if proc.poll() is not None else ("", "")
    pytest.fail(f"the process never opened its MIDI port {name!r} (rc {proc.poll()}):\n{out}\n{err}")


def start_and_hear_a_note(cmd, name, env=None):
    """Start the process, connect a recorder to its port, wait for a note-on: (proc, recorder)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or dict(os.environ))
    rec = None
    try:
        wait_port(name, proc)
        rec = Recorder(name, name=f"rec-{name}")
        if not rec.wait_for(is_on, timeout=20):
            proc.kill()
            out, err = proc.communicate(timeout=20)
            pytest.fail(f"no note-on in 20 s; received {rec.messages[:20]}; it said:\n{out}\n{err}")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if rec is not None:
            rec.close()
        raise
    return proc, rec


def stop_and_wait(proc, rec, how):
    """Stop it (a signal number or a callable), then (seconds to exit, stdout, stderr)."""
    t0 = time.monotonic()
    if callable(how):
        how()
    else:
        proc.send_signal(how)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - t0
    if rec is not None:
        rec.wait_for(lambda m: m == (0xB0, 123, 0), timeout=3)
        rec.close()
    return elapsed, out, err


def file_messages(path) -> list[tuple]:
    import mido
    return [tuple(m.bytes()) for m in mido.MidiFile(path).tracks[0] if not m.is_meta]


def check_port_closed_everything(rec_msgs):
    """From the recorder's first note-on (it connected mid-run): balanced, CC 123 last."""
    first = next(i for i, m in enumerate(rec_msgs) if is_on(m))
    assert balanced(rec_msgs[first:]), rec_msgs[-10:]
    assert rec_msgs[-1] == (0xB0, 123, 0), rec_msgs[-10:]


def check_take(path, rec_msgs=None):
    """The --record file: readable, every note closed, All Notes Off last; and (what the port
    delivered is the tail of what was sent) the recorder's messages are the file's last ones."""
    msgs = file_messages(path)
    assert any(is_on(m) for m in msgs)
    assert balanced(msgs) and msgs[-1] == (0xB0, 123, 0), msgs[-10:]
    if rec_msgs:
        assert msgs[-len(rec_msgs):] == rec_msgs
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.endswith(".tmp")]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
def test_signal_mid_note_closes_notes_and_keeps_the_take(jack_server, probe, tone_wav, tmp_path, sig):
    signum = getattr(signal, sig)
    name = f"rtm-stop-{sig.lower()}"
    take = tmp_path / "take.mid"
    proc, rec = start_and_hear_a_note(live_cmd("live", tone_wav, probe, name, "--record", str(take)), name)
    elapsed, out, err = stop_and_wait(proc, rec, signum)
    assert proc.returncode == 0, err[-3000:]
    assert elapsed < BOUND_S, f"{sig}: {elapsed:.1f} s to exit"
    assert "all notes off" in err and "Traceback" not in err, err[-3000:]
    check_port_closed_everything(rec.messages)
    check_take(take, rec.messages)


@pytest.mark.parametrize("how", ["SIGINT", "SIGHUP", "close"])
def test_signal_or_close_ends_the_window_with_all_notes_off(jack_server, probe, tone_wav, tmp_path, how):
    """Ctrl-C (or a closed terminal) while `rtmirror gui` runs: the window closes, its engine
    sends note-offs + All Notes Off, the process exits (Qt's C++ event loop used to swallow
    it). "close": the window closes itself (--quit-after, MainWindow.close) with a note likely on."""
    pytest.importorskip("PyQt6")
    name = f"rtm-gui-{how.lower()}"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    extra = ["--quit-after", "8"] if how == "close" else []
    proc, rec = start_and_hear_a_note(live_cmd("gui", tone_wav, probe, name, "--record-dir", str(tmp_path),
                                               *extra), name, env)
    elapsed, out, err = stop_and_wait(proc, rec, (lambda: None) if how == "close" else getattr(signal, how))
    assert proc.returncode == 0, err[-3000:]
    assert elapsed < BOUND_S, f"{how}: {elapsed:.1f} s to exit"
    assert "Traceback" not in err, err[-3000:]
    check_port_closed_everything(rec.messages)


def test_ctrl_c_stops_the_demo_melody_with_all_notes_off(jack_server, probe, tmp_path):
    """`rtmirror demo` (console: no display) playing its melody through the engine: Ctrl-C."""
    out_mid = tmp_path / "demo.mid"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc, rec = start_and_hear_a_note([sys.executable, "-m", "rtmirror", "demo", "--melody", "--no-gui",
                                       "--seconds", "30", "--model", str(probe), "--midi-api", "jack",
                                       "--out", str(out_mid)], "rtmirror:rtmirror", env)
    elapsed, out, err = stop_and_wait(proc, rec, signal.SIGINT)
    assert proc.returncode == 0, err[-3000:]
    assert elapsed < BOUND_S and "Traceback" not in err, err[-3000:]
    check_port_closed_everything(rec.messages)
    check_take(out_mid, rec.messages)


def test_sigkill_mid_take_leaves_a_readable_file_with_all_but_the_last_second(jack_server, probe, tone_wav,
                                                                             tmp_path):
    name = "rtm-stop-kill"
    take = tmp_path / "take.mid"
    proc, rec = start_and_hear_a_note(live_cmd("live", tone_wav, probe, name, "--record", str(take)), name)
    time.sleep(1.0)
    early = rec.messages                      # everything that had reached the synth by now ...
    time.sleep(1.2)                           # ... is more than a second old at the kill
    elapsed, out, err = stop_and_wait(proc, rec, signal.SIGKILL)
    assert early and any(is_on(m) for m in early)
    msgs = file_messages(take)                # readable (mido raises on a broken file)
    n = len(early)
    runs = [i for i in range(len(msgs) - n + 1) if msgs[i:i + n] == early]
    assert runs, f"the file lacks what was sent more than a second before the kill: {msgs[-20:]} vs {early[-20:]}"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


class PrivateJack:
    """A JACK dummy server of our own (killed by the test), kept out of this process's env."""

    def __init__(self, log_dir):
        self.name = f"rtmdead{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        self.log = open(os.path.join(log_dir, "jackd.log"), "w+")
        self.proc = subprocess.Popen(["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(SR),
                                      "-p", "128"], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=self.env)
        p = subprocess.run(["jack_wait", "-w", "-t", "20"], env=self.env, capture_output=True, text=True)
        if p.returncode != 0:
            self.kill()
            self.log.seek(0)
            raise RuntimeError(f"private jackd did not come up (rc {self.proc.returncode}): {p.stdout}{p.stderr}\n"
                               f"{self.log.read()[-2000:]}")

    def kill(self):
        """The server goes away under its clients. SIGTERM, not SIGKILL: the clients see the same
        (libjack's shutdown notice, dead sockets; measured: PortAudio's abort blocks either way),
        but a SIGKILLed jackd never frees its slot in JACK's server registry (8 slots, machine
        wide, reclaimed only by a server of the same name): a few runs would leave no JACK
        server startable on the machine ("Too many servers already active")."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.mark.parametrize("source", ["wav", "jack-input"])
def test_jack_server_death_ends_the_run_within_a_bound(jack_server, require_portaudio, probe, tone_wav,
                                                       tmp_path, source):
    """JACK goes away mid-note (jackd stopped, see PrivateJack.kill): with a WAV the MIDI port is gone, with the JACK audio
    input the stream too (PortAudio's abort then blocks forever): either way the process says
    so and exits 1 within the bound, and the --record file is complete and balanced."""
    server = PrivateJack(tmp_path)
    take = tmp_path / "take.mid"
    name = f"rtm-dead-{source}"
    cmd = live_cmd("live", tone_wav, probe, name, "--record", str(take))
    if source == "jack-input":
        cmd = [c for c in cmd if c not in ("--wav", str(tone_wav))] + ["--input", "system", "--sample-rate", str(SR)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env)
    try:
        t0 = time.monotonic()
        seen = False
        while time.monotonic() - t0 < 120 and proc.poll() is None:
            if source == "jack-input":
                seen = take.exists() or seen   # silence in: no note, but the take has started
                if seen and time.monotonic() - t0 > 3:
                    break
            elif take.exists():
                try:
                    seen = any(is_on(m) for m in file_messages(take))
                except Exception:
                    pass
                if seen:
                    break
            time.sleep(0.1)
        if not seen or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the run never got going (rc {proc.poll()}):\n{proc.communicate(timeout=20)[1][-3000:]}")
        elapsed, out, err = stop_and_wait(proc, None, server.kill)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    assert elapsed < BOUND_S, f"{elapsed:.1f} s to exit after the JACK server died:\n{err[-3000:]}"
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "Assertion" not in err, err[-3000:]
    clear = "JACK server stopped" in err or "audio input lost" in err
    assert clear, err[-3000:]
    msgs = file_messages(take)
    assert balanced(msgs) and msgs[-1] == (0xB0, 123, 0)
    if source == "wav":
        assert any(is_on(m) for m in msgs)


def test_synth_port_gone_and_back_mid_note_gets_the_note_closed(jack_server, probe, tmp_path):
    """The synth's port closes while a note sounds, the note ends while it is away (that note-off
    never reaches it), the port comes back: it gets note-off + All Notes Off for that note."""
    import rtmidi
    import soundfile as sf

    from rtmirror.app import LiveOptions, build_engine

    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(SR * 30, np.float32), SR)

    def synth():
        s = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="comeback-synth")
        s.open_virtual_port("comeback-in")
        return s

    def drain(s, into):
        while (m := s.get_message()) is not None:
            into.append(tuple(m[0]))

    def wait(cond, timeout=10.0):
        t0 = time.monotonic()
        while not cond() and time.monotonic() - t0 < timeout:
            time.sleep(0.02)
        return cond()

    first, second = [], []
    s1 = synth()
    engine = build_engine(LiveOptions(wav=str(wav), model=str(probe), midi_api="jack", port="comeback-in",
                                      record_all=True, max_backlog_s=0.5), on_message=lambda m: None)
    engine.snapshot.set_hold("gate", 1.0)
    engine.snapshot.set_hold("pitch", 0.4)               # MIDI 60
    engine.start()
    s2 = None
    try:
        assert wait(lambda: drain(s1, first) or any(is_on(m) and m[1] == 60 for m in first))
        s1.close_port()
        s1.delete()
        assert wait(lambda: "disappeared" in engine.snapshot.message)
        engine.snapshot.set_hold("gate", 0.0)            # the note ends while the synth is away
        assert wait(lambda: (0x80, 60, 0) in [m for _, m in engine.messages])
        s2 = synth()
        assert wait(lambda: "reconnected" in engine.snapshot.message)
        assert wait(lambda: drain(s2, second) or ((0x80, 60, 0) in second and (0xB0, 123, 0) in second)), second
    finally:
        engine.stop()
        if s2 is not None:
            s2.close_port()
    assert engine.error is None
    assert not balanced(first)                           # the first connection was left with note 60 on
    assert (0x80, 60, 0) not in first
    i_off, i_all = second.index((0x80, 60, 0)), second.index((0xB0, 123, 0))
    assert i_off < i_all and not any(is_on(m) for m in second[:i_off])


def test_listener_gone_and_back_mid_note_gets_the_note_off_again(jack_server, probe, tmp_path):
    """Our virtual port stays; the synth listening to it disconnects while a note sounds, the note
    ends while nobody listens, the synth connects again: the note-off it missed is re-sent."""
    import soundfile as sf

    from rtmirror.app import LiveOptions, build_engine

    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(SR * 30, np.float32), SR)

    def wait(cond, timeout=10.0):
        t0 = time.monotonic()
        while not cond() and time.monotonic() - t0 < timeout:
            time.sleep(0.02)
        return cond()

    engine = build_engine(LiveOptions(wav=str(wav), model=str(probe), midi_api="jack", virtual="rtm-relisten",
                                      record_all=True, max_backlog_s=0.5), on_message=lambda m: None)
    port = engine.midi.outputs[0]
    assert port.jack_port and port.jack_port.endswith(":rtm-relisten")
    engine.start()
    r1 = Recorder("rtm-relisten", name="relisten-1")
    r2 = None
    try:
        time.sleep(0.7)                                   # a port check sees the listener
        engine.snapshot.set_hold("gate", 1.0)
        engine.snapshot.set_hold("pitch", 0.4)            # MIDI 60
        assert r1.wait_for(lambda m: m[:2] == (0x90, 60))
        r1.close()                                        # the synth disconnects mid-note
        time.sleep(0.7)                                   # a port check sees nobody listening
        engine.snapshot.set_hold("gate", 0.0)             # the note ends while nobody listens
        assert wait(lambda: (0x80, 60, 0) in [m for _, m in engine.messages])
        r2 = Recorder("rtm-relisten", name="relisten-2")
        assert r2.wait_for(lambda m: m == (0x80, 60, 0), timeout=5), r2.messages
    finally:
        engine.stop()
        if r2 is not None:
            r2.wait_for(lambda m: m == (0xB0, 123, 0), timeout=3)
            r2.close()
    assert engine.error is None
    assert (0x80, 60, 0) not in r1.messages              # the first connection never saw it end
    got = r2.messages
    assert not any(is_on(m) for m in got[:got.index((0x80, 60, 0))]) and got[-1] == (0xB0, 123, 0)
