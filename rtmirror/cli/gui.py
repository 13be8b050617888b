"""`rtmirror gui [FILE.wav] [live options]`: the desktop window. It takes every `rtmirror live`
option (they become one rtmirror.app.LiveOptions, handed to the window as it is) plus the
window's own settings."""
from __future__ import annotations

import argparse
import sys

from rtmirror.cli.common import add_engine_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wav", nargs="?", help="play this WAV file through the engine at real-time pace "
                        "(default: the audio input device)")
    add_engine_options(parser, wav_flag=False)
    parser.add_argument("--no-midi", action="store_true", help="send no MIDI (display only)")
    parser.add_argument("--loop", action="store_true", help="replay the WAV file when it ends")
    parser.add_argument("--no-start", action="store_true", help="open the window without starting the engine")
    parser.add_argument("--record-dir", default=".", help="where 'record MIDI' writes .mid files (default: .)")
    parser.add_argument("--quit-after", type=float, metavar="S", help="close after S seconds (smoke tests)")
    parser.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save a grab of the window first")
    parser.add_argument("--size", metavar="WxH", help="window size, e.g. 1280x820")


def run(args: argparse.Namespace) -> int:
    from rtmirror.app import options_from_args

    try:
        live = options_from_args(args)
    except ValueError as exc:
        print(f"rtmirror gui: {exc}", file=sys.stderr)
        return 2
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            print(f"rtmirror gui: --size must look like 1280x820, got {args.size!r}", file=sys.stderr)
            return 2
    from rtmirror.gui.app import run_gui

    return run_gui(live, loop=args.loop, autostart=not args.no_start, record_dir=args.record_dir,
                   quit_after_s=args.quit_after, screenshot=args.screenshot, size=size)
