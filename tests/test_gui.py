"""The desktop window on Qt's offscreen platform, fed by the real engine from a WAV file.

Widgets (spectrogram ring, frequency axis, knob, piano roll), then the window with the real
engine: spectrogram columns and knob values match what the engine produced and sent, a blocked
GUI thread does not stop MIDI, pickers list JACK ports, panic reaches a JACK MIDI input,
record-to-MIDI writes a playable file.
"""
from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"   # before any QApplication exists

import gc
import math
import time

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pytestqt")

from rtmirror.midi.ccmap import CCMap  # noqa: E402
from rtmirror.controls import ControlSpace  # noqa: E402
from rtmirror.frontend.filterbank import center_frequencies  # noqa: E402
from rtmirror.gui import widgets  # noqa: E402
from rtmirror.app import LiveOptions  # noqa: E402
from rtmirror.gui.window import GuiConfig, MainWindow, RecordTap  # noqa: E402

SPACE = ControlSpace.load("live")
CC_STATUS = 0xB0


@pytest.fixture(scope="module")
def melody_wav(tmp_path_factory):
    """A real melody (general melody through the built-in voice), 16 kHz mono, ~4 s."""
    import soundfile as sf

    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import general_melody

    mel = general_melody(np.random.default_rng(7), SPACE, duration_s=4.0)
    x = make_synth("builtin", SPACE, sample_rate=16000).render(mel.events, mel.duration_s)
    x = 0.5 * x / max(1e-9, float(np.abs(x).max()))
    path = tmp_path_factory.mktemp("gui") / "melody.wav"
    sf.write(path, x, 16000)
    return path


@pytest.fixture(scope="module")
def dense_wav(tmp_path_factory):
    """4 s of back-to-back notes (a new pitch every 0.15 s, no rests) with a moving filter: any
    model, trained or not, has something to send all the time."""
    import soundfile as sf

    from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event, sorted_events
    from rtmirror.synth import make_synth

    rng = np.random.default_rng(5)
    events, t = [], 0.0
    while t < 3.9:
        note = int(rng.integers(50, 75))
        events += [Event(t, CONTROL, name="VCF1: Frequency", value=float(rng.uniform(0.3, 0.7))),
                   Event(t, NOTE_ON, note=note, velocity=100), Event(t + 0.14, NOTE_OFF, note=note)]
        t += 0.15
    x = make_synth("builtin", SPACE, sample_rate=16000).render(sorted_events(events), 4.0)
    path = tmp_path_factory.mktemp("gui") / "dense.wav"
    sf.write(path, 0.5 * x / max(1e-9, float(np.abs(x).max())), 16000)
    return path


@pytest.fixture(scope="module")
def themed(qapp):
    from rtmirror.gui.app import apply_dark_theme
    apply_dark_theme(qapp)
    return qapp


@pytest.fixture
def keep(themed):
    """Register widgets to delete at teardown, here in the GUI thread.

    A top-level widget belongs to its Python wrapper; if the wrapper died in a garbage
    collection that happened to run on the engine's worker thread, Qt would delete the widget
    from that thread while the GUI thread paints it (a crash). So every widget a test makes is
    closed (stopping its engine) and deleted deterministically, and cycles are collected here.
    """
    from PyQt6 import sip

    made = []
    yield lambda w: made.append(w) or w
    for w in made:
        if not sip.isdeleted(w):
            w.close()
            sip.delete(w)
    gc.collect()


def make_window(keep, **kw) -> MainWindow:
    """A window; keywords that name LiveOptions fields (no_midi: no_port) go into its options."""
    from dataclasses import fields

    from rtmirror.app import LiveOptions

    if "no_midi" in kw:
        kw["no_port"] = kw.pop("no_midi")
    live = {f.name for f in fields(LiveOptions)}
    opts = LiveOptions(**{k: kw.pop(k) for k in list(kw) if k in live})
    kw.setdefault("autostart", False)
    win = keep(MainWindow(GuiConfig(live=opts, **kw)))
    win.resize(1280, 820)
    win.show()
    return win


def wait_running(qtbot, win, frames: int = 60, timeout_ms: int = 30000):
    qtbot.waitUntil(lambda: win.engine is not None and win.engine.snapshot.spec_count >= frames, timeout=timeout_ms)


# -- widgets ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec_view(themed):
    """One view for all examples (Qt widgets are deleted here, in the GUI thread, not by a
    garbage collection that could run on the engine's worker thread)."""
    view = widgets.SpectrogramView(center_frequencies(-1)[:128], frame_rate=125.0, history_s=2.0)
    yield view
    from PyQt6 import sip
    view.close()
    sip.delete(view)
    gc.collect()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=8), st.integers(0, 2**31 - 1))
def test_spectrogram_view_shows_the_newest_columns_oldest_first(spec_view, chunks, seed):
    rng = np.random.default_rng(seed)
    view = spec_view
    view.reset()
    n = view.n_cols
    pushed = np.zeros((0, 128), np.float32)
    for size in chunks:
        cols = rng.random((size, 128), dtype=np.float32)
        view.push(cols)
        pushed = np.concatenate([pushed, cols])
    view.redraw()
    expect = np.zeros((n, 128), np.float32)
    tail = pushed[-n:]
    expect[n - len(tail):] = tail
    np.testing.assert_array_equal(view.image_item.image, expect)
    assert np.shares_memory(view.image_item.image, view._image)   # the preallocated buffer, no copy
    assert view.columns_pushed == len(pushed)


def test_spectrogram_axis_is_log_frequency_in_hz(themed, qtbot, keep):
    cfs = center_frequencies(-1)[:128]                     # NSL: 440 * 2**((k - 31)/24 - 1)
    view = widgets.SpectrogramView(cfs, frame_rate=125.0)
    keep(view)
    ticks = dict((label, pos) for pos, label in view.plot.getAxis("left")._tickLevels[0])
    assert "1k" in ticks and "200" in ticks
    # 24 channels per octave: 1 kHz and 2 kHz... 200 Hz -> 1 kHz is log2(5) octaves apart.
    assert ticks["1k"] - ticks["200"] == pytest.approx(24 * math.log2(5), abs=1e-6)
    k = int(ticks["1k"])                                   # the channel under the tick
    assert cfs[k] <= 1000 <= cfs[k + 1]
    # fixed levels, moved only by the gain control
    assert view.image_item.levels[1] == pytest.approx(view.full_scale)
    view.set_gain_db(20)
    assert view.image_item.levels[1] == pytest.approx(view.full_scale / 10)


def test_knob_shows_physical_value_and_cc_and_holds(themed, qtbot, keep):
    ctrl = SPACE["VCF1: Frequency"]                        # exp 20 Hz .. 20 kHz, CC 74
    knob = widgets.Knob(ctrl, 74)
    keep(knob)
    knob.set_value(0.6)
    assert knob.title.text() == "VCF1: Frequency"
    assert knob.dest_label.text() == "CC 74"
    assert knob.value_label.text() == f"{ctrl.to_physical(0.6) / 1000:.2f} kHz"
    seen = []
    knob.holdChanged.connect(lambda *a: seen.append(a))
    qtbot.mouseClick(knob.hold_button, widgets.QtCore.Qt.MouseButton.LeftButton)
    assert seen == [("VCF1: Frequency", True, pytest.approx(0.6))]
    knob.set_value(0.1)                                    # the engine moves on; the held knob does not
    assert knob.value == pytest.approx(0.6) and knob.live_value == pytest.approx(0.1)
    knob.dial.wheelEvent(_wheel(120))                      # held: the mouse sets the frozen value
    assert seen[-1][1] is True and seen[-1][2] == pytest.approx(0.62)
    knob.hold_button.click()
    assert seen[-1][:2] == ("VCF1: Frequency", False)
    assert knob.value == pytest.approx(0.1)                # released: follows the engine again
    assert widgets.Knob(SPACE["pitch"]).dest_label.text() == "note number"
    assert widgets.format_physical(SPACE["ENV1: Attack"], 0.2) == f"{SPACE['ENV1: Attack'].to_physical(0.2) * 1000:.3g} ms"


def _wheel(dy: int):
    from PyQt6 import QtCore, QtGui
    return QtGui.QWheelEvent(QtCore.QPointF(5, 5), QtCore.QPointF(5, 5), QtCore.QPoint(0, 0), QtCore.QPoint(0, dy),
                             QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                             QtCore.Qt.ScrollPhase.NoScrollPhase, False)


def test_piano_roll_keeps_only_the_visible_span(themed, qtbot, keep):
    roll = widgets.PianoRoll(span_s=5.0)
    keep(roll)
    roll.set_notes([(60, 0.0, 1.0, 100), (62, 4.0, 6.0, 90), (64, 9.5, None, 80)], now_s=10.0)
    assert [n[0] for n in roll.visible()] == [62, 64]
    roll.resize(400, 100)
    img = roll.grab().toImage()
    assert img.width() == 400                              # paints without error
    assert widgets.note_name(60) == "C4" and widgets.note_name(69) == "A4"


# -- the window with the real engine ----------------------------------------------------------
def test_window_builds_with_the_models_controls(themed, qtbot, keep):
    win = make_window(keep, no_midi=True)
    space = win.runtime.space
    assert [k.control.name for k in win._knobs] == space.names
    ccs = CCMap.load().for_space(space)
    for knob, a in zip(win._knobs, ccs):
        if a is not None:
            assert knob.dest_label.text() == f"CC {a.cc}"
    text = win.manifest_label.text()
    for name in space.names:
        assert name in text
    assert f"{win.runtime.frontend.sample_rate} Hz" in text and win.runtime.manifest["synth"] in text
    assert win.port_names()[-1].startswith("no MIDI output")
    assert not win.load_model("/nonexistent/model.onnx")   # a bad model: clear message, old one kept
    assert "cannot load" in win.manifest_label.text() and win.runtime is not None


def test_window_fed_by_the_engine_shows_its_columns_and_values(themed, qtbot, keep, melody_wav, tmp_path):
    win = make_window(keep, wav=str(melody_wav), no_midi=True, record_dir=str(tmp_path))
    assert win.input_names()[0] == f"file: {melody_wav.name}"
    win.record_button.click()                              # record what is sent, from the start
    assert win.start()
    engine = win.engine
    wait_running(qtbot, win, frames=250)
    qtbot.waitUntil(lambda: win._frames_drawn > 10, timeout=5000)
    engine.stop()                                          # freeze the snapshot, then one more frame
    win.refresh()
    snap = engine.snapshot
    # spectrogram: the displayed image ends with exactly the snapshot's columns
    shown = win.spectrogram._image
    hist = snap.spectrogram_history()                      # (history, 128), oldest first
    n = min(len(hist), snap.spec_count, win.spectrogram.n_cols)
    assert n >= 250
    np.testing.assert_array_equal(shown[-n:], hist[-n:])
    assert shown[-n:].max() > 0
    np.testing.assert_array_equal(win.spectrogram.image_item.image, shown)
    # knobs: where the engine's controls ended (holds none)
    np.testing.assert_allclose([k.value for k in win._knobs], snap.controls, atol=1e-6)
    # ...and the CCs the engine emitted agree with the knobs: the last CC sent is within the
    # encoder's threshold of the knob, unless the rate cap still holds the knob's value back.
    path = win.last_recording
    assert path is not None and path.exists()
    last_cc = {}
    for msg in mido.MidiFile(path).tracks[0]:
        if msg.type == "control_change" and msg.control != 123:
            last_cc[msg.control] = msg.value
    encoder = engine.midi.encoder
    checked = 0
    for i, (knob, a) in enumerate(zip(win._knobs, encoder.assignments)):
        if a is None or a.cc not in last_cc:
            continue
        if knob.control.latch:
            # envelope controls go out only just before a note-on (the value the note latches),
            # so the last CC is the value at the last note-on, not the knob's latest value
            continue
        if math.isnan(encoder._pending[i]):
            assert abs(last_cc[a.cc] / 127 - knob.value) <= a.threshold + 0.5 / 127, knob.control.name
        else:
            assert encoder._pending[i] == pytest.approx(knob.value, abs=1e-6), knob.control.name
        checked += 1
    assert checked >= 1
    # the status line shows the engine's stats
    assert win.stat_labels["latency"].text().startswith("latency ") and "ms" in win.stat_labels["latency"].text()
    assert win.stat_labels["key"].text() == "key off"
    assert win.start_button.text().endswith("start")


@pytest.mark.parametrize("key,scale,shown", [("D", "dorian", "key D dorian"), ("auto", "major", "key auto (")])
def test_window_shows_the_scale_lock(themed, qtbot, keep, melody_wav, key, scale, shown):
    """--key/--scale: the status bar names the lock before the engine starts and while it runs
    (auto: what the detector has heard so far, from the engine's lock)."""
    win = make_window(keep, wav=str(melody_wav), no_midi=True, key=key, scale=scale)
    assert win.stat_labels["key"].text().startswith(shown.split(" (")[0])
    assert win.start()
    wait_running(qtbot, win, frames=50)
    qtbot.waitUntil(lambda: (win.refresh() or True) and win.stat_labels["key"].text().startswith(shown), timeout=5000)
    assert win.stat_labels["key"].text() == f"key {win.engine.pipeline.scale_lock.name}"
    win.engine.stop()


def test_notes_the_engine_plays_show_in_the_note_display_and_piano_roll(themed, qtbot, keep, melody_wav, tmp_path):
    """With the probe encoder (energy gate + loudest-channel pitch: it plays notes)."""
    pytest.importorskip("onnx")
    from rtmirror.testing.probe import write_probe_model

    probe = write_probe_model(tmp_path / "probe.onnx")
    win = make_window(keep, wav=str(melody_wav), no_midi=True)
    assert win.start()
    wait_running(qtbot, win, frames=20)
    first = win.engine
    assert win.load_model(str(probe))                      # a new model restarts the running engine
    assert "probe.onnx" in win.manifest_label.text() and "probe" in win.manifest_label.text()
    engine = win.engine
    assert engine is not first and engine.running and not first.running
    assert str(engine.pipeline.runtime.path) == str(probe)
    def shows_sounding_note():
        win.refresh()
        n = engine.snapshot.note
        return n >= 0 and win.note_label.text() == widgets.note_name(n) and f"MIDI {n} " in win.note_detail.text()

    qtbot.waitUntil(shows_sounding_note, timeout=20000)
    qtbot.waitUntil(lambda: len(engine.snapshot.recent_notes()) >= 2, timeout=20000)
    engine.stop()
    win.refresh()
    snap = engine.snapshot
    expect = [(n, t_on, None if math.isnan(t_off) else t_off, v) for n, v, t_on, t_off in snap.recent_notes()]
    assert win.piano_roll.notes == expect and win.piano_roll.now_s == snap.time_s
    assert all(t_off is not None for _, _, t_off, _ in expect)    # stopping closed every note
    assert win.note_label.text() == "—"


def test_hold_freezes_the_control_the_engine_sends(themed, qtbot, keep, melody_wav):
    win = make_window(keep, wav=str(melody_wav), no_midi=True)
    knob = next(k for k in win._knobs if k.control.name == "VCF1: Resonance")
    knob.set_hold(True, 0.25)
    assert win.start()
    wait_running(qtbot, win, frames=60)
    i = win.runtime.space.index("VCF1: Resonance")
    snap = win.engine.snapshot
    assert snap.holds() == {"VCF1: Resonance": pytest.approx(0.25)}
    qtbot.waitUntil(lambda: snap.controls[i] == pytest.approx(0.25), timeout=5000)
    knob.set_hold(False)
    assert snap.holds() == {}
    win.stop()


def test_a_blocked_gui_thread_does_not_block_midi(themed, qtbot, keep, dense_wav):
    """Block the Qt event loop for 1 s inside a slot: the engine keeps making frames and MIDI."""
    win = make_window(keep, wav=str(dense_wav), no_midi=True)
    assert win.start()
    wait_running(qtbot, win, frames=40)
    engine = win.engine
    result = {}

    def frozen_slot():
        c0, m0, d0 = engine.snapshot.spec_count, engine.midi.sent, win._frames_drawn
        t0 = time.perf_counter()
        time.sleep(1.0)                                    # the window is frozen
        dt = time.perf_counter() - t0
        result.update(frames=engine.snapshot.spec_count - c0, midi=engine.midi.sent - m0,
                      drawn=win._frames_drawn - d0, dt=dt)

    win.timer.singleShot(0, frozen_slot)
    qtbot.waitUntil(lambda: "frames" in result, timeout=10000)
    win.stop()
    assert result["drawn"] == 0                            # the GUI really was blocked
    assert result["frames"] >= 0.6 * 125 * result["dt"]   # ~125 frames/s went on (real-time pace)
    assert result["midi"] > 0                              # and MIDI kept flowing


def test_loop_replays_the_file(themed, qtbot, keep, tmp_path):
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, 0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000), 16000)   # 0.5 s
    win = make_window(keep, wav=str(short), no_midi=True, loop=True)
    assert win.start()
    qtbot.waitUntil(lambda: win.loops >= 2 and win.engine is not None, timeout=20000)
    assert win.last_engine.exhausted and win.last_engine.error is None
    win.stop()


def test_record_tap_writes_balanced_file_from_arm_time(tmp_path):
    tap = RecordTap()
    tap.send(0.5, (0x90, 60, 100))                        # before arming: not kept
    tap.arm(1.0)
    tap.send(1.25, (0x90, 62, 90))
    tap.send(1.5, (CC_STATUS, 74, 64))
    path = tmp_path / "r.mid"
    assert tap.save(path) == 2 and not tap.armed
    mid = mido.MidiFile(path)
    msgs = [m for m in mid.tracks[0] if not m.is_meta]
    assert [m.type for m in msgs] == ["note_on", "control_change", "note_off", "control_change"]
    ticks = np.cumsum([m.time for m in mid.tracks[0]])
    t_note = [t for t, m in zip(ticks, mid.tracks[0]) if m.type == "note_on"][0]
    assert mido.tick2second(t_note, mid.ticks_per_beat, 500000) == pytest.approx(0.25, abs=1e-3)
    assert msgs[-1].control == 123


# -- real JACK: pickers and panic ---------------------------------------------------------------
@pytest.mark.jack
def test_pickers_list_jack_ports_while_a_server_runs(themed, qtbot, keep, jack_server, require_portaudio):
    import rtmidi

    spy = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="guispy")
    spy.open_virtual_port("picker-in")
    try:
        win = make_window(keep, midi_api="jack")
        win.refresh_ports()
        assert any("picker-in" in p and "(jack)" in p for p in win.port_names()), win.port_names()
        win.refresh_inputs(rescan=True)
        assert any("JACK" in name for name in win.input_names()), win.input_names()
    finally:
        spy.close_port()
        del spy
        _portaudio_without_jack()


def _portaudio_without_jack():
    """Re-initialize PortAudio pointed at no JACK server: a PortAudio still holding a JACK client
    when the session's server stops aborts the interpreter at exit (pa_jack.c Terminate)."""
    from rtmirror import audio_io

    saved = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = "rtmirror-no-such-server"
    try:
        audio_io.rescan()
    finally:
        if saved is not None:
            os.environ["JACK_DEFAULT_SERVER"] = saved


@pytest.mark.jack
def test_panic_sends_all_notes_off_to_the_midi_port(themed, qtbot, keep, jack_server, melody_wav):
    import rtmidi

    spy = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="synthspy")
    spy.open_virtual_port("panic-in")
    got: list[tuple[int, ...]] = []
    spy.set_callback(lambda m, _: got.append(tuple(m[0])))
    try:
        win = make_window(keep, wav=str(melody_wav), midi_api="jack", port="panic-in", channel=3)
        kind, name = win.port_combo.currentData()
        assert kind == "port" and "panic-in" in name
        assert win.start()
        wait_running(qtbot, win, frames=60)
        assert (0xB2, 123, 0) not in got
        qtbot.mouseClick(win.panic_button, widgets.QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: (0xB2, 123, 0) in got, timeout=5000)
        assert win.engine is not None and win.engine.running   # sent by panic, not by a stop
        # every note-on that reached the synth was closed before the All Notes Off
        upto = got[:got.index((0xB2, 123, 0))]
        sounding = set()
        for m in upto:
            if m[0] == 0x92 and m[2] > 0:
                sounding.add(m[1])
            elif m[0] in (0x82, 0x92):
                sounding.discard(m[1])
        assert not sounding
        win.stop()
    finally:
        spy.close_port()
        del spy


def test_cli_arguments():
    import argparse

    from rtmirror.cli import gui as cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    a = p.parse_args(["x.wav", "--port", "synth", "--channel", "2", "--model", "m.onnx"])
    assert (a.wav, a.port, a.channel, a.model) == ("x.wav", "synth", 2, "m.onnx")
    assert cli.run(p.parse_args(["--channel", "17"])) == 2
    with pytest.raises(ValueError):
        LiveOptions(channel=0)


def test_run_gui_without_a_display_says_so_instead_of_aborting(monkeypatch, capsys, melody_wav):
    from rtmirror.gui.app import run_gui

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_gui(LiveOptions(wav=str(melody_wav))) == 2
    assert "no display" in capsys.readouterr().err
    assert run_gui(LiveOptions(wav="/nonexistent.wav")) == 2
