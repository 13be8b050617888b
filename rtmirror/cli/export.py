"""`rtmirror export CHECKPOINT -o model.onnx [--check] [--full]`: checkpoint -> streaming ONNX + manifest."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory (or its model.safetensors) from `rtmirror train`")
    p.add_argument("-o", "--output", required=True, help="step graph to write, e.g. model.onnx "
                   "(the manifest goes to model.json beside it)")
    p.add_argument("--full", action="store_true",
                   help="also write the full-sequence graph model.full.onnx (offline use, dynamic T)")
    p.add_argument("--check", action="store_true",
                   help="onnx.checker + onnxruntime vs PyTorch parity (streaming k=1,2,3,random; full)")
    p.add_argument("--tol", type=float, default=1e-4, help="max abs error allowed by --check (default 1e-4)")


def manifest_inputs(meta: dict) -> dict:
    """The manifest facts a checkpoint's config.json provides: space, frontend, synth, training,
    metrics and the Performer rules it was trained with."""
    from rtmirror.controls import ControlSpace
    from rtmirror.frontend.config import FrontendConfig

    cs = meta.get("control_space")
    if cs is None:
        raise ValueError("checkpoint has no control_space")
    space = ControlSpace.load(cs) if isinstance(cs, str) else ControlSpace.from_dict(cs)
    fe = meta.get("frontend")
    frontend = FrontendConfig.from_dict(fe) if isinstance(fe, dict) else FrontendConfig()
    synth = meta.get("synth", "unknown")
    if isinstance(synth, dict):
        synth = synth.get("name") or synth.get("kind") or synth.get("path") or json.dumps(synth, sort_keys=True)
    training = {"config_hash": str(meta.get("train_config_hash", ""))}
    progress = meta.get("progress") or {}
    for key in ("step", "epoch", "round", "rounds", "phase", "complete", "train_time_s"):
        if isinstance(progress.get(key), (int, float, str)):
            training[key] = progress[key]
    cfg = meta.get("train_config") or {}
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        training["config_name"] = cfg["name"]
    # The note rules the renders of the mirror rounds went through: the model is played with them.
    performer = meta.get("performer") if isinstance(meta.get("performer"), dict) else None
    return {"space": space, "frontend": frontend, "synth": str(synth), "training": training,
            "metrics": meta.get("metrics") or {}, "performer": performer}


def _summary(checkpoint: Path) -> dict | None:
    """summary.json beside a shipped checkpoint (training time, last validation), if there is one."""
    p = (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "summary.json"
    try:
        s = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return s if isinstance(s, dict) else None


MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header


def check_safetensors_header(checkpoint: str | Path) -> None:
    """Refuse a file that is not safetensors before the reader sizes a buffer from its first
    8 bytes (a random file claims an exabyte header). Layout: u64 little-endian header length N,
    then N bytes of JSON starting with '{', then the tensor data."""
    p = Path(checkpoint)
    p = p / "model.safetensors" if p.is_dir() else p
    if not p.is_file():
        raise ValueError(f"{p}: no such checkpoint file; give a `rtmirror train` checkpoint folder")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(9)
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    if not (2 <= n <= min(size - 8, MAX_HEADER_BYTES)) or head[8:9] != b"{":
        raise ValueError(f"{p}: not a safetensors checkpoint (corrupt or another kind of file); "
                         "give a `rtmirror train` checkpoint folder")


def run(args) -> int:
    from rtmirror.cli.common import one_line
    from rtmirror.export.onnx_export import ExportError, check_parity, export_encoder
    from rtmirror.manifest import ModelError
    from rtmirror.models import load_checkpoint

    try:
        check_safetensors_header(args.checkpoint)
        ckpt = load_checkpoint(args.checkpoint)
        info = manifest_inputs(ckpt.meta)
        summary = _summary(Path(args.checkpoint))
        if summary and not info["metrics"]:
            info["metrics"] = summary.get("last_validation") or {}
        if summary and isinstance(summary.get("train_time_min"), (int, float)):
            info["training"]["train_time_min"] = summary["train_time_min"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"rtmirror export: cannot read checkpoint {args.checkpoint}: {one_line(exc)}", file=sys.stderr)
        return 2
    out = Path(args.output)
    try:   # like `train --out`: a new folder for the model is made (an existing file in its place is an error)
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"rtmirror export: -o {out}: cannot make the folder {out.parent}: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        manifest = export_encoder(ckpt.encoder, out, full=args.full, **info)
    except OSError as exc:
        print(f"rtmirror export: {one_line(exc)}", file=sys.stderr)
        return 2
    except (ExportError, ValueError) as exc:
        print(f"rtmirror export: {exc}", file=sys.stderr)
        return 1
    files = [out, out.with_suffix(".json")] + ([out.parent / manifest["full"]["file"]] if args.full else [])
    for f in files:
        print(f"wrote {f} ({f.stat().st_size / 1024:.1f} KiB)")
    st = manifest["stats"]
    print(f"controls: {', '.join(c['name'] for c in manifest['control_space']['controls'])}; "
          f"lookahead {manifest['lookahead']} frames; {len(manifest['step']['state_shapes'])} state tensors; "
          f"{st['n_params']} params, {st['macs_per_frame']} MACs/frame")
    if args.check:
        try:
            errors = check_parity(ckpt.encoder, out, tol=args.tol)
        except (ExportError, ModelError) as exc:
            print(f"rtmirror export: CHECK FAILED: {exc}", file=sys.stderr)
            return 1
        print("check ok (onnx.checker; max abs error vs PyTorch): "
              + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return 0
