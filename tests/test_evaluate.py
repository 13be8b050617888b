"""Evaluation: metrics on cases with known answers, the FluidSynth renderer, the runner end to end."""
from __future__ import annotations

import math
from dataclasses import replace
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event
from rtmirror.models.eval import evaluate as E


def _melody_notes(rng, n=5):
    on = np.sort(rng.uniform(0, 1.8, n))
    on = np.round(on * 125) / 125 + np.arange(n) * 0.2      # well separated onsets
    iv = np.stack([on, on + 0.15], axis=1)
    return iv, rng.integers(62, 75, n).astype(float)


# ---- notes ------------------------------------------------------------------------------------
def test_perfect_transcription_scores_one():
    iv, p = _melody_notes(np.random.default_rng(0))
    s = E.note_scores(iv, p, iv, p)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    assert s["n_match"] == len(p)


def test_shifted_pitch_scores_zero():
    iv, p = _melody_notes(np.random.default_rng(1))
    assert E.note_scores(iv, p, iv, p + 1)["f1"] == 0.0
    # a quarter tone off is still the right note (mir_eval's 50-cent tolerance)
    assert E.note_scores(iv, p, iv, p + 0.4)["f1"] == 1.0


@pytest.mark.parametrize("jitter,expected", [(0.040, 1.0), (-0.040, 1.0), (0.060, 0.0), (-0.060, 0.0)])
def test_onset_jitter_tolerance(jitter, expected):
    iv, p = _melody_notes(np.random.default_rng(2))
    assert E.note_scores(iv, p, iv + jitter, p)["f1"] == expected


def test_offsets_are_ignored_and_partial_credit():
    iv, p = _melody_notes(np.random.default_rng(3))
    est = iv.copy()
    est[:, 1] = est[:, 0] + 0.01                               # much shorter notes: still correct
    assert E.note_scores(iv, p, est, p)["f1"] == 1.0
    s = E.note_scores(iv, p, iv[:3], p[:3])                    # 3 of 5 found, none invented
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(0.6)
    assert s["f1"] == pytest.approx(0.75)
    assert E.note_scores(iv, p, np.zeros((0, 2)), np.zeros(0))["f1"] == 0.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n_est=st.integers(0, 8))
def test_note_scores_match_mir_eval(seed, n_est):
    import mir_eval.transcription

    rng = np.random.default_rng(seed)
    iv, p = _melody_notes(rng)
    idx = rng.choice(len(p), size=min(n_est, len(p)), replace=False)
    est_iv = np.maximum(iv[idx] + rng.uniform(-0.08, 0.08, (len(idx), 1)), 0.0)
    est_p = p[idx] + rng.choice([0, 0, 1, -2], len(idx))
    extra = max(0, n_est - len(p))
    est_iv = np.concatenate([est_iv, np.stack([np.full(extra, 0.3), np.full(extra, 0.5)], 1)])
    est_p = np.concatenate([est_p, np.full(extra, 70.0)])
    ours = E.note_scores(iv, p, est_iv, est_p)
    if len(est_p) == 0:
        assert ours["f1"] == 0.0
        return
    ref = mir_eval.transcription.precision_recall_f1_overlap(
        iv, 440 * 2 ** ((p - 69) / 12), est_iv, 440 * 2 ** ((est_p - 69) / 12), offset_ratio=None)
    assert ours["precision"] == pytest.approx(ref[0])
    assert ours["recall"] == pytest.approx(ref[1])
    assert ours["f1"] == pytest.approx(ref[2])


def test_notes_from_events_pairs_and_closes():
    ev = [Event(0.0, CONTROL, name="ENV1: Attack", value=0.3), Event(0.0, NOTE_ON, note=60, velocity=100),
          Event(0.5, NOTE_OFF, note=60), Event(0.5, NOTE_ON, note=62, velocity=90)]
    iv, p, v = E.notes_from_events(ev, duration_s=2.0)
    assert iv.tolist() == [[0.0, 0.5], [0.5, 2.0]]
    assert p.tolist() == [60, 62] and v.tolist() == [100, 90]
    assert E.latched_at_note_ons(ev, "ENV1: Attack") == [0.3, 0.3]
    assert math.isnan(E.latched_at_note_ons(ev, "ENV1: Decay")[0])


# ---- frames and controls -----------------------------------------------------------------------
def test_frame_pitch_accuracy():
    true = np.full(100, 64.0)
    voiced = np.zeros(100, bool)
    voiced[10:90] = True
    est = true.copy()
    est[10:30] += 0.6                   # 20 of 80 voiced frames off by more than half a semitone
    est[30:40] += 0.4                   # within tolerance
    est[:10] = 0.0                      # unvoiced errors do not count
    est[50] = np.nan                    # a non-finite estimate is wrong
    acc, n = E.frame_pitch_accuracy(est, true, voiced)
    assert n == 80 and acc == pytest.approx(59 / 80)
    assert math.isnan(E.frame_pitch_accuracy(est, true, np.zeros(100, bool))[0])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 200))
def test_pearson_and_mae_match_numpy(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.5 * a + rng.normal(size=n)
    assert E.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert E.mae(a, b) == pytest.approx(np.mean(np.abs(a - b)))


def test_pearson_edge_cases():
    assert math.isnan(E.pearson(np.ones(10), np.arange(10)))
    assert math.isnan(E.pearson([1.0], [2.0]))
    assert E.pearson(np.arange(10), -3 * np.arange(10) + 1) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        E.pearson(np.ones(3), np.ones(4))
    s = np.random.default_rng(0).random((50, 128))
    assert E.spectrogram_correlation(s, s[:40]) == pytest.approx(1.0)
    assert E.spectrogram_correlation(s, np.zeros_like(s)) == 0.0   # silent resynthesis scores 0


# ---- held-out sets: the FluidSynth piano --------------------------------------------------------
def _f0_autocorr(x, sr, fmin=80.0, fmax=1200.0):
    x = x - x.mean()
    ac = np.correlate(x, x, mode="full")[len(x) - 1:]
    lo, hi = int(sr / fmax), int(sr / fmin)
    seg = ac[lo:hi]
    # the first local maximum within 90 % of the highest: multiples of the period score as high
    peaks = [k for k in range(1, len(seg) - 1) if seg[k] >= seg[k - 1] and seg[k] >= seg[k + 1]]
    lag = lo + next(k for k in peaks if seg[k] >= 0.9 * seg.max())
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]           # parabolic refinement of the peak
    return sr / (lag + 0.5 * (a - c) / (a - 2 * b + c))


def _fluidsynth_ok() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    from rtmirror.synth.fluid import GM_SOUNDFONT
    return Path(GM_SOUNDFONT).is_file()


@pytest.mark.fluidsynth
@pytest.mark.parametrize("note", [57, 64, 69, 74])
def test_fluidsynth_piano_plays_the_right_pitch(note):
    require(_fluidsynth_ok(), "FluidSynth + GM sound font (apt: fluidsynth fluid-soundfont-gm; pip: pyfluidsynth)")
    import soxr

    from rtmirror.synth.fluid import FluidSynthInstrument

    piano = FluidSynthInstrument(program=0)
    ev = [Event(0.1, NOTE_ON, note=note, velocity=110), Event(0.6, NOTE_OFF, note=note)]
    x = piano.render(ev, 1.0)
    assert x.shape == (44100,) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert np.abs(x[:4000]).max() < 1e-3 < np.abs(x[4500:8000]).max()   # silent until the note-on
    assert np.abs(x - piano.render(ev, 1.0)).max() < 1e-4                 # reproducible (up to int16 dither)
    y = soxr.resample(x, 44100, 8000)
    f0 = _f0_autocorr(y[1000:3000].astype(np.float64), 8000)
    expected = 440.0 * 2 ** ((note - 69) / 12)
    assert abs(12 * np.log2(f0 / expected)) < 0.3, (f0, expected)


# ---- the runner end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def exp1_small(tmp_path_factory):
    from rtmirror.models.eval import heldout as H
    return H.get("exp1", 3, tmp_path_factory.mktemp("heldout"), progress=False)


def test_heldout_set_is_deterministic_and_consistent(exp1_small, tmp_path):
    from rtmirror.models.eval import heldout as H
    ds = exp1_small
    assert ds.audio.shape == (3, 16000) and ds.truth.shape == (3, 250, 8)
    assert ds.seeds.tolist() == [H.HELDOUT_SEED_BASE + i for i in range(3)]
    again = H.generate("exp1", 2, progress=False)
    assert np.array_equal(again.audio, ds.audio[:2]) and np.array_equal(again.truth, ds.truth[:2])
    # the truth gate is on exactly while a note sounds, and the note table agrees with it
    iv, p, _ = ds.notes(0)
    assert len(p) == 5 and set(p) <= {62, 64, 65, 67, 69, 71, 72, 74}
    gate = ds.truth[0, :, ds.space.role_index("gate")]
    for on, off in iv:
        assert gate[int(round(on * 125))] == 1.0 and gate[int(round(off * 125))] == 0.0
    # a smaller request is served from the cache (same melodies)
    sub = H.get("exp1", 2, ds.path.parent, progress=False)
    assert np.array_equal(sub.audio, ds.audio[:2])


def test_runner_oracle_scores_perfectly(exp1_small):
    """A 'model' that outputs the true control frames must get F1 1, pitch 100 %, r 1."""
    from rtmirror.frontend import FrontendConfig

    truth = exp1_small.truth
    seen = []

    def oracle(spec_batch):
        i = len(seen)
        seen.extend(range(i, i + len(spec_batch)))
        return truth[i:i + len(spec_batch)].astype(np.float64)

    # The Performer's immediate rules (no wait for a settled pitch): the default settling delays
    # note-ons by up to 2 frames even on perfect frames, which the resynthesis r would count.
    from rtmirror.performer import PerformerConfig
    immediate = PerformerConfig(pitch_stable_frames=1, pitch_stable_tol=0.5, onset_settle_frames=0, gate_off_frames=1)
    model = E.Model("oracle", exp1_small.space, FrontendConfig(), oracle, performer=immediate)
    res = E.evaluate_set(model, exp1_small, keep=1, batch=2, progress=False)
    s = res.summary
    assert s["n_melodies"] == 3 and seen == [0, 1, 2]
    assert s["note_f1"] == 1.0 and s["frame_pitch_acc"] == 1.0
    for name in ("OSC: Volume2", "VCF1: Frequency", "VCF1: Resonance", "ENV1: Attack", "ENV1: Decay"):
        assert s["controls"][name]["r"] == pytest.approx(1.0, abs=1e-6), name
        assert s["controls"][name]["mae"] < 1e-6, name
    assert s["controls"]["ENV1: Attack"]["n"] == 15            # per note: 3 melodies x 5 notes
    assert s["controls"]["ENV1: Decay (note mean)"]["r"] == pytest.approx(1.0, abs=1e-6)
    assert s["resynth_corr"] > 0.95                            # the same synth plays the same notes
    assert res.melodies[0].est_frames is not None and res.melodies[1].est_frames is None


def test_eval_cli_end_to_end_with_a_tiny_checkpoint(exp1_small, tmp_path):
    """`rtmirror eval --report` on 3 melodies with an untrained tiny checkpoint: runs, writes
    results.json, REPORT.md, PNGs and WAVs, and the numbers are in range."""
    import json

    import torch

    from rtmirror.cli import main
    from rtmirror.frontend import FrontendConfig
    from rtmirror.models.checkpoint import save_checkpoint
    from rtmirror.models.decoder import Decoder, DecoderConfig
    from rtmirror.models.encoder import Encoder, EncoderConfig

    torch.manual_seed(0)
    space = exp1_small.space
    enc = Encoder(EncoderConfig.for_space(space, hidden=16, freq_channels=4, dilations=(1, 2)))
    dec = Decoder(DecoderConfig.for_space(space, hidden=16, dilations=(1, 2)))
    ck = save_checkpoint(tmp_path / "ck" / "tiny", enc, dec,
                         {"control_space": space.to_dict(), "frontend": FrontendConfig().to_dict(),
                          "synth": "builtin", "train_config": {"mode": "mirror", "init": True}})
    out = tmp_path / "REPORT.md"
    rc = main(["eval", "--checkpoint", str(ck), "--sets", "exp1:3", "--report", "--quiet",
               "--out", str(out), "--fig-dir", str(tmp_path / "fig"),
               "--cache-dir", str(exp1_small.path.parent)])
    assert rc == 0
    res = json.loads((tmp_path / "fig" / "results.json").read_text())["results"]["tiny"]["exp1"]
    assert res["n_melodies"] == 3 and 0.0 <= res["note_f1"] <= 1.0 and 0.0 <= res["frame_pitch_acc"] <= 1.0
    assert -1.0 <= res["decoder_corr"] <= 1.0
    text = out.read_text()
    assert "## Targets" in text and "| `tiny` | 3 |" in text
    assert "| r ENV1: Decay, note mean (hindsight) | (≥ 0.700, not counted) |" in text
    pngs = sorted(p.name for p in (tmp_path / "fig").glob("*.png"))
    assert "exp1_0_triptych.png" in pngs and "exp1_0_controls.png" in pngs
    import soundfile as sf
    info = sf.info(str(tmp_path / "fig" / "exp1_0_input.wav"))
    assert info.subtype == "PCM_16" and info.samplerate == 8000 and info.frames <= 16000


def test_baseline_configs_match_the_mirror_run():
    """The report's baselines: same nets/data/seeds; no-init has no supervised term; the
    supervised-only run gets at least as many optimizer steps as the MirrorNet run."""
    from rtmirror.cli.eval import baseline_configs, plan_steps
    from rtmirror.models.train.trainer import load_config

    base = load_config(str(Path(__file__).parents[1] / "docs" / "report" / "configs" / "exp1-small.toml"))
    cfgs = baseline_configs(base, with_base=True)
    assert list(cfgs) == ["exp1-small", "exp1-small-noinit", "exp1-small-supervised"]
    noinit, sup = cfgs["exp1-small-noinit"], cfgs["exp1-small-supervised"]
    assert noinit["mode"] == "mirror" and not noinit["init"]["enabled"] and noinit["mirror"]["encoder_sup_weight"] == 0
    assert sup["mode"] == "supervised"
    for c in (noinit, sup):
        assert c["encoder"] == base["encoder"] and c["data"] == base["data"] and c["seed"] == base["seed"]
    per_epoch = base["data"]["n_random"] // base["optim"]["batch"]
    assert plan_steps(base) <= plan_steps(sup) < plan_steps(base) + per_epoch


def test_stale_cache_is_rendered_again(exp1_small, tmp_path):
    """A cache made by other code (here: tampered audio) is detected and re-rendered."""

    from rtmirror.models.eval import heldout as H

    d = tmp_path / "cache"
    d.mkdir()
    for f in exp1_small.path.parent.glob("exp1-n3.*"):
        shutil.copy(f, d / f.name)
    assert H.is_current(H.load(d / "exp1-n3.npz"))
    ds = H.load(d / "exp1-n3.npz")
    audio = ds.audio.copy()
    audio[0] *= 0.5                                   # as if the synth had changed its level
    np.savez(d / "exp1-n3.npz", audio=audio, truth=ds.truth, note_table=ds.note_table, seeds=ds.seeds)
    assert not H.is_current(H.load(d / "exp1-n3.npz"))
    again = H.get("exp1", 3, d, progress=False)
    assert np.array_equal(again.audio, exp1_small.audio)


def test_exported_onnx_is_scored_through_the_pipeline(tmp_path):
    """`rtmirror eval --checkpoint MODEL.onnx`: the shipped ONNX, played by the Pipeline users run
    (resampler, DC blocker, cochlea, level gate, step graph, Performer with the model's rules)."""
    from rtmirror.models.eval import evaluate as E
    from rtmirror.models.eval import heldout as H
    from rtmirror.runtime import default_model_path

    model = E.onnx_model(default_model_path())
    assert model.play is not None and model.performer.onset_settle_frames == model.info["meta"]["manifest"]["performer"]["onset_settle_frames"]
    ds = H.get("general", 3, tmp_path, progress=False)
    res = E.evaluate_set(model, ds, progress=False)
    assert res.summary["n_melodies"] == 3
    assert res.summary["note_f1"] > 0.5
    # the same melodies through frames_to_events on the full graph differ only by what the
    # Pipeline adds (the level gate, streaming): both are scored, both play notes
    offline = E.evaluate_set(replace(model, play=None), ds, progress=False)
    assert offline.summary["note_f1"] > 0.5
