"""Building blocks of the MirrorNet networks: causal (streamable) and two-sided conv stacks.

Streaming contract of every causal layer here: `forward(x)` on a whole sequence equals chaining
`step(chunk, state)` over any split of the sequence, starting from `initial_state`. The state of a
causal conv is simply its last `context` input frames (cached_conv style), so it is plain data
with a fixed shape that an ONNX step graph can carry.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class NetConfigMixin:
    """to_dict / from_dict / for_space shared by EncoderConfig and DecoderConfig (frozen
    dataclasses with n_controls, pitch_index, pitch_classes and a dilations tuple)."""

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def for_space(cls, space, **kw):
        """Config for a ControlSpace: K, the pitch index and one class per semitone of its range."""
        p = space.role_index("pitch")
        extra = {}
        if p is not None:
            c = space.controls[p]
            extra["pitch_classes"] = int(round(abs(c.hi - c.lo))) + 1
        extra.update(kw)
        return cls(n_controls=len(space), pitch_index=p, **extra)


def compress(x: torch.Tensor, eps: float, scale: float) -> torch.Tensor:
    """Fixed compression of raw (linear, >= 0) auditory-spectrogram frames: scale * log1p(x / eps).

    Silence maps to 0; a frame eps times brighter than silence to scale * log 2. No statistics of
    the data enter, so a streamed frame is compressed exactly as in training.
    """
    return scale * torch.log1p(F.relu(x) / eps)


class ChannelNorm(nn.Module):
    """LayerNorm over channels, per frame: (B, C, T) -> (B, C, T). Never mixes frames."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class CausalConv1d(nn.Module):
    """Conv1d whose output at frame t sees inputs t - (kernel-1)*dilation .. t. kernel >= 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1):
        super().__init__()
        if kernel < 2:
            raise ValueError("CausalConv1d needs kernel >= 2 (use a plain 1x1 conv otherwise)")
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.c_in = c_in
        self.context = (kernel - 1) * dilation   # frames of past input kept as state

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (B, C_in, T) -> (B, C_out, T)
        return self.conv(F.pad(x, (self.context, 0)))

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, self.c_in, self.context)         # (B, C_in, context)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_in, k) with the cached past (B, C_in, context) -> (B, C_out, k), new state."""
        full = torch.cat([state, x], dim=2)                       # (B, C_in, context + k)
        return self.conv(full), full[:, :, full.shape[2] - self.context:]


class CausalResBlock(nn.Module):
    """x + W2 · relu(norm(causal_conv(x))): one dilated, streamable residual block."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel, dilation)
        self.norm = ChannelNorm(channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        return self.mix(F.relu(self.norm(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._tail(self.conv(x))

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return self.conv.initial_state(batch)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, state = self.conv.step(x, state)
        return x + self._tail(h), state


class ResBlock(nn.Module):
    """Two-sided dilated residual block for the decoder (it may look both ways)."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        pad = (kernel - 1) * dilation // 2
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=pad)
        self.norm = ChannelNorm(channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.norm(self.conv(x))))


def gaussian_pitch_embedding(pitch01: torch.Tensor, n_classes: int, width: float) -> torch.Tensor:
    """Normalized pitch (B, T) -> soft one-hot over semitone classes (B, n_classes, T).

    Differentiable in the pitch value, so the encoder gets a gradient through the decoder; class i
    is pitch01 == i / (n_classes - 1). width is the bump's standard deviation in classes.
    """
    centers = torch.arange(n_classes, dtype=pitch01.dtype, device=pitch01.device)
    pos = pitch01.unsqueeze(1) * (n_classes - 1)                   # (B, 1, T) in class units
    return torch.exp(-0.5 * ((pos - centers.view(1, -1, 1)) / width) ** 2)


def receptive_past(kernel: int, dilations) -> int:
    """Frames of past input a causal stack sees: sum of (kernel-1)*d."""
    return int(sum((kernel - 1) * d for d in dilations))


def param_count(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def init_small_residuals(module: nn.Module) -> None:
    """Scale each residual branch's last 1x1 conv down so deep stacks start near identity."""
    for m in module.modules():
        if isinstance(m, (CausalResBlock, ResBlock)):
            with torch.no_grad():
                m.mix.weight.mul_(1.0 / math.sqrt(4.0))
