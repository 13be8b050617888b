"""PyTorch encoder -> streaming ONNX step graph (+ full-sequence graph) + manifest, with parity checks.

The step graph is the encoder's `step` traced with named, fixed-shape state tensors:

    (frames (1, 128, k), state_0 .. state_{n-1})  ->  (controls (1, K, k), new_state_0 .. new_state_{n-1})

where state_i is the cached past input of the i-th causal convolution (its fixed shape comes from
`encoder.initial_state(1)`) and k >= 1 is dynamic. The full-sequence graph is `forward`:
spec (1, 128, T) -> controls (1, K, T), T dynamic. Both get the manifest in their ONNX metadata;
the step graph's sidecar `<model>.json` adds the sha256 of both files (docs/MODEL_FORMAT.md).

Training side only (torch + onnx); the live path reads the result with rtmirror.runtime.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

import rtmirror
from rtmirror.controls import ControlSpace
from rtmirror.frontend.config import FrontendConfig
from rtmirror.manifest import (
    FORMAT_VERSION, MANIFEST_KIND, METADATA_KEY, N_CHANNELS, dumps, embedded_part, sha256_file,
    model_delay, sidecar_path, validate_manifest, write_json_atomic,
)
from rtmirror.fileio import write_bytes_atomic
from rtmirror.performer import PerformerConfig

OPSET = 17                 # LayerNormalization is a native op from 17 on
FRAMES, CONTROLS = "frames", "controls"
SPEC = "spec"


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch encoder (or cannot be exported)."""


class _StepGraph(nn.Module):
    """forward(frames, *state) = encoder.step(frames, *state): what torch.onnx traces."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: torch.Tensor, *state: torch.Tensor):
        return self.encoder.step(frames, *state)


class _FullGraph(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.encoder(spec)


# -- statistics ---------------------------------------------------------------------------------
def encoder_stats(encoder: nn.Module, n_frames: int = 64) -> dict:
    """Parameter count and multiply-adds per frame (convolutions, counted on a forward pass)."""
    macs = [0]

    def hook(mod, inp, out):
        k = int(np.prod(mod.kernel_size))
        macs[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in encoder.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    try:
        with torch.no_grad():
            encoder(torch.rand(1, N_CHANNELS, n_frames))
    finally:
        for h in handles:
            h.remove()
    frames = n_frames + int(getattr(encoder, "lookahead", 0))   # forward pads lookahead frames
    return {"n_params": int(sum(p.numel() for p in encoder.parameters())),
            "macs_per_frame": int(round(macs[0] / frames))}


# -- export ---------------------------------------------------------------------------------------
def _export_to_proto(module: nn.Module, args: tuple, input_names, output_names, dynamic_axes) -> onnx.ModelProto:
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The traced state slice `x[..., len - context:]` cannot be constant-folded; harmless.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        # dynamo=False is deliberate: the classic exporter needs no onnxscript and traces `step` as is.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(module, args, buf, input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def _fix_dims(proto: onnx.ModelProto, name: str, dims: list) -> None:
    """Write the known shape of graph input/output `name` (int = fixed, str = symbolic)."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        if vi.name == name:
            shape = vi.type.tensor_type.shape
            while len(shape.dim) < len(dims):
                shape.dim.add()
            for d, v in zip(shape.dim, dims):
                if isinstance(v, int):
                    d.Clear()
                    d.dim_value = v
                else:
                    d.Clear()
                    d.dim_param = v
            return
    raise ExportError(f"graph has no input/output named {name!r}")


def _const_value(name: str, producers: dict, inits: dict):
    """The numpy value of a Constant node output or an initializer, else None."""
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def simplify_state_slices(proto: onnx.ModelProto) -> int:
    """Rewrite each traced `full[:, :, full.shape[2] - c:]` into `full[:, :, -c:]`; returns how many.

    The traced form costs Shape, Gather, Sub, Unsqueeze per causal conv (about a fifth of the step
    graph's nodes, and onnxruntime's cost per node dominates a one-frame step). Rewritten only
    where provably equal: the sliced tensor is Concat(state, new frames) along the slice axis
    and the state input's fixed length on that axis is c, so shape - c >= 0 always.
    """
    g = proto.graph
    producers = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}
    input_dims = {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
                  for vi in g.input}
    count = 0
    for node in g.node:
        if node.op_type != "Slice" or len(node.input) < 4:
            continue
        data, starts = node.input[0], node.input[1]
        axes = _const_value(node.input[3], producers, inits)
        ends = _const_value(node.input[2], producers, inits)
        steps = _const_value(node.input[4], producers, inits) if len(node.input) > 4 and node.input[4] else np.array([1])
        unsq = producers.get(starts)
        if (axes is None or ends is None or axes.size != 1 or steps.tolist() != [1]
                or int(ends.reshape(-1)[0]) < 2**62 or unsq is None or unsq.op_type != "Unsqueeze"):
            continue
        axis = int(axes.reshape(-1)[0])
        sub = producers.get(unsq.input[0])
        if sub is None or sub.op_type != "Sub":
            continue
        gather, c = producers.get(sub.input[0]), _const_value(sub.input[1], producers, inits)
        if gather is None or gather.op_type != "Gather" or c is None or c.size != 1:
            continue
        shape = producers.get(gather.input[0])
        idx = _const_value(gather.input[1], producers, inits)
        concat = producers.get(data)
        if (shape is None or shape.op_type != "Shape" or shape.input[0] != data or idx is None
                or int(idx.reshape(-1)[0]) != axis or concat is None or concat.op_type != "Concat"):
            continue
        cat_axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
        state_dims = input_dims.get(concat.input[0])
        c = int(c.reshape(-1)[0])
        if cat_axis != axis or state_dims is None or state_dims[axis] != c or c < 1:
            continue
        const_name = f"{node.name or node.output[0]}_start_const"
        g.initializer.append(numpy_helper.from_array(np.array([-c], np.int64), const_name))
        node.input[1] = const_name
        count += 1
    _drop_dead_nodes(proto)
    return count


def _drop_dead_nodes(proto: onnx.ModelProto) -> None:
    g = proto.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)


def _stamp(proto: onnx.ModelProto, manifest: dict) -> None:
    del proto.metadata_props[:]
    for key, value in ((METADATA_KEY, dumps(embedded_part(manifest))),
                       ("rtmirror.format_version", str(FORMAT_VERSION)),
                       ("rtmirror.controls", ", ".join(c["name"] for c in manifest["control_space"]["controls"]))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "rtmirror"
    proto.producer_version = rtmirror.__version__
    proto.doc_string = "rtmirror MirrorNet encoder; manifest in metadata 'rtmirror.manifest' (docs/MODEL_FORMAT.md)"


def _save_atomic(proto: onnx.ModelProto, path: Path) -> None:
    write_bytes_atomic(path, proto.SerializeToString())


def _flat_metrics(metrics: dict | None, prefix: str = "") -> dict:
    """Nested metrics -> {'a.b': number|str|None}, finite numbers only (NaN -> None)."""
    out: dict = {}
    for k, v in (metrics or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_metrics(v, key + "."))
        elif isinstance(v, bool):
            out[key] = int(v)
        elif isinstance(v, (int, float)):
            out[key] = float(v) if np.isfinite(v) else None
        elif isinstance(v, str) or v is None:
            out[key] = v
    return out


def export_encoder(encoder: nn.Module, out_path: str | Path, *, space: ControlSpace, frontend: FrontendConfig,
                   synth: str, training: dict | None = None, metrics: dict | None = None,
                   full: bool = True, performer: dict | None = None,
                   performer_trained: dict | None = None) -> dict:
    """Export `encoder` to OUT.onnx (step graph), OUT.full.onnx (if full) and OUT.json; return the manifest.

    training: {"config_hash": str, ...} (JSON-able facts about the run; config_hash is required
    to be a string if present). performer: the note rules (PerformerConfig fields) the model was
    trained with and is to be played with (None: today's defaults); performer_trained: the
    training rules when they differ from the play rules (e.g. retuned after training). The files are written atomically, the sidecar last, so a crash
    never leaves a sidecar that vouches for a half-written graph.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ValueError(f"output must end in .onnx, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    encoder = encoder.eval().cpu()
    K = len(space)
    state = tuple(s.detach().float() for s in encoder.initial_state(1))
    with torch.no_grad():
        probe = encoder(torch.rand(1, N_CHANNELS, 8))
    if probe.shape[1] != K:
        raise ExportError(f"encoder gives {probe.shape[1]} controls but the control space {space.name!r} has {K}")
    n = len(state)
    state_names = [f"state_{i}" for i in range(n)]
    new_state_names = [f"new_state_{i}" for i in range(n)]
    full_name = out_path.name[:-len(".onnx")] + ".full.onnx"
    play = PerformerConfig.from_dict(performer or {})
    trained = PerformerConfig.from_dict(performer_trained) if performer_trained is not None else play
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": MANIFEST_KIND,
        "rtmirror_version": rtmirror.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "opset": OPSET,
        "n_controls": K,
        "lookahead": int(getattr(encoder, "lookahead", 0)),
        "control_space": space.to_dict(),
        "frontend": frontend.to_dict(),
        "step": {
            "frames_input": FRAMES,
            "controls_output": CONTROLS,
            "inputs": [FRAMES] + state_names,
            "outputs": [CONTROLS] + new_state_names,
            "state_shapes": [list(s.shape) for s in state],
        },
        "full": {"file": full_name, "input": SPEC, "output": CONTROLS} if full else None,
        "performer": play.to_dict(),
        "performer_trained": trained.to_dict(),
        "delay": model_delay(int(getattr(encoder, "lookahead", 0)), play, frontend.frame_rate),
        "synth": str(synth),
        "training": dict(training or {}),
        "metrics": _flat_metrics(metrics),
        "stats": encoder_stats(encoder),
    }
    validate_manifest(manifest, "export")

    # Step graph: trace with k = 3 so no axis of length 1 gets specialised away.
    frames = torch.rand(1, N_CHANNELS, 3)
    step = _export_to_proto(_StepGraph(encoder).eval(), (frames, *state), [FRAMES] + state_names,
                            [CONTROLS] + new_state_names, {FRAMES: {2: "k"}, CONTROLS: {2: "k"}})
    _fix_dims(step, FRAMES, [1, N_CHANNELS, "k"])
    _fix_dims(step, CONTROLS, [1, K, "k"])
    for name, new_name, s in zip(state_names, new_state_names, state):
        _fix_dims(step, name, list(s.shape))
        _fix_dims(step, new_name, list(s.shape))
    simplify_state_slices(step)          # parity below (--check, tests) covers the rewrite
    _stamp(step, manifest)
    onnx.checker.check_model(step, full_check=True)

    sidecar = dict(manifest)
    if full:
        fullg = _export_to_proto(_FullGraph(encoder).eval(), (torch.rand(1, N_CHANNELS, 16),), [SPEC], [CONTROLS],
                                 {SPEC: {2: "T"}, CONTROLS: {2: "T"}})
        _fix_dims(fullg, SPEC, [1, N_CHANNELS, "T"])
        _fix_dims(fullg, CONTROLS, [1, K, "T"])
        _stamp(fullg, manifest)
        onnx.checker.check_model(fullg, full_check=True)
        full_path = out_path.parent / full_name
        _save_atomic(fullg, full_path)
        sidecar["full_sha256"] = sha256_file(full_path)
    _save_atomic(step, out_path)
    sidecar["sha256"] = sha256_file(out_path)
    write_json_atomic(sidecar_path(out_path), sidecar)
    return sidecar


def update_manifest(model_path: str | Path, updates: dict) -> dict:
    """Set top-level manifest fields of an exported model (step graph, full graph and sidecar),
    leaving the graphs' weights and ops as they are; returns the new sidecar manifest.

    For facts learned after export (e.g. the note rules the model is played with). The new
    manifest is validated before anything is written; the files are replaced atomically."""
    model_path = Path(model_path)
    side = sidecar_path(model_path)
    old = json.loads(side.read_text())
    manifest = {k: v for k, v in old.items() if k not in ("sha256", "full_sha256")}
    manifest.update(updates)
    validate_manifest(manifest, str(side))
    sidecar = dict(manifest)
    protos = [(model_path, "sha256")]
    if manifest.get("full"):
        protos.append((model_path.parent / manifest["full"]["file"], "full_sha256"))
    for path, key in protos:
        proto = onnx.load(str(path))
        _stamp(proto, manifest)
        _save_atomic(proto, path)
        sidecar[key] = sha256_file(path)
    write_json_atomic(side, sidecar)
    return sidecar


# -- parity ---------------------------------------------------------------------------------------
def random_spectrogram(n_frames: int, seed: int = 0) -> np.ndarray:
    """A plausible raw auditory spectrogram (T, 128): non-negative, bursts of harmonic-ish bands."""
    rng = np.random.default_rng(seed)
    spec = rng.exponential(0.02, (n_frames, N_CHANNELS))
    for _ in range(max(1, n_frames // 20)):
        t0 = rng.integers(0, n_frames)
        dur = rng.integers(3, 40)
        ch = rng.integers(10, 100)
        spec[t0:t0 + dur, ch:ch + 3] += rng.uniform(0.1, 2.0)
        spec[t0:t0 + dur, min(ch + 24, 127)] += rng.uniform(0.05, 1.0)
    return spec.astype(np.float32)


def chunk_sizes(n: int, mode, rng: np.random.Generator) -> list[int]:
    """Split n frames into chunks: mode an int k (fixed size, last one shorter) or 'random' (1..9)."""
    sizes, left = [], n
    while left > 0:
        k = int(rng.integers(1, 10)) if mode == "random" else int(mode)
        k = min(k, left)
        sizes.append(k)
        left -= k
    return sizes


def check_parity(encoder: nn.Module, onnx_path: str | Path, *, n_frames: int = 200, seed: int = 0,
                 chunkings=(1, 2, 3, "random"), tol: float = 1e-4) -> dict:
    """Stream the exported model through EncoderRuntime over several chunkings and run its full graph;
    compare with the PyTorch full-sequence output. Returns {name: max abs error}; raises ExportError
    if any exceeds tol.

    Alignment: streamed output row j is frame j - lookahead, so rows L.. of the stream equal
    forward's rows ..T-L-1 (forward's last L rows see the zero padding the stream has not had yet).
    """
    from rtmirror.runtime import EncoderRuntime

    rt = EncoderRuntime(onnx_path)
    spec = random_spectrogram(n_frames, seed)
    with torch.no_grad():
        ref = encoder.eval()(torch.from_numpy(spec.T.copy())[None])[0].numpy().T    # (T, K)
    L = rt.lookahead
    errors: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    for mode in chunkings:
        rt.reset()
        outs, t = [], 0
        for k in chunk_sizes(n_frames, mode, rng):
            outs.append(rt.step(spec[t:t + k]))
            t += k
        stream = np.concatenate(outs)
        errors[f"stream_k={mode}"] = float(np.abs(stream[L:] - ref[:n_frames - L]).max())
    errors["full"] = float(np.abs(rt.run_full(spec) - ref).max())
    bad = {k: v for k, v in errors.items() if not v <= tol}
    if bad:
        raise ExportError(f"{onnx_path}: ONNX output differs from PyTorch beyond {tol}: {bad}")
    return errors
