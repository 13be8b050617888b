"""Decoder D: control frames -> compressed auditory spectrogram; it learns to imitate the synth.

Shapes: controls (B, K, T) normalized [0, 1] -> (B, 128, T) in the encoder's compressed domain
(scale * log1p(x / eps) of the raw frontend frames), so ||D(E(x)) - compress(x)|| is the mirror loss.

D may look both ways (it never runs live): a 1x1 conv lifts the controls to `hidden` channels, then
two-sided dilated residual blocks (the paper's kernel-3 dilated stacks, smaller), then a 1x1 conv to
128 bins. The pitch control enters as a Gaussian bump over semitone classes (differentiable in the
pitch value): a 1x1 conv can then place each semitone's harmonics on the frequency axis, which a
single scalar input makes hard over a 4-octave range.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .layers import NetConfigMixin, ChannelNorm, ResBlock, gaussian_pitch_embedding, init_small_residuals


@dataclass(frozen=True)
class DecoderConfig(NetConfigMixin):
    n_controls: int
    pitch_index: int | None = None
    pitch_classes: int = 61
    pitch_width: float = 0.5             # std of the pitch bump, in semitone classes
    n_bins: int = 128
    hidden: int = 128
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1, 2, 4)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        n_in = cfg.n_controls + (cfg.pitch_classes - 1 if cfg.pitch_index is not None else 0)
        self.lift = nn.Conv1d(n_in, cfg.hidden, 1)
        self.blocks = nn.Sequential(*(ResBlock(cfg.hidden, cfg.kernel, d) for d in cfg.dilations))
        self.out_norm = ChannelNorm(cfg.hidden)
        self.out = nn.Conv1d(cfg.hidden, cfg.n_bins, 1)
        init_small_residuals(self)

    def features(self, controls: torch.Tensor) -> torch.Tensor:
        """(B, K, T) -> (B, K - 1 + P, T): the pitch control replaced by its semitone bump."""
        p = self.cfg.pitch_index
        if p is None:
            return controls
        bump = gaussian_pitch_embedding(controls[:, p], self.cfg.pitch_classes, self.cfg.pitch_width)
        return torch.cat([controls[:, :p], controls[:, p + 1:], bump], dim=1)

    def forward(self, controls: torch.Tensor) -> torch.Tensor:       # (B, K, T) -> (B, 128, T)
        h = self.blocks(self.lift(self.features(controls)))
        return self.out(F.relu(self.out_norm(h)))
