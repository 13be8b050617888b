"""ONNX export: streaming step graph and full graph vs eager PyTorch, manifest, `rtmirror export`."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from rtmirror.controls import ControlSpace  # noqa: E402
from rtmirror.export.onnx_export import (  # noqa: E402
    check_parity, chunk_sizes, export_encoder, random_spectrogram,
)
from rtmirror.frontend.config import FrontendConfig  # noqa: E402
from rtmirror.manifest import METADATA_KEY, ModelError, embedded_part, sha256_file  # noqa: E402
from rtmirror.models import Encoder, EncoderConfig, load_checkpoint, save_checkpoint  # noqa: E402
from rtmirror.runtime import EncoderRuntime  # noqa: E402

SPACE = ControlSpace.load("exp1")
TOL = 1e-4


def small_encoder(lookahead: int, seed: int = 0, pitch_head: str = "classes") -> Encoder:
    torch.manual_seed(seed)
    cfg = EncoderConfig.for_space(SPACE, lookahead=lookahead, hidden=32, freq_channels=4,
                                  dilations=(1, 2, 4), pitch_head=pitch_head)
    enc = Encoder(cfg).eval()
    with torch.no_grad():   # move off the near-identity init so every layer matters
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
        if enc.has_classes:
            # a trained head's logits have one clear peak; the local read-out (argmax +- N) is
            # discontinuous where two classes tie, and float round-off between PyTorch and
            # onnxruntime must not pick different windows there
            enc.pitch_head.weight.mul_(30.0)
            enc.pitch_head.bias.mul_(30.0)
    return enc


@pytest.fixture(scope="module", params=[0, 2], ids=["lookahead0", "lookahead2"])
def exported(request, tmp_path_factory):
    enc = small_encoder(request.param, seed=request.param)
    path = tmp_path_factory.mktemp(f"la{request.param}") / "enc.onnx"
    manifest = export_encoder(enc, path, space=SPACE, frontend=FrontendConfig(), synth="builtin",
                              training={"config_hash": "abc"}, metrics={"note_f1": 0.5, "r": {"cutoff": 0.9}},
                              full=True)
    return enc, path, manifest


def torch_full(enc: Encoder, spec: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return enc(torch.from_numpy(spec.T.copy())[None])[0].numpy().T      # (T, K)


def stream(rt: EncoderRuntime, spec: np.ndarray, sizes) -> np.ndarray:
    rt.reset()
    outs, t = [], 0
    for k in sizes:
        outs.append(rt.step(spec[t:t + k]))
        t += k
    assert t == len(spec)
    return np.concatenate(outs)


@pytest.mark.parametrize("mode", [1, 2, 3, "random"])
def test_streaming_onnx_equals_pytorch_full_sequence(exported, mode):
    enc, path, _ = exported
    rt = EncoderRuntime(path)
    spec = random_spectrogram(150, seed=3)
    ref = torch_full(enc, spec)
    out = stream(rt, spec, chunk_sizes(len(spec), mode, np.random.default_rng(7)))
    L = enc.lookahead
    assert out.shape == ref.shape == (150, len(SPACE))
    # streamed row j is frame j - L: rows L.. match forward's rows ..T-L-1
    assert np.abs(out[L:] - ref[:len(spec) - L]).max() <= TOL
    assert np.std(ref, axis=0).min() > 1e-4, "reference output is constant: the test would prove little"


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 17), min_size=1, max_size=12), seed=st.integers(0, 2**16))
def test_streaming_any_partition_property(tmp_path_factory, sizes, seed):
    assume(sum(sizes) > 2)
    enc, path, _ = _la2_model(tmp_path_factory)
    rt = EncoderRuntime(path)
    spec = random_spectrogram(sum(sizes), seed=seed)
    ref = torch_full(enc, spec)
    out = stream(rt, spec, sizes)
    L = enc.lookahead
    assert np.abs(out[L:] - ref[:len(spec) - L]).max() <= TOL


_cache: dict = {}


def _la2_model(tmp_path_factory):
    if "la2" not in _cache:
        enc = small_encoder(2, seed=11)
        path = tmp_path_factory.mktemp("prop") / "enc.onnx"
        _cache["la2"] = (enc, path, export_encoder(enc, path, space=SPACE, frontend=FrontendConfig(),
                                                   synth="builtin", full=False))
    return _cache["la2"]


def test_final_state_equals_pytorch_chained_steps(exported):
    """State is data: after N chained steps the runtime's state equals torch's step state."""
    enc, path, _ = exported
    rt = EncoderRuntime(path)
    spec = random_spectrogram(40, seed=5)
    state = enc.initial_state(1)
    outs_t, t = [], 0
    rt.reset()
    outs_o = []
    for k in chunk_sizes(len(spec), "random", np.random.default_rng(1)):
        x = spec[t:t + k]
        with torch.no_grad():
            y, *state = enc.step(torch.from_numpy(x.T.copy())[None], *state)
        outs_t.append(y[0].numpy().T)
        outs_o.append(rt.step(x))
        t += k
    assert np.abs(np.concatenate(outs_t) - np.concatenate(outs_o)).max() <= TOL
    for s_torch, s_onnx in zip(state, rt.state):
        assert s_onnx.shape == tuple(s_torch.shape)
        assert np.abs(s_torch.numpy() - s_onnx).max() <= TOL


def test_full_graph_and_fallback_equal_pytorch(exported, tmp_path):
    enc, path, manifest = exported
    spec = random_spectrogram(97, seed=9)
    ref = torch_full(enc, spec)
    rt = EncoderRuntime(path)
    assert manifest["full"] is not None
    assert np.abs(rt.run_full(spec) - ref).max() <= TOL
    # a model without the full graph computes run_full with the step graph (+ lookahead zero frames)
    p2 = tmp_path / "nofull.onnx"
    m2 = export_encoder(enc, p2, space=SPACE, frontend=FrontendConfig(), synth="builtin", full=False)
    assert m2["full"] is None and not (tmp_path / "nofull.full.onnx").exists()
    rt2 = EncoderRuntime(p2)
    assert np.abs(rt2.run_full(spec) - ref).max() <= TOL
    # run_full leaves the streaming state alone
    rt2.step(spec[:5])
    before = [s.copy() for s in rt2.state]
    rt2.run_full(spec)
    assert all(np.array_equal(a, b) for a, b in zip(before, rt2.state))


def test_continuous_pitch_head_exports(tmp_path):
    enc = small_encoder(1, seed=4, pitch_head="continuous")
    p = tmp_path / "cont.onnx"
    export_encoder(enc, p, space=SPACE, frontend=FrontendConfig(), synth="builtin", full=True)
    errors = check_parity(enc, p, n_frames=60)
    assert max(errors.values()) <= TOL


def test_manifest_contents(exported):
    enc, path, manifest = exported
    side = json.loads(path.with_suffix(".json").read_text())
    assert side == manifest
    assert side["sha256"] == sha256_file(path)
    assert side["full_sha256"] == sha256_file(path.parent / side["full"]["file"])
    assert ControlSpace.from_dict(side["control_space"]) == SPACE
    assert FrontendConfig.from_dict(side["frontend"]) == FrontendConfig()
    assert side["lookahead"] == enc.lookahead
    assert side["n_controls"] == len(SPACE)
    assert side["step"]["inputs"][0] == "frames" and side["step"]["outputs"][0] == "controls"
    assert side["step"]["state_shapes"] == [list(s.shape) for s in enc.initial_state(1)]
    assert side["metrics"] == {"note_f1": 0.5, "r.cutoff": 0.9}
    assert side["training"]["config_hash"] == "abc"
    assert side["stats"]["n_params"] == sum(p.numel() for p in enc.parameters())
    # the same manifest (minus the file hashes) is inside the ONNX file
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[METADATA_KEY]) == embedded_part(side)
    onnx.checker.check_model(proto, full_check=True)
    # the graph's I/O: dynamic k on frames/controls, fixed state shapes
    ins = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert ins["frames"] == [1, 128, "k"]
    assert ins["state_0"] == side["step"]["state_shapes"][0]
    # every state slice was rewritten to a constant start (-context): no shape arithmetic left
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    starts = sorted(int(inits[n.input[1]][0]) for n in proto.graph.node
                    if n.op_type == "Slice" and n.input[1] in inits and inits[n.input[1]][0] < 0)
    assert starts == sorted(-s[2] for s in side["step"]["state_shapes"])
    assert not any(n.op_type in ("Gather", "Sub") for n in proto.graph.node)


def test_graph_that_disagrees_with_its_manifest_is_refused(exported, tmp_path):
    """An ONNX file whose embedded manifest claims other state shapes than its graph has."""
    _, path, manifest = exported
    proto = onnx.load(str(path))
    bad = embedded_part(manifest)
    bad["step"] = dict(bad["step"], state_shapes=[[1, s[1], s[2] + 1] for s in bad["step"]["state_shapes"]])
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(bad)
    out = tmp_path / "liar.onnx"
    onnx.save(proto, str(out))
    with pytest.raises(ModelError, match="does not match the manifest"):
        EncoderRuntime(out)


def test_tiny_trained_checkpoint_round_trips_through_cli(tmp_path, capsys):
    """A few supervised steps, save_checkpoint, `rtmirror export --check --full`, EncoderRuntime."""
    from rtmirror.cli import main

    enc = small_encoder(1, seed=2)
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    spec = torch.from_numpy(np.stack([random_spectrogram(48, seed=s).T for s in range(4)]))
    target = torch.rand(4, len(SPACE), 48)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.mean((enc(spec) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    enc.eval()
    fe = FrontendConfig(normalization="agc", agc_tau_s=0.25)
    train_cfg = {"name": "tiny", "steps": 5, "lr": 3e-3}
    ckdir = save_checkpoint(tmp_path / "ckpt", enc, None,
                            {"control_space": SPACE.to_dict(), "frontend": fe.to_dict(), "synth": "builtin",
                             "train_config": train_cfg, "progress": {"step": 5}, "metrics": {"loss": losses[-1]}})
    out = tmp_path / "out" / "tiny.onnx"
    assert main(["export", str(ckdir), "-o", str(out), "--full", "--check"]) == 0
    assert "check ok" in capsys.readouterr().out

    ck = load_checkpoint(ckdir)
    rt = EncoderRuntime(out)
    assert rt.space == SPACE and rt.frontend == fe and rt.lookahead == 1
    assert rt.manifest["training"]["config_hash"] == ck.meta["train_config_hash"]
    assert rt.manifest["metrics"]["loss"] == pytest.approx(losses[-1])
    rt.check_frontend(fe)
    with pytest.raises(ModelError, match="agc_tau_s"):
        rt.check_frontend(FrontendConfig())
    x = random_spectrogram(64, seed=8)
    ref = torch_full(ck.encoder, x)
    assert np.abs(rt.run_full(x) - ref).max() <= TOL
    assert np.abs(stream(rt, x, [1] * 64)[1:] - ref[:-1]).max() <= TOL


def test_cli_reports_bad_checkpoint(tmp_path, capsys):
    from rtmirror.cli import main

    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
