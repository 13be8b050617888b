"""The model manifest: what an exported encoder needs to be run correctly, and its validation.

A manifest travels twice with every exported encoder (see docs/MODEL_FORMAT.md):
  - inside the ONNX file, as the metadata property `rtmirror.manifest` (a JSON string), and
  - beside it, as a sidecar `<model>.json` holding the same manifest plus the sha256 of the
    ONNX file(s), so a truncated or swapped file is caught before onnxruntime sees it.

This module needs only the standard library and numpy-free Python: the live path imports it,
and so does the exporter. It also reads the few top-level fields of an ONNX file (ir_version,
opsets, metadata) with a minimal protobuf reader, so the runtime never needs the `onnx` package.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_KIND = "rtmirror.encoder"
METADATA_KEY = "rtmirror.manifest"
MIN_OPSET, MAX_OPSET = 13, 21       # the range the exporter writes and onnxruntime >= 1.17 runs
N_CHANNELS = 128                    # auditory spectrogram channels

# Keys present only in the sidecar (they describe the files, so the ONNX file cannot hold them).
SIDECAR_ONLY_KEYS = ("sha256", "full_sha256")


class ModelError(ValueError):
    """An encoder model file or manifest that cannot be used (corrupt, truncated, mismatched)."""


# -- the schema -----------------------------------------------------------------------------------
# key -> (type(s), required). Nested objects are checked by their own functions below.
_TOP = {
    "format_version": (int, True),
    "kind": (str, True),
    "rtmirror_version": (str, True),
    "created_utc": (str, False),
    "opset": (int, True),
    "n_controls": (int, True),
    "lookahead": (int, True),
    "control_space": (dict, True),
    "frontend": (dict, True),
    "step": (dict, True),
    "full": ((dict, type(None)), False),
    "synth": (str, True),
    "training": (dict, True),
    "performer": (dict, False),
    "performer_trained": (dict, False),
    "delay": (dict, False),
    "metrics": (dict, False),
    "stats": (dict, False),
    "sha256": (str, False),
    "full_sha256": (str, False),
}


def _fail(msg: str, where: str) -> None:
    raise ModelError(f"{where}: invalid manifest: {msg}; re-export the model (`rtmirror export`) or fix its .json")


def validate_manifest(m: dict, where: str = "manifest") -> dict:
    """Check a manifest dict against the schema; return it unchanged or raise ModelError.

    Checks types and required keys, the format version, the opset range, that the control space
    and frontend parameters parse, and that the step graph's I/O names and state shapes are
    consistent with n_controls and the 128-channel input.
    """
    if not isinstance(m, dict):
        _fail(f"expected a JSON object, got {type(m).__name__}", where)
    for key, (types, required) in _TOP.items():
        if key not in m:
            if required:
                _fail(f"missing key {key!r}", where)
            continue
        if not isinstance(m[key], types) or (types is int and isinstance(m[key], bool)):
            _fail(f"{key!r} has type {type(m[key]).__name__}", where)
    unknown = set(m) - set(_TOP)
    if unknown:
        _fail(f"unknown keys {sorted(unknown)}", where)
    if m["kind"] != MANIFEST_KIND:
        _fail(f"kind is {m['kind']!r}, expected {MANIFEST_KIND!r}", where)
    if m["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
        _fail(f"format_version {m['format_version']} is not supported by this rtmirror "
              f"(supports {SUPPORTED_FORMAT_VERSIONS}); upgrade rtmirror or re-export the model", where)
    if not (MIN_OPSET <= m["opset"] <= MAX_OPSET):
        _fail(f"opset {m['opset']} outside the supported range [{MIN_OPSET}, {MAX_OPSET}]", where)
    if not (0 <= m["lookahead"] <= 16):
        _fail(f"lookahead {m['lookahead']} frames is out of range", where)
    if m["n_controls"] < 1:
        _fail("n_controls must be >= 1", where)

    # The control space and frontend must parse with their own (strict) from_dict.
    from rtmirror.controls import ControlSpace
    from rtmirror.frontend.config import FrontendConfig
    try:
        space = ControlSpace.from_dict(m["control_space"])
    except (ValueError, TypeError, KeyError) as exc:
        _fail(f"control_space: {exc}", where)
    if len(space) != m["n_controls"]:
        _fail(f"control_space has {len(space)} controls but n_controls is {m['n_controls']}", where)
    try:
        FrontendConfig.from_dict(m["frontend"])
    except (ValueError, TypeError) as exc:
        _fail(f"frontend: {exc}", where)

    _validate_step(m["step"], m["n_controls"], where)
    _validate_performer(m, where)
    if m.get("full") is not None:
        _validate_full(m["full"], where)
    for key in ("sha256", "full_sha256"):
        if key in m and not _is_hex(m[key], 64):
            _fail(f"{key!r} is not a sha256 hex digest", where)
    for key in ("metrics", "stats"):
        for k, v in m.get(key, {}).items():
            if not isinstance(v, (int, float, str, type(None))) or (isinstance(v, float) and not math.isfinite(v)):
                _fail(f"{key}[{k!r}] must be a finite number, a string or null", where)
    if not isinstance(m["training"].get("config_hash", ""), str):
        _fail("training.config_hash must be a string", where)
    return m


def _validate_step(s: dict, n_controls: int, where: str) -> None:
    need = {"inputs": list, "outputs": list, "state_shapes": list, "frames_input": str,
            "controls_output": str}
    for key, typ in need.items():
        if not isinstance(s.get(key), typ):
            _fail(f"step.{key} missing or not a {typ.__name__}", where)
    n_state = len(s["state_shapes"])
    if s["inputs"] != [s["frames_input"]] + [f"state_{i}" for i in range(n_state)]:
        _fail(f"step.inputs {s['inputs']} should be [{s['frames_input']!r}, state_0..state_{n_state - 1}]", where)
    if s["outputs"] != [s["controls_output"]] + [f"new_state_{i}" for i in range(n_state)]:
        _fail(f"step.outputs {s['outputs']} should be [{s['controls_output']!r}, new_state_0..]", where)
    for i, shape in enumerate(s["state_shapes"]):
        if (not isinstance(shape, list) or not shape or shape[0] != 1
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
            _fail(f"step.state_shapes[{i}] = {shape!r} must be a list of positive ints with batch 1", where)


def _validate_performer(m: dict, where: str) -> None:
    """`performer`: the note rules to play the model with; `performer_trained`: the rules it was
    trained with (equal for a model exported from today's trainer); `delay`: the model's share
    of the latency, lookahead + the note-on's longest settling wait, in frames and ms."""
    from rtmirror.performer import PerformerConfig

    rules = {}
    for key in ("performer", "performer_trained"):
        if key in m:
            try:
                rules[key] = PerformerConfig.from_dict(m[key])
            except (ValueError, TypeError) as exc:
                _fail(f"{key}: {exc}", where)
    if "delay" not in m:
        return
    d = m["delay"]
    need = {"lookahead_frames": int, "settle_frames": int, "frame_ms": (int, float), "total_ms": (int, float)}
    for key, typ in need.items():
        if not isinstance(d.get(key), typ) or isinstance(d.get(key), bool):
            _fail(f"delay.{key} missing or not a number", where)
    if set(d) - set(need):
        _fail(f"delay has unknown keys {sorted(set(d) - set(need))}", where)
    if d["lookahead_frames"] != m["lookahead"]:
        _fail(f"delay.lookahead_frames {d['lookahead_frames']} != lookahead {m['lookahead']}", where)
    if "performer" in rules and d["settle_frames"] != rules["performer"].onset_settle_frames:
        _fail(f"delay.settle_frames {d['settle_frames']} != performer.onset_settle_frames "
              f"{rules['performer'].onset_settle_frames}", where)
    expect = (d["lookahead_frames"] + d["settle_frames"]) * d["frame_ms"]
    if not (math.isfinite(d["frame_ms"]) and d["frame_ms"] > 0 and abs(d["total_ms"] - expect) < 1e-6):
        _fail(f"delay.total_ms {d['total_ms']} != (lookahead + settle) x frame_ms = {expect}", where)


def model_delay(lookahead: int, performer, frame_rate: float) -> dict:
    """The manifest's `delay` entry for a model with this lookahead, play rules and frame rate."""
    frame_ms = 1000.0 / float(frame_rate)
    settle = int(performer.onset_settle_frames)
    return {"lookahead_frames": int(lookahead), "settle_frames": settle, "frame_ms": frame_ms,
            "total_ms": (int(lookahead) + settle) * frame_ms}


def _validate_full(f: dict, where: str) -> None:
    for key in ("file", "input", "output"):
        if not isinstance(f.get(key), str) or not f[key]:
            _fail(f"full.{key} missing or not a string", where)
    if Path(f["file"]).name != f["file"]:
        _fail(f"full.file must be a bare file name next to the model, got {f['file']!r}", where)


def _is_hex(s, n: int) -> bool:
    return isinstance(s, str) and len(s) == n and all(c in "0123456789abcdef" for c in s)


# -- files ----------------------------------------------------------------------------------------
def sidecar_path(model_path: str | Path) -> Path:
    """'x/model.onnx' -> 'x/model.json'."""
    return Path(model_path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embedded_part(m: dict) -> dict:
    """The manifest as stored inside the ONNX file (without the sidecar-only file hashes)."""
    return {k: v for k, v in m.items() if k not in SIDECAR_ONLY_KEYS}


def dumps(m: dict) -> str:
    return json.dumps(m, indent=2, sort_keys=True, allow_nan=False)


def write_json_atomic(path: str | Path, obj: dict) -> None:
    """The manifest as JSON, written atomically (rtmirror.fileio)."""
    from rtmirror.fileio import write_text_atomic
    write_text_atomic(path, dumps(obj) + "\n")


def load_manifest(model_path: str | Path) -> dict:
    """The validated manifest of a model: the sidecar JSON if present, else the embedded one.

    Does not check file hashes or the graph (EncoderRuntime does); for listing/showing models.
    """
    model_path = Path(model_path)
    side = sidecar_path(model_path)
    if side.is_file():
        try:
            m = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{side}: manifest is not valid JSON ({exc})") from None
        return validate_manifest(m, str(side))
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    header = read_onnx_header(model_path.read_bytes(), str(model_path))
    return validate_manifest(manifest_from_metadata(header, str(model_path)), str(model_path))


def manifest_from_metadata(header: dict, where: str) -> dict:
    text = header["metadata"].get(METADATA_KEY)
    if text is None:
        raise ModelError(f"{where}: no rtmirror manifest in the ONNX metadata "
                         f"(not exported by `rtmirror export`?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: embedded manifest is not valid JSON ({exc})") from None


# -- a minimal reader of an ONNX ModelProto's top-level fields ------------------------------------
# Protobuf wire format: each field is a varint key (field_number << 3 | wire_type) followed by a
# varint (type 0), 8 bytes (1), a varint length + bytes (2) or 4 bytes (5). ModelProto fields used:
# 1 ir_version, 7 graph, 8 opset_import {1 domain, 2 version}, 14 metadata_props {1 key, 2 value}.

def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError(f"{where}: not a valid ONNX file (truncated or corrupt: varint runs past the end)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelError(f"{where}: not a valid ONNX file (corrupt varint)")


def _fields(buf: bytes, where: str):
    """Yield (field_number, wire_type, value) where value is an int or a bytes slice."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos, where)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ModelError(f"{where}: not a valid ONNX file (field number 0: corrupt)")
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > n:
                raise ModelError(f"{where}: not a valid ONNX file (truncated)")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos, where)
            if pos + size > n:
                raise ModelError(f"{where}: not a valid ONNX file (truncated: a field of {size} bytes "
                                 f"at offset {pos} runs past the end of the {n}-byte file)")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ModelError(f"{where}: not a valid ONNX file (unknown protobuf wire type {wire}: corrupt)")
        yield field, wire, value


def read_onnx_header(data: bytes, where: str = "model") -> dict:
    """{'ir_version', 'opsets' {domain: version}, 'metadata' {key: value}, 'graph_bytes'} of an ONNX file.

    Raises ModelError if the bytes do not parse as a ModelProto with a graph (truncated, corrupt,
    or not an ONNX file at all).
    """
    if len(data) < 16:
        raise ModelError(f"{where}: not a valid ONNX file ({len(data)} bytes: empty or truncated)")
    out = {"ir_version": None, "opsets": {}, "metadata": {}, "graph_bytes": 0}
    for field, wire, value in _fields(data, where):
        if field == 1 and wire == 0:
            out["ir_version"] = value
        elif field == 7 and wire == 2:
            out["graph_bytes"] = len(value)
        elif field == 8 and wire == 2:
            domain, version = "", None
            for f, w, v in _fields(value, where):
                if f == 1 and w == 2:
                    domain = bytes(v).decode("utf-8", "replace")
                elif f == 2 and w == 0:
                    version = v
            out["opsets"][domain] = version
        elif field == 14 and wire == 2:
            key = val = ""
            for f, w, v in _fields(value, where):
                if f == 1 and w == 2:
                    key = bytes(v).decode("utf-8", "replace")
                elif f == 2 and w == 2:
                    val = bytes(v).decode("utf-8", "replace")
            out["metadata"][key] = val
    if out["ir_version"] is None or not out["graph_bytes"]:
        raise ModelError(f"{where}: not a valid ONNX file (no ir_version or no graph)")
    return out
