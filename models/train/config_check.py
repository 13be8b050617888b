"""The training config's schema: every key's type and range, checked when the TOML is read.

`load_checked(path, merge)` reads the TOML, merges it over the defaults (trainer.merge_config
refuses unknown keys with the list of known ones) and checks every value here, so a bad value is
one line naming the file, the key, the range and what was given, before anything is allocated or
written. The frontend and performer tables are checked by their own from_dict.
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from rtmirror.checks import boolean, choice, number, table, text

BIG = 1_000_000
# [section] key -> (lo, hi, integer); None as section: top level.
RANGES: dict[tuple[str | None, str], tuple[float, float, bool]] = {
    (None, "seed"): (0, 2**32 - 1, True),
    ("data", "n"): (1, BIG, True),
    ("data", "duration_s"): (0.1, 600.0, False),
    ("data", "n_random"): (0, BIG, True),
    ("data", "n_val"): (1, BIG, True),
    ("init", "decoder_epochs"): (0, 100_000, True),
    ("init", "encoder_epochs"): (0, 100_000, True),
    ("mirror", "rounds"): (0, 10_000, True),
    ("mirror", "decoder_epochs"): (0, 100_000, True),
    ("mirror", "encoder_epochs"): (0, 100_000, True),
    ("mirror", "decoder_random_mix"): (0.0, 1.0, False),
    ("mirror", "encoder_sup_weight"): (0.0, 1e6, False),
    ("mirror", "target_note_weight"): (0.0, 1e6, False),
    ("optim", "batch"): (1, 65_536, True),
    ("optim", "crop_frames"): (1, BIG, True),
    ("optim", "lr_encoder"): (0.0, 10.0, False),
    ("optim", "lr_decoder"): (0.0, 10.0, False),
    ("optim", "lr_decay_per_round"): (0.0, 10.0, False),
    ("optim", "grad_clip"): (0.0, 1e9, False),          # 0: no clipping
    ("checkpoint", "minutes"): (0.0, 1e6, False),       # 0: after every epoch
}
OPEN_LO = {("optim", "lr_encoder"), ("optim", "lr_decoder"), ("optim", "lr_decay_per_round")}
# [data] target_synth (a spec or a table {spec = weight}) and [augment] (AugmentConfig) are
# checked by merge_config (trainer.target_sources, rtmirror.synth.augment).
STRINGS = {("data", "set"), ("data", "target_set"), ("synth", "spec"), ("synth", "param_map"),
           ("init", "from_checkpoint")}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")   # the run folder runs/<name>


def check_config(cfg: dict) -> dict:
    """A merged config (every key present), unchanged, or a ValueError naming the bad key."""
    name = text("name", cfg["name"])
    if not NAME.fullmatch(name):
        raise ValueError(f"name must be 1-64 letters, digits, '.', '_' or '-' (it names the run folder "
                         f"runs/<name>), got {name!r}")
    choice("device", cfg["device"], ("auto", "cpu", "cuda"))
    cores = os.cpu_count() or 1
    number("threads", cfg["threads"], 1, cores, integer=True)  # torch threads per process: this machine's cores
    number("[data] workers", cfg["data"]["workers"], 0, cores, integer=True)
    choice("[data] kind", cfg["data"]["kind"], ("paper", "general"))
    choice("[data] random_kind", cfg["data"]["random_kind"], ("", "paper", "general"))
    boolean("[init] enabled", cfg["init"]["enabled"])
    for (section, key), (lo, hi, integer) in RANGES.items():
        value = cfg[key] if section is None else cfg[section][key]
        number(key if section is None else f"[{section}] {key}", value, lo, hi, integer=integer,
               open_lo=(section, key) in OPEN_LO)
    for section, key in STRINGS:
        text(f"[{section}] {key}", cfg[section][key])
    for section in ("frontend", "performer", "encoder", "decoder"):
        table(section, cfg[section])
    from rtmirror.frontend.config import FrontendConfig
    from rtmirror.performer import PerformerConfig
    for section, parse in (("frontend", FrontendConfig.from_dict), ("performer", PerformerConfig.from_dict)):
        try:
            parse(cfg[section])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"[{section}] {exc}") from None
    return cfg


def load_checked(path: str | Path, merge) -> dict:
    """merge(the TOML at path) checked, or one ValueError line "<path>: <what>; <the fix>"."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a text file; a training config is TOML (models/configs/*.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    try:
        return check_config(merge(raw))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{p}: {exc}; fix the config (keys and defaults: models/train/trainer.py DEFAULTS)") from None
