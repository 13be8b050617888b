"""rtmirror.models: the MirrorNet networks (PyTorch), checkpoints and training. Training side only:
the live path never imports this package (it runs the ONNX export through rtmirror.runtime).

Names are imported lazily, so the render workers (rtmirror/synth/render.py, numpy + numba only) start
without importing torch."""
from importlib import import_module

_EXPORTS = {
    "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "Decoder": "decoder", "DecoderConfig": "decoder", "Encoder": "encoder", "EncoderConfig": "encoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
