"""The window's widgets: scrolling auditory spectrogram, knob, level meter, piano roll.

Every widget takes plain data (numpy arrays, floats, note tuples) and owns fixed buffers, so the
window's timer can feed it from any snapshot without allocating per frame. Nothing here talks to
the engine.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from rtmirror.controls import Control

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Dark theme colours shared by the drawn widgets and the window's palette.
BG = QtGui.QColor(24, 26, 31)
PANEL = QtGui.QColor(34, 37, 44)
FG = QtGui.QColor(220, 223, 228)
DIM = QtGui.QColor(130, 136, 148)
ACCENT = QtGui.QColor(255, 166, 48)
HELD = QtGui.QColor(90, 170, 255)


def note_name(note: int) -> str:
    """MIDI note number -> scientific pitch name (60 -> 'C4')."""
    note = int(note)
    return f"{NOTE_NAMES[note % 12]}{note // 12 - 1}"


def format_physical(control: Control, v: float) -> str:
    """A control's normalized value as a short physical reading ('1.26 kHz', '48 ms', 'A4')."""
    if control.role == "gate":
        return "on" if v >= 0.5 else "off"
    x = float(control.to_physical(v))
    if control.role == "pitch":
        return note_name(int(round(x)))
    if control.role == "velocity":
        return f"{int(round(x))}"
    if control.unit == "Hz":
        return f"{x / 1000:.2f} kHz" if x >= 1000 else f"{x:.3g} Hz"
    if control.unit == "s":
        return f"{x:.2f} s" if x >= 1 else f"{x * 1000:.3g} ms"
    if control.unit == "degrees":
        return f"{x:.0f}°"
    if control.unit == "semitones":
        return f"{x:.2f} st"
    return f"{x:.2f}"


def control_destination(control: Control, cc: int | None) -> str:
    """What a control sends: 'CC 74', or the note-message part it drives."""
    if control.role == "pitch":
        return "note number"
    if control.role == "gate":
        return "note on/off"
    if control.role == "velocity":
        return "note velocity"
    return f"CC {cc}" if cc is not None else "no CC"


# ----------------------------------------------------------------------------------------------
# Spectrogram
# ----------------------------------------------------------------------------------------------
class SpectrogramView(pg.GraphicsLayoutWidget):
    """~history_s of auditory spectrogram, newest column at the right edge (time 0).

    Columns arrive with `push((n, C))`; `redraw()` (from the window's timer) lays the ring out
    oldest-first into a preallocated float32 image and hands it to the ImageItem with fixed
    levels, so the colours mean the same thing from frame to frame (the gain control moves them).
    """

    def __init__(self, cfs_hz: np.ndarray, frame_rate: float, history_s: float = 5.0,
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.cfs_hz = np.asarray(cfs_hz, dtype=np.float64)  # (C,) centre frequency per channel
        self.n_channels = len(self.cfs_hz)
        self.frame_rate = float(frame_rate)
        self.n_cols = max(2, int(round(history_s * frame_rate)))
        self.history_s = self.n_cols / self.frame_rate
        self._ring = np.zeros((self.n_cols, self.n_channels), np.float32)   # column j at j % n_cols
        self._image = np.zeros((self.n_cols, self.n_channels), np.float32)  # (time, channel), oldest first
        self.columns_pushed = 0
        self.full_scale = 1.0   # spectrogram value drawn at the top colour with 0 dB gain
        self.gain_db = 0.0

        self.plot = self.addPlot()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="col-major")
        self.image_item.setColorMap(pg.colormap.get("inferno"))
        self.plot.addItem(self.image_item)
        self.image_item.setImage(self._image, autoLevels=False, levels=self.levels)
        # Image pixels -> (seconds before now, channel index): x in [-history, 0], y in [0, C]
        # (after the first setImage: the rect scales by the image's size).
        self.image_item.setRect(QtCore.QRectF(-self.history_s, 0.0, self.history_s, float(self.n_channels)))
        self.plot.setXRange(-self.history_s, 0.0, padding=0)
        self.plot.setYRange(0.0, float(self.n_channels), padding=0)
        self.plot.setTitle(f"auditory spectrogram ({self.n_channels} cochlear channels, "
                           f"{self.frame_rate:g} frames/s)", color=DIM.name(), size="9pt")
        self.plot.setLabel("bottom", "time (s)")
        self.plot.setLabel("left", "frequency (Hz)")
        self.plot.getAxis("left").setTicks(self._frequency_ticks())

    def _frequency_ticks(self):
        """Channel positions of round frequencies (the axis is log-frequency: 24 channels/octave)."""
        lo, hi = self.cfs_hz[0], self.cfs_hz[-1]
        log_cf = np.log2(self.cfs_hz)
        major, minor = [], []
        for f in (50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000):
            if lo <= f <= hi:
                pos = float(np.interp(math.log2(f), log_cf, np.arange(self.n_channels))) + 0.5
                label = f"{f // 1000}k" if f >= 1000 else str(f)
                (major if f in (100, 1000, 10000) or len(major) < 8 else minor).append((pos, label))
        return [major + minor, []]

    @property
    def levels(self) -> tuple[float, float]:
        return (0.0, self.full_scale * 10.0 ** (-self.gain_db / 20.0))

    def set_gain_db(self, gain_db: float) -> None:
        self.gain_db = float(gain_db)
        self.image_item.setLevels(self.levels)

    def push(self, columns: np.ndarray) -> None:
        """Append (n, C) columns; only the last n_cols matter."""
        n = len(columns)
        if n == 0:
            return
        if n > self.n_cols:
            self.columns_pushed += n - self.n_cols
            columns = columns[-self.n_cols:]
            n = self.n_cols
        start = self.columns_pushed % self.n_cols
        first = min(n, self.n_cols - start)
        self._ring[start:start + first] = columns[:first]
        if first < n:
            self._ring[:n - first] = columns[first:]
        self.columns_pushed += n

    def reset(self) -> None:
        """Forget all columns (named reset: GraphicsLayoutWidget.clear would remove the plot)."""
        self._ring.fill(0.0)
        self.columns_pushed = 0
        self.redraw()

    def redraw(self) -> None:
        k = self.columns_pushed % self.n_cols   # the oldest column sits at ring[k]
        self._image[:self.n_cols - k] = self._ring[k:]
        self._image[self.n_cols - k:] = self._ring[:k]
        self.image_item.setImage(self._image, autoLevels=False, levels=self.levels)

    def plot_margins(self) -> tuple[int, int]:
        """Pixels left and right of the image area inside this widget (to align other strips)."""
        r = self.plot.vb.mapRectToScene(self.plot.vb.boundingRect())
        return int(round(r.left())), int(round(self.width() - r.right()))

    def latest(self, n: int) -> np.ndarray:
        """The n newest columns as displayed, oldest first: (n, C) (a copy)."""
        return self._image[self.n_cols - n:].copy()


# ----------------------------------------------------------------------------------------------
# Knob
# ----------------------------------------------------------------------------------------------
class KnobDial(QtWidgets.QWidget):
    """A drawn rotary knob (270° sweep). Draggable (vertical drag, wheel) only when enabled."""

    valueEdited = QtCore.pyqtSignal(float)

    SWEEP = 270.0

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.value = 0.0
        self._drawn = 0.0     # the value the last paint showed
        self.held = False
        self._drag_from: tuple[float, float] | None = None
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(72, 72)

    def set_value(self, v: float) -> None:
        v = min(1.0, max(0.0, float(v))) if math.isfinite(v) else 0.0
        if v != self.value:
            # Repaint only for a change one can see (~0.5° of the sweep): painting is GUI time.
            self.value = v
            if abs(v - self._drawn) * self.SWEEP >= 0.5:
                self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        self._drawn = self.value
        side = min(self.width(), self.height()) - 8
        rect = QtCore.QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        start = 225.0  # degrees, Qt counts counter-clockwise from 3 o'clock
        color = HELD if self.held else ACCENT
        pen = QtGui.QPen(QtGui.QColor(60, 64, 74), 6, cap=QtCore.Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.drawArc(rect, int(start * 16), int(-self.SWEEP * 16))
        pen.setColor(color)
        p.setPen(pen)
        p.drawArc(rect, int(start * 16), int(-self.SWEEP * self.value * 16))
        inner = rect.adjusted(9, 9, -9, -9)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(48, 52, 61))
        p.drawEllipse(inner)
        angle = math.radians(start - self.SWEEP * self.value)
        c = inner.center()
        r = inner.width() / 2 - 4
        p.setPen(QtGui.QPen(FG, 3, cap=QtCore.Qt.PenCapStyle.RoundCap))
        p.drawLine(QtCore.QPointF(c.x() + 0.35 * r * math.cos(angle), c.y() - 0.35 * r * math.sin(angle)),
                   QtCore.QPointF(c.x() + r * math.cos(angle), c.y() - r * math.sin(angle)))
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.held:
            self._drag_from = (event.position().y(), self.value)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.held and self._drag_from is not None:
            y0, v0 = self._drag_from
            self._edit(v0 + (y0 - event.position().y()) / 150.0)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag_from = None

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self.held:
            self._edit(self.value + event.angleDelta().y() / 120.0 * 0.02)

    def _edit(self, v: float) -> None:
        self.set_value(v)
        self.valueEdited.emit(self.value)


class Knob(QtWidgets.QFrame):
    """One control: its DIVA name, a dial with the live value, what it sends, and a hold toggle.

    While held, the dial shows (and the mouse edits) the frozen value; `holdChanged(name, held,
    value)` tells the window, which forwards the override to the engine.
    """

    holdChanged = QtCore.pyqtSignal(str, bool, float)

    def __init__(self, control: Control, cc: int | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.control = control
        self.cc = control.cc if cc is None else cc
        self.live_value = 0.0
        self.setObjectName("knob")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(2)
        self.title = QtWidgets.QLabel(control.name)
        self.title.setObjectName("knobTitle")
        self.title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.dial = KnobDial()
        self.value_label = QtWidgets.QLabel("-")
        self.value_label.setObjectName("knobValue")
        self.value_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.dest_label = QtWidgets.QLabel(control_destination(control, self.cc))
        self.dest_label.setObjectName("knobDest")
        self.dest_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.hold_button = QtWidgets.QPushButton("hold")
        self.hold_button.setCheckable(True)
        self.hold_button.setToolTip("freeze this control at the dial's value (drag or scroll to set it)")
        for w in (self.title, self.dial, self.value_label, self.dest_label, self.hold_button):
            layout.addWidget(w)
        self.hold_button.toggled.connect(self._on_hold)
        self.dial.valueEdited.connect(self._on_edit)
        self.set_value(0.0)

    @property
    def held(self) -> bool:
        return self.hold_button.isChecked()

    @property
    def value(self) -> float:
        return self.dial.value

    def set_value(self, v: float) -> None:
        """The engine's live value (normalized). A held knob keeps showing its frozen value."""
        self.live_value = float(v)
        if not self.held:
            self.dial.set_value(v)
            self.value_label.setText(format_physical(self.control, self.dial.value))

    def _on_hold(self, held: bool) -> None:
        self.dial.held = held
        self.dial.update()
        self.holdChanged.emit(self.control.name, held, self.dial.value)
        if not held:
            self.set_value(self.live_value)

    def _on_edit(self, v: float) -> None:
        self.value_label.setText(format_physical(self.control, v))
        self.holdChanged.emit(self.control.name, True, v)

    def set_hold(self, held: bool, value: float | None = None) -> None:
        """Programmatic hold (tests, presets): freeze at `value` (default: the current one)."""
        if value is not None:
            self.dial.set_value(value)
            self.value_label.setText(format_physical(self.control, self.dial.value))
        if self.held != held:
            self.hold_button.setChecked(held)
        elif held:
            self.holdChanged.emit(self.control.name, True, self.dial.value)


# ----------------------------------------------------------------------------------------------
# Level meter
# ----------------------------------------------------------------------------------------------
class LevelMeter(QtWidgets.QWidget):
    """Input level in dBFS, -60..0, a bar for the RMS and a tick for the peak (held ~1 s)."""

    FLOOR_DB = -60.0

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.level_db = self.FLOOR_DB
        self.peak_db = self.FLOOR_DB
        self._peak_age = 0
        self.setMinimumSize(160, 18)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_level(self, level_db: float, peak_db: float | None = None) -> None:
        level_db = self.FLOOR_DB if not math.isfinite(level_db) else max(self.FLOOR_DB, min(0.0, level_db))
        peak = level_db if peak_db is None or not math.isfinite(peak_db) else min(0.0, peak_db)
        self.level_db = level_db
        self._peak_age += 1
        if peak >= self.peak_db or self._peak_age > 30:   # ~1 s at the window's 30 fps
            self.peak_db = max(self.FLOOR_DB, peak)
            self._peak_age = 0
        self.update()

    def _x(self, db: float) -> float:
        return (db - self.FLOOR_DB) / -self.FLOOR_DB * (self.width() - 2) + 1

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QtGui.QPainter(self)
        h = self.height()
        p.fillRect(0, 0, self.width(), h, QtGui.QColor(40, 43, 50))
        grad = QtGui.QLinearGradient(0, 0, self.width(), 0)
        grad.setColorAt(0.0, QtGui.QColor(60, 200, 110))
        grad.setColorAt(0.75, QtGui.QColor(60, 200, 110))
        grad.setColorAt(0.88, QtGui.QColor(240, 200, 60))
        grad.setColorAt(1.0, QtGui.QColor(240, 70, 60))
        p.fillRect(QtCore.QRectF(1, 2, self._x(self.level_db) - 1, h - 4), grad)
        p.setPen(QtGui.QPen(FG, 2))
        xp = self._x(self.peak_db)
        p.drawLine(QtCore.QPointF(xp, 2), QtCore.QPointF(xp, h - 2))
        p.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0, 120), 1))
        for db in range(-50, 0, 10):
            x = self._x(db)
            p.drawLine(QtCore.QPointF(x, 2), QtCore.QPointF(x, h - 2))
        p.end()


# ----------------------------------------------------------------------------------------------
# Piano roll
# ----------------------------------------------------------------------------------------------
class PianoRoll(QtWidgets.QWidget):
    """The last `span_s` seconds of notes: (note, start_s, end_s | None, velocity) bars, now at right."""

    def __init__(self, span_s: float = 5.0, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.span_s = float(span_s)
        self.notes: list[tuple[int, float, float | None, int]] = []
        self.now_s = 0.0
        self.left_px, self.right_px = 34, 0   # the time axis spans [left_px, width - right_px]
        self.setMinimumHeight(90)

    def set_margins(self, left_px: int, right_px: int) -> None:
        left_px = max(30, int(left_px))
        if (left_px, right_px) != (self.left_px, self.right_px):
            self.left_px, self.right_px = left_px, max(0, int(right_px))
            self.update()

    def set_notes(self, notes, now_s: float) -> None:
        self.notes = [(int(n), float(s), None if e is None else float(e), int(v)) for n, s, e, v in notes]
        self.now_s = float(now_s)
        self.update()

    def visible(self) -> list[tuple[int, float, float | None, int]]:
        t0 = self.now_s - self.span_s
        return [n for n in self.notes if (n[2] is None or n[2] > t0) and n[1] <= self.now_s]

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w, h = self.width() - self.right_px, self.height()
        label_w = self.left_px
        p.fillRect(0, 0, self.width(), h, QtGui.QColor(30, 32, 38))
        notes = self.visible()
        if notes:
            lo = min(n[0] for n in notes) - 2
            hi = max(n[0] for n in notes) + 2
        else:
            lo, hi = 57, 72
        hi = max(hi, lo + 12)
        rows = hi - lo + 1
        row_h = h / rows
        # Rows: black keys darker, C rows labelled.
        for i, note in enumerate(range(lo, hi + 1)):
            y = h - (i + 1) * row_h
            if note % 12 in (1, 3, 6, 8, 10):
                p.fillRect(QtCore.QRectF(label_w, y, w - label_w, row_h), QtGui.QColor(25, 27, 32))
            if note % 12 == 0:
                p.setPen(DIM)
                ty = min(max(y - 6, 0.0), h - row_h - 12)   # keep the label inside the strip
                p.drawText(QtCore.QRectF(0, ty, label_w - 4, row_h + 12),
                           int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter),
                           note_name(note))
        if not notes:
            p.setPen(DIM)
            p.drawText(QtCore.QRectF(label_w, 0, w - label_w, h), int(QtCore.Qt.AlignmentFlag.AlignCenter),
                       f"no notes sent in the last {self.span_s:g} s")
        px_per_s = (w - label_w) / self.span_s
        t0 = self.now_s - self.span_s
        for note, start, end, vel in notes:
            x0 = label_w + max(0.0, start - t0) * px_per_s
            x1 = label_w + ((end if end is not None else self.now_s) - t0) * px_per_s
            y = h - (note - lo + 1) * row_h
            color = QtGui.QColor(ACCENT)
            color.setAlpha(110 + int(145 * min(127, max(1, vel)) / 127))
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRoundedRect(QtCore.QRectF(x0, y + 1, max(2.0, x1 - x0), max(2.0, row_h - 2)), 2, 2)
        p.end()
