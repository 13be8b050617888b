"""rtmirror.models: the MirrorNet networks (PyTorch), checkpoints and training. Training side only:
the live path never imports this package (it runs the ONNX export through rtmirror.runtime)."""
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .decoder import Decoder, DecoderConfig
from .encoder import Encoder, EncoderConfig

__all__ = ["Checkpoint", "Decoder", "DecoderConfig", "Encoder", "EncoderConfig",
           "load_checkpoint", "save_checkpoint"]
