"""Evaluation: metrics on cases with known answers, the FluidSynth renderer, the runner end to end."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, Event
from rtmirror.models import evaluate as E


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
    est_iv = iv[idx] + rng.uniform(-0.08, 0.08, (len(idx), 1))
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
