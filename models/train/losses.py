"""Losses of the MirrorNet regimen, on (B, channels, T) tensors.

  spectrogram_loss   MSE in the compressed domain (D learning the synth; E through frozen D)
  supervised_loss    E against ground-truth control frames (the "init" term on random renders):
                     gate everywhere (BCE); pitch, velocity and knobs only where the true gate is on
                     (they are undefined in silence); pitch as cross-entropy over semitone classes
                     for a class head, MSE for a continuous one; knobs either as 10 x their raw
                     MSE or standardized (each knob's MSE over its variance in the labelled data,
                     `knob_scales`), so a knob with a narrow range weighs as much as a wide one.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def spectrogram_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask (same shape, 0/1); 0 when the mask is empty (no NaN)."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def supervised_loss(controls: torch.Tensor, logits: torch.Tensor | None, truth: torch.Tensor,
                    pitch_index: int | None, gate_index: int | None, pitch_classes: int,
                    pitch_weight: float = 1.0, knob_scales: torch.Tensor | None = None,
                    knobs_known: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """controls/truth (B, K, T) in [0, 1]; logits (B, P, T) or None; knob_scales (K_rest,) weights of
    the controls other than pitch and gate, in control order, or None for the raw 10 x MSE;
    knobs_known (B,) 0/1: melodies whose controls other than pitch and gate are truth (a foreign
    synth's melody: notes known, knobs not), None = all. -> (loss, parts for logging)."""
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
        if knobs_known is not None:
            on = on * knobs_known.view(-1, 1).to(on.dtype)                 # knob terms: known melodies only
        sq = (controls[:, rest] - truth[:, rest]) ** 2                     # (B, K_rest, T)
        if knob_scales is None:
            knobs = masked_mean(sq.mean(dim=1), on)
            parts["knobs"] = float(knobs.detach())
            loss = loss + 10.0 * knobs        # knob MSE in [0,1]^2 units is small; weight it up
        else:
            if knob_scales.shape != (len(rest),):
                raise ValueError(f"knob_scales must have shape ({len(rest)},), got {tuple(knob_scales.shape)}")
            knobs = masked_mean((sq * knob_scales.view(1, -1, 1)).mean(dim=1), on)
            parts["knobs"] = float(knobs.detach())
            loss = loss + knobs               # ~ mean over knobs of 1 - r^2 once the fit is linear
    parts["sup"] = float(loss.detach())
    return loss, parts


# A knob the labelled data never varies (exp1's velocity, always 127) has no spread to standardize
# by: it keeps the raw loss's weight.
CONSTANT_KNOB_VARIANCE = 1e-6
CONSTANT_KNOB_SCALE = 10.0


def knob_scales_from(truth, pitch_index: int | None, gate_index: int | None):
    """Standardizing weights 1 / variance of each control other than pitch and gate over the frames
    where the true gate is on; truth (N, T, K) numpy in [0, 1] -> (K_rest,) float32 numpy."""
    t = np.asarray(truth, dtype=np.float64)
    on = t[..., gate_index] > 0.5 if gate_index is not None else np.ones(t.shape[:-1], bool)
    rest = [k for k in range(t.shape[-1]) if k not in (pitch_index, gate_index)]
    if not on.any():
        raise ValueError("knob_scales_from: no frame with the gate on in the labelled data")
    var = t[on][:, rest].var(axis=0)
    return np.where(var > CONSTANT_KNOB_VARIANCE, 1.0 / np.maximum(var, CONSTANT_KNOB_VARIANCE),
                    CONSTANT_KNOB_SCALE).astype(np.float32)
