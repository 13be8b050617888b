"""ControlSpace: the ordered, named controls a model plays, with their physical/MIDI mappings.

Control frames are arrays (T, K) of normalized values in [0, 1], K = len(space), at the
frontend's frame rate. The declarations live in data (rtmirror/resources/control_sets.toml, or a
user's TOML file of the same shape); this module only reads and applies them.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

ROLES = ("pitch", "gate", "velocity", "knob")
CURVES = ("lin", "exp")


@dataclass(frozen=True)
class Control:
    name: str                 # DIVA parameter name where one exists, e.g. "VCF1: Frequency"
    role: str = "knob"        # pitch | gate | velocity | knob
    lo: float = 0.0           # physical value at v = 0
    hi: float = 1.0           # physical value at v = 1
    curve: str = "lin"        # lin | exp
    unit: str = ""
    latch: bool = False       # read by the synth at note-on (sent just before it)
    cc: int | None = None     # default MIDI CC number

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"control {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if self.curve not in CURVES:
            raise ValueError(f"control {self.name!r}: curve must be one of {CURVES}, got {self.curve!r}")
        if self.curve == "exp" and not (self.lo > 0 and self.hi > 0):
            raise ValueError(f"control {self.name!r}: an exp curve needs lo, hi > 0")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)) or self.lo == self.hi and self.role != "gate":
            raise ValueError(f"control {self.name!r}: lo and hi must be finite and differ")
        if self.cc is not None and not (0 <= self.cc <= 119):
            raise ValueError(f"control {self.name!r}: cc must be 0..119, got {self.cc}")

    def to_physical(self, v):
        """Normalized [0, 1] -> physical units (array or scalar); v is clipped to [0, 1]."""
        if isinstance(v, float):
            # one value (the Performer's per-frame pitch): the same double arithmetic as below,
            # without np.clip's per-call cost (~4 us)
            v = min(max(v, 0.0), 1.0)
            return np.float64(self.lo * (self.hi / self.lo) ** v if self.curve == "exp" else self.lo + v * (self.hi - self.lo))
        v = np.clip(v, 0.0, 1.0)
        if self.curve == "exp":
            return self.lo * (self.hi / self.lo) ** v
        return self.lo + v * (self.hi - self.lo)

    def from_physical(self, x):
        """Physical units -> normalized [0, 1] (clipped)."""
        x = np.asarray(x, dtype=np.float64)
        if self.curve == "exp":
            v = np.log(np.maximum(x, 1e-30) / self.lo) / math.log(self.hi / self.lo)
        else:
            v = (x - self.lo) / (self.hi - self.lo)
        return np.clip(v, 0.0, 1.0)


@dataclass(frozen=True)
class ControlSpace:
    name: str
    controls: tuple[Control, ...]
    patch: dict = field(default_factory=dict)   # fixed synth values (normalized, DIVA names)

    def __post_init__(self) -> None:
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise ValueError(f"control space {self.name!r}: duplicate control names")
        for role in ("pitch", "gate", "velocity"):
            if sum(c.role == role for c in self.controls) > 1:
                raise ValueError(f"control space {self.name!r}: more than one {role} control")
        for k, v in self.patch.items():
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"control space {self.name!r}: patch value {k!r}={v!r} not in [0, 1]")

    # -- lookup --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.controls)

    def __iter__(self):
        return iter(self.controls)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.controls]

    @property
    def knobs(self) -> list[Control]:
        return [c for c in self.controls if c.role == "knob"]

    def index(self, name: str) -> int:
        for i, c in enumerate(self.controls):
            if c.name == name:
                return i
        raise KeyError(f"control {name!r} not in space {self.name!r} ({self.names})")

    def role_index(self, role: str) -> int | None:
        for i, c in enumerate(self.controls):
            if c.role == role:
                return i
        return None

    def __getitem__(self, name: str) -> Control:
        return self.controls[self.index(name)]

    # -- (de)serialization: manifests carry the whole space -----------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "controls": [
                {k: getattr(c, k) for k in Control.__dataclass_fields__ if getattr(c, k) is not None}
                for c in self.controls
            ],
            "patch": dict(self.patch),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ControlSpace":
        try:
            controls = tuple(Control(**c) for c in d["controls"])
            return cls(name=str(d["name"]), controls=controls, patch=dict(d.get("patch", {})))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid control space description: {exc}") from None

    @classmethod
    def load(cls, name_or_path: str | Path) -> "ControlSpace":
        """A set by name from the shipped TOML ("exp1", "exp2", "live"), or "FILE.toml[:SET]"."""
        text, set_name = _read_sets(str(name_or_path))
        return _space_from_toml(tomllib.loads(text), set_name)


def available_sets() -> list[str]:
    data = tomllib.loads(resources.files("rtmirror.resources").joinpath("control_sets.toml").read_text())
    return sorted(data.get("sets", {}))


def _read_sets(spec: str) -> tuple[str, str]:
    """'exp1' -> (shipped TOML, 'exp1'); 'my.toml:lead' -> (that file, 'lead'); 'my.toml' -> (file, '')."""
    if ".toml" in spec:
        head, _, tail = spec.partition(".toml")
        p = Path(head + ".toml")
        if not p.is_file():
            raise FileNotFoundError(f"control-set file not found: {p}")
        return p.read_text(), tail.lstrip(":")
    return resources.files("rtmirror.resources").joinpath("control_sets.toml").read_text(), spec


def _space_from_toml(data: dict, set_name: str) -> ControlSpace:
    decl = data.get("controls", {})
    sets = data.get("sets", {})
    if not set_name:
        if len(sets) != 1:
            raise ValueError(f"name a set: one of {sorted(sets)}")
        set_name = next(iter(sets))
    if set_name not in sets:
        raise KeyError(f"unknown control set {set_name!r}; known: {sorted(sets)}")
    entry = sets[set_name]
    controls = []
    for name in entry.get("controls", []):
        if name not in decl:
            raise ValueError(f"set {set_name!r} names undeclared control {name!r}")
        fields = dict(decl[name])
        unknown = set(fields) - set(Control.__dataclass_fields__)
        if unknown:
            raise ValueError(f"control {name!r}: unknown fields {sorted(unknown)}")
        if fields.get("role") == "gate":
            fields.setdefault("lo", 0.0)
            fields.setdefault("hi", 1.0)
        controls.append(Control(name=name, **fields))
    return ControlSpace(name=set_name, controls=tuple(controls), patch=dict(entry.get("patch", {})))
