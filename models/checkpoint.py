"""Checkpoints: safetensors only (no pickle anywhere), one directory per checkpoint.

    DIR/model.safetensors        encoder.* and decoder.* weights; metadata["rtmirror"] = the JSON below
    DIR/config.json              the same JSON, for people and for the ONNX export:
                                 {format, version, encoder, decoder, control_space, frontend, synth,
                                  train_config, train_config_hash, progress, metrics}
    DIR/train_state.safetensors  optimizer + scheduler state (tensors; non-tensor fields as JSON
                                 metadata) and the same progress counters — only in resumable
                                 checkpoints, not in a shipped one.

Every file is written to a temporary name and moved into place with os.replace, so a killed run
leaves the previous checkpoint or the new one, never a torn file. Loading goes through
safetensors, which cannot execute code; a pickle in place of a weights file is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rtmirror.fileio import write_bytes_atomic, write_text_atomic
from safetensors import safe_open

from .decoder import Decoder, DecoderConfig
from .encoder import Encoder, EncoderConfig

FORMAT = "rtmirror-mirrornet"
VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"
CONFIG_FILE = "config.json"


def config_hash(cfg: dict) -> str:
    """Stable short hash of a training config dict (sorted-key JSON, sha256)."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _atomic_save_tensors(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save
    write_bytes_atomic(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata))


def _atomic_write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _read_tensors(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) from a safetensors file; anything else is refused with a clear error."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a valid safetensors file (pickles are refused): {exc}") from None
    return tensors, metadata


@dataclass
class Checkpoint:
    encoder: Encoder
    decoder: Decoder | None
    meta: dict

    @property
    def progress(self) -> dict:
        return self.meta.get("progress", {})


def save_checkpoint(directory: str | Path, encoder: Encoder, decoder: Decoder | None, meta: dict,
                    train_state: dict | None = None) -> Path:
    """Write DIR/{train_state,model}.safetensors + config.json atomically; returns DIR.

    meta: control_space, frontend, synth, train_config, progress, metrics ... (JSON-able).
    train_state: {"tensors": {name: Tensor}, "json": JSON-able dict} from `optimizer_state`.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, format=FORMAT, version=VERSION, encoder=encoder.cfg.to_dict(),
                decoder=None if decoder is None else decoder.cfg.to_dict())
    if "train_config" in meta and "train_config_hash" not in meta:
        meta["train_config_hash"] = config_hash(meta["train_config"])
    meta_json = json.dumps(meta, indent=1, sort_keys=True, default=str)
    if train_state is not None:
        st_meta = {"rtmirror_train_state": json.dumps(train_state["json"], default=str),
                   "progress": json.dumps(meta.get("progress", {}), sort_keys=True)}
        _atomic_save_tensors(train_state["tensors"], d / STATE_FILE, st_meta)
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    if decoder is not None:
        tensors.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    _atomic_save_tensors(tensors, d / MODEL_FILE, {"rtmirror": meta_json})
    _atomic_write_text(d / CONFIG_FILE, meta_json + "\n")
    return d


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> Checkpoint:
    """Load DIR (or DIR/model.safetensors): networks rebuilt from the embedded config, eval mode."""
    p = Path(path)
    model_path = p / MODEL_FILE if p.is_dir() else p
    tensors, metadata = _read_tensors(model_path)
    if "rtmirror" not in metadata:
        raise ValueError(f"{model_path}: no rtmirror metadata (not an rtmirror checkpoint)")
    meta = json.loads(metadata["rtmirror"])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{model_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("version", -1)) > VERSION:
        raise ValueError(f"{model_path}: checkpoint version {meta.get('version')} is newer than this code ({VERSION})")
    enc = Encoder(EncoderConfig.from_dict(meta["encoder"]))
    enc.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    dec = None
    if meta.get("decoder") is not None:
        dec = Decoder(DecoderConfig.from_dict(meta["decoder"]))
        dec.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
        dec.to(map_location).eval()
    enc.to(map_location).eval()
    return Checkpoint(encoder=enc, decoder=dec, meta=meta)


# -- optimizer state as tensors + JSON (no pickle) ------------------------------------------------
def optimizer_state(optimizers: dict[str, torch.optim.Optimizer], extra: dict | None = None) -> dict:
    """{name: optimizer} -> {"tensors": {...}, "json": {...}} for save_checkpoint(train_state=...)."""
    tensors: dict[str, torch.Tensor] = {}
    js: dict = {"optimizers": {}, "extra": extra or {}}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict = {}
        for pid, st in sd["state"].items():
            for key, val in st.items():
                if torch.is_tensor(val):
                    tensors[f"{name}.{pid}.{key}"] = val
                else:
                    scalars[f"{pid}.{key}"] = val
        js["optimizers"][name] = {"param_groups": sd["param_groups"], "scalars": scalars,
                                  "state_ids": [int(i) for i in sd["state"]]}
    return {"tensors": tensors, "json": js}


def load_train_state(directory: str | Path, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore optimizers in place from DIR/train_state.safetensors; returns {"extra", "progress"}."""
    tensors, metadata = _read_tensors(Path(directory) / STATE_FILE)
    js = json.loads(metadata["rtmirror_train_state"])
    for name, opt in optimizers.items():
        o = js["optimizers"][name]
        state: dict = {}
        for pid in o["state_ids"]:
            st = {}
            prefix = f"{name}.{pid}."
            for k, v in tensors.items():
                if k.startswith(prefix):
                    st[k[len(prefix):]] = v
            for k, v in o["scalars"].items():
                if k.split(".", 1)[0] == str(pid):
                    st[k.split(".", 1)[1]] = v
            state[pid] = st
        opt.load_state_dict({"state": state, "param_groups": o["param_groups"]})
    return {"extra": js.get("extra", {}), "progress": json.loads(metadata.get("progress", "{}"))}
