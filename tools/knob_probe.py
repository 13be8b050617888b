"""How much of each knob the auditory spectrogram tells a reader: a probe beside the encoder.

A plain MLP, trained supervised on a run's labelled random renders and scored on its target
renders (the same generator, other seeds; never the held-out sets of `rtmirror eval`), reads the
knobs from the log spectrogram in three ways:

  causal frame  every voiced frame t from frames t-4 .. t+2 (the encoder's lookahead of 2) plus the
                running mean of the note so far: what a live reader could know at each frame;
  note-on       the same reader at the first frames of each note (onset + k): what a synth that
                latches a knob at note-on (ENV1 Attack/Decay) can be told;
  whole note    one vector per note (mean / max / first frames / energy contour): hindsight.

It is a reference for the encoder's numbers in REPORT.md, not an upper bound: a better reader
may do better. Usage (~3 min on one core):

    .venv/bin/python tools/knob_probe.py runs/exp1-long20-noagc [--out docs/report/knob_probe.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

EPS = 1e-2          # log1p(x / EPS), as the encoder compresses its input
PAST, AHEAD = 4, 2  # frames of context of the causal frame reader
ONSET_FRAMES = (1, 3)


def _notes(gate: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> [(first frame, end frame)] of each run of gate-on frames."""
    edges = np.flatnonzero(np.diff(np.r_[0, gate.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2]))


def frame_features(spec, truth, knob_cols, keep: float, rng):
    """-> X (n, 7*128 + 129), Y (n, knobs), frames since onset (n,), drawn (n,) bool: a random share
    `keep` of the voiced frames (drawn) plus every frame at onset + ONSET_FRAMES."""
    X, Y, since, drawn = [], [], [], []
    for s, t in zip(spec, truth):
        L = np.pad(np.log1p(s / EPS), ((PAST, AHEAD), (0, 0)))
        for a, b in _notes(t[:, 1] > 0.5):
            run_mean = np.cumsum(L[PAST + a:PAST + b], 0) / np.arange(1, b - a + 1)[:, None]
            for f in range(a, b):
                draw = rng.random() <= keep
                if not draw and f - a not in ONSET_FRAMES:
                    continue
                X.append(np.r_[L[f:f + PAST + AHEAD + 1].ravel(), run_mean[f - a], [f - a]])
                Y.append(t[f, knob_cols])
                since.append(f - a)
                drawn.append(draw)
    return np.asarray(X, np.float32), np.asarray(Y, np.float32), np.asarray(since), np.asarray(drawn)


def note_features(spec, truth, knob_cols):
    """-> X (notes, 4*128 + 34), Y (notes, knobs): one row per note of >= 6 frames."""
    X, Y = [], []
    for s, t in zip(spec, truth):
        for a, b in _notes(t[:, 1] > 0.5):
            if b - a < 6:
                continue
            L = np.log1p(s[a:b] / EPS)
            e = L.mean(1)
            head, tail = np.zeros(16), np.zeros(16)
            head[:min(16, len(e))], tail[:min(16, len(e))] = e[:16], e[-16:]
            X.append(np.r_[L.mean(0), L.max(0), L[:4].mean(0), L[-4:].mean(0), head, tail, [b - a, t[a, 0]]])
            Y.append(t[a, knob_cols])
    return np.asarray(X, np.float32), np.asarray(Y, np.float32)


def fit_mlp(X, Y, epochs: int, batch: int, seed: int = 0):
    """Standardized inputs -> 2 hidden layers of 256 -> knobs; MSE, Adam. Returns a predict function."""
    torch.manual_seed(seed)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, Y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    x, y = torch.from_numpy((X - mu) / sd), torch.from_numpy(Y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            j = perm[i:i + batch]
            loss = ((net(x[j]) - y[j]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def predict(Xn):
        with torch.no_grad():
            return net(torch.from_numpy((Xn - mu) / sd)).numpy()
    return predict


def _r(a, b) -> float:
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a training run directory (uses RUN/data/{random,target}.*)")
    ap.add_argument("--keep", type=float, default=0.25, help="share of voiced frames used (default 0.25)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = args.run / "data"
    key = json.loads((data / "random.key.json").read_text())
    controls = [c["name"] for c in key["spec"]["space"]["controls"]]
    roles = [c["role"] for c in key["spec"]["space"]["controls"]]
    if roles[:2] != ["pitch", "gate"]:
        raise SystemExit(f"expected pitch and gate as the first controls, got {roles}")
    knob_cols = [i for i, r in enumerate(roles) if r == "knob"]
    names = [controls[i] for i in knob_cols]
    load = {split: (np.load(data / f"{split}.spec.npy"), np.load(data / f"{split}.truth.npy"))
            for split in ("random", "target")}
    out: dict = {"run": str(args.run), "frontend": key["spec"]["frontend"], "knobs": names}

    rng = np.random.default_rng(0)
    Xtr, Ytr, _, _ = frame_features(*load["random"], knob_cols, args.keep, rng)
    Xte, Yte, since, sampled = frame_features(*load["target"], knob_cols, args.keep, rng)
    P = fit_mlp(Xtr, Ytr, epochs=40, batch=256)(Xte)
    # every voiced frame equally (the onset frames, added for the note-on rows, are scored apart)
    out["causal_frame"] = {n: _r(P[sampled, k], Yte[sampled, k]) for k, n in enumerate(names)}
    for k_on in ONSET_FRAMES:
        m = since == k_on
        out[f"note_on+{k_on}"] = {n: _r(P[m, k], Yte[m, k]) for k, n in enumerate(names)}
    Ntr, Mtr = note_features(*load["random"], knob_cols)
    Nte, Mte = note_features(*load["target"], knob_cols)
    Q = fit_mlp(Ntr, Mtr, epochs=300, batch=64)(Nte)
    out["whole_note"] = {n: _r(Q[:, k], Mte[:, k]) for k, n in enumerate(names)}
    out["n"] = {"train_frames": len(Xtr), "test_frames": len(Xte), "train_notes": len(Ntr), "test_notes": len(Nte)}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)   # mkstemp makes it private; this is a file of the repository
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
