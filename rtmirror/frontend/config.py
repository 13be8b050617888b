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
        from rtmirror.checks import number

        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        number("shift (octave shift)", self.shift, -4, 2, integer=True)
        number("frame_ms", self.frame_ms, 0, 1000, open_lo=True)
        if self.hop < 1:
            raise ValueError(f"frame_ms must give at least one sample per frame, got {self.frame_ms!r}")
        number("tc_ms", self.tc_ms, 0, 1000)
        number("factor", self.factor, -2, 1000)
        if not (self.factor > 0 or self.factor in (0, -1, -2)):
            raise ValueError(f"factor must be > 0 (sigmoid), 0 (step), -1 (half-wave) or -2 (linear), "
                             f"got {self.factor!r}")
        try:
            number("agc_tau_s", self.agc_tau_s, 0, 60, open_lo=True)
            number("agc_target_rms", self.agc_target_rms, 0, 1, open_lo=True)
            number("agc_max_gain", self.agc_max_gain, 1, 1e6)
        except ValueError as exc:
            raise ValueError(f"agc needs agc_tau_s in (0, 60], agc_target_rms in (0, 1] and agc_max_gain in "
                             f"[1, 1e6]: {exc}") from None
        if isinstance(self.n_channels, bool) or self.n_channels != 128:
            raise ValueError(f"n_channels must be 128 (the cochlea's output channels), got {self.n_channels!r}")

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
        """From a TOML table / JSON manifest: unknown keys, wrong types and out-of-range values are
        ValueErrors (ranges: __post_init__)."""
        if not isinstance(d, dict):
            raise ValueError(f"frontend parameters must be a table, got {d!r}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown frontend parameters: {sorted(unknown)}")
        return cls(**d)
