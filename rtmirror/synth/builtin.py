"""The built-in voice: a monophonic subtractive voice with DIVA's architecture for the controlled subset.

    OSC 2 saw (PolyBLEP) -> 4-pole ladder low-pass (VCF1) -> VCA (ENV1 x velocity x OSC: Volume2)
    LFO1 (sine) -> oscillator pitch (OSC: Vibrato semitones), pitch bend in semitones.

It follows DIVA's control names, ranges and signal flow; it is not DIVA's sound (docs/SYNTHS.md).
Normalized control values become physical units through the control space's mappings
(rtmirror/resources/control_sets.toml); the kernel below only sees Hz, seconds and levels.

Timing is sample-accurate: an event at time t acts at sample round(t * sr), before that sample
is computed. Each render starts from silence with fresh state, so it is deterministic.
"""
from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources

import numpy as np
from numba import njit

from rtmirror.controls import Control, ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event, sorted_events
from rtmirror.synth.base import event_sample, n_samples

# Kernel parameter slots (physical units). Order = PARAM_NAMES.
VOLUME, CUTOFF, RESONANCE, ATTACK, DECAY, SUSTAIN, RELEASE, LFO_RATE, VIBRATO, LFO_PHASE = range(10)
PARAM_NAMES = ("OSC: Volume2", "VCF1: Frequency", "VCF1: Resonance", "ENV1: Attack", "ENV1: Decay",
               "ENV1: Sustain", "ENV1: Release", "LFO1: Rate", "OSC: Vibrato", "LFO1: Phase")

# Normalized defaults for controls that neither an event nor the space's patch sets:
# DIVA's base patch as the MirrorNet reference implementation ships it (Siriwardena et al.,
# arXiv 2110.05695; its diva base patch file) for these parameters.
DEFAULTS = {
    "OSC: Volume2": 1.0, "VCF1: Frequency": 0.5833333333333334, "VCF1: Resonance": 0.0,
    "ENV1: Attack": 0.01, "ENV1: Decay": 0.5, "ENV1: Sustain": 1.0, "ENV1: Release": 0.2,
    "LFO1: Rate": 0.5, "OSC: Vibrato": 0.0, "LFO1: Phase": 0.0,
}

# Mappings for the two ENV1 parameters that no shipped control set declares (they are patch
# values): sustain is a linear level, release uses the attack/decay time curve.
_OWN_MAPPINGS = {
    "ENV1: Sustain": Control("ENV1: Sustain", lo=0.0, hi=1.0, unit="level"),
    "ENV1: Release": Control("ENV1: Release", curve="exp", lo=0.001, hi=16.384, unit="s"),
}

RESONANCE_K = 3.9          # ladder feedback k = 3.9 * resonance (self-oscillation starts at k = 4)
FILTER_DRIVE = 0.25        # saw (+-1) scaled into the ladder's saturating input stage
OUTPUT_GAIN = 2.0
SMOOTH_S = 0.003           # one-pole smoothing of gain / cutoff / resonance jumps (de-click)
CUTOFF_MAX_FRACTION = 0.45  # cutoff clamped below Nyquist: fc <= 0.45 * sr
RELEASE_FLOOR = 1e-5       # envelope level (-100 dB) at which a released voice goes idle
CONTROL_RATE = 4000.0      # Hz: vibrato pitch and filter-coefficient smoothing update rate

_EV_CONTROL, _EV_NOTE_ON, _EV_NOTE_OFF, _EV_BEND = 0, 1, 2, 3


@lru_cache(maxsize=1)
def _shipped_controls() -> dict[str, Control]:
    """Declared controls of the shipped control_sets.toml, by name (for patch values outside a set)."""
    data = tomllib.loads(resources.files("rtmirror.resources").joinpath("control_sets.toml").read_text())
    out = {}
    for name, fields in data.get("controls", {}).items():
        if fields.get("role", "knob") == "knob":
            out[name] = Control(name=name, **fields)
    return out


def control_mapping(name: str, space: ControlSpace) -> Control:
    """The normalized -> physical mapping the voice uses for `name`: the space's own declaration,
    else the shipped declaration, else the voice's own (ENV1: Sustain / Release)."""
    if name in space.names:
        return space[name]
    shipped = _shipped_controls()
    if name in shipped:
        return shipped[name]
    return _OWN_MAPPINGS[name]


# ------------------------------------------------------------------------------------------
# The kernel
# ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _poly_blep(t, dt):
    """Two-sample polynomial band-limited step residual at a saw's wrap (t: phase in [0, 1))."""
    if t < dt:
        t = t / dt
        return t + t - t * t - 1.0
    if t > 1.0 - dt:
        t = (t - 1.0) / dt
        return t * t + t + t + 1.0
    return 0.0


@njit(cache=True, nogil=True, inline="always")
def _saturate(x):
    """Cubic soft clip x - 4/27 x^3 (slope 1 at 0, +-1 with zero slope beyond |x| = 1.5); bounds
    the ladder's feedback loop like tanh does, without a division on the critical path."""
    if x > 1.5:
        return 1.0
    if x < -1.5:
        return -1.0
    return x - 0.14814814814814814 * x * x * x


@njit(cache=True, nogil=True, inline="always")
def _cutoff_G(fc, sr):
    """TPT one-pole gain G = g / (1 + g), g = tan(pi fc / sr), fc clamped to (0, 0.45 sr]."""
    fc = min(max(fc, 1.0), CUTOFF_MAX_FRACTION * sr)
    g = math.tan(math.pi * fc / sr)
    return g / (1.0 + g)


@njit(cache=True, nogil=True, fastmath={"contract", "arcp"})
def render_kernel(out, ev_pos, ev_kind, ev_a, ev_b, init, sr):
    """Fill out (n,) float32. Events (sorted) act at sample ev_pos before it is computed.

    ev_kind: 0 control (ev_a = param slot, ev_b = physical value), 1 note-on (ev_a = note,
    ev_b = velocity 1..127), 2 note-off (ev_a = note), 3 pitch bend (ev_b = semitones).
    init: (10,) physical parameter values at t = 0.
    """
    n = out.shape[0]
    m = ev_pos.shape[0]
    p = init.copy()
    smooth = 1.0 - math.exp(-1.0 / (SMOOTH_S * sr))

    # targets and their smoothed values
    velocity_gain = 1.0
    gain_t = p[VOLUME] * velocity_gain
    G_t = _cutoff_G(p[CUTOFF], sr)
    k_t = RESONANCE_K * p[RESONANCE]
    gain_s = gain_t
    G_s = G_t
    k_s = k_t

    note = -1
    bend = 0.0
    stage = 0              # 0 idle, 1 attack, 2 decay/sustain, 3 release
    env = 0.0
    att_rate = 1.0
    dec_coef = 0.0
    rel_coef = 0.0
    phase = 0.0
    lfo_phase = 0.0
    lfo_inc = p[LFO_RATE] / sr
    last_pitch = -1e9
    inc = 0.0
    ctl_step = max(1, int(round(sr / CONTROL_RATE)))
    ctl_count = 0              # samples until the next control-rate update
    smooth_ctl = 1.0 - (1.0 - smooth) ** ctl_step
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    two_pi = 2.0 * math.pi
    coef_stale = True          # filter coefficients (derived from G_s, k_s) need computing
    G = 0.0
    b = 0.0
    G4 = 0.0
    c1 = 0.0
    c2 = 0.0
    c3 = 0.0
    inv_den = 1.0

    ei = 0
    for i in range(n):
        while ei < m and ev_pos[ei] <= i:
            ctl_count = 0          # any event may change pitch, bend, vibrato, LFO phase, filter
            kind = ev_kind[ei]
            if kind == _EV_CONTROL:
                slot = int(ev_a[ei])
                p[slot] = ev_b[ei]
                if slot == VOLUME:
                    gain_t = p[VOLUME] * velocity_gain
                elif slot == CUTOFF:
                    G_t = _cutoff_G(p[CUTOFF], sr)
                elif slot == RESONANCE:
                    k_t = RESONANCE_K * p[RESONANCE]
                elif slot == LFO_RATE:
                    lfo_inc = p[LFO_RATE] / sr
            elif kind == _EV_NOTE_ON:
                note = int(ev_a[ei])
                velocity_gain = ev_b[ei] / 127.0
                gain_t = p[VOLUME] * velocity_gain
                # ENV1 attack/decay and the LFO phase are latched here (DIVA reads them at note-on)
                att_rate = 1.0 / max(p[ATTACK] * sr, 1.0)
                dec_coef = math.exp(-1.0 / max(p[DECAY] * sr, 1.0))
                lfo_phase = (p[LFO_PHASE] / 360.0) % 1.0
                if stage == 0:
                    # from silence: fresh oscillator, filter and smoothers (nothing to de-click)
                    phase = 0.25
                    s1 = 0.0
                    s2 = 0.0
                    s3 = 0.0
                    s4 = 0.0
                    gain_s = gain_t
                    G_s = G_t
                    k_s = k_t
                    coef_stale = True
                # a retrigger restarts the attack from the current level: no discontinuity
                stage = 1
            elif kind == _EV_NOTE_OFF:
                if int(ev_a[ei]) == note and (stage == 1 or stage == 2):
                    stage = 3
                    rel_coef = math.exp(-1.0 / max(p[RELEASE] * sr, 1.0))
            else:
                bend = ev_b[ei]
            ei += 1

        lfo_phase += lfo_inc
        if lfo_phase >= 1.0:
            lfo_phase -= 1.0
        if stage == 0:
            out[i] = 0.0
            continue

        # ENV1: linear attack to 1 in T; decay to sustain / release to 0 exponential with time
        # constant T (an analog RC envelope: 1/e of the way after T, -60 dB after 6.9 T)
        if stage == 1:
            env += att_rate
            if env >= 1.0:
                env = 1.0
                stage = 2
        elif stage == 2:
            env = p[SUSTAIN] + (env - p[SUSTAIN]) * dec_coef
        else:
            env *= rel_coef
            if env < RELEASE_FLOOR:
                env = 0.0
                stage = 0
                note = -1
                out[i] = 0.0
                continue

        # control rate (~4 kHz, every ctl_step samples, and at every event): pitch with vibrato
        # (LFO1 sine, OSC: Vibrato semitones peak; <= 0.13 semitone steps at 40 Hz / 2 semitones)
        # and the smoothed filter coefficients
        ctl_count -= 1
        if ctl_count <= 0:
            ctl_count = ctl_step
            pitch = note + bend
            if p[VIBRATO] != 0.0:
                pitch += p[VIBRATO] * math.sin(two_pi * lfo_phase)
            if pitch != last_pitch:
                last_pitch = pitch
                inc = min(440.0 * 2.0 ** ((pitch - 69.0) / 12.0) / sr, 0.45)
            if G_s != G_t or k_s != k_t or coef_stale:
                G_s += (G_t - G_s) * smooth_ctl
                k_s += (k_t - k_s) * smooth_ctl
                if abs(G_t - G_s) < 1e-7 * G_t:
                    G_s = G_t
                if abs(k_t - k_s) < 1e-7:
                    k_s = k_t
                G = G_s
                b = 1.0 - G
                G2 = G * G
                G4 = G2 * G2
                c1 = G2 * G * b
                c2 = G2 * b
                c3 = G * b
                inv_den = 1.0 / (1.0 + k_s * G4)
                coef_stale = False

        # OSC 2: PolyBLEP saw, phase in [0, 1)
        x = FILTER_DRIVE * (2.0 * phase - 1.0 - _poly_blep(phase, inc))
        phase += inc
        if phase >= 1.0:
            phase -= 1.0

        # de-click smoothing of the output gain (per sample: amplitude steps would buzz)
        gain_s += (gain_t - gain_s) * smooth

        # VCF1: zero-delay-feedback (TPT) 4-pole ladder, saturating input stage
        S = c1 * s1 + c2 * s2 + c3 * s3 + b * s4
        y4 = (G4 * x + S) * inv_den
        u = _saturate(x - k_s * y4)
        v = (u - s1) * G
        y1 = v + s1
        s1 = y1 + v
        v = (y1 - s2) * G
        y2 = v + s2
        s2 = y2 + v
        v = (y2 - s3) * G
        y3 = v + s3
        s3 = y3 + v
        v = (y3 - s4) * G
        y = v + s4
        s4 = y + v
        if not (abs(y) < 1e3):       # catches NaN/Inf too: never let bad state poison the voice
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            y = 0.0

        o = OUTPUT_GAIN * y * env * gain_s
        out[i] = min(1.0, max(-1.0, o))


# ------------------------------------------------------------------------------------------
# The Synth
# ------------------------------------------------------------------------------------------
class BuiltinVoice:
    """The embedded default synth (Numba). `render(events, duration_s) -> (n,) float32`."""

    def __init__(self, space: ControlSpace, sample_rate: int = 8000):
        sample_rate = int(sample_rate)
        if not 1000 <= sample_rate <= 384000:
            raise ValueError(f"sample_rate must be 1000..384000 Hz, got {sample_rate}")
        self.space = space
        self.sample_rate = sample_rate
        self._slots = {name: i for i, name in enumerate(PARAM_NAMES)}
        self._maps = [control_mapping(name, space) for name in PARAM_NAMES]
        for name in space.patch:
            if name not in self._slots:
                raise ValueError(f"built-in voice: patch names {name!r}, which it does not have "
                                 f"(it has {list(PARAM_NAMES)})")
        for c in space.knobs:
            if c.name not in self._slots:
                raise ValueError(f"built-in voice: control space {space.name!r} has knob {c.name!r}, "
                                 f"which it does not have (it has {list(PARAM_NAMES)})")

    def physical(self, name: str, value: float) -> float:
        """Normalized value of one of the voice's controls -> the physical value the kernel uses."""
        return float(self._maps[self._slots[name]].to_physical(float(value)))

    def initial_params(self) -> np.ndarray:
        """(10,) physical values at t = 0: the space's patch, else DEFAULTS."""
        return np.array([self.physical(name, self.space.patch.get(name, DEFAULTS[name]))
                         for name in PARAM_NAMES], dtype=np.float64)

    def encode_events(self, events: list[Event], n: int):
        """Events -> kernel arrays (pos, kind, a, b); events at or after sample n are dropped."""
        pos, kind, a, b = [], [], [], []
        for ev in sorted_events(events):
            if not math.isfinite(ev.time):
                raise ValueError(f"event time must be finite: {ev}")
            s = event_sample(ev.time, self.sample_rate)
            if s >= n:
                continue
            if ev.kind == CONTROL:
                if ev.name not in self._slots:
                    raise ValueError(f"built-in voice has no control {ev.name!r} (it has {list(PARAM_NAMES)})")
                if not math.isfinite(ev.value):
                    raise ValueError(f"control value must be finite: {ev}")
                pos.append(s); kind.append(_EV_CONTROL)
                a.append(self._slots[ev.name]); b.append(self.physical(ev.name, ev.value))
            elif ev.kind == NOTE_ON:
                note = min(127, max(0, int(ev.note)))
                vel = min(127, max(0, int(ev.velocity)))
                pos.append(s); kind.append(_EV_NOTE_ON if vel > 0 else _EV_NOTE_OFF)  # MIDI: vel 0 = off
                a.append(note); b.append(vel)
            elif ev.kind == NOTE_OFF:
                pos.append(s); kind.append(_EV_NOTE_OFF)
                a.append(min(127, max(0, int(ev.note)))); b.append(0.0)
            elif ev.kind == PITCH_BEND:
                if not math.isfinite(ev.value):
                    raise ValueError(f"pitch bend must be finite: {ev}")
                pos.append(s); kind.append(_EV_BEND)
                a.append(0.0); b.append(min(48.0, max(-48.0, float(ev.value))))
            else:
                raise ValueError(f"unknown event kind {ev.kind!r}")
        return (np.asarray(pos, dtype=np.int64), np.asarray(kind, dtype=np.int64),
                np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))

    def render(self, events: list[Event], duration_s: float) -> np.ndarray:
        n = n_samples(duration_s, self.sample_rate)
        out = np.zeros(n, dtype=np.float32)
        pos, kind, a, b = self.encode_events(events, n)
        render_kernel(out, pos, kind, a, b, self.initial_params(), float(self.sample_rate))
        return out

    def __repr__(self) -> str:
        return f"BuiltinVoice(space={self.space.name!r}, sample_rate={self.sample_rate})"
