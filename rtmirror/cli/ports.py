"""`rtmirror ports`: list MIDI output ports; `--learn CONTROL` sweeps one CC for a synth's MIDI learn."""
from __future__ import annotations

import argparse
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--midi-api", choices=("alsa", "jack", "coremidi", "winmm"), help="MIDI API (default: auto)")
    p.add_argument("--learn", metavar="CONTROL",
                   help="sweep this control's CC for a synth's MIDI learn (e.g. 'VCF1: Frequency')")
    p.add_argument("--port", help="with --learn: send to this port (default: virtual port 'rtmirror')")
    p.add_argument("--seconds", type=float, default=10.0, help="with --learn: sweep duration")
    p.add_argument("--cc-map", help="with --learn: CC map TOML")


def run(args) -> int:
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
    from rtmirror.midi.ccmap import CCMap
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
