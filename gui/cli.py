"""`rtmirror gui [FILE.wav] [--input DEV] [--port NAME] [--model PATH]`: the desktop window."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wav", nargs="?", help="play this WAV file through the engine at real-time pace "
                        "(default: the audio input device)")
    parser.add_argument("--input", metavar="DEV", help="audio input device (index or name; see `rtmirror devices`)")
    parser.add_argument("--port", metavar="NAME", help="MIDI output port to connect to (see `rtmirror ports`); "
                        "default: a virtual port 'rtmirror'")
    parser.add_argument("--no-midi", action="store_true", help="send no MIDI (display only)")
    parser.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"),
                        help="MIDI system (default: ALSA where it exists, else JACK while a server runs)")
    parser.add_argument("--channel", type=int, default=1, help="MIDI channel 1..16 (default 1)")
    parser.add_argument("--model", metavar="PATH", help="exported encoder .onnx (default: the shipped model)")
    parser.add_argument("--cc-map", metavar="TOML", help="CC map file (default: the shipped map)")
    parser.add_argument("--loop", action="store_true", help="replay the WAV file when it ends")
    parser.add_argument("--no-start", action="store_true", help="open the window without starting the engine")
    parser.add_argument("--record-dir", default=".", help="where 'record MIDI' writes .mid files (default: .)")
    parser.add_argument("--quit-after", type=float, metavar="S", help="close after S seconds (smoke tests)")
    parser.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save a grab of the window first")
    parser.add_argument("--size", metavar="WxH", help="window size, e.g. 1280x820")


def run(args: argparse.Namespace) -> int:
    from rtmirror.gui.app import run_gui

    if not (1 <= args.channel <= 16):
        print(f"rtmirror gui: --channel must be 1..16, got {args.channel}")
        return 2
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            print(f"rtmirror gui: --size must look like 1280x820, got {args.size!r}")
            return 2
    return run_gui(args.wav, input_device=args.input, port=args.port, no_midi=args.no_midi,
                   midi_api=args.midi_api, channel=args.channel, model=args.model, cc_map=args.cc_map,
                   loop=args.loop, autostart=not args.no_start, record_dir=args.record_dir,
                   quit_after_s=args.quit_after, screenshot=args.screenshot, size=size)
