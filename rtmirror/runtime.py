"""EncoderRuntime: the exported MirrorNet encoder under onnxruntime (numpy only, never torch).

Streaming alignment (see docs/MODEL_FORMAT.md): the encoder sees `lookahead` frames of the
future, so after feeding spectrogram frames 0..t the newest control frame it can give is for
frame t - lookahead. `step(frames)` returns one control frame per input frame: row j of the
output for the input frame number t is the control frame of t - lookahead. The first `lookahead`
rows after `reset()` belong to frames before the stream started (warm-up, computed on the zero
state); drop them when aligning with an offline `run_full`, whose row t is frame t.
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rtmirror.controls import ControlSpace
from rtmirror.frontend.config import FrontendConfig
from rtmirror.manifest import (
    N_CHANNELS, ModelError, embedded_part, load_manifest, manifest_from_metadata, read_onnx_header,
    sidecar_path, validate_manifest,
)

__all__ = ["EncoderRuntime", "ModelError", "load_manifest", "default_model_path"]

# run_full's chunk: 16384 frames (131 s at 125 frames/s) keep the full graph's activations at tens
# of MB for the shipped model, whatever the file's length.
FULL_CHUNK_FRAMES = 16384


def default_model_path() -> Path:
    """The encoder shipped inside the package (rtmirror/resources/default.onnx)."""
    return Path(str(resources.files("rtmirror.resources").joinpath("default.onnx")))


def _session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    # One core: the live worker thread runs frontend + encoder + performer; onnxruntime's own
    # thread pool would only add wake-up latency for a model this small.
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


def _open_session(data: bytes, threads: int, where: str) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(data, _session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"{where}: onnxruntime cannot load the graph ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None


def _read_verified(path: Path, expected_sha: str | None, what: str) -> tuple[bytes, dict]:
    """Bytes + parsed ONNX header of a model file, checked against the sidecar's sha256."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: {what} file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read {what} file ({exc})") from None
    if expected_sha is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != expected_sha:
            raise ModelError(f"{path}: sha256 {got[:12]}... does not match the manifest's "
                             f"{expected_sha[:12]}... (file truncated, corrupted or replaced; re-export it)")
    return data, read_onnx_header(data, str(path))


class EncoderRuntime:
    """Runs an exported encoder: `step` streams frames with the state kept inside, `run_full` offline.

    path: an .onnx step graph exported by `rtmirror export` (its sidecar `<model>.json` beside it);
    None = the shipped default. threads: onnxruntime intra-op threads (1 = one core).
    Raises ModelError (a ValueError) on a missing, corrupt, truncated or mismatched model.
    """

    def __init__(self, path: str | Path | None = None, *, threads: int = 1):
        self.path = Path(path) if path is not None else default_model_path()
        if self.path.suffix == ".json":          # the sidecar was named: run the model beside it
            self.path = self.path.with_suffix(".onnx")
        self.threads = int(threads)
        where = str(self.path)
        side = sidecar_path(self.path)
        sidecar = None
        if side.is_file():
            try:
                sidecar = json.loads(side.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelError(f"{side}: manifest is not valid JSON ({exc})") from None
            validate_manifest(sidecar, str(side))
            if "sha256" not in sidecar:
                raise ModelError(f"{side}: the sidecar manifest has no sha256 of the model file")
        data, header = _read_verified(self.path, sidecar["sha256"] if sidecar else None, "model")
        embedded = validate_manifest(manifest_from_metadata(header, where), where)
        if sidecar is not None and embedded_part(sidecar) != embedded:
            diff = sorted(k for k in set(embedded) | set(embedded_part(sidecar))
                          if embedded.get(k) != sidecar.get(k))
            raise ModelError(f"{where}: the sidecar {side.name} and the manifest inside the ONNX file "
                             f"disagree on {diff} (mismatched pair of files)")
        self.manifest: dict = sidecar if sidecar is not None else embedded
        m = self.manifest
        opset = header["opsets"].get("", header["opsets"].get("ai.onnx"))
        if opset != m["opset"]:
            raise ModelError(f"{where}: the graph's opset {opset} differs from the manifest's {m['opset']}")

        self.space = ControlSpace.from_dict(m["control_space"])
        self.frontend = FrontendConfig.from_dict(m["frontend"])
        self.lookahead: int = m["lookahead"]
        # The note rules to play this model with (None: exported before manifests carried them).
        self.performer_rules: dict | None = m.get("performer")
        self.n_controls: int = m["n_controls"]
        step = m["step"]
        self._frames_name: str = step["frames_input"]
        self._state_shapes = [tuple(s) for s in step["state_shapes"]]
        self._session = _open_session(data, self.threads, where)
        self._check_step_graph(where)

        # The state is the step graph's own output, fed back as the next input (no copies): the
        # list _state_in and the feed dict are preallocated and only their entries are swapped.
        # Binding preallocated output buffers (IOBinding) measured slower here (~+15 us per step).
        # Reset points the inputs back at read-only zero arrays.
        self._zero_state = []
        for shape in self._state_shapes:
            z = np.zeros(shape, np.float32)
            z.flags.writeable = False
            self._zero_state.append(z)
        self._state_names = [f"state_{i}" for i in range(len(self._state_shapes))]
        self._state_in: list[np.ndarray] = list(self._zero_state)
        self._feed: dict[str, np.ndarray] = {}
        self._out_names = list(step["outputs"])
        self._full_session: ort.InferenceSession | None = None
        self.n_nonfinite_inputs = 0   # frames whose non-finite values were replaced by 0
        self.n_state_resets = 0       # steps whose controls came out non-finite (state reset to zero)

    # -- validation ------------------------------------------------------------------------------
    def _check_step_graph(self, where: str) -> None:
        step = self.manifest["step"]
        ins = self._session.get_inputs()
        outs = self._session.get_outputs()
        if [i.name for i in ins] != step["inputs"]:
            raise ModelError(f"{where}: graph inputs {[i.name for i in ins]} do not match the manifest's "
                             f"{step['inputs']}")
        if [o.name for o in outs] != step["outputs"]:
            raise ModelError(f"{where}: graph outputs {[o.name for o in outs]} do not match the manifest's "
                             f"{step['outputs']}")
        for arg in list(ins) + list(outs):
            if arg.type != "tensor(float)":
                raise ModelError(f"{where}: graph {arg.name!r} is {arg.type}, expected tensor(float)")
        _check_dims(ins[0].shape, [1, N_CHANNELS, None], f"{where}: input {ins[0].name!r}")
        _check_dims(outs[0].shape, [1, self.n_controls, None], f"{where}: output {outs[0].name!r}")
        for i, shape in enumerate(self._state_shapes):
            _check_dims(ins[1 + i].shape, list(shape), f"{where}: input {ins[1 + i].name!r}")
            _check_dims(outs[1 + i].shape, list(shape), f"{where}: output {outs[1 + i].name!r}")

    def check_frontend(self, cfg: FrontendConfig) -> None:
        """Raise ModelError unless the model was trained on exactly this frontend configuration."""
        want = self.frontend.to_dict()
        got = cfg.to_dict()
        diff = {k: (got.get(k), want.get(k)) for k in sorted(set(want) | set(got)) if got.get(k) != want.get(k)}
        if diff:
            detail = ", ".join(f"{k}: frontend {a!r} vs model {b!r}" for k, (a, b) in diff.items())
            raise ModelError(f"{self.path}: the model was trained on another frontend ({detail}); "
                             f"run the frontend with the model's parameters (runtime.frontend)")

    # -- streaming -------------------------------------------------------------------------------
    @property
    def frame_rate(self) -> float:
        return self.frontend.frame_rate

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return list(self._state_shapes)

    @property
    def state(self) -> tuple[np.ndarray, ...]:
        """The current state tensors (state_0..state_{n-1}); replaced (not modified) by every step."""
        return tuple(self._state_in)

    def reset(self) -> None:
        """Forget the past: the state returns to the encoder's initial (zero) state."""
        self._state_in[:] = self._zero_state

    def step(self, frames: np.ndarray) -> np.ndarray:
        """frames (k, 128) spectrogram frames, oldest first -> (k, K) control frames.

        Row j is the control frame of input frame (t_j - lookahead), see the module docstring.
        Non-finite input values are replaced by 0 (counted in n_nonfinite_inputs; the caller's
        array is left alone). Should the graph ever produce non-finite controls, they are returned
        as 0 and the state is reset to zero (counted in n_state_resets), so nothing non-finite
        reaches the Performer or stays in the state.
        """
        x = np.asarray(frames)
        if x.ndim != 2 or x.shape[1] != N_CHANNELS or x.shape[0] < 1:
            raise ValueError(f"step expects frames of shape (k >= 1, {N_CHANNELS}), got {x.shape}")
        x = np.ascontiguousarray(x.T, dtype=np.float32)[None]       # (1, 128, k); a view when k == 1
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)   # a copy: never touch the caller's
            self.n_nonfinite_inputs += 1
        feed = self._feed
        feed[self._frames_name] = x
        for name, st in zip(self._state_names, self._state_in):
            feed[name] = st
        outs = self._session.run(self._out_names, feed)
        controls = outs[0]                                           # (1, K, k)
        if np.isfinite(controls).all():
            # A non-finite state value reaches the controls within the receptive field, so
            # checking the (small) output is enough to catch it.
            self._state_in[:] = outs[1:]
        else:
            controls = np.nan_to_num(controls, nan=0.0, posinf=0.0, neginf=0.0)
            self.reset()
            self.n_state_resets += 1
        return np.ascontiguousarray(controls[0].T)                   # (k, K)

    # -- offline ---------------------------------------------------------------------------------
    @property
    def receptive_past(self) -> int:
        """Past frames each control frame sees: every state caches the past inputs of one causal
        layer (manifest `step.state_shapes`, last axis), so the layers' caches add up."""
        return sum(int(shape[-1]) for shape in self._state_shapes)

    def run_full(self, spec: np.ndarray, chunk_frames: int = FULL_CHUNK_FRAMES) -> np.ndarray:
        """spec (T, 128) -> (T, K); row t is the control frame of spectrogram frame t.

        Uses the full-sequence graph when the model ships one; otherwise the step graph on a fresh
        zero state with `lookahead` zero frames appended (the same computation). Independent of
        (and leaves untouched) the streaming state.

        Longer inputs run in equal chunks of at most `chunk_frames` rows (memory stays bounded on
        long files; onnxruntime rounds a very short run differently in the last bit).
        Each chunk is run with `receptive_past` frames before it and `lookahead` frames after it,
        so every kept row sees exactly the inputs it sees unchunked; the graph's zero padding is
        met only at the true start and end of the input.
        """
        x = np.asarray(spec, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != N_CHANNELS:
            raise ValueError(f"run_full expects a spectrogram of shape (T, {N_CHANNELS}), got {x.shape}")
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        T = x.shape[0]
        if T == 0:
            return np.zeros((0, self.n_controls), np.float32)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        if T <= chunk_frames:
            return self._run_full_once(x)
        past, ahead = self.receptive_past, self.lookahead
        size = -(-T // -(-T // chunk_frames))        # equal chunks: no short last one
        out = np.empty((T, self.n_controls), np.float32)
        for a in range(0, T, size):
            b = min(T, a + size)
            lo, hi = max(0, a - past), min(T, b + ahead)
            out[a:b] = self._run_full_once(x[lo:hi])[a - lo:b - lo]
        return out

    def _run_full_once(self, x: np.ndarray) -> np.ndarray:
        """x (T >= 1, 128) finite float32 -> (T, K), one graph run (zero padding at both ends)."""
        full = self._full()
        if full is not None:
            f = self.manifest["full"]
            y = full.run([f["output"]], {f["input"]: np.ascontiguousarray(x.T)[None]})[0]
            return np.ascontiguousarray(y[0].T)
        L = self.lookahead
        padded = np.concatenate([x, np.zeros((L, N_CHANNELS), np.float32)]) if L else x
        feed = {self._frames_name: np.ascontiguousarray(padded.T)[None]}
        for i, shape in enumerate(self._state_shapes):
            feed[f"state_{i}"] = np.zeros(shape, np.float32)
        y = self._session.run([self._out_names[0]], feed)[0]      # (1, K, T + L)
        return np.ascontiguousarray(y[0, :, L:].T)

    def _full(self) -> ort.InferenceSession | None:
        """The full-sequence session, loaded and verified on first use (the live path never needs it)."""
        f = self.manifest.get("full")
        if f is None:
            return None
        if self._full_session is None:
            path = self.path.parent / f["file"]
            data, header = _read_verified(path, self.manifest.get("full_sha256"), "full-sequence graph")
            sess = _open_session(data, self.threads, str(path))
            ins, outs = sess.get_inputs(), sess.get_outputs()
            if [i.name for i in ins] != [f["input"]] or outs[0].name != f["output"]:
                raise ModelError(f"{path}: full graph I/O {[i.name for i in ins]} -> {[o.name for o in outs]} "
                                 f"does not match the manifest ({f['input']!r} -> {f['output']!r})")
            _check_dims(ins[0].shape, [1, N_CHANNELS, None], f"{path}: input {f['input']!r}")
            _check_dims(outs[0].shape, [1, self.n_controls, None], f"{path}: output {f['output']!r}")
            self._full_session = sess
        return self._full_session

    def __repr__(self) -> str:
        return (f"EncoderRuntime({str(self.path)!r}, controls={self.space.names}, "
                f"lookahead={self.lookahead}, states={len(self._state_shapes)})")


def _check_dims(shape, expected, where: str) -> None:
    """Graph dims vs expected (None = must be dynamic, i.e. a symbolic name or unknown)."""
    if len(shape) != len(expected):
        raise ModelError(f"{where} has rank {len(shape)}, expected {len(expected)} ({expected})")
    for got, want in zip(shape, expected):
        if want is None:
            if isinstance(got, int):
                raise ModelError(f"{where}: shape {shape} has a fixed frame axis; expected dynamic")
        elif got != want:
            raise ModelError(f"{where}: shape {shape} does not match the manifest's {expected}")
