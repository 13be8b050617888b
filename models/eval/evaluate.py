"""Evaluation of encoders on held-out melodies: the metrics (numpy) and the runner.

Every estimate goes the way the live engine goes: spectrogram -> encoder -> control frames ->
Performer (`frames_to_events`) -> events. Notes are read from those events, and the resynthesis is
the built-in voice playing them.

Metrics (per melody, pooled per set by `summarize`):
  * note precision/recall/F1: mir_eval.transcription, onset within 50 ms, pitch within 50 cents,
    offsets ignored (offset_ratio=None); per melody, then the mean over melodies (mir_eval's
    per-file convention); the pooled counts are kept too;
  * frame pitch accuracy: on voiced frames (ground-truth gate on), |encoder pitch - true pitch|
    < 0.5 semitone; the encoder's raw pitch output, not the Performer's rounded note;
  * per-control Pearson r and MAE (normalized units) against the truth, pooled over the set:
    continuous knobs frame by frame over voiced frames; latched knobs (ENV1 Attack/Decay, a synth
    reads them at note-on) and velocity per matched note: the value the Performer sent with the
    estimated note-on against the true note's value; for latched knobs also "NAME (note mean)":
    the encoder's mean over each true note against its value (hindsight, not playable live);
  * resynthesis similarity: Pearson correlation between the input's auditory spectrogram and the
    spectrogram of the built-in voice playing the inferred events, over all (frame, channel)
    cells, mean over melodies ("resynth_corr", linear spectrograms as wav2aud gives them).
    The same in the decoder's compressed domain ("resynth_corr_log") sits beside D(E(x))'s
    correlation with x ("decoder_corr"): D(E(x)) far better than synth(E(x)) means the encoder
    found the decoder's blind spots rather than the synth's controls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event, sorted_events

ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_SEMITONES = 0.5


# ---------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------
def notes_from_events(events: list[Event], duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events -> (intervals (N, 2) s, pitches (N,) MIDI, velocities (N,)) sorted by onset.

    A note-on is closed by the next note-off of the same pitch; notes still open at the end close
    at duration_s. A zero-length note gets 1 ms (mir_eval rejects empty intervals)."""
    open_notes: dict[int, list[tuple[float, int]]] = {}
    notes: list[tuple[float, float, int, int]] = []
    for ev in sorted_events(events):
        if ev.kind == NOTE_ON:
            open_notes.setdefault(ev.note, []).append((ev.time, ev.velocity))
        elif ev.kind == NOTE_OFF and open_notes.get(ev.note):
            on, vel = open_notes[ev.note].pop(0)
            notes.append((on, ev.time, ev.note, vel))
    for note, stack in open_notes.items():
        for on, vel in stack:
            notes.append((on, max(duration_s, on), note, vel))
    notes.sort()
    if not notes:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    arr = np.asarray(notes, dtype=np.float64)
    intervals = arr[:, :2].copy()
    intervals[:, 1] = np.maximum(intervals[:, 1], intervals[:, 0] + 1e-3)
    return intervals, arr[:, 2], arr[:, 3]


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def match_notes(ref_intervals, ref_pitches, est_intervals, est_pitches,
                onset_tolerance: float = ONSET_TOLERANCE_S) -> list[tuple[int, int]]:
    """mir_eval's optimal one-to-one matching (onset within tolerance, pitch within 50 cents,
    offsets ignored) -> [(ref index, est index)]. Pitches are MIDI numbers."""
    if len(ref_pitches) == 0 or len(est_pitches) == 0:
        return []
    import mir_eval.transcription
    pairs = mir_eval.transcription.match_notes(
        np.asarray(ref_intervals, dtype=np.float64), _hz(ref_pitches),
        np.asarray(est_intervals, dtype=np.float64), _hz(est_pitches),
        onset_tolerance=onset_tolerance, pitch_tolerance=100.0 * PITCH_TOLERANCE_SEMITONES,
        offset_ratio=None)
    return [(int(i), int(j)) for i, j in pairs]


def note_scores(ref_intervals, ref_pitches, est_intervals, est_pitches,
                onset_tolerance: float = ONSET_TOLERANCE_S) -> dict:
    """Precision, recall, F1 (mir_eval.transcription conventions, offsets ignored) + counts.

    Computed from mir_eval's matching (the same numbers `precision_recall_f1_overlap(...,
    offset_ratio=None)` gives, tested); empty reference and empty estimate score 1 (nothing to
    find, nothing invented), one of them empty scores 0."""
    n_ref, n_est = len(ref_pitches), len(est_pitches)
    n_match = len(match_notes(ref_intervals, ref_pitches, est_intervals, est_pitches, onset_tolerance))
    if n_ref == 0 and n_est == 0:
        p = r = f = 1.0
    else:
        p = n_match / n_est if n_est else 0.0
        r = n_match / n_ref if n_ref else 0.0
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_ref": n_ref, "n_est": n_est, "n_match": n_match}


# ---------------------------------------------------------------------------------------------
# Frames and controls
# ---------------------------------------------------------------------------------------------
def frame_pitch_accuracy(est_midi, true_midi, voiced, tolerance: float = PITCH_TOLERANCE_SEMITONES) -> tuple[float, int]:
    """Fraction of voiced frames with |est - true| < tolerance semitones -> (accuracy, n_voiced).
    Non-finite estimates count as wrong; no voiced frame -> (nan, 0)."""
    est = np.asarray(est_midi, dtype=np.float64)
    true = np.asarray(true_midi, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool)
    n = int(voiced.sum())
    if n == 0:
        return math.nan, 0
    err = np.abs(est[voiced] - true[voiced])
    return float(np.mean(np.where(np.isfinite(err), err, np.inf) < tolerance)), n


def pearson(a, b) -> float:
    """Pearson r of two equal-length sequences; nan when either is constant or shorter than 2."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pearson: shapes differ {a.shape} vs {b.shape}")
    if a.size < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if not den > 1e-12 * max(1.0, float(np.abs(a).max()) * float(np.abs(b).max())) * a.size:
        return math.nan
    return float(np.clip(np.dot(da, db) / den, -1.0, 1.0))


def mae(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"mae: shapes differ {a.shape} vs {b.shape}")
    return float(np.mean(np.abs(a - b))) if a.size else math.nan


def spectrogram_correlation(a, b) -> float:
    """Pearson r over all (frame, channel) cells of two spectrograms (T, F), cut to the shorter T.
    A constant spectrogram (a silent resynthesis: the model played no note) scores 0, not nan,
    so silence counts against a model in the set's mean."""
    a = np.asarray(a)
    b = np.asarray(b)
    t = min(len(a), len(b))
    r = pearson(a[:t], b[:t])
    return 0.0 if math.isnan(r) and t > 0 else r


def latched_at_note_ons(events: list[Event], name: str) -> list[float]:
    """For each NOTE_ON in time order, the last CONTROL value of `name` sent at or before it
    (the value a synth latches); nan where none was sent yet."""
    value = math.nan
    out: list[float] = []
    for ev in sorted_events(events):
        if ev.kind == CONTROL and ev.name == name:
            value = float(ev.value)
        elif ev.kind == NOTE_ON:
            out.append(value)
    return out


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------
@dataclass
class Model:
    """What the runner evaluates: encode (and maybe decode) in numpy, plus how to perform it."""
    name: str
    space: ControlSpace
    frontend: object                                   # FrontendConfig
    encode: Callable[[np.ndarray], np.ndarray]         # spec batch (B, T, 128) -> controls (B, T, K)
    decode: Callable[[np.ndarray], np.ndarray] | None = None   # controls (B, T, K) -> (B, T, 128) decoder domain
    to_decoder_domain: Callable[[np.ndarray], np.ndarray] = np.asarray   # raw spec -> the decoder's domain
    performer: object = None                           # PerformerConfig (None: the default)
    info: dict = field(default_factory=dict)           # checkpoint, config, training time ...
    # audio (n,) at sr -> (controls (T, K), events): the model played as users run it (an exported
    # ONNX through rtmirror's Pipeline); None: encode + frames_to_events
    play: Callable | None = None


def torch_model(name, encoder, space, frontend, decoder=None, performer=None, info=None) -> Model:
    """Wrap torch Encoder/Decoder modules (eval mode, no grad) as a numpy Model. The decoder works
    in the encoder's compressed domain (scale * log1p(x / eps), models/layers.py)."""
    import torch

    encoder.eval()
    if decoder is not None:
        decoder.eval()
    eps, scale = float(encoder.cfg.input_eps), float(encoder.cfg.input_scale)

    def encode(spec):                                  # (B, T, 128) -> (B, T, K)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32)).transpose(1, 2)
            return encoder(x).transpose(1, 2).numpy().astype(np.float64)

    def decode(frames):                                # (B, T, K) -> (B, T, 128)
        with torch.no_grad():
            c = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).transpose(1, 2)
            return decoder(c).transpose(1, 2).numpy().astype(np.float64)

    def to_domain(spec):
        return scale * np.log1p(np.maximum(np.asarray(spec, dtype=np.float64), 0.0) / eps)

    return Model(name, space, frontend, encode, decode if decoder is not None else None, to_domain,
                 performer, dict(info or {}))


def onnx_model(path, name: str | None = None) -> Model:
    """An exported encoder (.onnx + manifest) scored through the Pipeline users run: audio ->
    resampler -> DC blocker -> CochlearStream -> level gate -> ONNX step graph -> Performer with
    the model's own rules (rtmirror.cli.file.process, the `rtmirror file` path). No torch."""
    from pathlib import Path

    from rtmirror.app import level_gate_config, performer_config
    from rtmirror.cli.file import process
    from rtmirror.engine import Pipeline
    from rtmirror.midi.ccmap import CCMap
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime(path)
    perf, _ = performer_config(runtime, CCMap.load(None))

    def encode(spec):                                  # (B, T, 128) -> (B, T, K), the full graph
        return np.stack([runtime.run_full(np.asarray(s, np.float32)) for s in spec]).astype(np.float64)

    def play(audio, sr):
        res = process(Pipeline(runtime, int(sr), perf, level_gate=level_gate_config(-75.0)), np.asarray(audio, np.float32))
        return np.asarray(res.controls, np.float64), res.events

    return Model(name or Path(path).stem, runtime.space, runtime.frontend, encode, None, np.asarray, perf,
                 {"path": str(path), "meta": {"onnx": True, "manifest": runtime.manifest}}, play)


def load_model(checkpoint, name: str | None = None) -> Model:
    """A checkpoint directory (models/checkpoint.py: safetensors + config.json) -> Model."""
    from pathlib import Path

    from rtmirror.frontend import FrontendConfig
    from rtmirror.models.checkpoint import load_checkpoint
    from rtmirror.performer import PerformerConfig

    ck = load_checkpoint(checkpoint)
    meta = ck.meta
    if "control_space" not in meta:
        raise ValueError(f"{checkpoint}: checkpoint metadata has no control_space")
    space = ControlSpace.from_dict(meta["control_space"])
    frontend = FrontendConfig.from_dict(meta["frontend"]) if meta.get("frontend") else FrontendConfig()
    perf = meta.get("performer") or (meta.get("train_config") or {}).get("performer")
    performer = PerformerConfig(**perf) if isinstance(perf, dict) and perf else None
    # a supervised-only run never trains its decoder: leave it out rather than report noise
    supervised = str((meta.get("train_config") or {}).get("mode", "")) == "supervised"
    return torch_model(name or Path(checkpoint).name, ck.encoder, space, frontend,
                       None if supervised else ck.decoder, performer, {"path": str(checkpoint), "meta": meta})


@dataclass
class MelodyResult:
    """One melody's metrics and, when kept, what the figures need."""
    index: int
    notes: dict
    pitch_acc: float
    n_voiced: int
    resynth_corr: float
    decoder_corr: float = math.nan               # D(E(x)) vs x, in the decoder's domain
    resynth_corr_log: float = math.nan           # synth(E(x)) vs x, in the decoder's domain
    est_frames: np.ndarray | None = None         # (T, K) encoder output
    resynth_spec: np.ndarray | None = None       # (T, 128)
    decoded_spec: np.ndarray | None = None       # (T, 128)
    resynth_audio: np.ndarray | None = None      # (n,) at the frontend rate


@dataclass
class SetResult:
    model: str
    set_name: str
    summary: dict
    melodies: list[MelodyResult]


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    import soxr
    return soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out).astype(np.float32)


def evaluate_set(model: Model, heldout, *, keep: int = 0, batch: int = 16, resynth_synth=None,
                 progress: bool = True) -> SetResult:
    """Run `model` over a HeldoutSet (models/eval/heldout.py) -> per-melody results + pooled summary.

    keep: how many melodies keep their arrays (frames, spectrograms, audio) for the report."""
    from tqdm import tqdm

    from rtmirror.frontend import wav2aud
    from rtmirror.performer import PerformerConfig, frames_to_events
    from rtmirror.synth import make_synth

    cfg = model.frontend
    frame_rate = cfg.frame_rate
    perf_cfg = model.performer or PerformerConfig()
    specs = heldout.spectrograms(cfg)                          # (N, T, 128)
    n = len(specs)
    synth = resynth_synth or make_synth("builtin", model.space, sample_rate=cfg.sample_rate)
    set_space = heldout.space
    ip_model, ip_set = model.space.role_index("pitch"), set_space.role_index("pitch")
    ig_set = set_space.role_index("gate")
    pitch_model, pitch_set = model.space.controls[ip_model], set_space.controls[ip_set]

    # knobs scored against truth: those the set varies and the model plays
    scored = [c.name for c in model.space.knobs if c.name in heldout.truth_knobs]
    latched = {c.name for c in model.space.knobs if c.latch}
    pooled = {name: ([], []) for name in scored}
    # latched knobs in hindsight: the encoder's mean over each true note (what it comes to believe
    # once it has heard the note, which a synth latching at note-on cannot use)
    hindsight = {f"{name} (note mean)": ([], []) for name in scored if name in latched}
    vel_model, vel_set = model.space.role_index("velocity"), set_space.role_index("velocity")
    vel_pairs: tuple[list, list] = ([], [])

    results: list[MelodyResult] = []
    bar = tqdm(total=n, desc=f"eval {model.name} on {heldout.name}", disable=not progress, leave=False)
    for start in range(0, n, batch):
        spec_b = specs[start:start + batch]
        est_b = model.encode(spec_b) if model.play is None else None   # (b, T, K)
        dec_b = model.decode(est_b) if model.decode is not None and est_b is not None else None
        for j in range(len(spec_b)):
            i = start + j
            spec = spec_b[j]
            truth = heldout.truth[i]                           # (T, K_set)
            if model.play is None:
                est = np.asarray(est_b[j], dtype=np.float64)
                events = frames_to_events(est, model.space, frame_rate, perf_cfg)
            else:                                              # the Pipeline on the melody's audio
                played, events = model.play(heldout.audio[i], heldout.sample_rate)
                est = np.zeros((len(truth), played.shape[1]))
                est[:min(len(truth), len(played))] = played[:len(truth)]
            ref_iv, ref_p, ref_v = heldout.notes(i)
            est_iv, est_p, est_v = notes_from_events(events, heldout.duration_s)
            notes = note_scores(ref_iv, ref_p, est_iv, est_p)
            voiced = truth[:, ig_set] > 0.5
            acc, n_voiced = frame_pitch_accuracy(pitch_model.to_physical(est[:, ip_model]),
                                                 pitch_set.to_physical(truth[:, ip_set]), voiced)
            pairs = match_notes(ref_iv, ref_p, est_iv, est_p)
            ref_on_frames = np.minimum(np.round(ref_iv[:, 0] * frame_rate).astype(int), len(truth) - 1)
            for name in scored:
                k_m, k_s = model.space.index(name), set_space.index(name)
                if name in latched:
                    sent = latched_at_note_ons(events, name)
                    for a, b in pairs:
                        if math.isfinite(sent[b]):
                            pooled[name][0].append(sent[b])
                            pooled[name][1].append(truth[ref_on_frames[a], k_s])
                    for a, (on, off) in enumerate(ref_iv):
                        f0, f1 = ref_on_frames[a], int(round(off * frame_rate))
                        if f1 > f0:
                            hindsight[f"{name} (note mean)"][0].append(float(est[f0:f1, k_m].mean()))
                            hindsight[f"{name} (note mean)"][1].append(float(truth[f0, k_s]))
                else:
                    pooled[name][0].extend(est[voiced, k_m])
                    pooled[name][1].extend(truth[voiced, k_s])
            if vel_model is not None and vel_set is not None:
                vc = model.space.controls[vel_model]
                for a, b in pairs:
                    vel_pairs[0].append(float(vc.from_physical(est_v[b])))
                    vel_pairs[1].append(float(vc.from_physical(ref_v[a])))
            audio = _resample(synth.render(events, heldout.duration_s), synth.sample_rate, cfg.sample_rate)
            rspec = wav2aud(audio, cfg)
            rcorr = spectrogram_correlation(spec, rspec)
            spec_d = model.to_decoder_domain(spec)
            rcorr_log = spectrogram_correlation(spec_d, model.to_decoder_domain(rspec))
            dcorr = spectrogram_correlation(spec_d, dec_b[j]) if dec_b is not None else math.nan
            keep_this = i < keep
            results.append(MelodyResult(
                i, notes, acc, n_voiced, rcorr, dcorr, rcorr_log,
                est if keep_this else None, rspec if keep_this else None,
                (np.asarray(dec_b[j]) if dec_b is not None else None) if keep_this else None,
                audio if keep_this else None))
            bar.update(1)
    bar.close()
    summary = summarize(results, {**pooled, **hindsight}, vel_pairs if heldout.truth_velocity else None)
    summary["n_melodies"] = n
    return SetResult(model.name, heldout.name, summary, results)


def _nanmean(values) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def summarize(results: list[MelodyResult], pooled: dict | None = None, vel_pairs=None) -> dict:
    """Per-set numbers: means over melodies (note P/R/F1, resynthesis r), pooled over frames
    (pitch accuracy) and over samples (control r, MAE)."""
    n_voiced = np.array([r.n_voiced for r in results], dtype=np.float64)
    acc = np.array([r.pitch_acc if r.n_voiced else 0.0 for r in results], dtype=np.float64)
    counts = {k: int(sum(r.notes[k] for r in results)) for k in ("n_ref", "n_est", "n_match")}
    p = counts["n_match"] / counts["n_est"] if counts["n_est"] else 0.0
    rc = counts["n_match"] / counts["n_ref"] if counts["n_ref"] else 0.0
    out = {
        "note_precision": _nanmean(r.notes["precision"] for r in results),
        "note_recall": _nanmean(r.notes["recall"] for r in results),
        "note_f1": _nanmean(r.notes["f1"] for r in results),
        "note_f1_pooled": 2 * p * rc / (p + rc) if p + rc > 0 else 0.0,
        **counts,
        "frame_pitch_acc": float((acc * n_voiced).sum() / n_voiced.sum()) if n_voiced.sum() else math.nan,
        "resynth_corr": _nanmean(r.resynth_corr for r in results),
        "resynth_corr_log": _nanmean(r.resynth_corr_log for r in results),
        "decoder_corr": _nanmean(r.decoder_corr for r in results),
        "controls": {},
    }
    for name, (est, true) in (pooled or {}).items():
        out["controls"][name] = {"r": pearson(est, true), "mae": mae(est, true), "n": len(est)}
    if vel_pairs is not None and len(vel_pairs[0]):
        out["controls"]["velocity"] = {"r": pearson(*vel_pairs), "mae": mae(*vel_pairs), "n": len(vel_pairs[0])}
    return out
