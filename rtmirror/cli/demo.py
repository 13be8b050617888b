"""`rtmirror demo`, the main job: the window where a display exists, else the live engine on the
default input device; with no input device, a melody of the built-in voice through the same engine
(printing what it sends and writing demo.mid)."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from rtmirror.app import LiveOptions
from rtmirror.cli.live import gui_available, run_console, run_window


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gui", action="store_true", help="never open the window")
    p.add_argument("--melody", action="store_true", help="play the demo melody even if an input device exists")
    p.add_argument("--out", default="demo.mid", help="MIDI file the demo melody run writes (default demo.mid)")
    p.add_argument("--seconds", type=float, default=8.0, help="demo melody length")
    p.add_argument("--fast", action="store_true", help="feed the melody as fast as possible (default: real time)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"))
    p.add_argument("--wav-out", help=argparse.SUPPRESS)


def run(args) -> int:
    if not args.no_gui and not args.melody and gui_available():
        code = run_window(LiveOptions(model=args.model, midi_api=args.midi_api))
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
