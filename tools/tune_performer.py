#!/usr/bin/env python
"""Validate the Performer's note rules on the shipped model: note precision/recall/F1 per rule set.

Pipeline (the one the live engine and the evaluation use): melody -> built-in voice -> wav2aud ->
EncoderRuntime.run_full -> frames_to_events -> notes, scored against the melody's notes with
mir_eval.transcription.precision_recall_f1_overlap (onset within 50 ms, pitch within 50 cents,
offset_ratio=None), mean over melodies and pooled.

VALIDATION melodies only (never the test sets): seeds 900_000 + i (general melodies, live space)
and 950_000 + i (paper melodies, exp1 space), each melody = make_melody(kind, default_rng(seed)).
Training draws its melodies from default_rng([seed, i]) (a different seed sequence) and the
held-out sets of models/eval/heldout.py use seeds >= 10_000_000, so neither meets these.

    .venv/bin/python tools/tune_performer.py                    # default vs legacy rules
    .venv/bin/python tools/tune_performer.py --grid             # the rule grid the default came from
    .venv/bin/python tools/tune_performer.py --inspect 5        # model frames around onsets
    .venv/bin/python tools/tune_performer.py --world 96 --grid-world   # the world sources, rule grid

--world N adds N validation melodies of the training world (seeds 930_000 + i, general melodies,
live space): the wide voice with a random timbre per melody, through a room and a microphone
(rtmirror.synth.augment defaults) - the sources world-large trained on, never the held-out sets.

Model outputs are cached (keyed by model sha256 and the melody set) in $TMPDIR, so only the first
run renders (about a minute on one core).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

GENERAL_SEED = 900_000
PAPER_SEED = 950_000
WORLD_SEED = 930_000
ONSET_TOL = 0.05

# The rules before the fix (PerformerConfig as it was): note-on on the gate-on frame, retrigger on
# the first frame the rounded pitch differs, a note ends on the first frame below gate_off.
LEGACY = dict(onset_settle_frames=0, pitch_stable_frames=1, pitch_stable_tol=0.5, gate_off_frames=1)


def _load_items(n_general: int, n_paper: int, model_path: str | None, n_world: int = 0) -> tuple[list[dict], object]:
    from rtmirror.controls import ControlSpace
    from rtmirror.frontend import wav2aud
    from rtmirror.runtime import EncoderRuntime
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import make_melody

    rt = EncoderRuntime(model_path)
    sha = rt.manifest.get("sha256", "")[:16]
    key = hashlib.sha256(f"{sha}-{n_general}-{n_paper}-{GENERAL_SEED}-{PAPER_SEED}-v1"
                         f"{f'-world{n_world}-{WORLD_SEED}' if n_world else ''}".encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"rtmirror-tune-performer-{key}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        items = [{"kind": str(z[f"kind{j}"]), "frames": z[f"frames{j}"], "notes": z[f"notes{j}"],
                  "duration": float(z[f"dur{j}"])} for j in range(int(z["n"]))]
        return items, rt
    from tqdm import tqdm
    todo = [("general", "live", GENERAL_SEED + i) for i in range(n_general)] + \
           [("paper", "exp1", PAPER_SEED + i) for i in range(n_paper)] + \
           [("world", "live", WORLD_SEED + i) for i in range(n_world)]
    from rtmirror.synth.augment import AugmentConfig, augment
    synths = {}
    items = []
    for kind, space_name, seed in tqdm(todo, desc="render + encode", file=sys.stderr):
        space = ControlSpace.load(space_name)
        voice = "wide" if kind == "world" else "builtin"
        if (voice, space_name) not in synths:
            synths[voice, space_name] = make_synth(voice, space, sample_rate=rt.frontend.sample_rate)
        synth = synths[voice, space_name]
        mel = make_melody("general" if kind == "world" else kind, np.random.default_rng(seed), space, seed=seed)
        if kind == "world":
            synth.vary(np.random.default_rng([seed, 1]))
        audio = synth.render(mel.events, mel.duration_s)
        if kind == "world":
            audio = augment(np.asarray(audio, np.float32), rt.frontend.sample_rate, AugmentConfig(),
                            np.random.default_rng([seed, 2]))
        frames = rt.run_full(wav2aud(audio, rt.frontend))
        items.append({"kind": kind, "frames": frames, "notes": np.asarray(mel.notes, np.float64).reshape(-1, 4),
                      "duration": mel.duration_s})
    arrays = {"n": np.int64(len(items))}
    for j, it in enumerate(items):
        arrays.update({f"kind{j}": np.str_(it["kind"]), f"frames{j}": it["frames"], f"notes{j}": it["notes"],
                       f"dur{j}": np.float64(it["duration"])})
    tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
    return items, rt


def _hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def score(items: list[dict], space, frame_rate: float, cfg) -> dict:
    """-> {set: {precision, recall, f1 (means over melodies), pooled p/r/f1, n_ref, n_est,
    onset lag of matched notes (ms: mean, p90)}}"""
    import mir_eval.transcription
    from rtmirror.models.eval.evaluate import notes_from_events
    from rtmirror.performer import frames_to_events
    out = {}
    for kind in sorted({it["kind"] for it in items}):
        P, R, F, lags = [], [], [], []
        n_ref = n_est = n_match = 0
        for it in (x for x in items if x["kind"] == kind):
            ev = frames_to_events(it["frames"], space, frame_rate, cfg)
            est_iv, est_p, _ = notes_from_events(ev, it["duration"])
            ref = it["notes"]
            ref_iv, ref_p = ref[:, :2], ref[:, 2]
            if len(est_p) == 0:
                p, r, f = 0.0, 0.0, 0.0
                pairs = []
            else:
                p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
                    ref_iv, _hz(ref_p), est_iv, _hz(est_p), onset_tolerance=ONSET_TOL,
                    pitch_tolerance=50.0, offset_ratio=None)
                pairs = mir_eval.transcription.match_notes(
                    ref_iv, _hz(ref_p), est_iv, _hz(est_p), onset_tolerance=ONSET_TOL,
                    pitch_tolerance=50.0, offset_ratio=None)
            P.append(p), R.append(r), F.append(f)
            lags += [1000.0 * (est_iv[j, 0] - ref_iv[i, 0]) for i, j in pairs]
            n_ref, n_est, n_match = n_ref + len(ref_p), n_est + len(est_p), n_match + len(pairs)
        pp, pr = n_match / max(n_est, 1), n_match / max(n_ref, 1)
        out[kind] = {"precision": float(np.mean(P)), "recall": float(np.mean(R)), "f1": float(np.mean(F)),
                     "pooled_f1": 2 * pp * pr / max(pp + pr, 1e-12), "n_ref": n_ref, "n_est": n_est,
                     "lag_mean_ms": float(np.mean(lags)) if lags else float("nan"),
                     "lag_p90_ms": float(np.percentile(lags, 90)) if lags else float("nan")}
    return out


def _line(name: str, res: dict) -> str:
    cells = []
    for kind, r in res.items():
        cells.append(f"{kind}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} "
                     f"(notes {r['n_est']}/{r['n_ref']}, lag {r['lag_mean_ms']:+.1f} ms, p90 {r['lag_p90_ms']:+.1f})")
    mean_f1 = np.mean([r["f1"] for r in res.values()])
    return f"{name:<44s} meanF1 {mean_f1:.3f} | " + " | ".join(cells)


def inspect(items: list[dict], space, n: int) -> None:
    """Print gate and pitch (MIDI) of the model around each reference onset of the first n melodies."""
    ig, ip = space.role_index("gate"), space.role_index("pitch")
    for it in items[:n]:
        f = it["frames"]
        pitch = space.controls[ip].to_physical(f[:, ip])
        print(f"-- {it['kind']} melody, notes (onset frame, pitch):",
              [(round(on * 125), int(p)) for on, off, p, v in it["notes"]])
        for on, off, p, v in it["notes"]:
            a = round(on * 125)
            lo, hi = max(0, a - 2), min(len(f), a + 8)
            print(f"  onset {a:4d} pitch {int(p):3d} | gate " + " ".join(f"{g:.2f}" for g in f[lo:hi, ig])
                  + " | pitch " + " ".join(f"{x:.1f}" for x in pitch[lo:hi]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="encoder .onnx (default: the shipped model)")
    ap.add_argument("--n-general", type=int, default=150)
    ap.add_argument("--n-paper", type=int, default=150)
    ap.add_argument("--grid", action="store_true", help="score the grid of rule settings")
    ap.add_argument("--inspect", type=int, default=0, metavar="N", help="print frames around onsets of N melodies")
    ap.add_argument("--world", type=int, default=0, metavar="N", help="also N melodies of the training world")
    ap.add_argument("--grid-world", action="store_true", help="the grid of the rules that make or drop short notes")
    args = ap.parse_args(argv)

    from rtmirror.performer import PerformerConfig
    items, rt = _load_items(args.n_general, args.n_paper, args.model, args.world)
    space, fr = rt.space, rt.frame_rate
    if args.inspect:
        inspect(items, space, args.inspect)
        return 0
    default = PerformerConfig()
    configs = {"legacy (before the fix)": dataclasses.replace(default, **LEGACY),
               "stable 3, settle 4 (default until v2.1)": dataclasses.replace(
                   default, pitch_stable_frames=3, onset_settle_frames=4),
               "default": default}
    if args.grid:
        for settle in (0, 1, 2, 3, 4, 6):
            for stable in (2, 3):
                for tol in (0.2, 0.25, 0.35):
                    for off in (1, 2):
                        configs[f"settle={settle} stable={stable} tol={tol} off={off}"] = dataclasses.replace(
                            default, onset_settle_frames=settle, pitch_stable_frames=stable,
                            pitch_stable_tol=tol, gate_off_frames=off)
    if args.grid_world:
        for min_note in (2, 4, 6):
            for off in (2, 3, 4):
                for retrig in (1.0, 1.5):
                    for settle, stable in ((1, 2), (2, 3)):
                        configs[f"min_note={min_note} off={off} retrig={retrig} settle={settle} stable={stable}"] = \
                            dataclasses.replace(default, min_note_frames=min_note, gate_off_frames=off,
                                                retrigger_semitones=retrig, onset_settle_frames=settle,
                                                pitch_stable_frames=stable)
    if args.grid:
        for gate_on, gate_off in ((0.5, 0.5), (0.6, 0.4), (0.7, 0.3)):
            configs[f"default gate_on={gate_on} gate_off={gate_off}"] = dataclasses.replace(
                default, gate_on=gate_on, gate_off=gate_off)
    print(f"model {rt.path} (sha256 {rt.manifest.get('sha256', '')[:12]}), "
          f"{args.n_general} general (seeds {GENERAL_SEED}+i) + {args.n_paper} paper exp1 (seeds {PAPER_SEED}+i)")
    for name, cfg in configs.items():
        print(_line(name, score(items, space, fr, cfg)), flush=True)
    print("default config:", default.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
