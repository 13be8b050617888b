"""Encoder E: raw auditory-spectrogram frames -> control frames, causal and streamable.

Shapes: spec (B, 128, T) raw `wav2aud` frames (linear factor, AGC-normalized waveform) ->
controls (B, K, T) in the ControlSpace's normalized units [0, 1], in the space's control order.

Architecture (per frame, then along time):
  1. fixed compression scale * log1p(x / eps) (inside the net, so the exported graph takes raw
     frontend frames);
  2. a frequency front: 2-D convs whose kernels run along the channel axis only (kernel (kf, 1)),
     so they see one frame at a time. On the NSL axis (24 channels/octave) a pitch change is a
     shift along channels, and these convs are shift-equivariant; the second one strides by 2
     (one output per semitone), then a 1x1 conv mixes the flattened (channels x frequency) map
     into `hidden` features;
  3. causal dilated residual blocks along time (LayerNorm over channels only: no statistics over
     time) — the only layers with state;
  4. heads: sigmoid for every control; the pitch control is either one sigmoid ("continuous") or
     semitone classes read out by a differentiable soft-argmax ("classes": the expected class
     index / (n-1), which lands in the pitch control's normalized units since 1 semitone = 1/(n-1)).

Lookahead L (0..2 frames): forward's output at frame t sees inputs <= t + L. It is implemented as a
delay: the causal net runs on the input and forward drops its first L outputs (padding L silent
frames at the end), so

    forward(spec)[..., t] == causal_net(spec)[..., t + L]

Streaming (`step`) runs the causal net only: the j-th output of a chained step stream (counting
from the first frame ever fed, j = 0, 1, ...) is the control frame for input frame j - L; the
first L outputs of a fresh stream belong to frames before the stream began and are to be
discarded. With the same frames fed, step output j equals forward output j - L for all
j - L < T - L (the last L frames of forward see the zero padding).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .layers import NetConfigMixin, CausalResBlock, ChannelNorm, compress, init_small_residuals, receptive_past


@dataclass(frozen=True)
class EncoderConfig(NetConfigMixin):
    n_controls: int                      # K
    pitch_index: int | None = None       # which control is pitch (None: no pitch control)
    pitch_head: str = "classes"          # "classes" (soft-argmax over semitones) | "continuous"
    pitch_classes: int = 61              # semitone classes spanning the pitch control's range
    pitch_readout: int = 4               # inference read-out: soft-argmax within +-N classes of the
                                         # argmax (0 = over all classes, as in training); see _heads
    lookahead: int = 0                   # frames of future input each output sees (0..2)
    n_bins: int = 128                    # spectrogram channels
    input_eps: float = 1e-2              # compression: scale * log1p(x / eps) (-40 dB floor re 1.0)
    input_scale: float = 0.5
    freq_channels: int = 12              # channels of the frequency front
    freq_kernel: int = 7                 # taps along frequency (channels) per frame
    hidden: int = 96
    kernel: int = 3                      # temporal taps of each causal block
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)

    def __post_init__(self) -> None:
        if not (0 <= self.lookahead <= 2):
            raise ValueError(f"lookahead must be 0..2 frames, got {self.lookahead}")
        if self.pitch_head not in ("classes", "continuous"):
            raise ValueError(f"pitch_head must be 'classes' or 'continuous', got {self.pitch_head!r}")
        if self.pitch_index is not None and not (0 <= self.pitch_index < self.n_controls):
            raise ValueError("pitch_index out of range")
        if self.pitch_head == "classes" and self.pitch_classes < 2:
            raise ValueError("pitch_classes must be >= 2")
        if not (0 <= int(self.pitch_readout) < 64):
            raise ValueError(f"pitch_readout must be 0..63 classes, got {self.pitch_readout}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.lookahead = int(cfg.lookahead)
        cf, kf = cfg.freq_channels, cfg.freq_kernel
        # (B, 1, F, T) -> (B, cf, F, T) -> (B, cf, ceil(F/2), T): kernels along frequency only
        self.freq1 = nn.Conv2d(1, cf, (kf, 1), padding=(kf // 2, 0))
        self.freq2 = nn.Conv2d(cf, cf, (kf, 1), stride=(2, 1), padding=(kf // 2, 0))
        n_freq = (cfg.n_bins + 2 * (kf // 2) - kf) // 2 + 1
        self.proj = nn.Conv1d(cf * n_freq, cfg.hidden, 1)
        self.proj_norm = ChannelNorm(cfg.hidden)
        self.blocks = nn.ModuleList(CausalResBlock(cfg.hidden, cfg.kernel, d) for d in cfg.dilations)
        self.out_norm = ChannelNorm(cfg.hidden)
        self.has_classes = cfg.pitch_index is not None and cfg.pitch_head == "classes"
        n_plain = cfg.n_controls - (1 if self.has_classes else 0)
        self.head = nn.Conv1d(cfg.hidden, n_plain, 1)
        if self.has_classes:
            self.pitch_head = nn.Conv1d(cfg.hidden, cfg.pitch_classes, 1)
            self.register_buffer("class_values",
                                 torch.linspace(0.0, 1.0, cfg.pitch_classes).view(1, -1, 1), persistent=False)
            # class c is inside the read-out window of argmax a when c - N <= a <= c + N (constants,
            # so the exported graph has no shape arithmetic)
            index = torch.arange(cfg.pitch_classes).view(1, -1, 1)
            self.register_buffer("class_lo", index - int(cfg.pitch_readout), persistent=False)
            self.register_buffer("class_hi", index + int(cfg.pitch_readout), persistent=False)
        init_small_residuals(self)

    # -- per-frame parts (no state) -----------------------------------------------------------
    def _front(self, spec: torch.Tensor) -> torch.Tensor:             # (B, F, T) -> (B, H, T)
        x = compress(spec, self.cfg.input_eps, self.cfg.input_scale).unsqueeze(1)   # (B, 1, F, T)
        x = F.relu(self.freq1(x))
        x = F.relu(self.freq2(x))                                      # (B, cf, F', T)
        x = self.proj(x.flatten(1, 2))                                 # (B, H, T)
        return F.relu(self.proj_norm(x))

    def _heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H, T) -> controls (B, K, T) in [0, 1], pitch logits (B, P, T) or None."""
        h = F.relu(self.out_norm(h))
        plain = torch.sigmoid(self.head(h))                            # (B, K or K-1, T)
        if not self.has_classes:
            return plain, None
        logits = self.pitch_head(h)                                    # (B, P, T)
        w = int(self.cfg.pitch_readout)
        if self.training or w == 0:
            pitch = (torch.softmax(logits, dim=1) * self.class_values).sum(dim=1, keepdim=True)
        else:
            # Local read-out (as CREPE's): at a note change the probability moves from the old
            # class to the new one over a few frames, and the global expectation glides through
            # every semitone between them; around the argmax it jumps. docs/MODEL_NOTES.md.
            top = logits.argmax(dim=1, keepdim=True)                                   # (B, 1, T)
            near = (top >= self.class_lo) & (top <= self.class_hi)                     # (B, P, T)
            p = torch.softmax(logits.masked_fill(~near, -1e9), dim=1)
            pitch = (p * self.class_values).sum(dim=1, keepdim=True)
        p = self.cfg.pitch_index
        controls = torch.cat([plain[:, :p], pitch, plain[:, p:]], dim=1)
        return controls, logits

    # -- full sequence ------------------------------------------------------------------------
    def causal(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The causal net with no delay: output t sees inputs <= t. Returns (controls, logits)."""
        h = self._front(spec)
        for b in self.blocks:
            h = b(h)
        return self._heads(h)

    def encode(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Like forward, but also returns the pitch logits (B, P, T) (None for a continuous head)."""
        L = self.lookahead
        if L:
            spec = F.pad(spec, (0, L))                                 # L silent frames at the end
        controls, logits = self.causal(spec)
        if L:
            controls = controls[:, :, L:]
            logits = None if logits is None else logits[:, :, L:]
        return controls, logits

    def forward(self, spec: torch.Tensor, with_logits: bool = False):   # (B, F, T) -> (B, K, T)
        """Controls (B, K, T); with_logits=True returns encode(spec) (training through DDP)."""
        return self.encode(spec) if with_logits else self.encode(spec)[0]

    # -- streaming ----------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """One tensor per causal block: its cached past inputs (batch, hidden, (kernel-1)*dilation)."""
        return tuple(b.initial_state(batch) for b in self.blocks)

    def step(self, frames: torch.Tensor, *state: torch.Tensor):
        """frames (B, F, k) + state -> (controls (B, K, k), *new_state); output j is frame j - L."""
        h = self._front(frames)
        new_state = []
        for b, s in zip(self.blocks, state):
            h, s = b.step(h, s)
            new_state.append(s)
        controls, _ = self._heads(h)
        return (controls, *new_state)

    @property
    def receptive_field(self) -> int:
        """Frames of input each output sees: past context + itself + lookahead."""
        return receptive_past(self.cfg.kernel, self.cfg.dilations) + 1 + self.lookahead
