"""Losses of the MirrorNet regimen, on (B, channels, T) tensors.

  spectrogram_loss   MSE in the compressed domain (D learning the synth; E through frozen D)
  supervised_loss    E against ground-truth control frames (the "init" term on random renders):
                     gate everywhere (BCE); pitch, velocity and knobs only where the true gate is on
                     (they are undefined in silence); pitch as cross-entropy over semitone classes
                     for a class head, MSE for a continuous one.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def spectrogram_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask (same shape, 0/1); 0 when the mask is empty (no NaN)."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def supervised_loss(controls: torch.Tensor, logits: torch.Tensor | None, truth: torch.Tensor,
                    pitch_index: int | None, gate_index: int | None, pitch_classes: int,
                    pitch_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """controls/truth (B, K, T) in [0, 1]; logits (B, P, T) or None. -> (loss, parts for logging)."""
    K = controls.shape[1]
    if gate_index is not None:
        on = (truth[:, gate_index] > 0.5).float()                         # (B, T)
        gate = F.binary_cross_entropy(controls[:, gate_index].clamp(1e-6, 1 - 1e-6), truth[:, gate_index])
    else:
        on = torch.ones_like(truth[:, 0])
        gate = controls.new_zeros(())
    parts = {"gate": float(gate.detach())}
    loss = gate
    if pitch_index is not None:
        if logits is not None:
            target = (truth[:, pitch_index] * (pitch_classes - 1)).round().long().clamp(0, pitch_classes - 1)
            ce = F.cross_entropy(logits, target, reduction="none")          # (B, T)
            pitch = masked_mean(ce, on)
        else:
            pitch = masked_mean((controls[:, pitch_index] - truth[:, pitch_index]) ** 2, on) * (pitch_classes - 1)
        parts["pitch"] = float(pitch.detach())
        loss = loss + pitch_weight * pitch
    rest = [k for k in range(K) if k not in (pitch_index, gate_index)]
    if rest:
        err = ((controls[:, rest] - truth[:, rest]) ** 2).mean(dim=1)      # (B, T)
        knobs = masked_mean(err, on)
        parts["knobs"] = float(knobs.detach())
        loss = loss + 10.0 * knobs            # knob MSE in [0,1]^2 units is small; weight it up
    parts["sup"] = float(loss.detach())
    return loss, parts
