"""EncoderRuntime on the shipped default model: streaming == offline, validation, no torch needed."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtmirror.manifest import ModelError, load_manifest, read_onnx_header, sha256_file, validate_manifest
from rtmirror.runtime import EncoderRuntime, default_model_path

TOL = 1e-4


def spectrogram(n_frames: int, seed: int = 0) -> np.ndarray:
    """Non-negative (T, 128) frames with a few bright bands, like a raw auditory spectrogram."""
    rng = np.random.default_rng(seed)
    spec = rng.exponential(0.02, (n_frames, 128))
    for _ in range(max(1, n_frames // 20)):
        t0, ch = rng.integers(0, n_frames), rng.integers(10, 100)
        spec[t0:t0 + rng.integers(3, 40), ch:ch + 3] += rng.uniform(0.1, 2.0)
    return spec.astype(np.float32)


@pytest.fixture(scope="module")
def rt() -> EncoderRuntime:
    return EncoderRuntime()


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """The shipped default (step graph, full graph, sidecar) copied to tmp_path/m.onnx."""
    src = default_model_path()
    m = json.loads(src.with_suffix(".json").read_text())
    dst = tmp_path / "m.onnx"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), tmp_path / "m.json")
    if m.get("full"):
        shutil.copy(src.parent / m["full"]["file"], tmp_path / m["full"]["file"])
    return dst


def test_default_model_is_shipped_and_small():
    p = default_model_path()
    assert p.is_file() and p.with_suffix(".json").is_file()
    m = load_manifest(p)
    total = p.stat().st_size + (p.parent / m["full"]["file"]).stat().st_size if m.get("full") else p.stat().st_size
    assert total <= 10 * 2**20
    assert m["sha256"] == sha256_file(p)


def test_default_loads_and_describes_itself(rt):
    assert rt.n_controls == len(rt.space) == rt.manifest["n_controls"]
    assert rt.lookahead == rt.manifest["lookahead"]
    assert rt.frontend.frame_rate == pytest.approx(125.0)
    rt.check_frontend(rt.frontend)
    opts = rt._session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert "pitch" in rt.space.names and "gate" in rt.space.names


def test_check_frontend_names_the_difference(rt):
    other = replace(rt.frontend, shift=rt.frontend.shift + 1)
    with pytest.raises(ModelError, match="shift"):
        rt.check_frontend(other)


@pytest.mark.parametrize("mode", [1, 2, 3, "random"])
def test_streaming_equals_full_graph(rt, mode):
    """Step graph streamed in chunks == the separate full-sequence graph, after the lookahead shift."""
    spec = spectrogram(180, seed=1)
    full = rt.run_full(spec)
    rng = np.random.default_rng(2)
    rt.reset()
    outs, t = [], 0
    while t < len(spec):
        k = int(rng.integers(1, 10)) if mode == "random" else mode
        outs.append(rt.step(spec[t:t + k]))
        t += k
    out = np.concatenate(outs)
    L = rt.lookahead
    assert out.shape == full.shape == (180, rt.n_controls)
    assert np.abs(out[L:] - full[:180 - L]).max() <= TOL
    assert np.all((full >= 0) & (full <= 1))


@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(1, 25), min_size=1, max_size=8), seed=st.integers(0, 999))
def test_streaming_any_partition(sizes, seed):
    rt = _shared_rt()
    spec = spectrogram(sum(sizes) + 3, seed)
    full = rt.run_full(spec)
    rt.reset()
    outs, t = [], 0
    for k in sizes + [3]:
        outs.append(rt.step(spec[t:t + k]))
        t += k
    L = rt.lookahead
    assert np.abs(np.concatenate(outs)[L:] - full[:len(spec) - L]).max() <= TOL


@pytest.mark.parametrize("which", ["shipped", "probe"])
def test_chunked_full_graph_equals_one_run(which, tmp_path):
    """run_full in chunks (each with receptive_past frames before it and lookahead after it) gives
    the rows of one unchunked run, bit for bit; and equals the stream after the lookahead shift."""
    from rtmirror.testing.probe import write_probe_model
    rt = _shared_rt() if which == "shipped" else EncoderRuntime(write_probe_model(tmp_path / "p.onnx"))
    assert rt.receptive_past == sum(s[-1] for s in rt.state_shapes)
    spec = spectrogram(1500, seed=7) * 5.0
    whole = rt.run_full(spec)
    for chunk in (128, 333, 1000, 1499):          # equal chunks of 125, 300, 750, 750 rows
        np.testing.assert_array_equal(rt.run_full(spec, chunk_frames=chunk), whole)
    rt.reset()
    L = rt.lookahead
    streamed = np.concatenate([rt.step(spec[t:t + 50]) for t in range(0, len(spec), 50)]
                              + ([rt.step(np.zeros((L, 128), np.float32))] if L else []))
    assert np.abs(streamed[L:] - whole).max() <= TOL


def test_chunk_context_is_needed():
    """The overlap is what makes chunking exact: without the receptive_past frames of context
    the rows after each cut differ."""
    rt = _shared_rt()
    spec = spectrogram(600, seed=8) * 5.0
    whole = rt.run_full(spec)
    past = rt.receptive_past
    cut = rt._run_full_once(np.nan_to_num(spec[200:]))          # chunk at 200 without context
    assert np.abs(cut[:past // 2] - whole[200:200 + past // 2]).max() > 1e-3
    with pytest.raises(ValueError, match="chunk_frames"):
        rt.run_full(spec, chunk_frames=0)


_RT: list = []


def _shared_rt() -> EncoderRuntime:
    if not _RT:
        _RT.append(EncoderRuntime())
    return _RT[0]


def test_reset_restarts_the_stream(rt):
    spec = spectrogram(30, seed=4)
    rt.reset()
    a = rt.step(spec)
    rt.step(spectrogram(10, seed=5))
    rt.reset()
    assert np.array_equal(rt.step(spec), a)


def test_nonfinite_input_is_replaced_and_never_poisons_state(rt):
    spec = spectrogram(40, seed=6)
    bad = spec.copy()
    bad[5, 3] = np.nan
    bad[9, :] = np.inf
    clean = spec.copy()
    clean[5, 3] = 0.0
    clean[9, :] = 0.0
    rt.reset()
    n0 = rt.n_nonfinite_inputs
    out_bad = np.concatenate([rt.step(bad[t:t + 1]) for t in range(40)])
    assert rt.n_nonfinite_inputs == n0 + 2
    assert np.isfinite(out_bad).all()
    assert np.isnan(bad[5, 3]), "the caller's array must not be modified"
    rt.reset()
    out_clean = np.concatenate([rt.step(clean[t:t + 1]) for t in range(40)])
    assert np.array_equal(out_bad, out_clean)


def test_poisoned_state_is_reset_not_propagated(rt):
    """A non-finite state (it cannot arise from sanitized input, but say it did) is caught."""
    spec = spectrogram(60, seed=8)
    rt.reset()
    rt._state_in[-1] = np.full(rt.state_shapes[-1], np.nan, np.float32)
    n0 = rt.n_state_resets
    out, reset_at = [], None
    for t in range(60):
        out.append(rt.step(spec[t:t + 1]))
        if reset_at is None and rt.n_state_resets > n0:
            reset_at = t
    out = np.concatenate(out)
    assert reset_at is not None and rt.n_state_resets == n0 + 1
    assert np.isfinite(out).all()
    assert all(np.isfinite(s).all() for s in rt.state)
    # from the frame after the reset on, the stream is a fresh stream started there
    rt.reset()
    fresh = rt.step(spec[reset_at + 1:])
    assert np.abs(out[reset_at + 1:] - fresh).max() <= TOL


def test_bad_shapes_raise(rt):
    for shape in [(0, 128), (3, 127), (128,), (1, 3, 128)]:
        with pytest.raises(ValueError):
            rt.step(np.zeros(shape, np.float32))
    with pytest.raises(ValueError):
        rt.run_full(np.zeros((10, 64), np.float32))
    assert rt.run_full(np.zeros((0, 128), np.float32)).shape == (0, rt.n_controls)


def test_float64_and_noncontiguous_input(rt):
    spec = spectrogram(20, seed=7)
    rt.reset()
    a = rt.step(spec)
    rt.reset()
    b = rt.step(np.asfortranarray(spec.astype(np.float64)))
    assert np.abs(a - b).max() <= 1e-6


# -- validation: corrupt, truncated, mismatched ---------------------------------------------------
def test_naming_the_sidecar_opens_the_model(model_copy):
    assert EncoderRuntime(model_copy.with_suffix(".json")).path == model_copy


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        EncoderRuntime(tmp_path / "nope.onnx")


def test_corrupted_bytes_fail_the_sha256(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        EncoderRuntime(model_copy)


@pytest.mark.parametrize("keep", [0, 10, 1000, 0.5, 0.999])
def test_truncated_file_without_sidecar(model_copy, keep):
    data = model_copy.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    model_copy.write_bytes(data[:n])
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="not a valid ONNX file|truncated|onnxruntime cannot load"):
        EncoderRuntime(model_copy)


def test_truncated_file_with_sidecar(model_copy):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelError, match="sha256 .* does not match"):
        EncoderRuntime(model_copy)


def test_garbage_and_pickle_are_refused_without_unpickling(model_copy, tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    model_copy.with_suffix(".json").unlink()
    model_copy.write_bytes(pickle.dumps({"x": Boom(), "pad": b"\0" * 64}))
    with pytest.raises(ModelError):
        EncoderRuntime(model_copy)
    assert not marker.exists()
    model_copy.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a valid ONNX file"):
        EncoderRuntime(model_copy)


def test_sidecar_that_belongs_to_another_model(model_copy):
    side = model_copy.with_suffix(".json")
    m = json.loads(side.read_text())
    m["lookahead"] = m["lookahead"] + 1
    m["delay"]["lookahead_frames"] += 1          # a consistent manifest, of another model
    m["delay"]["total_ms"] += m["delay"]["frame_ms"]
    side.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="disagree on \\['delay', 'lookahead'\\]"):
        EncoderRuntime(model_copy)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
    (lambda m: m.pop("control_space"), "missing key 'control_space'"),
    (lambda m: m.update(opset=7), "opset 7 outside"),
    (lambda m: m.update(n_controls=m["n_controls"] + 1), "n_controls"),
    (lambda m: m["frontend"].update(normalization="loud"), "frontend"),
    (lambda m: m["step"]["state_shapes"].__setitem__(0, [1, "x"]), "state_shapes"),
    (lambda m: m.update(sha256="zz"), "sha256"),
    (lambda m: m.update(extra=1), "unknown keys"),
])
def test_invalid_manifests(model_copy, edit, message):
    side = model_copy.with_suffix(".json")
    m = json.loads(side.read_text())
    edit(m)
    side.write_text(json.dumps(m))
    with pytest.raises(ModelError, match=message):
        EncoderRuntime(model_copy)


def test_sidecar_not_json(model_copy):
    model_copy.with_suffix(".json").write_text("{ not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        EncoderRuntime(model_copy)


def test_embedded_manifest_alone_is_enough(model_copy):
    """Without the sidecar the manifest inside the ONNX file is used (no hash check possible)."""
    model_copy.with_suffix(".json").unlink()
    rt = EncoderRuntime(model_copy)
    assert "sha256" not in rt.manifest
    assert rt.space.names == EncoderRuntime().space.names


def test_corrupt_full_graph_is_reported_on_use(model_copy):
    m = json.loads(model_copy.with_suffix(".json").read_text())
    if not m.get("full"):
        pytest.skip("the shipped model has no full graph")
    full = model_copy.parent / m["full"]["file"]
    full.write_bytes(full.read_bytes()[:-10])
    rt = EncoderRuntime(model_copy)          # the live path does not need the full graph
    rt.step(np.zeros((1, 128), np.float32))
    with pytest.raises(ModelError, match="full-sequence|sha256"):
        rt.run_full(np.zeros((5, 128), np.float32))


def test_header_reader_matches_the_file():
    h = read_onnx_header(default_model_path().read_bytes())
    m = load_manifest(default_model_path())
    assert h["opsets"][""] == m["opset"]
    assert validate_manifest(json.loads(h["metadata"]["rtmirror.manifest"]))


def test_runs_without_torch():
    """The live path: rtmirror.runtime with torch made unimportable, in a fresh interpreter."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        import numpy as np
        from rtmirror.runtime import EncoderRuntime
        rt = EncoderRuntime()
        x = np.abs(np.random.default_rng(0).normal(size=(50, 128))).astype(np.float32)
        y = np.concatenate([rt.step(x[i:i + 1]) for i in range(50)])
        f = rt.run_full(x)
        L = rt.lookahead
        assert np.abs(y[L:] - f[:50 - L]).max() < 1e-4
        assert not any(k == "torch" or k.startswith("torch.") for k, v in sys.modules.items() if v is not None)
        assert "onnx" not in sys.modules
        print("OK", rt.n_controls, y.shape)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK")


# -- the shipped model on real sound ---------------------------------------------------------------
def test_shipped_model_plays_builtin_melodies(rt):
    """Melodies of the built-in voice through the real frontend: the shipped encoder finds the notes
    (gate per frame) and their pitch; streamed in random chunks it gives the same controls."""
    from rtmirror.frontend import wav2aud
    from rtmirror.performer import events_to_frames
    from rtmirror.synth import make_synth
    from rtmirror.synth.melody import general_melody

    space = rt.space
    g, p = space.role_index("gate"), space.role_index("pitch")
    lo, hi = space.controls[p].lo, space.controls[p].hi
    synth = make_synth("builtin", space, sample_rate=rt.frontend.sample_rate)
    gate_acc, pitch_acc = [], []
    for seed in (101, 102, 103):
        mel = general_melody(np.random.default_rng(seed), space, duration_s=4.0)
        spec = wav2aud(synth.render(mel.events, mel.duration_s), rt.frontend)
        truth = events_to_frames(mel.events, len(spec), space, rt.frame_rate)
        pred = rt.run_full(spec)
        on_true, on_pred = np.nan_to_num(truth[:, g]) > 0.5, pred[:, g] > 0.5
        gate_acc.append(np.mean(on_true == on_pred))
        both = on_true & on_pred
        pitch_acc.append(np.mean(np.abs(pred[both, p] - truth[both, p]) * (hi - lo) < 0.5))
        # streaming on real frames == offline, after the lookahead shift
        rt.reset()
        rng = np.random.default_rng(seed)
        outs, t = [], 0
        while t < len(spec):
            k = int(rng.integers(1, 12))
            outs.append(rt.step(spec[t:t + k]))
            t += k
        L = rt.lookahead
        assert np.abs(np.concatenate(outs)[L:] - pred[:len(spec) - L]).max() <= TOL
    assert np.mean(gate_acc) >= 0.85, gate_acc
    assert np.mean(pitch_acc) >= 0.85, pitch_acc


def test_shipped_model_keeps_silence_silent(rt):
    """Digital silence through the real frontend: the gate stays off, streamed or offline.

    (The first `lookahead` rows of a fresh stream are warm-up rows for frames before the stream
    began; they are not trained and are dropped by their users, e.g. the engine's Pipeline.)"""
    from rtmirror.frontend import wav2aud

    spec = wav2aud(np.zeros(3 * rt.frontend.sample_rate, np.float32), rt.frontend)
    g = rt.space.role_index("gate")
    assert rt.run_full(spec)[:, g].max() < 0.5
    rt.reset()
    streamed = np.concatenate([rt.step(spec[t:t + 1]) for t in range(len(spec))])
    assert streamed[rt.lookahead:, g].max() < 0.5
