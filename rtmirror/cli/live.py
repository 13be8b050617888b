"""`rtmirror live`: microphone -> synth controls -> MIDI, in real time.

Runs the Engine (rtmirror.engine) from an audio input (or a WAV at real-time pace) to a MIDI port
(a virtual port "rtmirror" by default) and optionally a MIDI file / controls CSV. The options
become one rtmirror.app.LiveOptions; with a display it goes to the window as it is (every flag
reaches the window's engine), else the engine runs in the console. Ctrl-C and SIGTERM stop it
cleanly: note-offs + All Notes Off go out before it exits.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from rtmirror.app import LiveOptions, build_engine, options_from_args
from rtmirror.cli.common import add_engine_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_options(p)
    p.add_argument("--no-gui", action="store_true", help="console only (default: the window where a display exists)")


def run(args) -> int:
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"rtmirror live: {exc}", file=sys.stderr)
        return 2
    if not args.no_gui and gui_available():
        code = run_window(opts)
        if code is not None:
            return code
    return run_console(opts)


def run_console(opts: LiveOptions, status: bool = True) -> int:
    """Run the engine until Ctrl-C / SIGTERM / end of input / error / opts.duration_s; 0 ok, 1 error."""
    duration = opts.duration_s
    from rtmirror.runtime import ModelError
    try:
        engine = build_engine(opts)
    except (ModelError, ValueError, LookupError, RuntimeError, FileNotFoundError, KeyError) as exc:
        print(f"rtmirror live: {exc}", file=sys.stderr)
        return 2
    print(f"rtmirror live: {engine.description}", file=sys.stderr)
    try:
        engine.start()
    except Exception as exc:   # the device could not be opened: nothing was sent yet
        engine.midi.close(0.0)
        print(f"rtmirror live: cannot open the audio input: {exc}", file=sys.stderr)
        return 2
    restore = _stop_on_signals(engine)
    t0 = time.monotonic()
    last = t0
    show = status and sys.stderr.isatty()
    try:
        while engine.running:
            engine.join(0.1)
            now = time.monotonic()
            if duration is not None and now - t0 >= duration:
                engine.stop_event.set()
            if show and now - last >= 0.5:
                last = now
                print("\r" + status_line(engine.snapshot), end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        engine.stop_event.set()
    finally:
        engine.stop_event.set()
        engine.join(10.0)
        restore()
    if show:
        print(file=sys.stderr)
    snap = engine.snapshot
    print(f"rtmirror live: {snap.message}; {engine.pipeline.frames} frames, {engine.midi.sent} MIDI messages, "
          f"{snap.dropped_frames} frames dropped, {snap.input_overflows} input overflows", file=sys.stderr)
    return 1 if engine.error else 0


def status_line(snap) -> str:
    from rtmirror.midi import note_name
    note = f"{note_name(snap.note)} ({snap.note})" if snap.note >= 0 else "--"
    return (f"note {note:10s} level {snap.level_db:6.1f} dBFS  latency {snap.latency_ms:5.1f} ms  "
            f"cpu {100 * snap.cpu_share:4.1f}%  frame p99 {snap.frame_ms_p99:.2f} ms  "
            f"dropped {snap.dropped_frames}  midi {snap.midi_msgs_per_s:.0f}/s ")


def _stop_on_signals(engine):
    """SIGINT/SIGTERM set the engine's stop Event (its worker then closes all notes)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        engine.stop_event.set()

    for s in old:
        signal.signal(s, handler)

    def restore():
        for s, h in old.items():
            signal.signal(s, h)
    return restore



# -- the window -----------------------------------------------------------------------------------
def gui_available() -> bool:
    """A display, PyQt6 and rtmirror.gui are all there (never raises)."""
    if os.environ.get("QT_QPA_PLATFORM", "") == "offscreen":
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import PyQt6.QtWidgets  # noqa: F401
        import rtmirror.gui.app  # noqa: F401
    except Exception:
        return False
    return True


def run_window(opts: LiveOptions, **window) -> int | None:
    """Open the window on these options (rtmirror.gui.app.run_gui); None if it cannot start.
    window: the window's own settings (loop, autostart, record_dir, quit_after_s, ...)."""
    try:
        from rtmirror.gui.app import run_gui
    except Exception as exc:
        print(f"rtmirror: the window could not start ({exc}); running in the console", file=sys.stderr)
        return None
    return int(run_gui(opts, **window) or 0)
