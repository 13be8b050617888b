"""The `real` held-out note set (models/eval/real.py): deterministic renders, truth that lines up
with the audio, its families and sources, the phrase generator's properties, the room variants,
the scoring, the causal segmenter the PESTO anchor uses, and the live timing through the Engine."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtmirror.models.eval import real as R
from rtmirror.models.eval.rooms import apply_variant, draw_variant, impulse_response
from rtmirror.models.eval.segmenter import SegmenterConfig, segment

RESERVED_FONTS = ("FluidR3", "default-GM", "fluidr3mono", "musescore", "TimGM6mb", "opl3")
needs_font = pytest.mark.skipif(not Path(R.CSOUND_FONT).is_file(), reason="apt-get install csound-soundfont")
SR = R.SAMPLE_RATE


def test_families_and_sources():
    fams = {R.family_of(i).name for i in range(R.DEFAULT_N)}
    assert len(fams) >= 10 and "singer" in fams and {"choir aahs", "voice oohs"} <= fams
    for f in R.FAMILIES:
        assert f.source == R.SINGER or f.source.endswith("@" + R.CSOUND_FONT)
        assert not any(bad.lower() in f.source.lower() for bad in RESERVED_FONTS)
    from rtmirror.models.eval.heldout import NOTE_SETS, SETS
    for spec in SETS.values():                               # no held-out set plays a reserved font
        assert not spec.synth.startswith("fluidsynth:") or spec.synth.endswith("@" + R.CSOUND_FONT)
    assert "real" in NOTE_SETS
    rooms = [R.has_room(i) for i in range(R.DEFAULT_N)]
    assert 0.5 < np.mean(rooms) < 0.75                       # part of the set, not all of it
    for f in R.FAMILIES:                                     # every family has dry and room melodies
        idx = [i for i in range(R.DEFAULT_N) if R.family_of(i) is f]
        assert {R.has_room(i) for i in idx} == {True, False}


def test_phrase_melodies_are_monophonic_varied_and_on_the_grid():
    legato = repeats = rests = 0
    lengths, tempi_durations = [], []
    for seed in range(60):
        notes, duration = R.phrase_melody(np.random.default_rng(seed), 48, 76, 0.4)
        tempi_durations.append(duration)
        assert 4.5 <= duration <= 11.0 and len(notes) >= 3
        for (on, off, p, v), nxt in zip(notes, notes[1:] + [None]):
            assert 48 <= p <= 76 and 25 <= v <= 127 and off - on >= 0.05 - 1e-9
            for t in (on, off):
                assert abs(t * SR / R.BLOCK - round(t * SR / R.BLOCK)) < 1e-6
            lengths.append(off - on)
            if nxt is not None:
                assert off <= nxt[0] + 1e-9                   # never overlapping
                if nxt[2] == p:
                    repeats += 1
                    assert nxt[0] - off >= 0.04 - 1e-9        # a repeated note is re-attacked
                legato += abs(nxt[0] - off) < 1e-9
                rests += nxt[0] - off > 0.25
        assert notes[-1][1] <= duration - 0.5 + 1e-9
    assert legato > 50 and repeats > 20 and rests > 60
    assert min(lengths) < 0.15 and max(lengths) > 1.0
    assert np.ptp(tempi_durations) > 4.0


@needs_font
@pytest.mark.parametrize("i", [16, 14])      # violin through a room; the singer, dry
def test_render_is_deterministic(i):
    a, ta = R.render_melody(i)
    b, tb = R.render_melody(i)
    assert ta == tb and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert R._matches(a, b)
    assert len(a) == round(ta["duration_s"] * SR)
    if ta["room"]:
        assert abs(20 * np.log10(np.abs(a).max()) - ta["room"]["peak_dbfs"]) < 0.01
    else:
        assert abs(20 * np.log10(np.abs(a).max()) - R.DRY_PEAK_DBFS) < 0.01


def _f0_autocorr(x: np.ndarray, lo: float = 60.0, hi: float = 1500.0) -> float:
    x = x - x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    lag_lo, lag_hi = int(SR / hi), int(SR / lo)
    lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
    return SR / lag


@needs_font
@pytest.mark.parametrize("i", [0, 14])       # flute (GM bank), singer
def test_truth_lines_up_with_the_audio(i):
    x, truth = R.render_melody(i)
    assert truth["room"] is None
    notes = truth["notes"]
    env = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(240) / 240, "same"))   # 5 ms RMS
    rises = pitch_ok = checked = 0
    prev_off = -1.0
    for on, off, p, _ in notes:
        a, b = int(on * SR), int(off * SR)
        if on - prev_off > 0.2:              # after a rest: silence before the onset, sound after it
            before = env[max(0, a - int(0.05 * SR)):a - int(0.005 * SR)].mean()
            after = env[a + int(0.01 * SR):a + int(0.06 * SR)].mean()
            rises += after > 4 * before
            checked += 1
        if off - on > 0.2:                   # the pitch is the note's (median of 3 windows)
            w = int(0.04 * SR)
            mids = [a + int((b - a) * q) for q in (0.4, 0.5, 0.6)]
            f0 = np.median([_f0_autocorr(x[m - w // 2:m + w // 2].astype(np.float64)) for m in mids])
            est = 69 + 12 * np.log2(f0 / 440.0)
            pitch_ok += abs(est - p) < 0.5 or abs(est - p - 12) < 0.5   # autocorrelation may pick the octave below
        prev_off = off
    long_notes = sum(off - on > 0.2 for on, off, _, _ in notes)
    assert checked >= 1 and rises == checked
    assert pitch_ok >= 0.8 * long_notes


def test_room_variant_levels_and_decay():
    rng = np.random.default_rng(0)
    n = 3 * SR
    dry = np.zeros(n)
    dry[SR // 2:2 * SR] = np.sin(2 * np.pi * 330 * np.arange(int(1.5 * SR)) / SR)
    active = dry != 0
    for seed in range(5):
        v = draw_variant(1000 + seed)
        assert 0.2 <= v.rt60_s <= 1.2 and 15 <= v.snr_db <= 40 and -45 <= v.peak_dbfs <= -6
        y = apply_variant(dry, v, SR, active)
        assert y.dtype == np.float32 and abs(20 * np.log10(np.abs(y).max()) - v.peak_dbfs) < 1e-3
        assert np.array_equal(y, apply_variant(dry, v, SR, active))      # deterministic
        # the quiet part before the note holds only noise: its level sits near the drawn SNR
        noise_rms = np.sqrt(np.mean(y[:int(0.4 * SR)].astype(np.float64) ** 2))
        sig_rms = np.sqrt(np.mean(y[active].astype(np.float64) ** 2))
        assert abs(20 * np.log10(sig_rms / noise_rms) - v.snr_db) < 3.0
        # Schroeder backward integration of the response: -5 to -25 dB slope -> RT60
        h = impulse_response(v, SR)
        edc = 10 * np.log10(np.cumsum(h[::-1] ** 2)[::-1] / np.sum(h ** 2))
        t5, t25 = np.argmax(edc < -5), np.argmax(edc < -25)
        rt60 = 3 * (t25 - t5) / SR
        assert 0.6 * v.rt60_s < rt60 < 1.25 * v.rt60_s
    assert rng is not None


def test_scores_of_truth_shifted_and_wrong_notes():
    truth = [{"family": "flute", "notes": [[0.5, 0.9, 60, 90], [1.0, 1.4, 62, 90], [1.6, 2.0, 64, 90]]},
             {"family": "piano", "notes": [[0.3, 0.6, 48, 90], [0.7, 1.2, 50, 90]]}]
    rs = R.RealSet(Path("."), [Path("a.wav"), Path("b.wav")], truth)
    same = {i: [n[:3] for n in t["notes"]] for i, t in enumerate(truth)}
    s = R.score(rs, same)["all"]
    assert s["f1"] == 1.0 and s["count_ratio"] == 1.0 and abs(s["lag_median_ms"]) < 1e-9
    late = {i: [[a + 0.03, b + 0.03, p] for a, b, p in v] for i, v in same.items()}
    s = R.score(rs, late)["all"]
    assert s["f1"] == 1.0 and abs(s["lag_median_ms"] - 30) < 1e-6
    too_late = {i: [[a + 0.08, b + 0.08, p] for a, b, p in v] for i, v in same.items()}
    s = R.score(rs, too_late)["all"]
    assert s["f1"] == 0.0 and abs(s["lag_median_ms"] - 80) < 1e-6      # missed, but its lag shows
    doubled = {i: v + [[a + 0.2, b, p + 1] for a, b, p in v] for i, v in same.items()}
    res = R.score(rs, doubled)
    assert res["all"]["count_ratio"] == 2.0 and abs(res["all"]["precision"] - 0.5) < 1e-9
    assert list(res["families"]) == ["flute", "piano"]


def test_notes_from_midi_messages():
    msgs = [(0.10, (0x90, 60, 100)), (0.30, (0x80, 60, 0)), (0.30, (0x90, 62, 90)), (0.50, (0x90, 62, 0)),
            (0.60, (0xB0, 1, 64)), (0.70, (0x90, 64, 80))]
    assert R.notes_from_messages(msgs, 1.0) == [(0.10, 0.30, 60), (0.30, 0.50, 62), (0.70, 1.0, 64)]


def _track(notes, step=0.01, duration=3.0, seed=0):
    """Notes [(on, off, midi)] -> a PESTO-like frame track: the frame at t holds the pitch at t."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, int(duration / step) + 1) * step
    midi = 50 + rng.uniform(-12, 12, len(t))                 # unvoiced frames: pitch is noise
    conf = rng.uniform(0.0, 0.3, len(t))
    for on, off, p in notes:
        inside = (t >= on) & (t < off)
        midi[inside] = p + 0.3 * np.sin(2 * np.pi * 5.5 * t[inside]) + rng.normal(0, 0.05, inside.sum())
        conf[inside] = rng.uniform(0.7, 1.0, inside.sum())
    return t, midi, conf


def test_segmenter_on_a_synthetic_pitch_track():
    cfg = SegmenterConfig()
    notes = [(0.2, 0.6, 60), (0.6, 1.0, 62), (1.3, 1.5, 62), (1.8, 2.6, 67)]   # legato, repeat after a rest
    t, midi, conf = _track(notes)
    got = segment(t, midi, conf, cfg)
    assert [n for _, _, n in got] == [60, 62, 62, 67]
    for (on, off, _), (g_on, g_off, _) in zip(notes, got):
        first = t[np.argmax(t >= on)]
        assert abs(g_on - (first + (cfg.hold - 1) * 0.01)) < 1e-9   # stamped when decided
        assert g_on <= g_off
    for a, b in zip(got, got[1:]):
        assert a[1] <= b[0]
    # causal: cutting the track changes no note that was closed before the cut
    for cut in (50, 111, 170, 240):
        part = segment(t[:cut], midi[:cut], conf[:cut], cfg)
        closed = [n for n in got if n[1] < t[cut - 1]]
        assert part[:len(closed)] == closed


def test_segmenter_properties_over_random_tracks():
    rng = np.random.default_rng(5)
    for _ in range(30):
        T = int(rng.integers(10, 400))
        t = np.arange(1, T + 1) * 0.01
        midi = np.cumsum(rng.normal(0, 0.6, T)) + 60
        conf = rng.uniform(0, 1, T)
        got = segment(t, midi, conf)
        for on, off, n in got:
            assert t[0] <= on <= off <= t[-1] and isinstance(n, int)
        for a, b in zip(got, got[1:]):
            assert a[1] <= b[0]


def test_eval_cli_refuses_a_checkpoint_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rtmirror", "eval", "--checkpoint", str(tmp_path), "--sets", "real"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "MODEL.onnx" in proc.stderr and "Traceback" not in proc.stderr


@needs_font
def test_live_timing_is_the_file_pipeline_stamped_later(tmp_path):
    """One melody through the real-time Engine: the same notes as the file pass (when nothing was
    dropped), each stamped no earlier than its frame."""
    rs = R.get(1, tmp_path, progress=False)
    model = Path(R.__file__).resolve().parents[2] / "rtmirror" / "resources" / "default.onnx"
    file_notes = R.file_notes(model, rs, [0], progress=False)[0]
    live, stats = R.live_notes(model, rs, [0], progress=False)
    assert not stats["errors"]
    if stats["dropped_frames"] == 0 and stats["input_overflows"] == 0:
        assert [n for _, _, n in live[0]] == [n for _, _, n in file_notes]
        for (f_on, _, _), (l_on, _, _) in zip(file_notes, live[0]):
            assert l_on >= f_on - 1e-3
    truth = json.loads((rs.path / "truth.json").read_text())
    assert truth["melodies"][0]["family"] == "flute"
