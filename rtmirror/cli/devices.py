"""`rtmirror devices`: list audio input devices."""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rescan", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
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
