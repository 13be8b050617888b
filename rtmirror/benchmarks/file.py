"""`rtmirror bench file`: `rtmirror file` on a 60 s melody, warm, next to basic-pitch on the same file.

The melody is a general melody (rtmirror.synth.melody) played by the built-in voice, written to a
temporary WAV. Timed, in this order, in one run:
  1. `rtmirror file IN.wav -o OUT.mid` in this process (the command's whole `run`: model load,
     read, process_full on the full-sequence graph, MIDI file written) after one warm-up run;
  2. the same with `--streaming` (the live path: one encoder step per frame);
  3. basic-pitch 0.4.0 (its ONNX model under onnxruntime, onnxruntime's default threads) in its own
     venv (--anchor-python): `predict(wav, model)` + `midi.write(OUT.mid)` with the model loaded
     once, after one warm-up call;
  4. the full-graph run again (the load may have moved meanwhile).
Wall clock and this process's CPU time are printed as x real time (audio s / processing s), the
best round of each, and their ratios. basic-pitch's CPU time counts all its threads.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


DEFAULT_ANCHOR = "/work/anchors/basic-pitch/bin/python"

# Runs inside the basic-pitch venv: argv = wav, out.mid, rounds; prints one JSON line.
BASIC_PITCH_TIMER = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from pathlib import Path
import basic_pitch
from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model, predict
model = Model(Path(ICASSP_2022_MODEL_PATH).with_suffix(".onnx"))
wav, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
predict(wav, model)
wall, cpu, notes = [], [], 0
for _ in range(rounds):
    c0, t0 = time.process_time(), time.perf_counter()
    _, midi, events = predict(wav, model)
    midi.write(out)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    notes = len(events)
import onnxruntime
print(json.dumps({"wall": wall, "cpu": cpu, "notes": notes, "onnxruntime": onnxruntime.__version__,
                  "version": getattr(basic_pitch, "__version__", "0.4.0")}))
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="length of the melody (default 60 s)")
    p.add_argument("--sample-rate", type=int, default=16000, help="the WAV's sample rate (default 16000)")
    p.add_argument("--seed", type=int, default=7, help="melody seed (default 7)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default 3)")
    p.add_argument("--model", default=None, help="encoder .onnx (default: the shipped model)")
    p.add_argument("--anchor-python", default=DEFAULT_ANCHOR,
                   help=f"python of a venv with basic-pitch 0.4.0 + onnxruntime (default {DEFAULT_ANCHOR}; "
                        "tools/anchors/setup.sh makes it)")
    p.add_argument("--no-streaming", action="store_true", help="skip the --streaming rounds")


def _time_file_command(argv: list[str], rounds: int) -> tuple[list[float], list[float], str]:
    """rounds runs of `rtmirror <argv>` in this process -> (wall s, CPU s, the command's output)."""
    from rtmirror.cli import main
    wall, cpu, said = [], [], ""
    for _ in range(rounds):
        buf = io.StringIO()
        c0, t0 = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if rc != 0:
            raise RuntimeError(f"rtmirror {' '.join(argv)} exited {rc}")
        said = buf.getvalue().strip()
    return wall, cpu, said


def _basic_pitch(python: str, wav: Path, out: Path, rounds: int) -> dict | str:
    """The anchor's timings, or a line saying why there are none."""
    if not Path(python).is_file():
        return (f"basic-pitch anchor missing: no {python} (make it with tools/anchors/setup.sh, "
                f"or pass --anchor-python PATH)")
    p = subprocess.run([python, "-c", BASIC_PITCH_TIMER, str(wav), str(out), str(rounds)],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return f"basic-pitch anchor failed ({python}): {tail}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def _note_ons(mid: Path) -> int:
    import mido
    return sum(m.type == "note_on" and m.velocity > 0 for m in mido.MidiFile(mid))


def run(args) -> int:
    import soundfile as sf

    from rtmirror.benchmarks.frontend import machine
    from rtmirror.controls import ControlSpace
    from rtmirror.testing.probe import demo_audio

    secs, sr = float(args.seconds), int(args.sample_rate)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rtmirror-bench-file-") as tmp:
        tmp = Path(tmp)
        wav = tmp / "melody.wav"
        audio, mel = demo_audio(ControlSpace.load("live"), secs, sr, seed=args.seed)
        sf.write(wav, audio, sr, subtype="PCM_16")
        print(f"file: {secs:g} s general melody (seed {args.seed}, {len(mel.notes)} notes), built-in voice, "
              f"{sr} Hz 16-bit WAV; best of {args.rounds} warm rounds each")
        model = ["--model", args.model] if args.model else []
        full_argv = ["file", str(wav), "-o", str(tmp / "full.mid"), *model]
        _time_file_command(full_argv, 1)                        # warm-up: numba cache, onnxruntime
        wall, cpu, said = _time_file_command(full_argv, args.rounds)
        rows = {}
        if not args.no_streaming:
            s_argv = ["file", str(wav), "-o", str(tmp / "stream.mid"), "--streaming", *model]
            rows["streaming"] = _time_file_command(s_argv, args.rounds)[:2]
        bp = _basic_pitch(args.anchor_python, wav, tmp / "bp.mid", args.rounds)
        wall2, cpu2, _ = _time_file_command(full_argv, args.rounds)
        rows["full"] = (wall + wall2, cpu + cpu2)
        print(f"rtmirror file: {said}")

        def x(seconds: list[float]) -> float:
            return secs / min(seconds)

        full_x = (x(rows["full"][0]), x(rows["full"][1]))
        print("x real time (audio s / processing s), best round, by wall clock and by CPU time:")
        print(f"  rtmirror file (full-sequence graph):  wall {full_x[0]:7.1f}x   cpu {full_x[1]:7.1f}x   "
              f"(median {secs / float(np.median(rows['full'][0])):.0f}x; rounds: "
              f"{', '.join(f'{secs / w:.0f}x' for w in rows['full'][0])}; target >= 100x)")
        if "streaming" in rows:
            sx = (x(rows["streaming"][0]), x(rows["streaming"][1]))
            print(f"  rtmirror file --streaming (step graph): wall {sx[0]:5.1f}x   cpu {sx[1]:7.1f}x   "
                  f"(full / streaming: wall {full_x[0] / sx[0]:.2f}x)")
        if isinstance(bp, str):
            print(f"  {bp}")
        else:
            bx = (x(bp["wall"]), x(bp["cpu"]))
            print(f"  basic-pitch {bp['version']} (ONNX, onnxruntime {bp['onnxruntime']}): wall {bx[0]:7.1f}x   "
                  f"cpu {bx[1]:7.1f}x   ({bp['notes']} notes)")
            print(f"  ratio rtmirror file / basic-pitch:    wall {full_x[0] / bx[0]:7.2f}x   cpu {full_x[1] / bx[1]:7.2f}x")
        print(f"notes: melody {len(mel.notes)}, rtmirror {_note_ons(tmp / 'full.mid')}")
    return 0
