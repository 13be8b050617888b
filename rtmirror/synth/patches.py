"""Random patches for a plugin synth: `make_synth("random-patch:PATH")` is the plugin with its
shipped parameter map whose base patch (the parameters no control sets) is redrawn per melody by
`vary(rng)` - training targets from a real VST with many timbres. The mapped controls (level,
cutoff, resonance, envelope, ...) still come from the melody's events.

Ranges keep the sounding pitch the note (no oscillator transposition, no noise waveform as the
only source), so the melody's notes stay the truth. Values are the plugin's normalized ones;
amsynth's meanings below were read with DawDreamer's get_parameter_text (waveform index
round(4 n): 0 sine, 1 pulse, 2 saw, 3 noise, 4 random; filter type round(4 n): 0 low-pass,
1 high-pass, 2 band-pass, 3 notch, 4 bypass; osc_mix -1..1; filter_env_amount -16..16; osc2_detune
x0.8..x1.25 with x1 at 0.5).
"""
from __future__ import annotations

import numpy as np

from rtmirror.synth.plugin import PluginSynth

# plugin parameter -> ("uniform", lo, hi) | ("choice", values...)
AMSYNTH_RANDOM_PATCH: dict[str, tuple] = {
    "osc1_waveform": ("choice", 0.0, 0.25, 0.5),           # sine, pulse, saw
    "osc2_waveform": ("choice", 0.0, 0.25, 0.5),
    "osc1_pulsewidth": ("uniform", 0.1, 1.0),
    "osc2_pulsewidth": ("uniform", 0.1, 1.0),
    "osc_mix": ("uniform", 0.0, 1.0),                       # osc 1 .. osc 2
    "osc2_detune": ("uniform", 0.47, 0.53),                 # about +-25 cents: chorus, not another note
    "filter_type": ("choice", 0.0, 0.0, 0.0, 0.5, 1.0),     # mostly low-pass; band-pass; bypass
    "filter_slope": ("choice", 0.0, 1.0),                   # 12 / 24 dB per octave
    "filter_kbd_track": ("uniform", 0.0, 1.0),
    "filter_env_amount": ("uniform", 0.5, 0.8),             # 0 .. +9.6 (brighter at the onset)
    "filter_attack": ("uniform", 0.0, 0.3),
    "filter_decay": ("uniform", 0.05, 0.5),
    "filter_sustain": ("uniform", 0.2, 1.0),
    "filter_release": ("uniform", 0.0, 0.4),
    "amp_mod_amount": ("uniform", 0.0, 0.2),                # some tremolo (LFO -> amp)
    "lfo_waveform": ("choice", 0.0),                        # sine LFO
    "reverb_wet": ("uniform", 0.0, 0.4),
    "reverb_roomsize": ("uniform", 0.0, 0.8),
    "distortion_crunch": ("uniform", 0.0, 0.3),
}
RANDOM_PATCHES = {"amsynth": AMSYNTH_RANDOM_PATCH}


def draw_patch(ranges: dict[str, tuple], rng: np.random.Generator) -> dict[str, float]:
    """One value per parameter of `ranges`, in its insertion order (deterministic from rng)."""
    out = {}
    for name, (kind, *args) in ranges.items():
        if kind == "uniform":
            out[name] = float(rng.uniform(args[0], args[1]))
        elif kind == "choice":
            out[name] = float(args[int(rng.integers(0, len(args)))])
        else:
            raise ValueError(f"random patch {name!r}: kind must be 'uniform' or 'choice', got {kind!r}")
    return out


class RandomPatchPlugin(PluginSynth):
    """A PluginSynth whose base patch `vary(rng)` redraws (a fresh engine per render keeps it
    reproducible: the same patch and events give the same audio)."""

    def __init__(self, path: str, space, param_map: str, sample_rate: int = 44100):
        if param_map not in RANDOM_PATCHES:
            raise ValueError(f"random-patch:{path}: no random patch ranges for map {param_map!r} "
                             f"(known: {sorted(RANDOM_PATCHES)})")
        super().__init__(path, space, param_map, sample_rate=sample_rate)
        self.ranges = RANDOM_PATCHES[param_map]
        for name in self.ranges:
            self._index(name, None, f"random patch {name!r}")
        self._fixed_values = dict(self._base_values)
        self.patch: dict[str, float] = {}

    def vary(self, rng: np.random.Generator) -> None:
        self.patch = draw_patch(self.ranges, rng)
        values = dict(self._fixed_values)
        values.update({self._by_name[k]: v for k, v in self.patch.items()})
        self._base_values = values
