"""Bad input to every subcommand that reads a file: exit code 2, a line or two on stderr naming the
file, no traceback, no output left behind (not even a temporary file).

The cases run in ONE subprocess (`python -c RUNNER cases.json`): each python start imports numba
and onnxruntime (seconds), so the runner calls `rtmirror.cli.main(argv)` in-process per case and
reports its exit code and stderr. An exception that escapes main() is printed as the interpreter
would print it (a traceback, exit code 1), so the assertions see what a user would see.
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RUNNER = r"""
import contextlib, io, json, sys, traceback
from rtmirror.cli import main
cases = json.load(open(sys.argv[1]))
results = []
for case in cases:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(case["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append({"name": case["name"], "code": code, "stderr": err.getvalue()})
json.dump(results, open(sys.argv[2], "w"))
"""


# -- broken files -----------------------------------------------------------------------------------
def _wav_bytes(rate: int = 16000, seconds: float = 0.5, subtype: str = "PCM_16", data=None) -> bytes:
    buf = io.BytesIO()
    x = np.zeros(int(rate * seconds), np.float32) if data is None else data
    sf.write(buf, x, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def _with_header_rate(wav: bytes, rate: int) -> bytes:
    """A canonical 44-byte-header WAV with its fmt sample rate (offset 24) and byte rate replaced."""
    b = bytearray(wav)
    assert b[12:16] == b"fmt "
    channels, bits = struct.unpack_from("<H", b, 22)[0], struct.unpack_from("<H", b, 34)[0]
    struct.pack_into("<I", b, 24, rate)
    struct.pack_into("<I", b, 28, min(2**32 - 1, rate * channels * bits // 8))
    return bytes(b)


def _midi(tmp: Path, name: str, messages, ticks_per_beat: int = 480) -> Path:
    import mido
    mf = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    tr = mido.MidiTrack(messages)
    mf.tracks.append(tr)
    p = tmp / name
    mf.save(str(p))
    return p


def make_bad_files(tmp: Path) -> dict[str, Path]:
    import mido
    rng = np.random.default_rng(0)
    f: dict[str, Path] = {}

    def put(name: str, data: bytes | str) -> Path:
        p = tmp / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        f[name] = p
        return p

    good_wav = _wav_bytes(48000, 2.0)           # 96 KB: the measured case
    put("truncated.wav", good_wav[:30])
    put("rate1.wav", _with_header_rate(good_wav, 1))
    put("rate2g.wav", _with_header_rate(good_wav, 2_000_000_000))
    put("empty.wav", _wav_bytes(16000, 0.0))
    nan = np.full(8000, np.nan, np.float32)
    put("nan.wav", _wav_bytes(16000, data=nan, subtype="FLOAT"))
    put("random.wav", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp / "folder.wav").mkdir()
    f["folder.wav"] = tmp / "folder.wav"

    put("random.mid", b"MThd" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
    # one note held 10 hours: 480 ticks per beat at 120 bpm -> 36000 s = 36000 * 960 ticks
    f["long_note.mid"] = _midi(tmp, "long_note.mid", [
        mido.Message("note_on", note=60, velocity=100, time=0),
        mido.Message("note_off", note=60, velocity=0, time=36000 * 960)])
    # the slowest tempo (16.7 s per beat) and the longest delta at 1 tick per beat
    f["tempo.mid"] = _midi(tmp, "tempo.mid", [
        mido.MetaMessage("set_tempo", tempo=0xFFFFFF, time=0),
        mido.Message("note_on", note=60, velocity=100, time=0),
        mido.Message("note_off", note=60, velocity=0, time=0x0FFFFFFF)], ticks_per_beat=1)

    from rtmirror.controls import ControlSpace
    names = ControlSpace.load("live").names
    head = "time_s," + ",".join(names) + "\n"
    row = ",".join(["0.5"] * len(names))
    put("repeated.csv", head + "".join(f"1.0,{row}\n" for _ in range(5)))
    put("text.csv", head + "".join(f"abc,{row}\n" for _ in range(5)))
    put("columns.csv", "time_s,foo\n0.0,1\n0.008,1\n")
    put("nan_time.csv", head + f"0.0,{row}\nnan,{row}\n0.016,{row}\n")

    put("syntax.toml", "[midi\nthreshold = ")
    put("ccmap_types.toml", '[controls."VCF1: Frequency"]\ncc = "seventy-four"\n')
    put("ccmap_table.toml", 'controls = 5\n')
    put("ccmap_range.toml", '[midi]\nthreshold = -1.0\nmax_rate_hz = 1e400\n')
    put("ccmap_hires.toml", '[controls."VCF1: Frequency"]\ncc = 74\nhires = "yes"\n')
    put("train_threads.toml", 'name = "t"\nthreads = 100000\n')
    put("train_types.toml", 'name = "t"\n[optim]\nbatch = "sixteen"\n')
    put("train_range.toml", 'name = "t"\n[optim]\nlr_encoder = -1.0\n[data]\nn = 0\n')
    put("train_inf.toml", 'name = "t"\n[checkpoint]\nminutes = inf\n')
    put("train_unknown.toml", 'name = "t"\nthreadz = 1\n')
    put("train_section.toml", 'name = "t"\ndata = 3\n')
    put("train_frontend.toml", 'name = "t"\n[frontend]\nframe_ms = "8"\n')
    put("train_name.toml", 'name = "../../etc"\n')
    put("control_set.toml", '[sets.x]\ncontrols = 3\n')
    return f


def make_bad_models(tmp: Path) -> dict[str, Path]:
    """Probe encoders (real ONNX, real sidecar) with one thing wrong each, and random bytes."""
    from rtmirror.manifest import sidecar_path
    from rtmirror.testing.probe import write_probe_model

    f: dict[str, Path] = {}
    rnd = tmp / "random.onnx"
    rnd.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    f["random.onnx"] = rnd
    f["shapes.onnx"] = write_probe_model(tmp / "shapes.onnx", n_graph_controls=3)

    def edited(name: str, edit) -> None:
        p = write_probe_model(tmp / name)
        side = sidecar_path(p)
        m = json.loads(side.read_text())
        edit(m)
        side.write_text(json.dumps(m))
        f[name] = p

    edited("channels.onnx", lambda m: m["frontend"].update(n_channels=129))
    edited("frame_inf.onnx", lambda m: m["frontend"].update(frame_ms=float("inf")))
    edited("frame_huge.onnx", lambda m: m["frontend"].update(frame_ms=1e9))
    edited("missing.onnx", lambda m: m.pop("step"))
    edited("type.onnx", lambda m: m["frontend"].update(tc_ms="eight"))
    edited("perf.onnx", lambda m: m.update(performer={"gate_on": "high"}))
    edited("agc.onnx", lambda m: m["frontend"].update(agc_tau_s=float("nan")))
    return f


def _cases(t: Path, f: dict[str, Path], models: dict[str, Path]) -> list[dict]:
    """(name, argv, outputs that must not appear)."""
    out = t / "out"
    ro = t / "readonly"
    cases = []

    def case(name, argv, outputs=()):
        cases.append({"name": name, "argv": [str(a) for a in argv], "outputs": [str(o) for o in outputs]})

    wavs = ["truncated.wav", "rate1.wav", "rate2g.wav", "empty.wav", "nan.wav", "random.wav", "folder.wav",
            "missing.wav"]
    f["missing.wav"] = t / "missing.wav"
    good_wav = t / "good.wav"
    for w in wavs:
        case(f"file {w}", ["file", f[w], "-o", out / "a.mid", "--controls", out / "a.csv"], [out / "a.mid", out / "a.csv"])
        case(f"spectrogram {w}", ["spectrogram", f[w], "-o", out / "s.png"], [out / "s.png"])
        case(f"live --wav {w}", ["live", "--wav", f[w], "--no-gui", "--duration", "1",
                                 "--record", out / "l.mid"], [out / "l.mid"])
    for m in models:
        case(f"file --model {m}", ["file", good_wav, "-o", out / "m.mid", "--model", models[m]], [out / "m.mid"])
        case(f"live --model {m}", ["live", "--wav", good_wav, "--no-gui", "--model", models[m],
                                   "--record", out / "l.mid"], [out / "l.mid"])
        case(f"bench encoder --model {m}", ["bench", "encoder", "--model", models[m], "--frames", "10"])
    for m in ("random.onnx", "channels.onnx"):
        case(f"demo --model {m}", ["demo", "--model", models[m], "--out", out / "d.mid", "--no-gui"], [out / "d.mid"])
        case(f"bench live --model {m}", ["bench", "live", "--model", models[m], "--seconds", "1",
                                         "--json", out / "b.json"], [out / "b.json"])
    for c in ("syntax.toml", "ccmap_types.toml", "ccmap_table.toml", "ccmap_range.toml", "ccmap_hires.toml",
              "random.wav", "folder.wav"):
        case(f"file --cc-map {c}", ["file", good_wav, "-o", out / "c.mid", "--cc-map", f[c]], [out / "c.mid"])
        case(f"live --cc-map {c}", ["live", "--wav", good_wav, "--no-gui", "--cc-map", f[c]])
    for mid in ("random.mid", "long_note.mid", "tempo.mid"):
        case(f"render {mid}", ["render", f[mid], "-o", out / "r.wav"], [out / "r.wav"])
    for csv in ("repeated.csv", "text.csv", "columns.csv", "nan_time.csv"):
        case(f"render {csv}", ["render", f[csv], "-o", out / "r.wav"], [out / "r.wav"])
    case("render --set bad toml", ["render", f["long_note.mid"], "--set", f"{f['control_set.toml']}:x",
                                   "-o", out / "r.wav"], [out / "r.wav"])
    case("render --sample-rate 1", ["render", good_mid(t), "--sample-rate", "1", "-o", out / "r.wav"], [out / "r.wav"])
    case("render --tail 1e12", ["render", good_mid(t), "--tail", "1e12", "-o", out / "r.wav"], [out / "r.wav"])
    # outputs into a read-only folder
    case("file -o read-only", ["file", good_wav, "-o", ro / "a.mid"], [ro / "a.mid"])
    case("spectrogram -o read-only", ["spectrogram", good_wav, "-o", ro / "s.png"], [ro / "s.png"])
    case("render -o read-only", ["render", good_mid(t), "-o", ro / "r.wav"], [ro / "r.wav"])
    case("file -o a folder", ["file", good_wav, "-o", out / "a_folder.mid"])
    case("render -o a folder", ["render", good_mid(t), "-o", out / "a_folder.mid"])
    case("export -o read-only", ["export", t / "nockpt", "-o", ro / "m.onnx"], [ro / "m.onnx"])
    for c in ("syntax.toml", "train_threads.toml", "train_types.toml", "train_range.toml", "train_inf.toml",
              "train_unknown.toml", "train_section.toml", "train_frontend.toml", "train_name.toml",
              "random.wav", "folder.wav"):
        case(f"train {c}", ["train", f[c], "--out", out / "run", "--no-progress"], [out / "run"])
    # export: not a checkpoint
    bad_ckpt = t / "badckpt"
    bad_ckpt.mkdir()
    (bad_ckpt / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json" + bytes(100))
    case("export random checkpoint", ["export", bad_ckpt, "-o", out / "m.onnx"], [out / "m.onnx"])
    case("export missing checkpoint", ["export", t / "nockpt", "-o", out / "m.onnx"], [out / "m.onnx"])
    case("export wav as checkpoint", ["export", f["random.wav"], "-o", out / "m.onnx"], [out / "m.onnx"])
    # data
    case("data info random dir", ["data", "info", t / "out"])
    case("data info a file", ["data", "info", f["random.wav"]])
    case("data render --set bad toml", ["data", "render", "--set", f"{f['control_set.toml']}:x", "-n", "2",
                                        "-o", out / "ds", "--no-progress"], [out / "ds"])
    case("data render --set syntax", ["data", "render", "--set", f"{f['syntax.toml']}:x", "-n", "2",
                                      "-o", out / "ds", "--no-progress"], [out / "ds"])
    case("data render --duration 1e9", ["data", "render", "-n", "2", "--duration", "1e9",
                                        "-o", out / "ds", "--no-progress"], [out / "ds"])
    case("data render --synth random", ["data", "render", "-n", "1", "--synth", f["random.wav"],
                                        "-o", out / "ds", "--no-progress"], [out / "ds"])
    case("data render -n 0", ["data", "render", "-n", "0", "-o", out / "ds", "--no-progress"], [out / "ds"])
    # eval
    for m in ("random.onnx", "channels.onnx", "shapes.onnx"):
        case(f"eval --checkpoint {m}", ["eval", "--checkpoint", models[m], "--sets", "exp1:2", "-n", "2",
                                        "--out", out / "REPORT.md", "--fig-dir", out / "fig"],
             [out / "REPORT.md", out / "fig"])
    # gui (offscreen) with a bad model / WAV
    case("gui --model random", ["gui", "--model", models["random.onnx"], "--quit-after", "1"])
    case("gui rate1.wav", ["gui", f["rate1.wav"], "--quit-after", "1"])
    return cases


def good_mid(t: Path) -> Path:
    import mido
    p = t / "good.mid"
    if not p.exists():
        _midi(t, "good.mid", [mido.Message("note_on", note=60, velocity=100, time=0),
                              mido.Message("note_off", note=60, velocity=0, time=480)])
    return p


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory):
    t = tmp_path_factory.mktemp("fuzz")
    f = make_bad_files(t)
    models = make_bad_models(t)
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32)
    sf.write(t / "good.wav", x, 16000)
    (t / "out").mkdir()
    (t / "out" / "a_folder.mid").mkdir()
    # An unwritable folder; root writes anywhere, so there it is a path under a plain file.
    ro = t / "readonly"
    if os.geteuid() == 0:
        ro.write_text("a file, not a folder")
    else:
        ro.mkdir()
    cases = _cases(t, f, models)
    (t / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    if ro.is_dir():
        ro.chmod(0o555)
    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(t / "cases.json"), str(t / "results.json")],
                              cwd=t, env=env, capture_output=True, text=True, timeout=900)
    finally:
        if ro.is_dir():
            ro.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["name"]: r for r in json.loads((t / "results.json").read_text())}
    return t, cases, results




def _problems(t: Path, cases: list[dict], results: dict) -> list[str]:
    bad = []
    for c in cases:
        r = results[c["name"]]
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        problems = []
        if r["code"] != 2:
            problems.append(f"exit {r['code']}")
        if "Traceback" in r["stderr"]:
            problems.append("traceback")
        if not lines or len(lines) > 3:
            problems.append(f"{len(lines)} stderr lines")
        left = [o for o in c["outputs"] if Path(o).exists()]
        if left:
            problems.append(f"left {left}")
        if problems:
            bad.append(f"{c['name']}: {', '.join(problems)}: {r['stderr'].strip()[-400:]}")
    return bad


def test_every_bad_input_is_one_line_exit_2(fuzz_results):
    t, cases, results = fuzz_results
    bad = _problems(t, cases, results)
    tmp_left = [p.name for d in (t / "out", t / "readonly") if d.is_dir() for p in d.iterdir()
                if p.name.endswith(".tmp")]
    assert not tmp_left, tmp_left
    assert not bad, "\n".join(bad)


def test_messages_name_the_file(fuzz_results):
    """Each refusal of a broken input file names that file."""
    _, cases, results = fuzz_results
    for c in cases:
        if c["name"].split()[0] in ("file", "spectrogram", "render") and c["name"].split()[1].endswith(
                (".wav", ".mid", ".csv")):
            bad = c["argv"][1]
            assert Path(bad).name in results[c["name"]]["stderr"], (c["name"], results[c["name"]]["stderr"])
