"""Timbre on real sound: do the model's knobs bring the built-in voice closer to the input?

Notes alone say nothing about the knobs (filter, resonance, envelope, level). Here each melody of
the held-out `real` set (models/eval/real.py) runs through the Pipeline in file timing (what
`rtmirror file` runs: `process_full`), and its per-frame controls (T, K) are played twice by the
built-in voice, through the render path of the mirror rounds (frames -> Performer
`frames_to_events` -> `render_audio` -> `wav2aud`, rtmirror.synth.render):
  (a) inferred: the controls as the model gave them;
  (b) default:  the same controls with every knob column (role "knob") set to the default patch
      value (the space's patch, else the voice's DEFAULTS: what the voice plays with no CC).
Pitch, gate and velocity are the same in both, so both play the same notes; only the knobs differ.

Distance: the auditory spectrogram of the input (the Pipeline's own cochlea output, i.e. after its
DC blocker and resampler to the frontend rate) against that of each resynthesis, on the frames
where a true note sounds (rs truth; not the model's gate, so a melody's frame set does not depend
on the model). Each column is scaled to sum 1 (level drops out: the AGC takes most of it anyway,
and OSC: Volume2 should not win by loudness), and the distance of a frame is half the L1
difference (total variation, 0 = the same spectral shape, 1 = disjoint), averaged over the frames.
Pitch errors of the model raise both distances alike; the comparison is (a) against (b).
"""
from __future__ import annotations

import math

import numpy as np

from rtmirror.controls import ControlSpace

EPS = 1e-12


# ---------------------------------------------------------------------------------------------
# The pieces: default patch, resynthesis, distance
# ---------------------------------------------------------------------------------------------
def knob_defaults(space: ControlSpace) -> dict[int, float]:
    """{column: normalized default} for every knob: the space's patch value, else the built-in
    voice's DEFAULTS (what BuiltinVoice.initial_params starts from)."""
    from rtmirror.synth.builtin import DEFAULTS
    return {k: float(space.patch.get(c.name, DEFAULTS[c.name]))
            for k, c in enumerate(space.controls) if c.role == "knob"}


def default_patch(controls: np.ndarray, space: ControlSpace) -> np.ndarray:
    """controls (T, K) -> a copy with every knob column at its default; pitch/gate/velocity kept."""
    out = np.array(controls, dtype=np.float32, copy=True)
    for k, v in knob_defaults(space).items():
        out[:, k] = v
    return out


def resynth_spec(controls: np.ndarray, space: ControlSpace, fe, perf, duration_s: float) -> np.ndarray:
    """controls (T, K) -> the built-in voice's auditory spectrogram (round(duration_s * fs) // hop, 128)."""
    from rtmirror.frontend.cochlea import wav2aud
    from rtmirror.performer import frames_to_events
    from rtmirror.synth.render import make_any_synth, render_audio

    events = frames_to_events(np.asarray(controls, np.float64), space, fe.frame_rate, perf)
    synth = make_any_synth("builtin", space, fe)
    return wav2aud(render_audio(synth, events, duration_s, fe.sample_rate, "timbre resynthesis"), fe)


def voiced_frames(intervals: np.ndarray, n_frames: int, frame_rate: float) -> np.ndarray:
    """True note intervals (n, 2) s -> (n_frames,) bool: frames round(on * fr) <= t < round(off * fr)."""
    mask = np.zeros(n_frames, bool)
    for on, off in np.asarray(intervals, np.float64).reshape(-1, 2):
        mask[max(0, int(round(on * frame_rate))):max(0, int(round(off * frame_rate)))] = True
    return mask


def spectral_distance(ref: np.ndarray, est: np.ndarray, frames: np.ndarray | None = None) -> float:
    """Mean over the chosen frames of the total variation between sum-normalized columns.

    ref, est (T, C) >= 0 (cut to the shorter T); frames (T,) bool, None = all. A silent column
    counts as all-zero, so against a sounding one it scores 0.5. NaN when no frame is chosen."""
    t = min(len(ref), len(est))
    a = np.asarray(ref[:t], np.float64)
    b = np.asarray(est[:t], np.float64)
    if frames is not None:
        sel = np.asarray(frames[:t], bool)
        a, b = a[sel], b[sel]
    if not len(a):
        return math.nan
    a = a / np.maximum(a.sum(axis=1, keepdims=True), EPS)             # (n, C), rows sum to 1
    b = b / np.maximum(b.sum(axis=1, keepdims=True), EPS)
    return float(0.5 * np.abs(a - b).sum(axis=1).mean())


def melody_distances(ref_spec: np.ndarray, controls: np.ndarray, voiced: np.ndarray, space: ControlSpace,
                     fe, perf, duration_s: float) -> tuple[float, float]:
    """(d_inferred, d_default) of one melody: ref_spec (T, 128) of the input, controls (T, K)."""
    d_inf = spectral_distance(ref_spec, resynth_spec(controls, space, fe, perf, duration_s), voiced)
    d_def = spectral_distance(ref_spec, resynth_spec(default_patch(controls, space), space, fe, perf, duration_s),
                              voiced)
    return d_inf, d_def


# ---------------------------------------------------------------------------------------------
# The model on the real set
# ---------------------------------------------------------------------------------------------
def timbre_scores(model_path, rs, indices, progress: bool = True) -> dict[int, dict]:
    """{melody index: {"family", "d_inferred", "d_default", "voiced_frames"}} for the model."""
    from tqdm import tqdm

    from rtmirror.cli.file import process_full
    from rtmirror.engine import Pipeline
    from rtmirror.models.eval.real import SAMPLE_RATE, _pipeline_parts

    runtime, _, perf, gate = _pipeline_parts(model_path)
    pipeline = Pipeline(runtime, SAMPLE_RATE, perf, level_gate=gate)
    space, fe = pipeline.space, pipeline.frontend
    out = {}
    for i in tqdm(list(indices), desc="timbre", disable=not progress, leave=False):
        x = rs.audio(i)
        res = process_full(pipeline, x)                 # spec (T, 128), controls (T, K) on one grid
        voiced = voiced_frames(rs.notes(i)[0], len(res.spec), fe.frame_rate)
        d_inf, d_def = melody_distances(res.spec, res.controls, voiced, space, fe, perf, len(x) / SAMPLE_RATE)
        out[i] = {"family": rs.truth[i]["family"], "d_inferred": d_inf, "d_default": d_def,
                  "voiced_frames": int(voiced.sum())}
    return out


# ---------------------------------------------------------------------------------------------
# Summary and page
# ---------------------------------------------------------------------------------------------
def _summary(rows: list[dict]) -> dict:
    rows = [r for r in rows if math.isfinite(r["d_inferred"]) and math.isfinite(r["d_default"])]
    if not rows:
        return {"n": 0, "d_inferred": math.nan, "d_default": math.nan, "improvement": math.nan,
                "closer": math.nan}
    d_inf = float(np.mean([r["d_inferred"] for r in rows]))
    d_def = float(np.mean([r["d_default"] for r in rows]))
    return {"n": len(rows), "d_inferred": d_inf, "d_default": d_def,
            "improvement": 1.0 - d_inf / d_def if d_def > 0 else math.nan,
            "closer": float(np.mean([r["d_inferred"] < r["d_default"] for r in rows]))}


def timbre_summary(scores: dict[int, dict]) -> dict[str, dict]:
    """Per family (the set's family order, then any other) and "all": n, mean d_inferred, mean
    d_default, improvement = 1 - mean d_inferred / mean d_default, closer = share of melodies
    where the inferred knobs are closer. Melodies with a NaN distance (no voiced frame) are left out."""
    from rtmirror.models.eval.real import FAMILIES

    by_family: dict[str, list[dict]] = {}
    for _, r in sorted(scores.items()):
        by_family.setdefault(r["family"], []).append(r)
    order = [f.name for f in FAMILIES if f.name in by_family] + sorted(set(by_family) - {f.name for f in FAMILIES})
    out = {name: _summary(by_family[name]) for name in order}
    out["all"] = _summary(list(scores.values()))
    return out


def _num(v: float, fmt: str) -> str:
    return "–" if not math.isfinite(v) else fmt.format(v)


def timbre_markdown(summary: dict[str, dict], label: str = "") -> str:
    """timbre_summary output -> a markdown section with one row per family and "all"."""
    lines = [f"## Timbre: inferred knobs against the default patch{f' ({label})' if label else ''}", "",
             "Auditory-spectrogram distance of the built-in voice's resynthesis to the input on the "
             "frames where a true note sounds (total variation of sum-normalized columns, 0..1; "
             "models/eval/timbre.py). *default*: the same notes with every knob at the default patch. "
             "Improvement: 1 - d inferred / d default; closer: share of melodies where the inferred "
             "knobs are closer.", "",
             "| family | melodies | d inferred | d default | improvement | closer |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        cell = f"**{name}**" if name == "all" else name
        lines.append(f"| {cell} | {s['n']} | {_num(s['d_inferred'], '{:.3f}')} | {_num(s['d_default'], '{:.3f}')} | "
                     f"{_num(s['improvement'] * 100, '{:+.1f} %')} | {_num(s['closer'] * 100, '{:.0f} %')} |")
    return "\n".join(lines) + "\n"
