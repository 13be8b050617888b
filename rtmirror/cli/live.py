"""`rtmirror live`: microphone -> synth controls -> MIDI, in real time.

Runs the Engine (rtmirror.engine) from an audio input (or a WAV at real-time pace) to a MIDI port
(a virtual port "rtmirror" by default) and optionally a MIDI file / controls CSV. The options
become one rtmirror.app.LiveOptions; with a display it goes to the window as it is (every flag
reaches the window's engine), else the engine runs in the console. Every way to stop it ends the
same way (docs/LIVE.md, "Stopping and faults"): Ctrl-C, SIGTERM, SIGHUP (terminal closed, ssh
dropped) and SIGQUIT set the engine's stop Event, its worker sends note-offs + All Notes Off and
closes the outputs (the --record file is complete), and the process exits within a bound: a
watchdog ends it (os._exit, after trying the note-offs itself) when stopping takes longer than
STOP_BOUND_S, and a stream or port that could not be closed (the JACK server died under it)
ends it with os._exit too, since PortAudio's exit handler would block or abort.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from rtmirror.app import LiveOptions, build_engine, options_from_args
from rtmirror.cli.common import add_engine_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_options(p)
    p.add_argument("--no-gui", action="store_true", help="console only (default: the window where a display exists)")


STOP_BOUND_S = 10.0     # longest a stop may take before the watchdog ends the process
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, n))


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
    """Run the engine until a stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) / end of input / error /
    opts.duration_s; 0 ok, 1 error. Ends the process itself (os._exit) when a stream or port could
    not be closed (see hard_exit)."""
    duration = opts.duration_s
    from rtmirror.runtime import ModelError
    try:
        engine = build_engine(opts)
    except (ModelError, ValueError, LookupError, RuntimeError, FileNotFoundError, KeyError) as exc:
        print(f"rtmirror live: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # Ctrl-C while the model loads: nothing was opened or sent
        _say("rtmirror live: interrupted before the engine started")
        return 130
    print(f"rtmirror live: {engine.description}", file=sys.stderr)
    # Signals first: one during the warm-up sets the stop Event and the worker stops at once.
    restore = _stop_on_signals(engine)
    try:
        engine.start()
    except Exception as exc:   # the device could not be opened: nothing was sent yet
        restore()
        engine.midi.close(0.0)
        print(f"rtmirror live: cannot open the audio input: {exc}", file=sys.stderr)
        return 2
    _say(f"rtmirror live: {start_latency(engine).describe()}")
    t0 = time.monotonic()
    last = t0
    show = status and _isatty(sys.stderr)
    try:
        while engine.running:
            engine.join(0.1)
            now = time.monotonic()
            if duration is not None and now - t0 >= duration:
                engine.stop_event.set()
            if show and now - last >= 0.5:
                last = now
                show = _say("\r" + status_line(engine.snapshot), end="")   # False once the terminal is gone
    except KeyboardInterrupt:
        engine.stop_event.set()
    finally:
        engine.stop_event.set()
        engine.join(STOP_BOUND_S)
        restore()
    if show:
        _say("")
    snap = engine.snapshot
    code = 1 if engine.error else 0
    if engine.running:   # the worker is stuck (a library call that never returns)
        _say(f"rtmirror live: the engine did not stop within {STOP_BOUND_S:.0f} s; sending note-offs and exiting")
        emergency_close(engine)
        hard_exit(1)
    _say(f"rtmirror live: {snap.message}; {engine.pipeline.frames} frames, {engine.midi.sent} MIDI messages, "
         f"{snap.dropped_frames} frames dropped, {snap.input_overflows} input overflows")
    if needs_hard_exit(engine):
        hard_exit(code)
    return code


def start_latency(engine, wait_s: float = 0.5):
    """The engine's latency by stage once its input has delivered a first period (the period is
    known then; the worker's part is measured later and reads 0 here)."""
    t0 = time.monotonic()
    while getattr(engine.source, "callbacks", 1) == 0 and time.monotonic() - t0 < wait_s and engine.running:
        time.sleep(0.01)
    return engine.latency()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def _say(text: str, end: str = "\n") -> bool:
    """Print to stderr; False when it is gone (SIGHUP: the terminal closed), never raises."""
    try:
        print(text, end=end, file=sys.stderr, flush=True)
        return True
    except (OSError, ValueError):
        return False


def needs_hard_exit(engine) -> bool:
    """A stream or port left open because closing it would block (the audio/MIDI server died):
    the interpreter's exit handlers (PortAudio's Pa_Terminate, libjack) would block or abort."""
    if engine is None:
        return False
    if getattr(engine.source, "stuck", False) or engine.running:
        return True
    outputs = getattr(engine.midi, "outputs", []) if engine.midi is not None else []
    return any(getattr(o, "fatal", False) for o in outputs)


def hard_exit(code: int) -> None:
    """Flush what can be flushed and end the process now (no exit handlers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def emergency_close(engine, timeout: float = 2.0) -> None:
    """From outside the worker (it is stuck): note-offs + All Notes Off + close the outputs, in a
    daemon thread so this too returns within `timeout`."""
    if engine is None or engine.midi is None:
        return
    done = threading.Event()

    def close():
        try:
            engine.midi.close(engine.pipeline.performer.time)
        except Exception:
            pass
        finally:
            done.set()

    threading.Thread(target=close, name="rtmirror-emergency-close", daemon=True).start()
    done.wait(timeout)


def start_watchdog(get_engine, bound_s: float = STOP_BOUND_S, what: str = "rtmirror") -> None:
    """Once a stop was asked for: if the process still runs after bound_s, close the notes from
    here and end it (exit code 1)."""
    def watch():
        time.sleep(bound_s)
        _say(f"{what}: did not stop within {bound_s:.0f} s of the stop request; sending note-offs and exiting")
        engine = get_engine()
        if engine is not None and engine.running:
            emergency_close(engine)
        hard_exit(1)
    threading.Thread(target=watch, name="rtmirror-stop-watchdog", daemon=True).start()


def status_line(snap) -> str:
    from rtmirror.midi import note_name
    note = f"{note_name(snap.note)} ({snap.note})" if snap.note >= 0 else "--"
    return (f"note {note:10s} level {snap.level_db:6.1f} dBFS  latency {snap.latency_ms:5.1f} ms  "
            f"cpu {100 * snap.cpu_share:4.1f}%  frame p99 {snap.frame_ms_p99:.2f} ms  "
            f"dropped {snap.dropped_frames}  midi {snap.midi_msgs_per_s:.0f}/s ")


def _stop_on_signals(engine):
    """SIGINT/SIGTERM/SIGHUP/SIGQUIT set the engine's stop Event (its worker then closes all
    notes); the first one also starts the exit watchdog. Returns a function restoring the old
    handlers."""
    def request(signum):
        engine.stop_event.set()
    return install_stop_signals(request, lambda: engine)


def install_stop_signals(request, get_engine, what: str = "rtmirror live"):
    """Route every stop signal to request(signum) (called in the main thread, between bytecodes);
    the first one starts the watchdog. No-op (returns a no-op) outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    asked = []

    def handler(signum, frame):
        if not asked:
            asked.append(signum)
            start_watchdog(get_engine, what=what)
        request(signum)

    for s in old:
        signal.signal(s, handler)

    def restore():
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
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
