"""`rtmirror file IN.wav -o OUT.mid [--controls OUT.csv] [--resynth OUT.wav]`: the live path, offline.

The same `Pipeline` object the live engine runs (resample -> CochlearStream -> encoder step ->
Performer), fed the file in blocks as fast as the CPU allows, into the same MIDI encoder
(thresholds, rate caps, latched CCs before note-on, all notes closed). Event times are already on
the input file's timeline: the streaming resampler holds samples back (latency live) but does not
shift them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rtmirror.cli.common import add_note_options
from rtmirror.engine import BlockResult, Pipeline


def add_arguments(p) -> None:
    p.add_argument("input", help="audio file (WAV/FLAC/OGG; any sample rate; stereo is mixed down)")
    p.add_argument("-o", "--output", required=True, help="standard MIDI file to write (notes + CC)")
    p.add_argument("--controls", metavar="CSV", help="also write frame-level controls (time + one column per control)")
    p.add_argument("--resynth", metavar="WAV", help="also render the result with the built-in voice")
    p.add_argument("--model", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--cc-map", help="CC map TOML (default: rtmirror/resources/cc_map_default.toml)")
    p.add_argument("--channel", type=int, default=1, help="MIDI channel 1..16 (default 1)")
    add_note_options(p)
    p.add_argument("--block", type=int, default=4096, help="samples per processing block (results do not depend on it)")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32, sample rate) at the file's own rate (the pipeline resamples); header limits
    and one-line errors: rtmirror.audio_file."""
    from rtmirror.audio_file import read_audio as read_checked
    return read_checked(path)


def process(pipeline: Pipeline, audio: np.ndarray, block: int = 4096, progress: bool = False) -> BlockResult:
    """Feed audio through the pipeline in blocks, then finish() it. Returns everything at once."""
    parts = []
    steps = range(0, len(audio), max(1, block))
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, unit="block", desc="file", leave=False)
    for i in steps:
        parts.append(pipeline.process(audio[i:i + block]))
    parts.append(pipeline.finish())
    k = len(pipeline.space)
    return BlockResult(
        np.concatenate([p.spec for p in parts]).astype(np.float32, copy=False),
        np.concatenate([p.model for p in parts]) if parts else np.zeros((0, k), np.float32),
        np.concatenate([p.controls for p in parts]),
        np.concatenate([p.times for p in parts]),
        [e for p in parts for e in p.events])


def run(args) -> int:
    from rtmirror.midi.ccmap import CCMap
    from rtmirror.midi import ControlsCsv, MidiEncoder, MidiFileRecorder, MidiOut
    from rtmirror.runtime import EncoderRuntime, ModelError

    if not (1 <= args.channel <= 16):
        print("rtmirror file: --channel must be 1..16", file=sys.stderr)
        return 2
    from rtmirror.fileio import UserError, check_outputs
    try:
        check_outputs({"the input": args.input, "--model": args.model, "--cc-map": args.cc_map},
                      {"-o": args.output, "--controls": args.controls, "--resynth": args.resynth})
    except UserError as exc:
        print(f"rtmirror file: {exc}", file=sys.stderr)
        return 2
    try:
        runtime = EncoderRuntime(args.model)
        cc_map = CCMap.load(args.cc_map)
        audio, sr = read_audio(args.input)
        from rtmirror.app import level_gate_config, performer_config
        perf_cfg, _ = performer_config(runtime, cc_map, pitch_bend=args.pitch_bend, legato=args.legato,
                                       settle_frames=args.settle_frames)
        from rtmirror.app import LiveOptions, scale_lock
        lock = scale_lock(LiveOptions(key=args.key, scale=args.scale), cc_map.bend_range)
        pipeline = Pipeline(runtime, sr, perf_cfg, level_gate=level_gate_config(args.gate_floor), scale_lock=lock)
        encoder = MidiEncoder(pipeline.space, cc_map, args.channel - 1)
    except (ModelError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"rtmirror file: {exc}", file=sys.stderr)
        return 2
    result = process(pipeline, audio, args.block, progress=len(audio) > 60 * sr)
    events, times = result.events, result.times

    midi = MidiOut(encoder, [MidiFileRecorder(args.output)])
    midi.send_frames(events, times)
    midi.close(max(times[-1] if len(times) else 0.0, events[-1].time if events else 0.0))
    if midi.errors:
        print("rtmirror file: " + "; ".join(midi.errors), file=sys.stderr)
        return 1
    if args.controls:
        sink = ControlsCsv(args.controls, pipeline.space.names)
        sink.write(times, result.controls)
        sink.close()
    n_notes = sum(e.kind == "note_on" for e in events)
    print(f"{args.input}: {len(audio) / sr:.2f} s -> {args.output}: {n_notes} notes, "
          f"{midi.sent} MIDI messages ({len(result.controls)} frames)")
    if args.resynth:
        from rtmirror.midi.output import _atomic_write
        from rtmirror.synth import make_synth
        import soundfile as sf
        synth = make_synth("builtin", pipeline.space)
        y = synth.render(events, len(audio) / sr)
        _atomic_write(Path(args.resynth), lambda f: sf.write(f, y, synth.sample_rate, format="WAV"))
        print(f"resynthesis (built-in voice, {synth.sample_rate} Hz) -> {args.resynth}")
    return 0
