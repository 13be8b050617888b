"""`rtmirror live | devices | ports | demo`: microphone -> synth controls -> MIDI, in real time.

`live` runs the Engine (rtmirror.engine) from an audio input (or a WAV at real-time pace) to a
MIDI port (a virtual port "rtmirror" by default) and optionally a MIDI file / controls CSV.
Ctrl-C and SIGTERM stop it cleanly: note-offs + All Notes Off go out before it exits.

`build_engine(LiveOptions(...))` is the one place an engine is assembled from user options; the
GUI (rtmirror.gui) uses it too.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace


@dataclass(frozen=True)
class LiveOptions:
    input: str | None = None          # audio input: index, name (substring) or None = default device
    wav: str | None = None            # play this file through the engine instead of a device
    realtime: bool = True             # with wav: at real-time pace (False: as fast as possible)
    sample_rate: int | None = None    # device rate (None: the device's default; the engine resamples)
    input_channel: int | None = None  # 0-based input channel (None: mono downmix)
    port: str | None = None           # connect to this MIDI port (index / name / substring)
    virtual: str = "rtmirror"         # else open a virtual port with this name
    channel: int = 1                  # MIDI channel 1..16
    model: str | None = None          # encoder .onnx (None: shipped default)
    cc_map: str | None = None         # CC map TOML (None: shipped default)
    record: str | None = None         # also write what is sent to this MIDI file
    controls_csv: str | None = None   # also write frame-level controls here
    midi_api: str | None = None       # alsa | jack | coremidi | winmm (None: RTMIRROR_MIDI_API / auto)
    no_port: bool = False             # no rtmidi port at all (file / printer only)
    print_midi: bool = False          # print every message sent
    stop_on_port_loss: bool = False
    max_backlog_s: float | None = 0.064
    record_all: bool = False          # engine keeps events, messages and input audio (tests)
    pitch_bend: bool = False          # send pitch bend for glides/vibrato (range: the CC map's bend_range)
    legato: bool = False              # retrigger as note-on before the old note-off (mono legato)
    gate_floor_dbfs: float = -75.0    # input level (before the AGC) under which no note plays
    settle_frames: int | None = None  # note-on wait for a settled pitch (None: Performer default)


def build_engine(opts: LiveOptions, on_message=None, snapshot=None):
    """Assemble runtime, MIDI outputs, audio source and Engine (not started).

    Raises ModelError / ValueError / LookupError / RuntimeError with a user-facing message.
    When no MIDI API is usable the engine still runs (file / printer outputs) and says so.
    """
    from rtmirror.ccmap import CCMap
    from rtmirror.engine import Engine, EngineConfig
    from rtmirror.midi import (ControlsCsv, MessagePrinter, MidiEncoder, MidiFileRecorder, MidiOut,
                               PortOutput, api_label, choose_api)
    from rtmirror.runtime import EncoderRuntime

    say = on_message or (lambda m: print(m, file=sys.stderr))
    if not (1 <= opts.channel <= 16):
        raise ValueError(f"MIDI channel must be 1..16, got {opts.channel}")
    runtime = EncoderRuntime(opts.model)
    cc_map = CCMap.load(opts.cc_map)
    encoder = MidiEncoder(runtime.space, cc_map, opts.channel - 1)
    # The audio source first (device lookup, file read): an input that cannot be found opens
    # no MIDI port. Whatever fails after that closes everything opened so far.
    source = make_source(opts)
    outputs = []
    port_desc = "no MIDI port"
    try:
        if not opts.no_port:
            api = choose_api(opts.midi_api)
            if api is None:
                say("no MIDI API usable here (no ALSA sequencer at /dev/snd/seq, no JACK server running): "
                    "MIDI goes only to the file/printer")
            else:
                port = PortOutput(api, port=opts.port, virtual=None if opts.port else opts.virtual)
                outputs.append(port)
                kind = "connected to" if opts.port else "virtual port"
                port_desc = f"{kind} {port.name!r} ({api_label(api)})"
        if opts.print_midi:
            outputs.append(MessagePrinter(runtime.space, encoder.assignments))
        if opts.record:
            outputs.append(MidiFileRecorder(opts.record))
        midi = MidiOut(encoder, outputs)
        csv = ControlsCsv(opts.controls_csv, runtime.space.names) if opts.controls_csv else None
        cfg = EngineConfig(max_backlog_s=opts.max_backlog_s if opts.realtime else None,
                           stop_on_port_loss=opts.stop_on_port_loss, record=opts.record_all)
        engine = Engine(runtime, source, midi, cfg=cfg, csv=csv, snapshot=snapshot, on_message=say,
                        performer_cfg=performer_config(opts.pitch_bend, opts.legato, cc_map, opts.settle_frames),
                        level_gate=level_gate_config(opts.gate_floor_dbfs))
    except BaseException:
        for o in outputs:          # nothing was sent; close the port, write no file
            if not isinstance(o, MidiFileRecorder):
                try:
                    o.close()
                except Exception:
                    pass
        try:
            source.stop()
        except Exception:
            pass
        raise
    engine.description = (f"{getattr(source, 'device_name', opts.wav)} @ {source.sample_rate} Hz -> "
                          f"{port_desc}, channel {opts.channel}, model {runtime.path.name} "
                          f"({len(runtime.space)} controls, lookahead {runtime.lookahead})")
    return engine


def add_note_options(p) -> None:
    """The note-making options `live`, `file` (and the GUI's engine) share."""
    p.add_argument("--pitch-bend", action="store_true", help="send pitch bend for glides/vibrato (range: the CC map's bend_range)")
    p.add_argument("--legato", action="store_true", help="on a pitch change, new note-on before the old note-off (mono legato)")
    p.add_argument("--settle-frames", type=int, default=None, metavar="N",
                   help="longest wait of a note-on for the pitch to settle, in 8 ms frames (default 1; 0: lowest "
                        "latency, more short extra notes; 4-6: fewest extra notes, for transcription; "
                        "docs/PERFORMER.md)")
    p.add_argument("--gate-floor", type=float, default=-75.0, metavar="DBFS",
                   help="no note while the input RMS (before the AGC) is under this level or within 12 dB "
                        "of the tracked room noise; closes 6 dB lower (default -75)")


def performer_config(pitch_bend: bool, legato: bool, cc_map, settle_frames: int | None = None):
    """The Performer's note rules from the CLI flags; the bend range is the CC map's, so the
    Performer and the MIDI encoder agree with the synth's setting. settle_frames: the longest
    wait of a note-on for a settled pitch (None: the default; 0: play at once, the lowest
    latency, and the pitch counts as settled at once too)."""
    from rtmirror.performer import PerformerConfig
    extra = {}
    if settle_frames is not None:
        if settle_frames < 0:
            raise ValueError(f"--settle-frames must be >= 0, got {settle_frames}")
        extra["onset_settle_frames"] = int(settle_frames)
        if settle_frames == 0:
            extra["pitch_stable_frames"] = 1
    return PerformerConfig(pitch_bend=pitch_bend, legato=legato, bend_range=cc_map.bend_range, **extra)


def level_gate_config(floor_dbfs: float):
    """The gate floor: opens above floor_dbfs (and 12 dB above the tracked noise floor), closes
    6 dB lower (rtmirror/level_gate.py)."""
    from rtmirror.level_gate import LevelGateConfig

    return LevelGateConfig(open_dbfs=floor_dbfs, close_dbfs=floor_dbfs - 6.0)


def make_source(opts: LiveOptions):
    from rtmirror.audio_io import FileInput, MicInput
    if opts.wav:
        return FileInput.from_file(opts.wav, opts.sample_rate, realtime=opts.realtime)
    return MicInput(opts.input, opts.sample_rate, opts.input_channel)


# -- live ----------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", metavar="DEV", help="audio input device (index or name; default: system default)")
    p.add_argument("--wav", metavar="FILE", help="play a WAV file through the engine at real-time pace instead")
    p.add_argument("--sample-rate", type=int, help="input sample rate (default: the device's)")
    p.add_argument("--input-channel", type=int, help="use this input channel, 1-based (default: mono mix)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--port", metavar="NAME", help="send to this existing MIDI port (index or name)")
    g.add_argument("--virtual", metavar="NAME", default="rtmirror", help="open a virtual MIDI port (default 'rtmirror')")
    p.add_argument("--channel", type=int, default=1, help="MIDI channel 1..16 (default 1)")
    p.add_argument("--model", metavar="PATH", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--cc-map", metavar="FILE", help="CC map TOML (default: GM sound controllers, see docs/LIVE.md)")
    p.add_argument("--record", metavar="OUT.mid", help="also record what is sent to a MIDI file")
    p.add_argument("--controls", metavar="OUT.csv", help="also write frame-level controls to a CSV")
    p.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"),
                   help="MIDI API (default: $RTMIRROR_MIDI_API, else ALSA if /dev/snd/seq exists, else JACK)")
    add_note_options(p)
    p.add_argument("--stop-on-port-loss", action="store_true", help="stop when the MIDI port disappears (default: report, keep running)")
    p.add_argument("--print-midi", action="store_true", help="print every MIDI message sent")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--no-gui", action="store_true", help="console only (default: the window where a display exists)")


def options_from_args(args) -> LiveOptions:
    ch = getattr(args, "input_channel", None)
    wav = getattr(args, "wav", None)
    return LiveOptions(
        max_backlog_s=0.5 if wav else LiveOptions.max_backlog_s,   # a file waits for nobody
        input=getattr(args, "input", None), wav=getattr(args, "wav", None),
        sample_rate=getattr(args, "sample_rate", None), input_channel=None if ch is None else ch - 1,
        port=getattr(args, "port", None), virtual=getattr(args, "virtual", None) or "rtmirror",
        channel=getattr(args, "channel", 1), model=getattr(args, "model", None),
        cc_map=getattr(args, "cc_map", None), record=getattr(args, "record", None),
        controls_csv=getattr(args, "controls", None), midi_api=getattr(args, "midi_api", None),
        print_midi=getattr(args, "print_midi", False),
        stop_on_port_loss=getattr(args, "stop_on_port_loss", False),
        pitch_bend=getattr(args, "pitch_bend", False), legato=getattr(args, "legato", False),
        gate_floor_dbfs=getattr(args, "gate_floor", -75.0), settle_frames=getattr(args, "settle_frames", None))


def run(args) -> int:
    if not args.no_gui and gui_available():
        code = run_gui(gui_argv(args))
        if code is not None:
            return code
    return run_console(options_from_args(args), args.duration)


def gui_argv(args) -> list[str]:
    """`rtmirror live` options -> `rtmirror gui` arguments (the window has its own pickers for
    the rest: virtual port name, recording)."""
    argv = [args.wav] if getattr(args, "wav", None) else []
    for flag, value in (("--input", args.input), ("--port", args.port), ("--midi-api", args.midi_api),
                        ("--model", args.model), ("--cc-map", args.cc_map)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + ["--channel", str(args.channel)]


def run_console(opts: LiveOptions, duration: float | None = None, status: bool = True) -> int:
    """Run the engine until Ctrl-C / SIGTERM / end of input / error / duration; 0 ok, 1 error."""
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


# -- GUI hand-off --------------------------------------------------------------------------------
def gui_available() -> bool:
    """A display, PyQt6 and rtmirror.gui are all there (never raises)."""
    if os.environ.get("QT_QPA_PLATFORM", "") == "offscreen":
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import PyQt6.QtWidgets  # noqa: F401
        import rtmirror.gui.cli  # noqa: F401
    except Exception:
        return False
    return True


def run_gui(argv: list[str]) -> int | None:
    """Open the window via `rtmirror gui`'s own entry point; None if it cannot start."""
    try:
        import rtmirror.gui.cli as gui_cli
        p = argparse.ArgumentParser(prog="rtmirror gui")
        gui_cli.add_arguments(p)
        try:
            gui_args = p.parse_args(argv)
        except SystemExit:
            gui_args = p.parse_args([])
        return int(gui_cli.run(gui_args) or 0)
    except Exception as exc:
        print(f"rtmirror: the window could not start ({exc}); running in the console", file=sys.stderr)
        return None


# -- devices / ports -----------------------------------------------------------------------------
def _devices_args(p):
    p.add_argument("--rescan", action="store_true", help=argparse.SUPPRESS)


def _devices_run(args) -> int:
    from rtmirror.audio_io import list_input_devices
    try:
        devs = list_input_devices()
    except RuntimeError as exc:
        print(f"rtmirror devices: {exc}", file=sys.stderr)
        return 1
    if not devs:
        print("no audio input devices found")
        return 0
    for d in devs:
        star = "*" if d["default"] else " "
        print(f"{star}[{d['index']}] {d['name']}  ({d['hostapi']}, {d['channels']} ch, "
              f"{d['default_samplerate']:.0f} Hz)")
    return 0


def _ports_args(p):
    p.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"), help="MIDI API (default: auto)")
    p.add_argument("--learn", metavar="CONTROL",
                   help="sweep this control's CC for a synth's MIDI learn (e.g. 'VCF1: Frequency')")
    p.add_argument("--port", help="with --learn: send to this port (default: virtual port 'rtmirror')")
    p.add_argument("--seconds", type=float, default=10.0, help="with --learn: sweep duration")
    p.add_argument("--cc-map", help="with --learn: CC map TOML")


def _ports_run(args) -> int:
    from rtmirror.midi import api_label, choose_api, list_output_ports
    try:
        api = choose_api(args.midi_api)
    except (ValueError, RuntimeError) as exc:
        print(f"rtmirror ports: {exc}", file=sys.stderr)
        return 1
    if api is None:
        print("no MIDI API usable here (no ALSA sequencer at /dev/snd/seq, no JACK server running)")
        return 0
    if args.learn:
        return _learn(api, args)
    ports = list_output_ports(api)
    print(f"MIDI output ports ({api_label(api)}):" if ports else f"no MIDI ports ({api_label(api)})")
    for i, name in enumerate(ports):
        print(f"[{i}] {name}")
    return 0


def _learn(api, args) -> int:
    """Slow triangle sweep on one control's CC: click 'MIDI Learn' on the synth's knob, run this."""
    from rtmirror.ccmap import CCMap
    from rtmirror.controls import ControlSpace
    from rtmirror.midi import PortOutput
    cmap = CCMap.load(args.cc_map)
    space = ControlSpace.load("exp2")
    try:
        a = {x.name: x for x in cmap.for_space(space) if x is not None}[args.learn]
    except KeyError:
        print(f"rtmirror ports: no CC for {args.learn!r}; known: {sorted(cmap.controls)}", file=sys.stderr)
        return 2
    out = PortOutput(api, port=args.port, virtual=None if args.port else "rtmirror")
    print(f"sweeping CC {a.cc} ({a.name}) on {out.name!r} for {args.seconds:.0f} s")
    t0 = time.monotonic()
    try:
        while (t := time.monotonic() - t0) < args.seconds:
            v = 1.0 - abs((t / 2.0) % 2.0 - 1.0)       # 0 -> 1 -> 0 every 4 s
            out.send(t, (0xB0, a.cc, int(round(v * 127))))
            time.sleep(0.02)
    except KeyboardInterrupt:
        pass
    finally:
        out.close()
    return 0


devices = SimpleNamespace(add_arguments=_devices_args, run=_devices_run)
ports = SimpleNamespace(add_arguments=_ports_args, run=_ports_run)


# -- demo (the main job) -------------------------------------------------------------------------
def _demo_args(p):
    p.add_argument("--no-gui", action="store_true", help="never open the window")
    p.add_argument("--melody", action="store_true", help="play the demo melody even if an input device exists")
    p.add_argument("--out", default="demo.mid", help="MIDI file the demo melody run writes (default demo.mid)")
    p.add_argument("--seconds", type=float, default=8.0, help="demo melody length")
    p.add_argument("--fast", action="store_true", help="feed the melody as fast as possible (default: real time)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"))
    p.add_argument("--wav-out", help=argparse.SUPPRESS)


def _demo_run(args) -> int:
    if not args.no_gui and not args.melody and gui_available():
        code = run_gui([])
        if code is not None:
            return code
    if not args.melody:
        from rtmirror.audio_io import list_input_devices
        try:
            has_input = bool(list_input_devices())
        except RuntimeError:
            has_input = False
        if has_input:
            print("rtmirror demo: listening on the default input device (Ctrl-C to stop)", file=sys.stderr)
            return run_console(LiveOptions(model=args.model, midi_api=args.midi_api))
        print("rtmirror demo: no audio input device found - playing the built-in demo melody "
              "through the same engine instead", file=sys.stderr)
    return demo_melody(args)


def demo_melody(args) -> int:
    """Render a melody with the built-in voice, play it through the live engine, print and record."""
    import numpy as np
    import soundfile as sf

    from rtmirror.runtime import EncoderRuntime, ModelError
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import general_melody

    try:
        runtime = EncoderRuntime(args.model)
    except ModelError as exc:
        print(f"rtmirror demo: {exc}", file=sys.stderr)
        return 2
    sr = 16000
    melody = general_melody(np.random.default_rng(args.seed), runtime.space, duration_s=args.seconds)
    audio = make_synth("builtin", runtime.space, sample_rate=sr).render(melody.events, melody.duration_s)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        wav = args.wav_out or os.path.join(tmp, "demo_melody.wav")
        sf.write(wav, audio, sr)
        print(f"rtmirror demo: melody of {len(melody.notes)} notes, {melody.duration_s:.1f} s "
              f"(built-in voice); sending what the model plays:", file=sys.stderr)
        # A file has no player waiting on latency: keep every frame unless 0.5 s behind.
        opts = LiveOptions(wav=wav, realtime=not args.fast, model=args.model, midi_api=args.midi_api,
                           record=args.out, print_midi=True, max_backlog_s=0.5)
        try:
            from rtmirror.midi import choose_api
            choose_api(args.midi_api)
        except (ValueError, RuntimeError) as exc:
            print(f"rtmirror demo: {exc}; writing only the file", file=sys.stderr)
            opts = replace(opts, no_port=True)
        code = run_console(opts, status=False)
    if code == 0:
        print(f"rtmirror demo: wrote {args.out}", file=sys.stderr)
    return code


demo = SimpleNamespace(add_arguments=_demo_args, run=_demo_run)
