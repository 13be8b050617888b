"""Frontend configuration: the NSL `wav2aud` parameters plus rtmirror's causal level normalization."""
from __future__ import annotations

from dataclasses import dataclass

NORMALIZATIONS = ("none", "unitseq", "agc")


@dataclass(frozen=True)
class FrontendConfig:
    """NSL paras = [frame_ms, tc_ms, factor, shift] (the paper: [8, 8, -2, -1] at 8 kHz).

    normalization:
      "none"    - the waveform as given.
      "unitseq" - the paper's z-scoring of the whole waveform (offline only: needs the future).
      "agc"     - causal running-RMS gain (time constant agc_tau_s, gain capped at agc_max_gain so
                  silence and hum stay quiet); streaming and offline agree. The default: live audio
                  and training audio go through exactly this. Per sample:
                    power += (1 - exp(-1 / (agc_tau_s * fs))) * (x**2 - power)
                    x *= min(agc_max_gain, agc_target_rms / sqrt(power))
                  with power starting at agc_target_rms**2 (gain 1) after a reset.
    """

    frame_ms: float = 8.0
    tc_ms: float = 8.0
    factor: float = -2.0
    shift: int = -1
    normalization: str = "agc"
    agc_tau_s: float = 0.5
    agc_target_rms: float = 0.1
    agc_max_gain: float = 100.0

    n_channels: int = 128  # output channels (129 filters, lateral inhibition drops one)

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if not (-4 <= int(self.shift) <= 2) or int(self.shift) != self.shift:
            raise ValueError(f"shift must be an integer octave shift in [-4, 2], got {self.shift!r}")
        if self.frame_ms <= 0 or self.hop < 1:
            raise ValueError(f"frame_ms must give at least one sample per frame, got {self.frame_ms!r}")
        if self.tc_ms < 0:
            raise ValueError(f"tc_ms must be >= 0, got {self.tc_ms!r}")
        if not (self.factor > 0 or self.factor in (0, -1, -2)):
            raise ValueError(f"factor must be > 0 (sigmoid), 0 (step), -1 (half-wave) or -2 (linear), "
                             f"got {self.factor!r}")
        if not (self.agc_tau_s > 0 and self.agc_target_rms > 0 and self.agc_max_gain >= 1):
            raise ValueError("agc needs agc_tau_s > 0, agc_target_rms > 0 and agc_max_gain >= 1, got "
                             f"{self.agc_tau_s!r}, {self.agc_target_rms!r}, {self.agc_max_gain!r}")

    @property
    def sample_rate(self) -> int:
        """The cochlear model's sample rate: 16 kHz * 2**shift."""
        return int(round(16000 * 2.0 ** self.shift))

    @property
    def hop(self) -> int:
        """Samples per output frame: frame_ms * 2**(4 + shift) (NSL's L_frm)."""
        return int(round(self.frame_ms * 2.0 ** (4 + self.shift)))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "FrontendConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown frontend parameters: {sorted(unknown)}")
        return cls(**d)
