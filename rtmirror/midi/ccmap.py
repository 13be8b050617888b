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
MAX_RATE_HZ = 1000.0  # per controller; a 31.25 kbaud MIDI DIN cable carries ~1000 3-byte messages/s


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
        """From parsed TOML; every error is one ValueError line starting with `source`."""
        try:
            return cls._from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}; fix the CC map (format: rtmirror/resources/cc_map_default.toml)") from None

    @classmethod
    def _from_dict(cls, data: dict) -> "CCMap":
        from rtmirror.checks import boolean, number, table

        unknown = set(data) - {"midi", "controls"}
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)} (known: ['controls', 'midi'])")
        midi = table("midi", data.get("midi", {}))
        unknown = set(midi) - _MIDI_FIELDS
        if unknown:
            raise ValueError(f"unknown [midi] fields {sorted(unknown)}")
        threshold = float(number("[midi] threshold", midi.get("threshold", 0.008), 0.0, 1.0))
        max_rate = float(number("[midi] max_rate_hz", midi.get("max_rate_hz", 62.5), 0.0, MAX_RATE_HZ, open_lo=True))
        bend_range = float(number("[midi] bend_range", midi.get("bend_range", 2.0), 0.0, 96.0, open_lo=True))
        controls = {}
        for name, fields in table("controls", data.get("controls", {})).items():
            where = f"control {name!r}"
            table(f"controls.{name!r}", fields)
            unknown = set(fields) - _CONTROL_FIELDS
            if unknown:
                raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
            if "cc" not in fields:
                raise ValueError(f"{where} needs a cc")
            cc = number(f"{where}: cc", fields["cc"], 0, 119, integer=True)
            hires = boolean(f"{where}: hires", fields.get("hires", False))
            lsb = fields.get("lsb_cc", cc + 32 if hires and cc < 32 else None)
            if lsb is not None:
                lsb = number(f"{where}: lsb_cc", lsb, 0, 119, integer=True)
            controls[name] = CCAssignment(
                name=name, cc=cc, hires=hires, lsb_cc=lsb,
                threshold=float(number(f"{where}: threshold", fields.get("threshold", threshold), 0.0, 1.0)),
                max_rate_hz=float(number(f"{where}: max_rate_hz", fields.get("max_rate_hz", max_rate),
                                         0.0, MAX_RATE_HZ, open_lo=True)))
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
                raise FileNotFoundError(f"{p}: CC map file not found; check the --cc-map path")
            source = str(p)
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{p}: not a text file; a CC map is TOML "
                                 "(see rtmirror/resources/cc_map_default.toml)") from None
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
