"""The CC map: which MIDI controller each control is sent on, and how often.

Read from TOML at entry points (`CCMap.load(path or None -> shipped default)`); the MIDI encoder
takes the resolved, frozen `CCMap.for_space(space)` list. See rtmirror/resources/cc_map_default.toml
for the file format and the default (General MIDI sound controllers, named for DIVA's MIDI learn).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rtmirror.controls import ControlSpace

_MIDI_FIELDS = {"threshold", "max_rate_hz", "bend_range"}
_CONTROL_FIELDS = {"cc", "hires", "lsb_cc", "threshold", "max_rate_hz"}


@dataclass(frozen=True)
class CCAssignment:
    name: str                 # control name (DIVA parameter name)
    cc: int                   # controller number (MSB when hires)
    hires: bool = False       # 14-bit: MSB on cc, LSB on lsb_cc
    lsb_cc: int | None = None
    threshold: float = 0.008  # normalized change needed before a new value is sent
    max_rate_hz: float = 62.5  # cap on messages per second for this controller

    def __post_init__(self) -> None:
        if not (0 <= self.cc <= 119):
            raise ValueError(f"CC map {self.name!r}: cc must be 0..119, got {self.cc}")
        if self.hires:
            if self.lsb_cc is None:
                raise ValueError(f"CC map {self.name!r}: 14-bit needs lsb_cc (cc + 32 exists only for CC 0..31)")
            if not (0 <= self.lsb_cc <= 119) or self.lsb_cc == self.cc:
                raise ValueError(f"CC map {self.name!r}: lsb_cc must be 0..119 and differ from cc")
        if not (self.threshold >= 0.0 and math.isfinite(self.threshold)):
            raise ValueError(f"CC map {self.name!r}: threshold must be >= 0")
        if not (self.max_rate_hz > 0.0):
            raise ValueError(f"CC map {self.name!r}: max_rate_hz must be > 0")

    @property
    def steps(self) -> int:
        """Largest value on the wire: 127 (7-bit) or 16383 (14-bit)."""
        return 16383 if self.hires else 127


@dataclass(frozen=True)
class CCMap:
    controls: dict = field(default_factory=dict)  # name -> CCAssignment
    threshold: float = 0.008
    max_rate_hz: float = 62.5
    bend_range: float = 2.0                        # semitones for a full pitch-bend swing

    @classmethod
    def from_dict(cls, data: dict, source: str = "CC map") -> "CCMap":
        midi = dict(data.get("midi", {}))
        unknown = set(midi) - _MIDI_FIELDS
        if unknown:
            raise ValueError(f"{source}: unknown [midi] fields {sorted(unknown)}")
        threshold = float(midi.get("threshold", 0.008))
        max_rate = float(midi.get("max_rate_hz", 62.5))
        bend_range = float(midi.get("bend_range", 2.0))
        if not (bend_range > 0):
            raise ValueError(f"{source}: bend_range must be > 0")
        controls = {}
        for name, fields in data.get("controls", {}).items():
            unknown = set(fields) - _CONTROL_FIELDS
            if unknown:
                raise ValueError(f"{source}: control {name!r} has unknown fields {sorted(unknown)}")
            if "cc" not in fields:
                raise ValueError(f"{source}: control {name!r} needs a cc")
            cc = int(fields["cc"])
            hires = bool(fields.get("hires", False))
            lsb = fields.get("lsb_cc", cc + 32 if hires and cc < 32 else None)
            controls[name] = CCAssignment(
                name=name, cc=cc, hires=hires, lsb_cc=None if lsb is None else int(lsb),
                threshold=float(fields.get("threshold", threshold)),
                max_rate_hz=float(fields.get("max_rate_hz", max_rate)))
        return cls(controls=controls, threshold=threshold, max_rate_hz=max_rate, bend_range=bend_range)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CCMap":
        """A CC map TOML file, or the shipped default (rtmirror/resources/cc_map_default.toml)."""
        if path is None:
            text = resources.files("rtmirror.resources").joinpath("cc_map_default.toml").read_text()
            source = "default CC map"
        else:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"CC map file not found: {p}")
            text, source = p.read_text(), str(p)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{source}: not valid TOML ({exc})") from None
        return cls.from_dict(data, source)

    def for_space(self, space: ControlSpace) -> list[CCAssignment | None]:
        """One entry per control of the space (model order): its assignment, or None if not sent.

        Knobs only: pitch, gate and velocity travel as notes. A knob missing from the map falls
        back to the control set's default cc with the map's threshold and rate.
        """
        out: list[CCAssignment | None] = []
        for c in space.controls:
            if c.role != "knob":
                out.append(None)
            elif c.name in self.controls:
                out.append(self.controls[c.name])
            elif c.cc is not None:
                out.append(CCAssignment(c.name, c.cc, threshold=self.threshold, max_rate_hz=self.max_rate_hz))
            else:
                out.append(None)
        used: dict[int, str] = {}
        for a in out:
            if a is None:
                continue
            for num in (a.cc, a.lsb_cc) if a.hires else (a.cc,):
                if num in used:
                    raise ValueError(f"CC map: CC {num} assigned to both {used[num]!r} and {a.name!r}")
                used[num] = a.name
        return out
