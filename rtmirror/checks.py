"""Range and type checks for config values: one ValueError line that names the key, the range and
what was given. The configs (frontend, performer, level gate, CC map, training) share them so a
bad value reads the same everywhere; the caller prefixes the file."""
from __future__ import annotations

import math


def number(name: str, value, lo: float, hi: float, *, integer: bool = False, open_lo: bool = False):
    """`value` if it is a number in [lo, hi] ((lo, hi] with open_lo; an int when integer), else a
    ValueError "name must be ... in [lo, hi], got value". bool is not a number here (TOML true)."""
    kind = "an integer" if integer else "a number"
    interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name} must be {kind} in {interval}, got {value!r} ({type(value).__name__})")
    if not (math.isfinite(value) and (lo < value if open_lo else lo <= value) and value <= hi):
        raise ValueError(f"{name} must be {kind} in {interval}, got {value!r}")
    return value


def choice(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    return value


def table(name: str, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a table ([{name}] or {{...}}), got {value!r}")
    return value
