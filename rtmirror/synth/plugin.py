"""PluginSynth: any VST2/VST3 instrument as a `Synth`, through DawDreamer (RenderMan's successor).

A parameter map (TOML, see rtmirror/resources/synth_maps/*.toml and docs/SYNTHS.md) says how rtmirror's
controls reach the plugin:

    [plugin]
    name = "amsynth"
    path = "/usr/lib/vst/amsynth_vst.so"     # where the plugin usually lives (informational)
    pitch_bend_range = 2.0                   # semitones of a full MIDI pitch-wheel swing
    cc_config = "amsynth"                    # optional: write amsynth's MIDI-CC file from the map's `cc`s

    [params."VCF1: Frequency"]               # one of our control names
    param = "filter_cutoff"                  # the plugin's parameter name (or `index = 11`)
    law = "exp"                              # how our value becomes the plugin's normalized value
    ...
    cc = 74                                  # optional: send changes as this MIDI CC (7-bit)

    ignore = ["LFO1: Phase"]                 # (top level) our controls this plugin does not have
    [defaults]                               # plugin parameter name -> normalized value (the base patch)

Laws (v: our normalized value, x: our physical value from the control space's mapping,
n: the plugin's normalized value, clipped to [0, 1]):
    normalized   n = v, or n = a + v (b - a) with `range = [a, b]`   (DIVA: our units are DIVA's)
    linear       x = lo + n (hi - lo)                                  (plugin's display law)
    power        x = offset + scale * n ** exponent
    exp          x = mult * base ** (lo + n (hi - lo))
    table        `table = [[x, n], ...]`, piecewise linear in x (a measured curve)

Controls reach the plugin three ways: the value at t = 0 (patch, defaults, events at sample 0)
with `set_parameter`; later changes as DawDreamer audio-rate automation (for parameters the plugin
declares automatable; DawDreamer applies them at the start of each block of `block_size`
samples, so a change takes effect from the start of the block that contains it - before a
note-on in that block, as latched controls need); or as MIDI CCs where the map gives `cc`
(plugins such as amsynth that declare no parameter automatable). Notes and pitch bends go in a
MIDI buffer with one tick per sample (sample-accurate).

Each render uses a fresh engine by default (loading amsynth takes 0.1-0.8 s here), so the same
events give the same audio. `reuse_engine=True` keeps one engine (a 2 s melody then renders in
~25 ms) at the price of reproducibility: voice, filter and LFO state carry over between renders
(measured with amsynth: a fresh engine is bit-reproducible, a reused one is not).
"""
from __future__ import annotations

import math
import os
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event, sorted_events
from rtmirror.synth.base import event_sample, n_samples
from rtmirror.synth.builtin import DEFAULTS, control_mapping

LAWS = ("normalized", "linear", "power", "exp", "table")
SILENCE_PEAK = 1e-4          # a test note quieter than this (peak) means the plugin makes no sound
SHIPPED_MAPS = ("diva", "amsynth")


class PluginError(RuntimeError):
    """The plugin cannot be loaded or does not behave like an instrument."""


# ------------------------------------------------------------------------------------------
# The parameter map
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamRule:
    control: str            # our control name
    param: str | None       # plugin parameter name
    index: int | None       # plugin parameter index
    law: str
    args: dict
    cc: int | None


@dataclass(frozen=True)
class ParamMap:
    name: str
    rules: dict             # control name -> ParamRule
    defaults: dict          # plugin parameter name (or "#index") -> normalized value
    ignore: tuple           # our controls the plugin does not have
    pitch_bend_range: float
    cc_config: str | None
    source: str

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "ParamMap":
        plugin = d.get("plugin", {})
        rules = {}
        for control, spec in d.get("params", {}).items():
            spec = dict(spec)
            param = spec.pop("param", None)
            index = spec.pop("index", None)
            law = spec.pop("law", "normalized")
            cc = spec.pop("cc", None)
            if param is None and index is None:
                raise ValueError(f"{source}: params.{control!r} needs `param` (name) or `index`")
            if law not in LAWS:
                raise ValueError(f"{source}: params.{control!r}: law must be one of {LAWS}, got {law!r}")
            if cc is not None and not (0 <= int(cc) <= 119):
                raise ValueError(f"{source}: params.{control!r}: cc must be 0..119")
            _check_law_args(control, law, spec, source)
            rules[control] = ParamRule(control, param, None if index is None else int(index), law, spec,
                                       None if cc is None else int(cc))
        defaults = {}
        for k, v in d.get("defaults", {}).items():
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"{source}: defaults.{k!r} = {v!r} is not a normalized value in [0, 1]")
            defaults[k] = float(v)
        return cls(name=str(plugin.get("name", Path(source).stem)), rules=rules, defaults=defaults,
                   ignore=tuple(d.get("ignore", ())), pitch_bend_range=float(plugin.get("pitch_bend_range", 2.0)),
                   cc_config=plugin.get("cc_config"), source=source)

    @classmethod
    def load(cls, spec: "str | Path | dict | ParamMap") -> "ParamMap":
        """A shipped map by name ("diva", "amsynth"), a TOML path, a dict, or a ParamMap."""
        if isinstance(spec, ParamMap):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        spec = str(spec)
        if spec in SHIPPED_MAPS:
            text = resources.files("rtmirror.resources").joinpath("synth_maps", f"{spec}.toml").read_text()
            return cls.from_dict(tomllib.loads(text), source=f"synth_maps/{spec}.toml")
        p = Path(spec)
        if not p.is_file():
            raise FileNotFoundError(f"parameter map not found: {spec} (shipped maps: {', '.join(SHIPPED_MAPS)})")
        try:
            return cls.from_dict(tomllib.loads(p.read_text()), source=str(p))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"parameter map {p}: invalid TOML ({exc})") from None


def _check_law_args(control: str, law: str, a: dict, source: str) -> None:
    need = {"normalized": (), "linear": ("lo", "hi"), "power": ("scale", "exponent"),
            "exp": ("mult", "base", "lo", "hi"), "table": ("table",)}[law]
    missing = [k for k in need if k not in a]
    if missing:
        raise ValueError(f"{source}: params.{control!r} (law {law}) is missing {missing}")
    if law == "table":
        t = np.asarray(a["table"], dtype=float)
        if t.ndim != 2 or t.shape[1] != 2 or len(t) < 2 or np.any(np.diff(t[:, 0]) <= 0):
            raise ValueError(f"{source}: params.{control!r}: table must be [[x, n], ...] with increasing x")


def default_map_for(path: str) -> str:
    """The shipped map whose name the plugin file carries (amsynth_vst.so -> amsynth, Diva.vst3 -> diva)."""
    stem = Path(path).name.lower()
    for name in SHIPPED_MAPS:
        if name in stem:
            return name
    raise ValueError(f"no shipped parameter map for {Path(path).name}: pass one (--map FILE.toml); "
                     f"shipped: {', '.join(SHIPPED_MAPS)}")


def plugin_value(rule: ParamRule, v: float, space: ControlSpace) -> float:
    """Our normalized value v of rule.control -> the plugin's normalized value, in [0, 1]."""
    a = rule.args
    if rule.law == "normalized":
        lo, hi = a.get("range", (0.0, 1.0))
        n = lo + v * (hi - lo)
    else:
        x = float(control_mapping(rule.control, space).to_physical(v))
        if rule.law == "linear":
            n = (x - a["lo"]) / (a["hi"] - a["lo"])
        elif rule.law == "power":
            r = max(0.0, (x - a.get("offset", 0.0)) / a["scale"])
            n = r ** (1.0 / a["exponent"])
        elif rule.law == "exp":
            n = (math.log(max(x, 1e-30) / a["mult"]) / math.log(a["base"]) - a["lo"]) / (a["hi"] - a["lo"])
        else:
            t = np.asarray(a["table"], dtype=float)
            n = float(np.interp(x, t[:, 0], t[:, 1]))
    return min(1.0, max(0.0, float(n)))


# ------------------------------------------------------------------------------------------
# The synth
# ------------------------------------------------------------------------------------------
def _import_dawdreamer():
    try:
        import dawdreamer
    except ImportError as exc:
        raise PluginError(f"plugins need DawDreamer: pip install 'rtmirror[train]' ({exc})") from None
    return dawdreamer


class PluginSynth:
    """A VST instrument through DawDreamer. `render(events, duration_s) -> (n,) float32` at sample_rate.

    The plugin runs at `render_rate` (default max(sample_rate, 44100): plugins are made for
    audio rates) and its output is resampled (soxr, offline, delay-compensated) to sample_rate.
    """

    def __init__(self, path: str | Path, space: ControlSpace, param_map="amsynth", sample_rate: int = 44100,
                 block_size: int = 64, render_rate: int | None = None, check_sound: bool = True,
                 reuse_engine: bool = False):
        self.path = str(path)
        self.space = space
        self.sample_rate = int(sample_rate)
        self.render_rate = int(render_rate or max(self.sample_rate, 44100))
        self.block_size = int(block_size)
        self.map = ParamMap.load(param_map)
        self.reuse_engine = bool(reuse_engine)
        self._engine = None
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"plugin not found: {self.path}")
        if not self.path.lower().endswith((".so", ".vst3", ".dll", ".vst")):
            raise PluginError(f"not a plugin file (expected .so/.vst3/.dll/.vst): {self.path}")
        self._tmp = tempfile.TemporaryDirectory(prefix="rtmirror-plugin-")
        self._dd = _import_dawdreamer()
        engine, proc = self._new_engine()
        self._describe(proc)
        self._resolve()
        self._base_values = self._static_values()
        if check_sound:
            y = self.render([Event(0.0, NOTE_ON, note=60, velocity=100), Event(0.4, NOTE_OFF, note=60)], 0.5)
            if not np.max(np.abs(y)) > SILENCE_PEAK:
                raise PluginError(f"plugin {self.path} rendered silence for a test note (C4, velocity 100) with "
                                  f"map {self.map.source}: is it an instrument, and does the patch make sound?")

    # -- loading and validation ------------------------------------------------------------
    def _env(self) -> None:
        # amsynth (and other Linux plugins) write settings under XDG dirs: keep them private and writable
        data = os.path.join(self._tmp.name, "data")
        config = os.path.join(self._tmp.name, "config")
        os.makedirs(data, exist_ok=True)
        os.makedirs(config, exist_ok=True)
        os.environ["XDG_DATA_HOME"] = data
        os.environ["XDG_CONFIG_HOME"] = config

    def _new_engine(self):
        self._env()
        engine = self._dd.RenderEngine(self.render_rate, self.block_size)
        try:
            proc = engine.make_plugin_processor("synth", self.path)
        except Exception as exc:   # DawDreamer raises a bare RuntimeError/Exception
            raise PluginError(f"DawDreamer could not load {self.path} as a plugin: {exc}") from None
        if proc is None or proc.get_num_output_channels() < 1:
            raise PluginError(f"{self.path} loaded but has no audio outputs: not an instrument")
        return engine, proc

    def _describe(self, proc) -> None:
        desc = proc.get_parameters_description()
        self.param_names = [d["name"] for d in desc]
        self._automatable = [bool(d.get("isAutomatable", True)) for d in desc]
        self._by_name = {name: i for i, name in enumerate(self.param_names)}

    def _index(self, name: str | None, index: int | None, where: str) -> int:
        if name is not None:
            if name not in self._by_name:
                near = [p for p in self.param_names if name.split(":")[0].lower() in p.lower()][:8]
                raise ValueError(f"map {self.map.source}: {where} names plugin parameter {name!r}, which "
                                 f"{Path(self.path).name} does not have (similar: {near or self.param_names[:8]})")
            i = self._by_name[name]
            if index is not None and index != i:
                raise ValueError(f"map {self.map.source}: {where}: parameter {name!r} is index {i}, "
                                 f"the map says {index}")
            return i
        if not 0 <= index < len(self.param_names):
            raise ValueError(f"map {self.map.source}: {where}: index {index} out of range "
                             f"(plugin has {len(self.param_names)} parameters)")
        return index

    def _resolve(self) -> None:
        self._rule_index = {c: self._index(r.param, r.index, f"params.{c!r}") for c, r in self.map.rules.items()}
        self._default_index = {k: self._index(None, int(k[1:]), f"defaults.{k!r}") if k.startswith("#")
                               else self._index(k, None, f"defaults.{k!r}") for k in self.map.defaults}
        for c in self.space.knobs:
            if c.name not in self.map.rules and c.name not in self.map.ignore:
                raise ValueError(f"map {self.map.source} does not map control {c.name!r} of space "
                                 f"{self.space.name!r} (map it, or list it in `ignore`)")
        for name in self.space.patch:
            if name not in self.map.rules and name not in self.map.ignore:
                raise ValueError(f"map {self.map.source} does not map patch value {name!r} of space "
                                 f"{self.space.name!r} (map it, or list it in `ignore`)")
        if self.map.cc_config == "amsynth":
            self._write_amsynth_controllers()

    def _write_amsynth_controllers(self) -> None:
        """amsynth reads CC -> parameter assignments from $XDG_CONFIG_HOME/amsynth/controllers
        (128 lines, a parameter name or "null"); no amsynth parameter is host-automatable."""
        lines = ["null"] * 128
        for c, r in self.map.rules.items():
            if r.cc is not None:
                lines[r.cc] = self.param_names[self._rule_index[c]]
        d = os.path.join(self._tmp.name, "config", "amsynth")
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, "controllers.tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(d, "controllers"))

    def _static_values(self) -> dict:
        """Plugin index -> normalized value before any event: rtmirror's documented defaults of the
        mapped controls (the built-in voice's DEFAULTS), then the map's [defaults] (the plugin's
        base patch wins), then the control space's patch."""
        values = {self._rule_index[name]: plugin_value(rule, DEFAULTS[name], self.space)
                  for name, rule in self.map.rules.items() if name in DEFAULTS}
        values.update({self._default_index[k]: v for k, v in self.map.defaults.items()})
        for name, v in self.space.patch.items():
            if name in self.map.rules:
                values[self._rule_index[name]] = plugin_value(self.map.rules[name], float(v), self.space)
        return values

    # -- rendering ----------------------------------------------------------------------------
    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        n_out = n_samples(duration_s, self.sample_rate)
        sr = self.render_rate
        n = n_samples(duration_s, sr)
        if n == 0:
            return np.zeros(n_out, dtype=np.float32)
        values = dict(self._base_values)
        changes: dict[int, list[tuple[int, float]]] = {}    # plugin index -> [(sample, value)]
        midi: list[tuple[int, int, object]] = []           # (sample, order, message)
        for ev in sorted_events(events):
            if not math.isfinite(ev.time):
                raise ValueError(f"event time must be finite: {ev}")
            s = event_sample(ev.time, sr)
            if s >= n:
                continue
            if ev.kind == CONTROL:
                if ev.name in self.map.ignore:
                    continue
                if ev.name not in self.map.rules:
                    raise ValueError(f"plugin map {self.map.source} has no control {ev.name!r}")
                if not math.isfinite(ev.value):
                    raise ValueError(f"control value must be finite: {ev}")
                i = self._rule_index[ev.name]
                value = plugin_value(self.map.rules[ev.name], ev.value, self.space)
                if s == 0:
                    values[i] = value
                else:
                    changes.setdefault(i, []).append((s, value))
            elif ev.kind in (NOTE_ON, NOTE_OFF, PITCH_BEND):
                midi.append((s, ev))
            else:
                raise ValueError(f"unknown event kind {ev.kind!r}")

        if self.reuse_engine:
            # faster (no plugin load per render) but voice/filter/LFO state carries over between renders
            if self._engine is None:
                self._engine = self._new_engine()
            engine, proc = self._engine
        else:
            engine, proc = self._new_engine()
        for i, v in values.items():
            proc.set_parameter(i, v)
        cc_messages = []
        for i, ch in changes.items():
            rule = next(r for c, r in self.map.rules.items() if self._rule_index[c] == i)
            if rule.cc is not None:
                cc_messages += [(s, ("cc", rule.cc, int(round(v * 127)))) for s, v in ch]
            elif self._automatable[i]:
                proc.set_automation(i, automation_curve(values.get(i, proc.get_parameter(i)), ch, n,
                                                         self.block_size))
            else:
                raise PluginError(f"{Path(self.path).name}: parameter {self.param_names[i]!r} is not "
                                  f"host-automatable; give {rule.control!r} a `cc` in the map")
        self._load_midi(proc, midi, cc_messages)
        engine.load_graph([(proc, [])])
        engine.render(n / sr)
        audio = np.asarray(engine.get_audio(), dtype=np.float32)     # (channels, samples)
        y = audio.mean(axis=0) if audio.ndim == 2 else audio
        y = _fit(y, n)
        if self.sample_rate != sr:
            import soxr
            y = _fit(soxr.resample(y, sr, self.sample_rate).astype(np.float32), n_out)
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(y, -1.0, 1.0).astype(np.float32)


    def _load_midi(self, proc, notes: list, ccs: list) -> None:
        """Notes, pitch bends and CCs as a MIDI file with one tick per sample (DawDreamer reads
        non-note events only from files)."""
        import mido
        sr = self.render_rate
        tempo_us = 500_000
        tpb = sr // 2
        while tpb > 32767:            # MIDI ticks-per-beat is 15 bits: shorten the beat instead
            tpb //= 2
            tempo_us //= 2
        # tick = sample when tpb / (tempo_us * 1e-6) == sr
        msgs = []
        for s, msg in ccs:
            _, cc, val = msg
            msgs.append((s, 0, mido.Message("control_change", control=cc, value=min(127, max(0, val)))))
        for s, ev in notes:
            if ev.kind == PITCH_BEND:
                pw = int(round(ev.value / self.map.pitch_bend_range * 8191))
                msgs.append((s, 1, mido.Message("pitchwheel", pitch=min(8191, max(-8192, pw)))))
            elif ev.kind == NOTE_OFF or ev.velocity <= 0:
                msgs.append((s, 2, mido.Message("note_off", note=min(127, max(0, ev.note)), velocity=0)))
            else:
                msgs.append((s, 3, mido.Message("note_on", note=min(127, max(0, ev.note)),
                                                velocity=min(127, max(1, ev.velocity)))))
        msgs.sort(key=lambda m: (m[0], m[1]))
        mf = mido.MidiFile(ticks_per_beat=tpb)
        track = mido.MidiTrack()
        mf.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=tempo_us, time=0))
        last = 0
        scale = tpb / (tempo_us * 1e-6) / sr          # ticks per sample (1 when sr is even)
        for s, _, m in msgs:
            tick = int(round(s * scale))
            track.append(m.copy(time=tick - last))
            last = tick
        path = os.path.join(self._tmp.name, "events.mid")
        mf.save(path)
        proc.load_midi(path, clear_previous=True, beats=False, all_events=True)

    def __repr__(self) -> str:
        return (f"PluginSynth({Path(self.path).name!r}, map={self.map.name!r}, space={self.space.name!r}, "
                f"sample_rate={self.sample_rate}, render_rate={self.render_rate})")


def automation_curve(start: float, changes: list[tuple[int, float]], n: int, block_size: int) -> np.ndarray:
    """Step curve (n,) of normalized values for DawDreamer, which samples automation at the start of
    each block: a change at sample s acts from the start of the block containing s (so a latched
    control sent with a note-on in that block is in place before the note)."""
    a = np.full(n, start, dtype=np.float64)
    for s, v in sorted(changes):
        a[(s // block_size) * block_size:] = v
    return a


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to exactly n samples."""
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])
