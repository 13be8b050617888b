"""The `Synth` protocol: what the training loop, the data renderer and `rtmirror file` play.

A synth turns a list of performance events (rtmirror.events) into mono audio:
`render(events, duration_s) -> (n,) float32`, n = round(duration_s * sample_rate).
CONTROL values are normalized [0, 1] with DIVA's parameter names; controls that no event sets
take the space's `patch` value, else the synth's documented default.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import Event


@runtime_checkable
class Synth(Protocol):
    sample_rate: int
    space: ControlSpace

    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        """(n,) float32 mono, n = round(duration_s * sample_rate), finite, peak within [-1, 1]."""
        ...


def n_samples(duration_s: float, sample_rate: int) -> int:
    if not (duration_s >= 0.0 and np.isfinite(duration_s)):
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s!r}")
    return int(round(duration_s * sample_rate))


def event_sample(time_s: float, sample_rate: int) -> int:
    """Sample-accurate position of an event: round(t * sr), t < 0 clamped to 0."""
    return max(0, int(round(float(time_s) * sample_rate)))
