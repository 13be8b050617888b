"""`rtmirror render IN.mid|IN.csv -o OUT.wav [--synth builtin|PLUGIN] [--set live]`.

A MIDI file: notes, pitch bends (--bend-range semitones) and CCs (the control space's CC numbers,
value / 127 -> the control's normalized value). A control CSV (`rtmirror file --controls`):
`time_s` + one column per control of the set, normalized; the Performer turns the frames into
events, exactly as live.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event

MAX_RENDER_SECONDS = 3600.0   # one hour: 115 MB of 16-bit WAV at 16 kHz, 318 MB at 44.1 kHz
MAX_TAIL_SECONDS = 60.0
MAX_INPUT_BYTES = 64 << 20    # a MIDI file or control CSV bigger than this is not a take


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help=f"a MIDI file (.mid) or a control CSV (.csv); at most {MAX_INPUT_BYTES >> 20} MiB, "
                   f"and the render (last event + --tail) at most {MAX_RENDER_SECONDS / 3600:g} h")
    p.add_argument("-o", "--output", required=True, help="output WAV")
    p.add_argument("--synth", default="builtin", help="'builtin' or a VST2/VST3 plugin path (default builtin)")
    p.add_argument("--set", default="live", help="control set (name or FILE.toml:SET); default live")
    p.add_argument("--map", default=None, help="parameter map for a plugin (diva, amsynth or FILE.toml)")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="output sample rate, 1000..384000 Hz (default: 16000 for builtin, 44100 for plugins)")
    p.add_argument("--bend-range", type=float, default=2.0, help="MIDI pitch-wheel range in semitones, (0, 96] (default 2)")
    p.add_argument("--tail", type=float, default=0.5,
                   help=f"seconds rendered after the last event, 0..{MAX_TAIL_SECONDS:g} (default 0.5)")


def midi_to_events(path: str | Path, space: ControlSpace, bend_range: float = 2.0) -> tuple[list[Event], float]:
    """(events, time of the last message) from a standard MIDI file (all tracks, all channels)."""
    import mido
    try:
        mf = mido.MidiFile(str(path))
    except Exception as exc:  # mido parses corrupt bytes into any exception (EOFError, KeyError, ...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable standard MIDI file ({reason}); give a .mid file") from None
    by_cc = {c.cc: c.name for c in space.knobs if c.cc is not None}
    events, t = [], 0.0
    for msg in mf:                       # iteration yields delta times in seconds (tempo applied)
        t += msg.time
        if t > MAX_RENDER_SECONDS:       # a 10-hour note or an absurd tempo: refuse before rendering
            raise ValueError(f"{path}: events run past {MAX_RENDER_SECONDS:.0f} s (the render limit; "
                             f"{t:.0f} s at least, a very long note or an absurd tempo); cut the file")
        if msg.type == "note_on" and msg.velocity > 0:
            events.append(Event(t, NOTE_ON, note=msg.note, velocity=msg.velocity))
        elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            events.append(Event(t, NOTE_OFF, note=msg.note))
        elif msg.type == "pitchwheel":
            events.append(Event(t, PITCH_BEND, value=msg.pitch / 8192.0 * bend_range))
        elif msg.type == "control_change" and msg.control in by_cc:
            events.append(Event(t, CONTROL, name=by_cc[msg.control], value=msg.value / 127.0))
    return events, t


def csv_to_events(path: str | Path, space: ControlSpace) -> tuple[list[Event], float]:
    """(events, end time) from a control CSV: frames -> Performer -> events."""
    from rtmirror.performer import frames_to_events
    with open(path, newline="") as f:
        header = f.readline().strip().split(",")
    if not header or header[0] != "time_s":
        raise ValueError(f"{path}: a control CSV starts with a 'time_s' column, got {header[:1]}")
    missing = [n for n in space.names if n not in header]
    if missing:
        raise ValueError(f"{path}: no column for controls {missing} of set {space.name!r} "
                         f"(columns: {header[1:]}); pick the set with --set")
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a numeric control CSV ({str(exc).splitlines()[0]}); "
                         "write it with `rtmirror file --controls`") from None
    if data.shape[0] < 2 or data.shape[1] != len(header):
        raise ValueError(f"{path}: needs at least two frames of {len(header)} columns, got {data.shape}")
    times = data[:, 0]
    steps = np.diff(times)
    if not (np.all(np.isfinite(times)) and np.all(steps > 0)):
        raise ValueError(f"{path}: time_s must be finite and strictly increasing (a repeated or reversed "
                         "time?); write it with `rtmirror file --controls`")
    if times[0] < 0 or times[-1] > MAX_RENDER_SECONDS:
        raise ValueError(f"{path}: time_s runs from {times[0]:g} to {times[-1]:g} s, outside "
                         f"0..{MAX_RENDER_SECONDS:.0f} s (the render limit); cut the file")
    frame_rate = 1.0 / float(np.median(steps))
    frames = data[:, [header.index(n) for n in space.names]]
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{path}: non-finite control values; every control must be a number in 0..1")
    events = frames_to_events(frames, space, frame_rate)
    shift = float(times[0])
    events = [Event(e.time + shift, e.kind, e.note, e.velocity, e.name, e.value) for e in events]
    return events, float(times[-1]) + 1.0 / frame_rate


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit WAV, written atomically (rtmirror.fileio)."""
    import soundfile as sf

    from rtmirror.fileio import atomic_write
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        sf.write(f, audio, sample_rate, subtype="PCM_16", format="WAV")


def run(args) -> int:
    from rtmirror.cli.common import load_space, one_line
    from rtmirror.synth import make_synth

    def fail(message: str) -> int:
        print(f"rtmirror render: {message}", file=sys.stderr)
        return 2

    src = Path(args.input)
    if not src.is_file():
        return fail(f"{src}: no such file; check the path")
    if src.suffix.lower() not in (".mid", ".midi", ".csv"):
        return fail(f"{src}: input must be .mid or .csv")
    if src.stat().st_size > MAX_INPUT_BYTES:
        return fail(f"{src}: {src.stat().st_size >> 20} MiB, over the {MAX_INPUT_BYTES >> 20} MiB limit; cut the file")
    if not (0.0 <= args.tail <= MAX_TAIL_SECONDS):
        return fail(f"--tail must be 0..{MAX_TAIL_SECONDS:g} s, got {args.tail}")
    if not (0.0 < args.bend_range <= 96.0):
        return fail(f"--bend-range must be in (0, 96] semitones, got {args.bend_range}")
    try:
        space = load_space(args.set)
        if src.suffix.lower() == ".csv":
            events, end = csv_to_events(src, space)
        else:
            events, end = midi_to_events(src, space, args.bend_range)
        sr = args.sample_rate or (16000 if args.synth == "builtin" else 44100)
        synth = make_synth(args.synth, space, sample_rate=sr, param_map=args.map)
        audio = synth.render(events, min(end + args.tail, MAX_RENDER_SECONDS))
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        return fail(one_line(exc))
    try:
        write_wav(args.output, audio, synth.sample_rate)
    except OSError as exc:
        return fail(one_line(exc))
    n_notes = sum(e.kind == NOTE_ON for e in events)
    print(f"{args.output}: {len(audio) / synth.sample_rate:.2f} s at {synth.sample_rate} Hz, {n_notes} notes, "
          f"peak {float(np.max(np.abs(audio), initial=0)):.3f}, synth {args.synth}")
    return 0
