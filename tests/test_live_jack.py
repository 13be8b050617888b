"""The live path through a real JACK dummy server (16 kHz, 128-sample periods).

A JACK-Client player plays a melody rendered by the built-in voice into rtmirror's PortAudio
input; a JackMidiRecorder (RtMidi's JACK input in queue mode, drained by a thread: no Python in
the process cycle) records rtmirror's virtual MIDI port with JACK arrival frames. Checked: facts
that hold for any model (balanced notes, CCs in range, latched CCs before their note-on, the same
events as file mode for the audio the engine received), note onsets and latency with the probe
encoder, and the faults: input stream lost, MIDI port closed, SIGTERM.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from midi_checks import note_timeline, notes_balanced as balanced

from rtmirror.testing.jack import JackMidiRecorder as Recorder

pytestmark = pytest.mark.jack

SR = 16000


@pytest.fixture(scope="module")
def jack_env(jack_server, require_portaudio):
    from rtmirror import audio_io
    audio_io.rescan()       # PortAudio lists JACK only if the server ran when it initialized
    devs = [d for d in audio_io.list_input_devices() if "JACK" in d["hostapi"]]
    assert devs, "PortAudio does not list the JACK host API"
    yield devs[0]["index"]
    audio_io.forget_jack()   # else PortAudio aborts at exit once the session's server is gone


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from rtmirror.testing.probe import write_probe_model
    return write_probe_model(tmp_path_factory.mktemp("probe") / "probe.onnx")


def live_engine(device, model, virtual, **kw):
    from rtmirror.app import LiveOptions, build_engine
    return build_engine(LiveOptions(input=str(device), sample_rate=SR, input_channel=0, model=str(model),
                                    midi_api="jack", virtual=virtual, record_all=True,
                                    max_backlog_s=0.5, **kw),   # a loaded CI box must not drop
                        on_message=lambda m: None)


@pytest.mark.parametrize("which", ["probe", "shipped"])
def test_melody_through_jack(jack_env, probe, which):
    from rtmirror.testing.jack import JackPlayer
    from rtmirror.testing.probe import demo_audio
    from rtmirror.engine import Pipeline
    from rtmirror.cli.file import process
    from rtmirror.runtime import EncoderRuntime

    model = probe if which == "probe" else EncoderRuntime().path
    runtime = EncoderRuntime(model)
    audio, mel = demo_audio(runtime.space, 2.5, SR, seed=11)
    engine = live_engine(jack_env, model, f"rtm-{which}")
    player = JackPlayer(audio, name=f"player-{which}")
    rec = Recorder(f"rtm-{which}", name=f"rec-{which}")   # the port exists before start()
    engine.start()
    try:
        player.connect_to_portaudio()
        start = player.play()
        while not player.done:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        engine.stop()
        rec.wait_count(len(engine.messages))     # the last messages cross JACK within periods
        player.close()
        rec.close()
    assert engine.error is None, engine.error
    msgs = rec.messages
    sent = [m for _, m in engine.messages]
    assert msgs == sent                                   # JACK delivered everything, in order
    assert balanced(msgs) and msgs[-1] == (0xB0, 123, 0)
    assert all(0 <= b <= 127 for m in msgs for b in m[1:])

    # Latched CCs precede their note-on: a synth's CC state at each note-on holds exactly the
    # values the Performer latched for that note.
    latched = {a.cc: a.name for a in engine.midi.encoder.assignments if a is not None and runtime.space[a.name].latch}
    want, state, seen = [], {}, []
    pending = {}
    for e in engine.events:
        if e.kind == "control" and e.name in latched.values():
            pending[e.name] = round(e.value * 127)
        elif e.kind == "note_on":
            want.append({cc: pending.get(name) for cc, name in latched.items()})
    for m in msgs:
        if m[0] & 0xF0 == 0xB0:
            state[m[1]] = m[2]
        elif m[0] & 0xF0 == 0x90 and m[2] > 0:
            seen.append({cc: state.get(cc) for cc in latched})
    assert seen == want

    # The engine received the melody (bit-exact unless the loaded machine made JACK skip
    # periods) and, on exactly the audio it received, file mode gives the same events.
    received = np.concatenate(engine.input_blocks)
    lead = int(np.argmax(np.correlate(received[:len(audio) + SR], audio[:SR], "valid")))
    seg = received[lead:lead + len(audio)]
    assert np.corrcoef(seg[:len(audio)], audio[:len(seg)])[0, 1] > 0.9 or engine.source.overflows > 0
    offline = process(Pipeline(EncoderRuntime(model), SR), received, 4096)
    # Up to where the live engine stopped (its stop-time flush and file mode's end-of-file tail
    # differ by design: the live stream was cut, the file runs out).
    t_stop = engine.pipeline.performer.time
    live = [e for e in engine.events if e.time < t_stop]
    assert len(live) > 0
    assert [e for e in offline.events if e.time < t_stop] == live

    if which == "shipped":
        # The trained default against the melody's ground truth, on the live timeline (the
        # melody starts `lead` samples into the received stream): onsets and mid-note pitch.
        shift = lead / SR
        ons = np.array([e.time for e in live if e.kind == "note_on"])
        timeline = note_timeline(live)

        def note_at(t):
            current = None
            for tt, n in timeline:
                if tt <= t:
                    current = n
            return current

        notes = [n for n in mel.notes if n[1] + shift < t_stop]
        hit = sum(len(ons) > 0 and np.min(np.abs(ons - (on + shift))) <= 0.06 for on, *_ in notes)
        pitch_ok = sum(note_at((on + off) / 2 + shift) in (p - 1, p, p + 1) for on, off, p, _ in notes)
        print(f"\nshipped model through JACK: {hit}/{len(notes)} onsets within 60 ms, "
              f"{pitch_ok}/{len(notes)} mid-note pitches within 1 semitone")
        assert hit >= 0.7 * len(notes) and pitch_ok >= 0.7 * len(notes)

    if which == "probe":
        # Note-ons after silence land on the melody's onsets; latency = onset -> note-on arrival.
        on_frames = np.array([f for f, m in rec.got if m[0] & 0xF0 == 0x90 and m[2] > 0])
        lat = []
        for on, off, pitch, vel in mel.notes:
            onset_frame = start + round(on * SR)
            after = on_frames[on_frames >= onset_frame]
            if len(after) and after[0] - onset_frame < 0.5 * SR:
                lat.append((after[0] - onset_frame) / SR)
        assert len(lat) >= len(mel.notes) // 2, (lat, mel.notes)
        median = float(np.median(lat))
        print(f"\nJACK onset -> note-on latency (probe): median {1e3 * median:.1f} ms, "
              f"max {1e3 * max(lat):.1f} ms over {len(lat)} notes")
        assert median < 0.25          # generous: shared CI machines; docs/bench/live.md has the numbers


def test_input_stream_lost_mid_note(jack_env, probe):
    engine = live_engine(jack_env, probe, "rtm-lost")
    engine.snapshot.set_hold("gate", 1.0)
    engine.snapshot.set_hold("pitch", 0.4)
    rec = Recorder("rtm-lost", name="rec-lost")
    engine.start()
    try:
        assert rec.wait_for(lambda m: m[0] == 0x90)
        engine.source.abort()                            # the stream dies as on device loss
        assert engine.join(5.0)
        rec.wait_count(len(engine.messages))
    finally:
        engine.stop()
        rec.close()
    assert engine.error and "audio input lost" in engine.error
    assert rec.messages[-2:] == [(0x80, 60, 0), (0xB0, 123, 0)]
    assert "all notes off" in engine.snapshot.message


def jack_ports(pattern: str) -> list[str]:
    import jack
    client = jack.Client("port-lister", no_start_server=True)
    try:
        return [p.name for p in client.get_ports(pattern)]
    finally:
        client.close()


def test_an_input_that_fails_to_open_leaves_no_midi_port(jack_env, probe, tmp_path):
    """No leaked MIDI port (and no note sent) whether the input fails while the engine is
    assembled (unknown device: no port is even opened) or when it opens (a rate the JACK server
    does not run at): the caller does not have to clean up."""
    with pytest.raises(LookupError, match="no input device matches"):
        live_engine("no-such-microphone", probe, "rtm-leak-a")
    assert jack_ports("rtm-leak-a") == []
    from rtmirror.app import LiveOptions, build_engine
    engine = build_engine(LiveOptions(input=str(jack_env), sample_rate=44100, model=str(probe), midi_api="jack",
                                      virtual="rtm-leak-b", record=str(tmp_path / "x.mid")),
                          on_message=lambda m: None)
    assert len(jack_ports("rtm-leak-b")) == 1
    with pytest.raises(Exception):
        engine.start()                  # PortAudio's JACK host runs only at the server's rate
    assert jack_ports("rtm-leak-b") == []
    assert not engine.running and engine.midi.sent <= 1          # at most the All Notes Off


@pytest.mark.parametrize("stop_on_loss", [False, True])
def test_midi_port_closed(jack_env, probe, stop_on_loss):
    import rtmidi
    synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="fake-synth")
    synth.open_virtual_port("synth-in")
    engine = live_engine(jack_env, probe, "unused", port="synth-in", stop_on_port_loss=stop_on_loss)
    engine.snapshot.set_hold("gate", 1.0)
    engine.start()
    try:
        t0 = time.monotonic()
        while not any(m[0] & 0xF0 == 0x90 for _, m in engine.messages) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        synth.close_port()
        del synth
        t0 = time.monotonic()
        while "disappeared" not in engine.snapshot.message and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert "disappeared" in engine.snapshot.message
        if stop_on_loss:
            assert engine.join(5.0)                      # stopped by itself
        else:
            frames = engine.pipeline.frames
            t0 = time.monotonic()
            while engine.pipeline.frames <= frames and time.monotonic() - t0 < 5:
                time.sleep(0.05)
            assert engine.running and engine.pipeline.frames > frames   # still processing audio
    finally:
        engine.stop()
    if stop_on_loss:
        assert "--stop-on-port-loss" in engine.error
    else:
        assert engine.error is None
    assert balanced([m for _, m in engine.messages])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_live_with_all_notes_off(jack_env, probe, tmp_path, sig):
    import soundfile as sf
    t = np.arange(SR * 20) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    tone[(t % 1.5) < 0.5] = 0.0     # a note every 1.5 s: the recorder may connect after the first one
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone, SR)
    name = f"rtm-sig{int(sig)}"
    proc = subprocess.Popen([sys.executable, "-m", "rtmirror", "live", "--no-gui", "--wav", str(wav),
                             "--model", str(probe), "--midi-api", "jack", "--virtual", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    rec = None
    try:
        import rtmidi
        probe_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="sig-probe")
        t0 = time.monotonic()
        # a cold Numba cache compiles the cochlear kernel first (~30 s of CPU on a loaded machine)
        while not any(name in p for p in probe_in.get_ports()) and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        assert any(name in p for p in probe_in.get_ports()), "live never opened its MIDI port"
        del probe_in
        rec = Recorder(name, name=f"rec-sig{int(sig)}")
        if not rec.wait_for(lambda m: m[0] & 0xF0 == 0x90 and m[2] > 0, timeout=20):
            proc.kill()
            out, err = proc.communicate(timeout=20)
            pytest.fail(f"no note-on in 20 s; received {rec.messages[:20]}; live said:\n{out}\n{err}")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        rec.wait_for(lambda m: m == (0xB0, 123, 0), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        if rec is not None:
            rec.close()
    assert proc.returncode == 0, err
    msgs = rec.messages
    # the recorder connected while the process was already playing: check from its first note-on
    first_on = next(i for i, m in enumerate(msgs) if m[0] & 0xF0 == 0x90 and m[2] > 0)
    assert balanced(msgs[first_on:]) and msgs[-1] == (0xB0, 123, 0)
    assert "all notes off" in err and "Traceback" not in err


def test_demo_melody_sends_to_the_virtual_port(jack_env, tmp_path):
    """With a JACK server and no MIDI API named, the demo opens the virtual port 'rtmirror'."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["RTMIRROR_MIDI_API"] = ""
    p = subprocess.run([sys.executable, "-m", "rtmirror", "demo", "--melody", "--fast", "--no-gui",
                        "--seconds", "2", "--out", str(tmp_path / "d.mid")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if not os.path.exists("/dev/snd/seq"):
        assert "virtual port 'rtmirror' (jack)" in p.stderr
    assert (tmp_path / "d.mid").stat().st_size > 0 and "All Notes Off" in p.stdout


def test_ports_lists_and_learn_sweeps_one_cc(jack_env):
    """`rtmirror ports` lists JACK MIDI ports; `--learn` sweeps one control's CC for MIDI learn."""
    import rtmidi
    synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="learner")
    synth.open_virtual_port("learn-in")
    got = []
    synth.set_callback(lambda msg, _: got.append(tuple(msg[0])))
    try:
        p = subprocess.run([sys.executable, "-m", "rtmirror", "ports", "--midi-api", "jack"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "learner:learn-in" in p.stdout
        p = subprocess.run([sys.executable, "-m", "rtmirror", "ports", "--midi-api", "jack", "--learn",
                            "VCF1: Resonance", "--port", "learn-in", "--seconds", "1.5"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        time.sleep(0.1)
    finally:
        synth.close_port()
    assert len(got) > 20 and {m[:2] for m in got} == {(0xB0, 71)}
    values = [m[2] for m in got]
    assert min(values) <= 5 and max(values) >= 60          # a ramp the synth can learn from


def test_input_device_by_name_index_and_errors(jack_env):
    from rtmirror.audio_io import MicInput, find_input_device, list_input_devices
    jack_devs = [d for d in list_input_devices() if "JACK" in d["hostapi"]]
    name = jack_devs[0]["name"]
    assert find_input_device(name) == jack_env
    assert find_input_device(str(jack_env)) == jack_env
    with pytest.raises(LookupError, match="no input device matches"):
        find_input_device("no-such-microphone")
    with pytest.raises(LookupError, match="no input device with index"):
        find_input_device("999")
    with pytest.raises(ValueError, match="input channels"):
        MicInput(jack_env, SR, channel=99)
