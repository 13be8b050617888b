"""rtmirror.synth: the synthesizers in the loop.

`make_synth("builtin" | "path/to/plugin.so|.vst3|.dll|.vst", space, sample_rate=None) -> Synth`.
The built-in voice needs only numpy + numba; PluginSynth (DawDreamer) is imported only when a
plugin is asked for, so the live path never loads DawDreamer.
"""
from __future__ import annotations

from pathlib import Path

from rtmirror.controls import ControlSpace
from rtmirror.synth.base import Synth
from rtmirror.synth.builtin import BuiltinVoice

PLUGIN_SUFFIXES = (".so", ".vst3", ".dll", ".vst")

__all__ = ["make_synth", "Synth", "BuiltinVoice", "PluginSynth", "PLUGIN_SUFFIXES"]


def make_synth(spec: str, space: ControlSpace, sample_rate: int | None = None, *,
               param_map: str | Path | dict | None = None, reuse_engine: bool = False) -> Synth:
    """"builtin" -> BuiltinVoice (default 8000 Hz, the default frontend's rate);
    a plugin path -> PluginSynth (default 44100 Hz) with `param_map` (a map name like "diva" or
    "amsynth", a TOML path, or a dict), by default the shipped map named after the plugin file;
    `reuse_engine` trades a plugin's reproducibility for speed (see PluginSynth)."""
    spec = str(spec)
    if spec == "builtin":
        return BuiltinVoice(space, sample_rate=sample_rate or 8000)
    if spec.lower().endswith(PLUGIN_SUFFIXES):
        from rtmirror.synth.plugin import PluginSynth, default_map_for
        return PluginSynth(spec, space, param_map if param_map is not None else default_map_for(spec),
                           sample_rate=sample_rate or 44100, reuse_engine=reuse_engine)
    raise ValueError(f"unknown synth {spec!r}: use 'builtin' or a plugin path ending in "
                     f"{', '.join(PLUGIN_SUFFIXES)}")


def __getattr__(name: str):
    if name == "PluginSynth":   # lazy: importing it loads DawDreamer
        from rtmirror.synth.plugin import PluginSynth
        return PluginSynth
    raise AttributeError(f"module 'rtmirror.synth' has no attribute {name!r}")
