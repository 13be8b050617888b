"""`run_gui(...)`: open the window (the entry `rtmirror gui` and `rtmirror demo` call).

Also the dark theme (Fusion + a dark palette + a short stylesheet) shared by every window.
"""
from __future__ import annotations

import sys
from pathlib import Path

STYLE_SHEET = """
QWidget { font-size: 10pt; }
QFrame#toolbar, QFrame#side { background: #22252c; border-radius: 6px; }
QGroupBox { border: 1px solid #353945; border-radius: 6px; margin-top: 14px; padding-top: 6px; color: #9aa0ac; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; }
QFrame#knob { background: #22252c; border-radius: 6px; }
QLabel#knobTitle { color: #dcdfe4; font-weight: bold; }
QLabel#knobValue { color: #ffa630; font-size: 11pt; }
QLabel#knobDest, QLabel#dim, QLabel#stat { color: #8a909c; }
QLabel#caption { color: #8a909c; text-transform: uppercase; font-size: 8pt; letter-spacing: 1px; }
QLabel#note { color: #ffa630; font-size: 34pt; font-weight: bold; }
QLabel#noteDetail { color: #dcdfe4; }
QLabel#manifest { color: #c4c8d0; font-size: 9pt; }
QLabel#stat { padding: 0 10px; }
QPushButton { background: #323641; border: 1px solid #454a57; border-radius: 4px; padding: 4px 12px; color: #dcdfe4; }
QPushButton:hover { background: #3b404c; }
QPushButton:checked { background: #5aaaff; color: #101216; border-color: #5aaaff; }
QPushButton#start:checked { background: #3fb950; border-color: #3fb950; }
QPushButton#record:checked { background: #f85149; border-color: #f85149; color: white; }
QPushButton#panic { background: #6e2a2a; border-color: #a33; }
QPushButton#panic:hover { background: #8b3131; }
QStatusBar { color: #c4c8d0; }
"""


def apply_dark_theme(app) -> None:
    """Fusion style, a dark palette and pyqtgraph's colours to match."""
    import pyqtgraph as pg
    from PyQt6 import QtGui

    from rtmirror.gui import widgets

    app.setStyle("Fusion")
    pal = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    pal.setColor(role.Window, widgets.BG)
    pal.setColor(role.WindowText, widgets.FG)
    pal.setColor(role.Base, QtGui.QColor(30, 32, 38))
    pal.setColor(role.AlternateBase, widgets.PANEL)
    pal.setColor(role.Text, widgets.FG)
    pal.setColor(role.Button, QtGui.QColor(50, 54, 65))
    pal.setColor(role.ButtonText, widgets.FG)
    pal.setColor(role.Highlight, widgets.HELD)
    pal.setColor(role.HighlightedText, QtGui.QColor(16, 18, 22))
    pal.setColor(role.ToolTipBase, widgets.PANEL)
    pal.setColor(role.ToolTipText, widgets.FG)
    pal.setColor(role.PlaceholderText, widgets.DIM)
    app.setPalette(pal)
    app.setStyleSheet(STYLE_SHEET)
    pg.setConfigOptions(background=widgets.BG, foreground=widgets.FG, antialias=False, imageAxisOrder="col-major")


def display_available() -> bool:
    """Whether Qt can open a window here (Qt aborts the process, not raises, when it cannot)."""
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc", "eglfs", "linuxfb")):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def make_app(argv: list[str] | None = None):
    """The QApplication (created once, themed)."""
    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName("rtmirror")
    apply_dark_theme(app)
    return app


def run_gui(live=None, *, loop: bool = False, autostart: bool = True, record_dir: str = ".",
            quit_after_s: float | None = None, screenshot: str | None = None,
            size: tuple[int, int] | None = None) -> int:
    """Open the window and run Qt's event loop until it closes; returns the exit code.

    live: rtmirror.app.LiveOptions, the engine options exactly as `rtmirror live` parsed them
    (None: the defaults); its wav is played at real-time pace instead of an input device.
    quit_after_s: close by itself after that many seconds (smoke tests, screenshots; default
    live.duration_s), saving a grab of the window to `screenshot`.
    """
    from PyQt6 import QtCore

    from rtmirror.app import LiveOptions
    from rtmirror.gui.window import GuiConfig, MainWindow

    live = live if live is not None else LiveOptions()
    if live.wav is not None and not Path(live.wav).is_file():
        print(f"rtmirror gui: no such file: {live.wav}", file=sys.stderr)
        return 2
    # What the command line names is checked before a window opens (the window's own pickers
    # show their errors inside it): a bad model or WAV is one line and exit 2, as in `live`.
    from rtmirror.audio_file import check_audio_header
    from rtmirror.cli.common import one_line
    from rtmirror.runtime import EncoderRuntime
    try:
        if live.model is not None:
            EncoderRuntime(live.model)
        if live.wav is not None:
            check_audio_header(live.wav)
    except (ValueError, OSError, MemoryError) as exc:
        print(f"rtmirror gui: {one_line(exc)}", file=sys.stderr)
        return 2
    if not display_available():
        print("rtmirror gui: no display (DISPLAY / WAYLAND_DISPLAY unset); use `rtmirror live` in a "
              "console, or QT_QPA_PLATFORM=offscreen for a headless window", file=sys.stderr)
        return 2
    if quit_after_s is None:
        quit_after_s = live.duration_s
    cfg = GuiConfig(live=live, loop=loop, autostart=autostart, record_dir=record_dir)
    app = make_app()
    win = MainWindow(cfg)
    if size is not None:
        win.resize(*size)
    win.show()
    if quit_after_s is not None:
        def finish() -> None:
            if screenshot:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                if not win.grab().save(str(screenshot)):
                    print(f"rtmirror gui: could not save {screenshot}", file=sys.stderr)
            win.close()
            app.quit()
        QtCore.QTimer.singleShot(int(quit_after_s * 1000), finish)
    restore = _close_on_signals(app, win)
    try:
        code = app.exec()
    finally:
        restore()
    win.stop()
    from rtmirror.cli.live import hard_exit, needs_hard_exit
    if needs_hard_exit(win.last_engine):   # a stream/port left open (server died): exit handlers would block
        hard_exit(int(code))
    return int(code)


def _close_on_signals(app, win):
    """Ctrl-C, SIGTERM, SIGHUP and SIGQUIT close the window (its engine sends note-offs + All Notes
    Off) and end the event loop; the first one starts the exit watchdog (rtmirror.cli.live).

    Qt's event loop runs in C++: a Python signal handler only runs when Python code does, so a
    short timer lets it in (Ctrl-C was otherwise ignored while the window was open). Returns a
    function restoring the old handlers."""
    from PyQt6 import QtCore

    from rtmirror.cli.live import install_stop_signals

    def close_now() -> None:
        win.close()          # closeEvent stops the engine: note-offs + All Notes Off
        app.quit()

    def request(signum) -> None:
        QtCore.QTimer.singleShot(0, close_now)

    restore = install_stop_signals(request, lambda: win.engine or win.last_engine, what="rtmirror gui")
    pulse = QtCore.QTimer(app)
    pulse.timeout.connect(lambda: None)
    pulse.start(100)

    def undo() -> None:
        pulse.stop()
        restore()
    return undo
