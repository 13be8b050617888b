"""`rtmirror file IN.wav -o OUT.mid [--controls OUT.csv] [--resynth OUT.wav]`: the live path, offline.

The file at once (`process_full`, the default): the live Pipeline's stages, each over the whole
signal — DC blocker, resampler, cochlea, level gate — then the encoder's full-sequence graph
once (EncoderRuntime.run_full, in exactly overlapped chunks on long files), then the stages after
the encoder (`Pipeline.play`: level gate on the gate control, Performer, key/scale lock) on every
row, into the same MIDI encoder (thresholds, rate caps, latched CCs before note-on, all notes
closed). Every stage before the encoder is block-partition invariant and the full graph computes
what the step graph computes, so the events are the streaming path's (tests/test_file_mode.py);
`--streaming` runs that path instead (`process`: the Pipeline fed in blocks, one encoder step
per frame). Event times are on the input file's timeline: the resampler holds samples back
(latency live) but does not shift them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rtmirror.cli.common import add_note_options
from rtmirror.engine import BlockResult, Pipeline

# Input samples per resampler call in process_full: LiveResampler gathers (outputs x taps)
# float64 arrays, which stay in cache at this size (60 s at 16 kHz: 230 ms in one call, 110 ms in
# 4096-sample calls); results do not depend on it.
RESAMPLE_CHUNK = 8192


def add_arguments(p) -> None:
    p.add_argument("input", help="audio file (WAV/FLAC/OGG; any sample rate; stereo is mixed down)")
    p.add_argument("-o", "--output", required=True, help="standard MIDI file to write (notes + CC)")
    p.add_argument("--controls", metavar="CSV", help="also write frame-level controls (time + one column per control)")
    p.add_argument("--resynth", metavar="WAV", help="also render the result with the built-in voice")
    p.add_argument("--model", help="encoder .onnx (default: the shipped model)")
    p.add_argument("--cc-map", help="CC map TOML (default: rtmirror/resources/cc_map_default.toml)")
    p.add_argument("--channel", type=int, default=1, help="MIDI channel 1..16 (default 1)")
    add_note_options(p)
    p.add_argument("--streaming", action="store_true",
                   help="run the live path instead: the file in blocks, one encoder step per frame "
                        "(the same events, several times slower; for debugging)")
    p.add_argument("--block", type=int, default=4096,
                   help="with --streaming: samples per processing block (results do not depend on it)")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32, sample rate) at the file's own rate (the pipeline resamples); header limits
    and one-line errors: rtmirror.audio_file."""
    from rtmirror.audio_file import read_audio as read_checked
    return read_checked(path)


def process(pipeline: Pipeline, audio: np.ndarray, block: int = 4096, progress: bool = False) -> BlockResult:
    """The streaming path: feed audio through the pipeline in blocks, then finish() it."""
    pipeline.reset()
    parts = []
    steps = range(0, len(audio), max(1, block))
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, unit="block", desc="file", leave=False)
    for i in steps:
        parts.append(pipeline.process(audio[i:i + block]))
    parts.append(pipeline.finish())
    return BlockResult(
        np.concatenate([p.spec for p in parts]).astype(np.float32, copy=False),
        np.concatenate([p.model for p in parts]),
        np.concatenate([p.controls for p in parts]),
        np.concatenate([p.times for p in parts]),
        [e for p in parts for e in p.events])


def process_full(pipeline: Pipeline, audio: np.ndarray) -> BlockResult:
    """The whole file at once, with the encoder's full-sequence graph: the same BlockResult as
    `process` (spec, model rows within the graphs' float tolerance, the same events)."""
    pipeline.reset()
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    finite = np.isfinite(x)
    if not finite.all():                     # as Pipeline.process: non-finite samples become 0
        pipeline.nonfinite_samples += int(x.size - np.count_nonzero(finite))
        x = np.where(finite, x, np.float32(0.0))
    pipeline.input_samples += x.size
    x = pipeline.dc_block.process(x)
    if pipeline.resampler is not None:
        r = pipeline.resampler
        x = np.concatenate([r.process(x[i:i + RESAMPLE_CHUNK]) for i in range(0, x.size, RESAMPLE_CHUNK)]
                           + [r.flush()])
    spec = pipeline.cochlea.process(x, copy=True)                     # (T, 128)
    level_open = pipeline.level_gate.process(x)                       # (T,) same framing
    model = pipeline.runtime.run_full(spec)                           # (T, K), row t = frame t
    if not np.isfinite(model).all():
        # the step graph restarts from the zero state after a non-finite output; only the
        # stream itself reproduces that
        return process(pipeline, audio)
    result = pipeline.play(spec, model, level_open)
    result.events += pipeline.end()
    return result


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
        encoder = MidiEncoder(pipeline.space, cc_map, args.channel - 1, cc_in_silence=args.cc_in_silence)
    except (ModelError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"rtmirror file: {exc}", file=sys.stderr)
        return 2
    if args.streaming:
        result = process(pipeline, audio, args.block, progress=len(audio) > 60 * sr)
    else:
        result = process_full(pipeline, audio)
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
