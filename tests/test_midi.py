"""MIDI: encoder rules (note bookkeeping, thresholds, rate caps, latch order, 14-bit, bend),
the CC map file, the MIDI file and CSV sinks, API choice, and a real JACK MIDI port."""
from __future__ import annotations

import csv
import os
import time

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmirror.midi.ccmap import CCMap
from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event, sorted_events
from rtmirror.midi import (
    CC_ALL_NOTES_OFF, ControlsCsv, MidiEncoder, MidiFileRecorder, MidiOut, PortOutput, choose_api, describe,
)
from rtmirror.performer import Performer
from midi_checks import balanced

SPACE = ControlSpace.load("live")


note_events = st.lists(st.tuples(st.sampled_from([NOTE_ON, NOTE_OFF]), st.integers(58, 62)), max_size=40)


@settings(max_examples=25, deadline=None)
@given(note_events)
def test_every_note_on_gets_its_note_off(seq):
    enc = MidiEncoder(SPACE)
    events = [Event(i * 0.01, kind, note=n, velocity=90) for i, (kind, n) in enumerate(seq)]
    msgs = enc.encode(events)
    msgs += enc.close_notes(1.0)
    assert balanced(msgs)
    assert not enc.sounding


def test_panic_sends_note_offs_then_all_notes_off():
    enc = MidiEncoder(SPACE, channel=3)
    enc.encode([Event(0.0, NOTE_ON, note=60, velocity=100)])
    msgs = [m for _, m in enc.panic(0.5)]
    assert msgs == [(0x83, 60, 0), (0xB3, CC_ALL_NOTES_OFF, 0)]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=5, max_size=200), st.floats(10.0, 125.0))
def test_cc_threshold_rate_cap_and_newest_value_wins(values, rate):
    cmap = CCMap.from_dict({"midi": {"threshold": 0.02, "max_rate_hz": rate}})
    enc = MidiEncoder(SPACE, cmap, cc_in_silence=True)   # the cap alone (no note sounds here)
    name = "VCF1: Frequency"
    msgs = []
    for i, v in enumerate(values):
        t = i / 125
        msgs += enc.encode([Event(t, CONTROL, name=name, value=v)])
        msgs += enc.tick(t)
    t_end = len(values) / 125 + 1.0
    msgs += enc.tick(t_end)
    times = np.array([t for t, m in msgs if m[1] == 74])
    assert (np.diff(times) >= 1 / rate - 1e-9).all()
    wire = [m[2] for _, m in msgs if m[1] == 74]
    assert all(0 <= w <= 127 for w in wire)
    # The synth ends within the threshold of the last value (nothing stays held back).
    assert abs(wire[-1] / 127 - values[-1]) <= 0.02 + 0.5 / 127
    # Consecutive sends differ by at least the threshold (minus quantization).
    assert all(abs(a - b) / 127 >= 0.02 - 1 / 127 for a, b in zip(wire, wire[1:]))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=60), st.floats(5.0, 62.5))
def test_close_flushes_cc_values_the_rate_cap_held_back(values, rate):
    """Stopping right after the last frame: the synth still ends on the final control value (the
    cap's held-back value goes out on close), before the note-offs and All Notes Off."""
    cmap = CCMap.from_dict({"midi": {"threshold": 0.01, "max_rate_hz": rate}})
    name = "VCF1: Frequency"
    out = MidiOut(MidiEncoder(SPACE, cmap), [])
    times = np.arange(len(values)) / 125
    events = [Event(0.0, NOTE_ON, note=60, velocity=90)]
    events += [Event(t, CONTROL, name=name, value=v) for t, v in zip(times, values)]
    msgs = out.send_frames(events, times)
    closing = out.close(float(times[-1]))
    wire = [m[2] for _, m in msgs + closing if m[0] == 0xB0 and m[1] == 74]
    assert abs(wire[-1] / 127 - values[-1]) <= 0.01 + 0.5 / 127
    # Order on close: held-back CCs, then the note-off, then All Notes Off last.
    tail = [m for _, m in closing]
    assert tail[-2:] == [(0x80, 60, 0), (0xB0, CC_ALL_NOTES_OFF, 0)]
    assert all(m[0] == 0xB0 and m[1] == 74 for m in tail[:-2])
    assert balanced(msgs + closing)


def test_latched_controls_precede_their_note_on_and_skip_the_rate_cap():
    """Replaying the messages into a synth's CC state: at every note-on the latched knobs hold
    exactly the values the Performer latched for that note, although the cap is 1 msg/s."""
    cmap = CCMap.from_dict({"midi": {"max_rate_hz": 1.0}})
    enc = MidiEncoder(SPACE, cmap)
    perf = Performer(SPACE, frame_rate=125.0)
    rng = np.random.default_rng(0)
    msgs, expected = [], []                       # expected: per note-on, {cc: wire value}
    latched = {a.name: a.cc for a in enc.assignments if a is not None and SPACE[a.name].latch}
    for i in range(400):
        frame = rng.uniform(0, 1, len(SPACE))
        frame[SPACE.role_index("gate")] = 1.0 if (i // 40) % 2 == 0 else 0.0
        events = sorted_events(perf.step(frame))
        pending = {}
        for ev in events:
            if ev.kind == CONTROL and ev.name in latched:
                pending[latched[ev.name]] = round(ev.value * 127)
            if ev.kind == NOTE_ON:
                expected.append(dict(pending))
        msgs += enc.encode(events)
    msgs += enc.encode(perf.flush()) + enc.close_notes(10.0)
    state, seen = {}, []
    for _, m in msgs:
        if m[0] & 0xF0 == 0xB0:
            state[m[1]] = m[2]
        elif m[0] & 0xF0 == 0x90 and m[2] > 0:
            seen.append({cc: state.get(cc) for cc in latched.values()})
    assert len(seen) == len(expected) >= 4
    assert all(set(e) == set(latched.values()) for e in expected)
    assert seen == expected
    assert balanced(msgs)


silence_streams = st.lists(
    st.tuples(st.sampled_from(["on", "off", "cc", "cc", "cc"]), st.floats(0.0, 1.0), st.floats(0.0, 0.4)),
    min_size=1, max_size=120)


@settings(max_examples=40, deadline=None)
@given(silence_streams, st.floats(0.0, 1.0))
def test_no_ccs_while_nothing_sounds_and_the_note_gets_the_newest_values(seq, release):
    """Random streams of notes, rests and knob moves: no CC goes out once no note has sounded
    for `release` s, and at every note-on the synth already holds the newest value of every knob
    (within the threshold), as if the CCs had been streaming all along."""
    cmap = CCMap.from_dict({"midi": {"threshold": 0.01, "max_rate_hz": 1000.0}})
    enc = MidiEncoder(SPACE, cmap, release_s=release)
    names = ["VCF1: Frequency", "VCF1: Resonance"]
    ccs = {n: a.cc for n in names for a in enc.assignments if a is not None and a.name == n}
    t, newest, msgs, checks = 0.0, {}, [], []
    for what, x, dt in seq:
        t += dt
        if what == "on":
            ev = Event(t, NOTE_ON, note=60 + int(x * 12), velocity=90)
            checks.append(dict(newest))             # what the synth must hold at this note-on
        elif what == "off":
            ev = Event(t, NOTE_OFF, note=60 + int(x * 12))
        else:
            name = names[int(x * 1000) % 2]
            newest[ccs[name]] = x
            ev = Event(t, CONTROL, name=name, value=x)
        msgs += enc.encode([ev]) + enc.tick(t)
    before_note = np.zeros(len(msgs), bool)        # CCs right before a note-on at the same time
    for j in range(len(msgs) - 2, -1, -1):
        (tm, m), (tn, n) = msgs[j], msgs[j + 1]
        before_note[j] = m[0] & 0xF0 == 0xB0 and tn == tm and (n[0] & 0xF0 == 0x90 or before_note[j + 1])
    sounding, last_off, state, ons = set(), -np.inf, {}, 0
    for j, (tm, m) in enumerate(msgs):              # replay into a synth
        kind = m[0] & 0xF0
        if kind == 0x90:
            for cc, v in checks[ons].items():
                assert abs(state[cc] / 127 - v) <= 0.01 + 0.5 / 127
            sounding.add(m[1])
            ons += 1
        elif kind == 0x80:
            sounding.discard(m[1])
            if not sounding:
                last_off = tm
        elif kind == 0xB0:
            assert sounding or before_note[j] or tm - last_off < release + 1e-9, f"CC {m} at {tm:.3f} s in silence"
            state[m[1]] = m[2]
    assert ons == len(checks)


def test_ccs_in_silence_when_asked_or_held():
    """`cc_in_silence` streams knob moves with nothing sounding; without it only a knob the user
    holds (`forced`) goes out."""
    name, t = "VCF1: Frequency", np.arange(50) * 0.008
    for flag in (False, True):
        enc = MidiEncoder(SPACE, cc_in_silence=flag)
        msgs = [m for i, x in enumerate(t) for m in enc.encode([Event(x, CONTROL, name=name, value=i / 50)])]
        assert bool(msgs) == flag
    enc = MidiEncoder(SPACE)
    enc.forced[SPACE.names.index(name)] = True
    msgs = [m for x in t for m in enc.encode([Event(x, CONTROL, name=name, value=x)])
            + enc.encode([Event(x, CONTROL, name="VCF1: Resonance", value=x)])]
    assert {m[1][1] for m in msgs} == {74}


def test_14_bit_msb_lsb_and_pitch_bend():
    cmap = CCMap.from_dict({"midi": {"bend_range": 2.0},
                            "controls": {"VCF1: Frequency": {"cc": 1, "hires": True}}})
    enc = MidiEncoder(SPACE, cmap, cc_in_silence=True)
    msgs = [m for _, m in enc.encode([Event(0.0, CONTROL, name="VCF1: Frequency", value=0.3),
                                      Event(0.0, PITCH_BEND, value=1.0),
                                      Event(0.1, PITCH_BEND, value=-5.0)])]
    msb, lsb = msgs[0], msgs[1]
    assert (msb[1], lsb[1]) == (1, 33)
    assert (msb[2] << 7 | lsb[2]) == round(0.3 * 16383)
    assert msgs[2] == (0xE0, 0, 96)                 # +1 of 2 semitones: 8192 + 4096 = 12288
    assert msgs[3] == (0xE0, 0, 0)                  # clipped to the bottom
    assert "pitch bend +4096" in describe(msgs[2])


def test_cc_map_default_and_errors(tmp_path):
    cmap = CCMap.load()
    ccs = {a.name: a.cc for a in cmap.for_space(ControlSpace.load("exp2")) if a is not None}
    assert ccs == {"OSC: Volume2": 7, "VCF1: Frequency": 74, "VCF1: Resonance": 71, "ENV1: Attack": 73,
                   "ENV1: Decay": 75, "LFO1: Rate": 76, "OSC: Vibrato": 77, "LFO1: Phase": 78}
    with pytest.raises(ValueError, match="both"):
        CCMap.from_dict({"controls": {"VCF1: Frequency": {"cc": 7}}}).for_space(SPACE)
    with pytest.raises(ValueError, match="lsb_cc"):
        CCMap.from_dict({"controls": {"VCF1: Frequency": {"cc": 74, "hires": True}}})
    with pytest.raises(ValueError, match="unknown"):
        CCMap.from_dict({"controls": {"VCF1: Frequency": {"cc": 74, "cutoff": 1}}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[midi\nthreshold=")
    with pytest.raises(ValueError, match="TOML"):
        CCMap.load(bad)
    with pytest.raises(FileNotFoundError):
        CCMap.load(tmp_path / "missing.toml")


def test_midi_file_has_tempo_and_exact_times(tmp_path):
    path = tmp_path / "out.mid"
    rec = MidiFileRecorder(path)
    out = MidiOut(MidiEncoder(SPACE), [rec])
    events = [Event(0.0, CONTROL, name="VCF1: Frequency", value=0.5),
              Event(0.104, NOTE_ON, note=60, velocity=80), Event(0.52, NOTE_OFF, note=60),
              Event(0.52, NOTE_ON, note=64, velocity=90)]
    out.send(events, 0.52)
    out.close(1.0)                                  # closes note 64 + All Notes Off, writes the file
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    mid = mido.MidiFile(path)
    assert mid.ticks_per_beat == 960
    assert any(m.type == "set_tempo" and m.tempo == 500000 for m in mid.tracks[0])
    t, got = 0.0, []
    for m in mid:                                   # mido converts ticks with the tempo map
        t += m.time
        if not m.is_meta:
            got.append((round(t, 3), m.type, getattr(m, "note", getattr(m, "control", None))))
    # The knob set in silence goes out right before the first note-on, not at 0.0.
    assert got == [(0.104, "control_change", 74), (0.104, "note_on", 60), (0.52, "note_off", 60),
                   (0.52, "note_on", 64), (1.0, "note_off", 64), (1.0, "control_change", 123)]


def test_controls_csv_roundtrip(tmp_path):
    path = tmp_path / "c.csv"
    sink = ControlsCsv(path, SPACE.names)
    frames = np.random.default_rng(1).uniform(0, 1, (10, len(SPACE))).astype(np.float32)
    sink.write(np.arange(10) / 125, frames)
    sink.close()
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["time_s"] + SPACE.names
    np.testing.assert_allclose(np.array(rows[1:], float)[:, 1:], frames, atol=1e-5)
    np.testing.assert_allclose(np.array(rows[1:], float)[:, 0], np.arange(10) / 125, atol=1e-4)


def test_broken_output_is_reported_and_others_keep_going(tmp_path):
    class Broken:
        def send(self, t, m):
            raise OSError("port gone")

        def close(self):
            pass

    rec = MidiFileRecorder(tmp_path / "x.mid")
    out = MidiOut(MidiEncoder(SPACE), [Broken(), rec])
    out.send([Event(0.0, NOTE_ON, note=60, velocity=80)], 0.0)
    out.close(0.5)
    assert out.errors and "port gone" in out.errors[0]
    assert balanced(rec.messages)


def test_choose_api_explicit_and_default(monkeypatch):
    with pytest.raises(ValueError, match="unknown MIDI API"):
        choose_api("bogus")
    monkeypatch.setenv("RTMIRROR_MIDI_API", "bogus")
    with pytest.raises(ValueError):
        choose_api()
    monkeypatch.delenv("RTMIRROR_MIDI_API")
    # With no JACK server reachable, Linux falls back to ALSA only where /dev/snd/seq exists.
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "rtmirror-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    import rtmidi
    api = choose_api()
    if os.path.exists("/dev/snd/seq"):
        assert api == rtmidi.API_LINUX_ALSA
    else:
        assert api is None
        with pytest.raises(RuntimeError, match="JACK server"):
            choose_api("jack")


def _recv(midi_in, n_expected, timeout=5.0):
    """Up to n_expected messages, waiting at most `timeout` (generous: loaded CI machines)."""
    got, t0 = [], time.monotonic()
    while len(got) < n_expected and time.monotonic() - t0 < timeout:
        m = midi_in.get_message()
        if m is None:
            time.sleep(0.002)
        else:
            got.append(tuple(m[0]))
    return got


def _wait_until(cond, timeout=5.0):
    """Poll cond() until it returns something truthy (returned) or the timeout (last value)."""
    t0 = time.monotonic()
    while not (value := cond()) and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    return value


def _jack_connected(observer, port_substring: str, timeout=5.0) -> bool:
    """Wait until the JACK MIDI port whose name contains port_substring has a connection that
    the process cycles use. JACK lists a new connection before the running graph has switched
    to it (measured under load: the first messages after connect were lost in 3 of 16 tries),
    so after it is listed wait three periods of the server's own frame clock as well (0 of 16).
    No Python process callback for this: a late one would itself make the graph drop events."""
    def listed():
        ports = [p for p in observer.get_ports(is_midi=True) if port_substring in p.name]
        return len(ports) == 1 and bool(observer.get_all_connections(ports[0]))

    if not _wait_until(listed, timeout):
        return False
    f0 = observer.last_frame_time
    return bool(_wait_until(lambda: observer.last_frame_time - f0 >= 3 * observer.blocksize, timeout))


@pytest.mark.jack
def test_jack_virtual_port_and_port_loss(jack_server):
    """Waits on JACK's own state (connection made, port gone/back, message arrived) instead of
    fixed sleeps: messages sent before a connection is in place are lost, not late."""
    import jack
    import rtmidi
    assert choose_api() == rtmidi.API_UNIX_JACK or os.path.exists("/dev/snd/seq")
    api = choose_api("jack")
    observer = jack.Client("midi-test-observer", no_start_server=True)
    try:
        # virtual port: a recorder connects to it
        virt = PortOutput(api, virtual="rtmirror-test")
        rec = rtmidi.MidiIn(api, name="recorder")
        ports = rec.get_ports()
        rec.open_port([i for i, p in enumerate(ports) if "rtmirror-test" in p][0], "in")
        assert _jack_connected(observer, "rtmirror-test")
        out = MidiOut(MidiEncoder(SPACE), [virt])
        out.send([Event(0.0, NOTE_ON, note=60, velocity=99)], 0.0)
        out.close(0.1)
        assert _recv(rec, 3) == [(0x90, 60, 99), (0x80, 60, 0), (0xB0, 123, 0)]
        rec.close_port()
        del rec

        # connected port: it disappears, is reported, comes back, is reconnected
        synth = rtmidi.MidiIn(api, name="fakesynth")
        synth.open_virtual_port("synth-in")
        conn = PortOutput(api, port="synth-in")
        assert conn.check() is None
        assert _jack_connected(observer, "synth-in")
        conn.send(0.0, (0xB0, 74, 5))
        assert _recv(synth, 1) == [(0xB0, 74, 5)]
        synth.close_port()
        del synth
        msg = _wait_until(conn.check)
        assert msg and "disappeared" in msg and conn.lost
        conn.send(0.0, (0xB0, 74, 6))                   # silently skipped, no exception
        synth = rtmidi.MidiIn(api, name="fakesynth")
        synth.open_virtual_port("synth-in")
        msg = _wait_until(conn.check)
        assert msg and "reconnected" in msg and not conn.lost
        assert _jack_connected(observer, "synth-in")
        conn.send(0.0, (0xB0, 74, 7))
        assert _recv(synth, 1) == [(0xB0, 74, 7)]       # 6 was never delivered: only 7 arrives
        assert _recv(synth, 1, timeout=0.2) == []
        conn.close()
        synth.close_port()
    finally:
        observer.close()


def test_alsa_virtual_port_roundtrip_or_clear_refusal():
    """Where the ALSA sequencer exists (users' Linux machines), it is the default API and a
    virtual port delivers notes + All Notes Off. Where it does not (containers, CI machines),
    the default must not pick ALSA (rtmidi's own default would, and fail) and asking for it
    explicitly gives a clear error."""
    import rtmidi
    if not os.path.exists("/dev/snd/seq"):
        assert choose_api() != rtmidi.API_LINUX_ALSA
        with pytest.raises(RuntimeError, match="'alsa' is not usable"):
            choose_api("alsa")
        return
    api = choose_api()
    assert api == rtmidi.API_LINUX_ALSA
    virt = PortOutput(api, virtual="rtmirror-alsa-test")
    rec = rtmidi.MidiIn(api, name="recorder")
    ports = rec.get_ports()
    rec.open_port([i for i, p in enumerate(ports) if "rtmirror-alsa-test" in p][0])
    out = MidiOut(MidiEncoder(SPACE), [virt])
    out.send([Event(0.0, NOTE_ON, note=64, velocity=70)], 0.0)
    out.close(0.1)
    assert _recv(rec, 3) == [(0x90, 64, 70), (0x80, 64, 0), (0xB0, 123, 0)]
    rec.close_port()
