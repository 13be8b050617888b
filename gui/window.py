"""MainWindow: the live engine's spectrogram, knobs, notes and stats, with its input/MIDI controls.

Threads: the engine (rtmirror.engine.Engine) runs audio -> MIDI on its own worker thread. This
window never calls into that path: a QTimer (~30 fps) reads the engine's Snapshot (copies of
preallocated arrays, plain scalars) and writes only the snapshot's request slots (holds, panic).
A blocked GUI thread therefore misses display frames, never audio frames or MIDI messages.
"""
from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from rtmirror.app import LiveOptions, build_engine
from rtmirror.midi.ccmap import CCMap
from rtmirror.frontend.filterbank import center_frequencies
from rtmirror.gui.widgets import Knob, LevelMeter, PianoRoll, SpectrogramView, note_name

NOTE_ON, NOTE_OFF, CC = 0x90, 0x80, 0xB0


@dataclass(frozen=True)
class GuiConfig:
    live: LiveOptions = field(default_factory=LiveOptions)   # every engine option (rtmirror.app)
    loop: bool = False                # replay the WAV when it ends
    autostart: bool = True            # start the engine as soon as the window opens
    record_dir: str = "."             # where record-to-MIDI writes its .mid files
    fps: float = 30.0                 # display refresh rate (the engine does not depend on it)
    history_s: float = 5.0            # seconds of spectrogram and piano roll on screen

    def __post_init__(self) -> None:
        if not (1.0 <= self.fps <= 120.0):
            raise ValueError(f"fps must be in 1..120, got {self.fps}")


class RecordTap:
    """A MidiOut output that keeps messages while armed (the record button); `save` writes a .mid.

    Runs inside the engine's worker (send only appends to a list); the GUI arms and saves.
    """

    def __init__(self) -> None:
        self.armed = False
        self.t0 = 0.0
        self._msgs: list = []

    def arm(self, t0: float) -> None:
        self._msgs = []
        self.t0 = float(t0)
        self.armed = True

    def send(self, t: float, msg) -> None:
        if self.armed:
            self._msgs.append((t, msg))

    def close(self) -> None:  # the engine closes its outputs on stop; saving is the GUI's call
        pass

    def save(self, path: str | Path) -> int:
        """Disarm and write what was recorded (times from the moment of arming); returns messages.

        Notes still sounding when recording stops get their note-off, and All Notes Off ends the
        file, so no player of the file hangs a note.
        """
        from rtmirror.midi import MidiFileRecorder

        self.armed = False
        msgs, self._msgs = self._msgs, []
        rec = MidiFileRecorder(path)
        sounding: set[tuple[int, int]] = set()
        t_end = 0.0
        for t, m in msgs:
            t = max(0.0, t - self.t0)
            t_end = max(t_end, t)
            rec.send(t, m)
            kind, ch = m[0] & 0xF0, m[0] & 0x0F
            if kind == NOTE_ON and m[2] > 0:
                sounding.add((ch, m[1]))
            elif kind in (NOTE_ON, NOTE_OFF):
                sounding.discard((ch, m[1]))
        for ch, note in sorted(sounding):
            rec.send(t_end, (NOTE_OFF | ch, note, 0))
        channels = {ch for ch, _ in sounding} or {m[0] & 0x0F for _, m in msgs[-1:]}
        for ch in sorted(channels):
            rec.send(t_end, (CC | ch, 123, 0))
        rec.close()
        return len(msgs)


def manifest_summary(runtime) -> str:
    """One paragraph about a model: its controls, synth, sample rate, frame rate, lookahead."""
    m = runtime.manifest
    fe = runtime.frontend
    names = html.escape(", ".join(runtime.space.names))
    look_ms = 1e3 * runtime.lookahead / fe.frame_rate
    return (f"<b>{html.escape(Path(runtime.path).name)}</b><br>"
            f"controls ({len(runtime.space)}): {names}<br>"
            f"synth: {m.get('synth', '?')} · control set: {runtime.space.name}<br>"
            f"sample rate: {fe.sample_rate} Hz · {fe.frame_rate:g} frames/s · "
            f"lookahead {runtime.lookahead} frames ({look_ms:.0f} ms)<br>"
            f"training: {html.escape(str(m.get('training', {}).get('config_name', '?')))}")


class MainWindow(QtWidgets.QMainWindow):
    """The desktop window. `engine` is the running rtmirror.engine.Engine or None."""

    engineStarted = QtCore.pyqtSignal()
    engineStopped = QtCore.pyqtSignal(str)

    def __init__(self, cfg: GuiConfig | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.cfg = cfg or GuiConfig()
        self.engine = None
        self.runtime = None
        self.record_tap = RecordTap()
        self.last_recording: Path | None = None
        self._holds: dict[str, float] = {}
        self._spec_count = 0
        self._knobs: list[Knob] = []
        self._frames_drawn = 0
        self.loops = 0              # times a file was replayed (--loop, demo melody)
        self._closing = False
        self.last_engine = None     # the engine of the last run (stats, messages, for tests)
        self._demo_path: str | None = None
        self._extra_wavs: list[str] = []     # files opened with "WAV…"
        self._demo_dir = None
        self._last_message = ""
        try:
            self.cc_map = CCMap.load(self.cfg.live.cc_map)
        except Exception as exc:   # shown once the status bar exists
            self.cc_map, self._cc_map_error = CCMap.load(None), f"CC map not loaded ({exc}); using the default"
        else:
            self._cc_map_error = ""
        self.setWindowTitle("rtmirror")
        self.resize(1280, 820)

        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        root = QtWidgets.QVBoxLayout(central)
        root.setContentsMargins(10, 8, 10, 6)
        root.setSpacing(8)
        root.addWidget(self._build_toolbar())

        middle = QtWidgets.QHBoxLayout()
        middle.setSpacing(10)
        self._left = QtWidgets.QVBoxLayout()
        self._left.setSpacing(4)
        self.spectrogram: SpectrogramView | None = None
        self.piano_roll = PianoRoll(self.cfg.history_s)
        self.piano_roll.setFixedHeight(110)
        self._left.addWidget(self.piano_roll)
        middle.addLayout(self._left, 4)
        middle.addWidget(self._build_side_panel(), 1)
        root.addLayout(middle, 1)

        self.knob_box = QtWidgets.QGroupBox("controls (live values; hold freezes one)")
        self.knob_row = QtWidgets.QHBoxLayout(self.knob_box)
        self.knob_row.setSpacing(6)
        root.addWidget(self.knob_box)
        self._build_status_bar()

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(int(round(1000.0 / self.cfg.fps)))

        self.refresh_inputs()
        self.refresh_ports()
        self.load_model(self.cfg.live.model)
        if self._cc_map_error:
            self.statusBar().showMessage(self._cc_map_error)
        if self.cfg.autostart and self.runtime is not None:
            QtCore.QTimer.singleShot(0, self.start)

    # -- layout ------------------------------------------------------------------------------
    def _build_toolbar(self) -> QtWidgets.QWidget:
        bar = QtWidgets.QFrame()
        bar.setObjectName("toolbar")
        h = QtWidgets.QHBoxLayout(bar)
        h.setContentsMargins(8, 6, 8, 6)
        h.setSpacing(6)

        def refresh_button(slot, tip):
            b = QtWidgets.QToolButton()
            b.setText("⟳")
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        h.addWidget(QtWidgets.QLabel("input"))
        self.input_combo = QtWidgets.QComboBox()
        self.input_combo.setMinimumWidth(220)
        h.addWidget(self.input_combo)
        self.input_refresh = refresh_button(lambda: self.refresh_inputs(rescan=True),
                                            "list the audio inputs again (a JACK server started since shows up)")
        h.addWidget(self.input_refresh)
        self.wav_button = QtWidgets.QToolButton()
        self.wav_button.setText("WAV…")
        self.wav_button.setToolTip("play a WAV file through the engine at real-time pace")
        self.wav_button.clicked.connect(self._pick_wav)
        h.addWidget(self.wav_button)
        h.addSpacing(12)

        h.addWidget(QtWidgets.QLabel("MIDI out"))
        self.port_combo = QtWidgets.QComboBox()
        self.port_combo.setMinimumWidth(220)
        h.addWidget(self.port_combo)
        h.addWidget(refresh_button(self.refresh_ports, "list the MIDI ports again"))
        h.addWidget(QtWidgets.QLabel("ch"))
        self.channel_spin = QtWidgets.QSpinBox()
        self.channel_spin.setRange(1, 16)
        self.channel_spin.setValue(self.cfg.live.channel)
        self.channel_spin.setToolTip("MIDI channel (applies on the next start)")
        h.addWidget(self.channel_spin)
        h.addSpacing(12)

        self.model_button = QtWidgets.QPushButton("model…")
        self.model_button.setToolTip("load another exported encoder (.onnx with its .json manifest)")
        self.model_button.clicked.connect(self._pick_model)
        h.addWidget(self.model_button)
        h.addStretch(1)

        self.start_button = QtWidgets.QPushButton("▶  start")
        self.start_button.setObjectName("start")
        self.start_button.setCheckable(True)
        self.start_button.clicked.connect(self._on_start_clicked)
        h.addWidget(self.start_button)
        self.record_button = QtWidgets.QPushButton("●  record MIDI")
        self.record_button.setObjectName("record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip(f"record what is sent to a .mid file in {self.cfg.record_dir}")
        self.record_button.toggled.connect(self._on_record_toggled)
        h.addWidget(self.record_button)
        self.panic_button = QtWidgets.QPushButton("panic")
        self.panic_button.setObjectName("panic")
        self.panic_button.setToolTip("note-off for every sounding note, then All Notes Off (CC 123)")
        self.panic_button.clicked.connect(self.panic)
        h.addWidget(self.panic_button)
        return bar

    def _build_side_panel(self) -> QtWidgets.QWidget:
        panel = QtWidgets.QFrame()
        panel.setObjectName("side")
        panel.setMinimumWidth(270)
        v = QtWidgets.QVBoxLayout(panel)
        v.setContentsMargins(10, 8, 10, 8)
        v.setSpacing(6)
        caption = QtWidgets.QLabel("current note")
        caption.setObjectName("caption")
        v.addWidget(caption)
        self.note_label = QtWidgets.QLabel("—")
        self.note_label.setObjectName("note")
        self.note_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.note_label)
        self.note_detail = QtWidgets.QLabel("no note")
        self.note_detail.setObjectName("noteDetail")
        self.note_detail.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.note_detail)
        v.addSpacing(6)
        caption = QtWidgets.QLabel("input level")
        caption.setObjectName("caption")
        v.addWidget(caption)
        self.level_meter = LevelMeter()
        v.addWidget(self.level_meter)
        self.level_label = QtWidgets.QLabel("-∞ dBFS")
        self.level_label.setObjectName("dim")
        v.addWidget(self.level_label)
        v.addSpacing(6)
        caption = QtWidgets.QLabel("spectrogram gain")
        caption.setObjectName("caption")
        v.addWidget(caption)
        g = QtWidgets.QHBoxLayout()
        self.gain_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.gain_slider.setRange(-24, 24)
        self.gain_slider.setValue(0)
        self.gain_label = QtWidgets.QLabel("+0 dB")
        self.gain_label.setMinimumWidth(48)
        self.gain_slider.valueChanged.connect(self._on_gain)
        g.addWidget(self.gain_slider)
        g.addWidget(self.gain_label)
        v.addLayout(g)
        v.addSpacing(6)
        caption = QtWidgets.QLabel("model")
        caption.setObjectName("caption")
        v.addWidget(caption)
        self.manifest_label = QtWidgets.QLabel("")
        self.manifest_label.setObjectName("manifest")
        self.manifest_label.setWordWrap(True)
        self.manifest_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        v.addWidget(self.manifest_label)
        v.addStretch(1)
        return panel

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.stat_labels = {}
        for key, tip in (("key", "scale lock (--key / --scale): notes are snapped to this scale"),
                         ("latency", "estimated input -> MIDI latency"),
                         ("cpu", "engine worker CPU time / wall time (1 core = 100%)"),
                         ("dropped", "frames dropped by overload or input overflow"),
                         ("midi", "MIDI messages sent per second")):
            lab = QtWidgets.QLabel("")
            lab.setToolTip(tip)
            lab.setObjectName("stat")
            sb.addPermanentWidget(lab)
            self.stat_labels[key] = lab
        self._show_stats(None)

    def _set_spectrogram(self, frontend) -> None:
        cfs = center_frequencies(frontend.shift)[:frontend.n_channels]   # (128,) Hz, low -> high
        view = SpectrogramView(cfs, frontend.frame_rate, self.cfg.history_s)
        view.set_gain_db(self.gain_slider.value())
        view.setMinimumHeight(300)
        if self.spectrogram is not None:
            self._left.removeWidget(self.spectrogram)
            self.spectrogram.deleteLater()
        self.spectrogram = view
        self._left.insertWidget(0, view, 1)

    def _set_knobs(self, space) -> None:
        for k in self._knobs:
            self.knob_row.removeWidget(k)
            k.deleteLater()
        try:
            assignments = self.cc_map.for_space(space)
        except Exception as exc:   # e.g. two controls on one CC
            self.statusBar().showMessage(f"CC map: {exc}")
            assignments = [None] * len(space)
        self._knobs = []
        for control, a in zip(space.controls, assignments):
            knob = Knob(control, a.cc if a is not None else None)
            if control.name in self._holds:
                knob.set_hold(True, self._holds[control.name])
            knob.holdChanged.connect(self._on_hold)
            self.knob_row.addWidget(knob)
            self._knobs.append(knob)
        self._holds = {k: v for k, v in self._holds.items() if k in space.names}

    # -- pickers -----------------------------------------------------------------------------
    def refresh_inputs(self, rescan: bool = False) -> None:
        """Fill the input picker: the WAV file (if any) and every audio input PortAudio sees.

        rescan=True re-initializes PortAudio first, so a JACK server started since shows up
        (not while the engine reads a device: that stream would be torn down).
        """
        from rtmirror import audio_io

        current = self.input_combo.currentData()
        if rescan and not (self.engine is not None and self.engine.running and current and current[0] == "device"):
            try:
                audio_io.rescan()
            except Exception as exc:
                self.statusBar().showMessage(f"audio: {exc}")
        self.input_combo.clear()
        if self.cfg.live.wav:
            self.input_combo.addItem(f"file: {Path(self.cfg.live.wav).name}", ("file", str(self.cfg.live.wav)))
        for wav in self._extra_wavs:
            if wav != self.cfg.live.wav:
                self.input_combo.addItem(f"file: {Path(wav).name}", ("file", wav))
        devices = audio_io.list_input_devices()
        for d in devices:
            label = f"{d['name']} ({d['hostapi']})" + ("  [default]" if d["default"] else "")
            self.input_combo.addItem(label, ("device", d["index"]))
        self.input_combo.addItem("demo melody (built-in voice)", ("demo", None))
        if current is None and not devices and not self.cfg.live.wav:
            current = ("demo", None)           # no microphone here: play the demo melody
        self._select(self.input_combo, current)
        if current is None and self.cfg.live.input is not None and not self.cfg.live.wav:
            for i in range(self.input_combo.count()):
                data = self.input_combo.itemData(i)
                if data and (str(data[1]) == str(self.cfg.live.input)
                             or str(self.cfg.live.input).lower() in self.input_combo.itemText(i).lower()):
                    self.input_combo.setCurrentIndex(i)
                    break
            else:
                self.statusBar().showMessage(f"audio input {self.cfg.live.input!r} not found; "
                                             f"using {self.input_combo.currentText()}")

    def refresh_ports(self) -> None:
        """Fill the MIDI picker: a virtual port others connect to, the ports we can send to, none."""
        from rtmirror import midi

        current = self.port_combo.currentData()
        self.port_combo.clear()
        try:
            self.midi_api = midi.choose_api(self.cfg.live.midi_api)
        except Exception as exc:
            self.midi_api = None
            self.statusBar().showMessage(f"MIDI: {exc}")
        ports: list[str] = []
        if self.midi_api is not None:
            try:
                ports = [p for p in midi.list_output_ports(self.midi_api) if not p.startswith(self.cfg.live.virtual)]
            except Exception as exc:
                self.statusBar().showMessage(f"MIDI ports: {exc}")
            label = midi.api_label(self.midi_api)
            virtual = self.cfg.live.virtual
            self.port_combo.addItem(f"virtual port '{virtual}' ({label})", ("virtual", virtual))
            for p in ports:
                self.port_combo.addItem(f"{p} ({label})", ("port", p))
        self.port_combo.addItem("no MIDI output (display only)", ("off", None))
        if current is None:
            if self.cfg.live.no_port or self.midi_api is None:
                current = ("off", None)
            elif self.cfg.live.port is not None:
                hits = [p for p in ports if self.cfg.live.port == p] or [p for p in ports if self.cfg.live.port.lower() in p.lower()]
                current = ("port", hits[0]) if hits else None
                if not hits:
                    self.statusBar().showMessage(f"MIDI port {self.cfg.live.port!r} not found; ports: {ports or 'none'}")
        self._select(self.port_combo, current)

    @staticmethod
    def _select(combo: QtWidgets.QComboBox, data) -> None:
        if data is None:
            return
        for i in range(combo.count()):
            if combo.itemData(i) == data:
                combo.setCurrentIndex(i)
                return

    def input_names(self) -> list[str]:
        return [self.input_combo.itemText(i) for i in range(self.input_combo.count())]

    def port_names(self) -> list[str]:
        return [self.port_combo.itemText(i) for i in range(self.port_combo.count())]

    def _pick_wav(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Play a WAV file", "", "Audio (*.wav *.flac *.ogg)")
        if path:
            self._extra_wavs.append(path)
            self.refresh_inputs()
            self._select(self.input_combo, ("file", path))

    def _pick_model(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load an encoder model", "", "ONNX models (*.onnx)")
        if path:
            self.load_model(path)

    def load_model(self, path: str | None) -> bool:
        """Load an exported encoder and show its manifest; restarts a running engine on it."""
        from rtmirror.runtime import EncoderRuntime

        try:
            runtime = EncoderRuntime(path)
        except Exception as exc:
            self.manifest_label.setText(f"<span style='color:#ff7b72'>cannot load {path}: {exc}</span>")
            self.statusBar().showMessage(f"model not loaded: {exc}")
            return False
        was_running = self.engine is not None and self.engine.running
        if was_running:
            self.stop()
        self.runtime = runtime
        self.manifest_label.setText(manifest_summary(runtime))
        self._set_spectrogram(runtime.frontend)
        self._set_knobs(runtime.space)
        if was_running:
            self.start()
        return True

    # -- engine ------------------------------------------------------------------------------
    def _live_options(self) -> LiveOptions:
        """The window's LiveOptions with the pickers' choices (input, port, channel, model) in place;
        every other field is the one the window was opened with (`rtmirror live` flags)."""
        data = self.input_combo.currentData()
        if data is None:
            raise RuntimeError("no audio input: pick a device or open a WAV file")
        kind, name = self.port_combo.currentData() or ("off", None)
        wav = data[1] if data[0] == "file" else self._demo_wav() if data[0] == "demo" else None
        live = self.cfg.live
        return replace(
            live, input=None if wav else str(data[1]), wav=wav, realtime=True,
            port=name if kind == "port" else None, virtual=name if kind == "virtual" else live.virtual,
            no_port=kind == "off", channel=self.channel_spin.value(), model=str(self.runtime.path),
            # A file has no player waiting on latency: keep every frame unless 0.5 s behind.
            max_backlog_s=0.5 if wav else live.max_backlog_s)

    def _demo_wav(self) -> str:
        """A melody rendered with the built-in voice (for machines without a microphone)."""
        if self._demo_path is None:
            import tempfile

            import soundfile as sf

            from rtmirror.synth import make_synth
            from rtmirror.synth.melody import general_melody

            space = self.runtime.space
            melody = general_melody(np.random.default_rng(7), space, duration_s=12.0)
            audio = make_synth("builtin", space, sample_rate=16000).render(melody.events, melody.duration_s)
            self._demo_dir = tempfile.TemporaryDirectory(prefix="rtmirror-gui-")
            self._demo_path = str(Path(self._demo_dir.name) / "demo_melody.wav")
            sf.write(self._demo_path, 0.5 * audio / max(1e-9, float(np.abs(audio).max())), 16000)
        return self._demo_path

    def start(self) -> bool:
        """Build an engine from the pickers and start it. Errors show in the status bar."""
        if self.engine is not None and self.engine.running:
            return True
        if self._closing:            # a queued restart (loop, model change) after the window closed
            return False
        if self.runtime is None:
            self.statusBar().showMessage("no model loaded")
            self.start_button.setChecked(False)
            return False
        engine = None
        try:
            # Messages from the worker land in snapshot.message; the timer shows them (Qt widgets
            # must not be touched from the worker thread).
            engine = build_engine(self._live_options(), on_message=lambda msg: None)
            engine.midi.outputs.append(self.record_tap)
            # Warm the chain up (first calls load JIT caches and onnxruntime kernels, ~1 s) before
            # the source runs, so a file does not start with a burst of dropped frames.
            engine.pipeline.process(np.zeros(engine.source.sample_rate // 10, np.float32))
            engine.pipeline.reset()
            for name, value in self._holds.items():
                engine.snapshot.set_hold(name, value)
            engine.start()
        except Exception as exc:
            if engine is not None:
                engine.midi.close(0.0)
            self.statusBar().showMessage(f"cannot start: {exc}")
            self.start_button.setChecked(False)
            return False
        self.engine = engine
        self._spec_count = 0
        self._last_message = ""
        if self.spectrogram is not None:
            self.spectrogram.reset()
        if self.record_button.isChecked() and not self.record_tap.armed:
            self.record_tap.arm(0.0)
        self.start_button.setChecked(True)
        self.start_button.setText("■  stop")
        self.input_combo.setEnabled(False)
        self.port_combo.setEnabled(False)
        self.channel_spin.setEnabled(False)
        self.statusBar().showMessage(
            f"running: {self.input_combo.currentText()} → {self.port_combo.currentText()}, "
            f"channel {self.channel_spin.value()}, model {Path(self.runtime.path).name}")
        self.engineStarted.emit()
        return True

    def stop(self) -> None:
        """Stop the engine (it closes sounding notes and sends All Notes Off on its way out)."""
        if self.engine is not None:
            self.engine.stop()
            self._engine_ended()

    def _engine_ended(self) -> None:
        engine, self.engine = self.engine, None
        self._draw(engine)   # the last columns and the final stats
        if self.record_tap.armed:
            self._save_recording()
            self.record_button.setChecked(False)
        self.start_button.setChecked(False)
        self.start_button.setText("▶  start")
        self.input_combo.setEnabled(True)
        self.port_combo.setEnabled(True)
        self.channel_spin.setEnabled(True)
        msg = engine.error or engine.snapshot.message or "stopped"
        self.statusBar().showMessage(msg)
        self.last_engine = engine
        self.engineStopped.emit(msg)
        demo = (self.input_combo.currentData() or ("",))[0] == "demo"   # the demo melody always loops
        if (self.cfg.loop or demo) and engine.exhausted and not engine.error:
            self.loops += 1
            QtCore.QTimer.singleShot(0, self.start)

    def _on_start_clicked(self, checked: bool) -> None:
        if checked:
            self.start()
        else:
            self.stop()

    def panic(self) -> None:
        """Ask the engine's worker for note-offs + All Notes Off (it sends them on its next block)."""
        if self.engine is not None and self.engine.running:
            self.engine.snapshot.request_panic()
            self.statusBar().showMessage("panic: all notes off requested")
        else:
            self.statusBar().showMessage("panic: engine not running (it sent All Notes Off when it stopped)")

    def _on_hold(self, name: str, held: bool, value: float) -> None:
        if held:
            self._holds[name] = value
        else:
            self._holds.pop(name, None)
        if self.engine is not None:
            self.engine.snapshot.set_hold(name, value if held else None)

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            t0 = self.engine.snapshot.time_s if self.engine is not None else 0.0
            self.record_tap.arm(t0)
            self.statusBar().showMessage("recording MIDI…")
        elif self.record_tap.armed:
            self._save_recording()

    def _save_recording(self) -> None:
        out_dir = Path(self.cfg.record_dir)
        path = out_dir / time.strftime("rtmirror-%Y%m%d-%H%M%S.mid")
        n = 1
        while path.exists():
            path = out_dir / time.strftime(f"rtmirror-%Y%m%d-%H%M%S-{n}.mid")
            n += 1
        try:
            count = self.record_tap.save(path)
        except Exception as exc:
            self.statusBar().showMessage(f"recording not saved: {exc}")
            return
        self.last_recording = path
        self.statusBar().showMessage(f"recorded {count} MIDI messages to {path}")

    def _on_gain(self, db: int) -> None:
        self.gain_label.setText(f"{db:+d} dB")
        if self.spectrogram is not None:
            self.spectrogram.set_gain_db(db)

    # -- display -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """One display frame from the engine's snapshot (the QTimer's slot; never blocks)."""
        engine = self.engine
        if engine is None:
            return
        self._draw(engine)
        if not engine.running:
            self._engine_ended()

    def _draw(self, engine) -> None:
        snap = engine.snapshot
        self._spec_count, cols = snap.columns_since(self._spec_count)
        if self.spectrogram is not None and len(cols):   # no new columns: nothing to redraw
            self.spectrogram.push(cols)
            self.spectrogram.redraw()
        controls = snap.controls.copy()                       # (K,) normalized, holds applied
        for knob, v in zip(self._knobs, controls):
            knob.set_value(float(v))
        note, vel = snap.note, snap.velocity
        if note >= 0:
            self.note_label.setText(note_name(note))
            self.note_detail.setText(f"MIDI {note} · velocity {vel}")
        else:
            self.note_label.setText("—")
            self.note_detail.setText("no note")
        notes = [(n, t_on, None if math.isnan(t_off) else t_off, v) for n, v, t_on, t_off in snap.recent_notes()]
        self.piano_roll.set_notes(notes, snap.time_s)
        if self.spectrogram is not None:    # line the roll's time axis up with the spectrogram's
            self.piano_roll.set_margins(*self.spectrogram.plot_margins())
        peak_db = 20.0 * math.log10(snap.peak) if snap.peak > 1e-6 else -120.0
        self.level_meter.set_level(snap.level_db, peak_db)
        self.level_label.setText(f"{snap.level_db:.0f} dBFS" if snap.level_db > -120 else "-∞ dBFS")
        self._show_stats(snap)
        if snap.message and snap.message != self._last_message:
            self._last_message = snap.message
            self.statusBar().showMessage(snap.message)
        self._frames_drawn += 1

    def _show_stats(self, snap) -> None:
        lab = self.stat_labels
        if snap is None:
            lock = self.cfg.live.key
            lab["key"].setText("key off" if lock is None else
                               f"key {lock}" + ("" if lock == "auto" else f" {self.cfg.live.scale}"))
            for key, text in (("latency", "latency —"), ("cpu", "CPU —"), ("dropped", "dropped —"), ("midi", "MIDI —")):
                lab[key].setText(text)
            return
        lab["key"].setText(f"key {snap.key}")
        lat = snap.latency
        if lat is None:
            lab["latency"].setText(f"latency {snap.latency_ms:.0f} ms")
        else:   # the model's share and the engine's, every stage in the tooltip
            lab["latency"].setText(f"latency {snap.latency_ms:.0f} ms (model {lat.model_ms:.0f} + "
                                   f"engine {lat.engine_ms:.0f})")
            lab["latency"].setToolTip("estimated onset -> MIDI note-on latency\n" + "\n".join(
                f"{name[:-3].replace('_', ' ')}: {v:.1f} ms" for name, v in lat.parts.items()))
        lab["cpu"].setText(f"CPU {100.0 * snap.cpu_share:.0f}%")
        lab["dropped"].setText(f"dropped {snap.dropped_frames}")
        lab["midi"].setText(f"MIDI {snap.midi_msgs_per_s:.0f} msg/s")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        self._closing = True
        self.timer.stop()
        self.stop()
        if self._demo_dir is not None:
            self._demo_dir.cleanup()
        super().closeEvent(event)
