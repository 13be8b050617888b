"""rtmirror.synth: the synthesizers, and the one registry that names them.

`make_synth(spec, space, sample_rate=None) -> Synth`, spec one of
  "builtin"                            the built-in voice (numpy + numba)
  "wide"                               the wide voice: a random timbre per melody (training targets)
  "piano"                              a struck-string piano of our own (notes only; exp3's targets)
  "path/to/plugin.so|.vst3|.dll|.vst"  any VST instrument through DawDreamer + a parameter map
  "fluidsynth:PROGRAM[@FONT.sf2]"      a General MIDI program of a sound font (notes only)
  "random-patch:PATH"                  a plugin with its shipped map, base patch redrawn per melody
Data, training, evaluation and the benchmarks name synths this way and render through
rtmirror.synth.render. PluginSynth (DawDreamer) and FluidSynth are imported only when asked
for, so the live path never loads them.
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
    if spec.startswith("fluidsynth:"):
        from rtmirror.synth.fluid import GM_SOUNDFONT, FluidSynthInstrument
        program, _, font = spec[len("fluidsynth:"):].partition("@")
        try:
            prog = int(program)
        except ValueError:
            raise ValueError(f"synth {spec!r}: expected fluidsynth:PROGRAM (0..127)[@FONT.sf2]") from None
        return FluidSynthInstrument(program=prog, sample_rate=sample_rate or 44100, soundfont=font or GM_SOUNDFONT)
    if spec == "builtin":
        return BuiltinVoice(space, sample_rate=sample_rate or 8000)
    if spec.startswith("random-patch:"):
        from rtmirror.synth.patches import RandomPatchPlugin
        from rtmirror.synth.plugin import default_map_for
        path = spec[len("random-patch:"):]
        return RandomPatchPlugin(path, space, str(param_map or default_map_for(path)), sample_rate=sample_rate or 44100)
    if spec == "piano":
        from rtmirror.synth.piano import PianoVoice
        return PianoVoice(sample_rate=sample_rate or 16000)
    if spec == "wide":
        from rtmirror.synth.wide import WideVoice
        return WideVoice(space, sample_rate=sample_rate or 8000)
    if spec.lower().endswith(PLUGIN_SUFFIXES):
        from rtmirror.synth.plugin import PluginSynth, default_map_for
        return PluginSynth(spec, space, param_map if param_map is not None else default_map_for(spec),
                           sample_rate=sample_rate or 44100, reuse_engine=reuse_engine)
    raise ValueError(f"unknown synth {spec!r}: use 'builtin', 'wide', 'piano', 'fluidsynth:PROGRAM[@FONT.sf2]', "
                     f"'random-patch:PLUGIN' or a "
                     f"plugin path ending in {', '.join(PLUGIN_SUFFIXES)}")


def __getattr__(name: str):
    if name == "PluginSynth":   # lazy: importing it loads DawDreamer
        from rtmirror.synth.plugin import PluginSynth
        return PluginSynth
    raise AttributeError(f"module 'rtmirror.synth' has no attribute {name!r}")
