"""The built-in voice: its mappings measured on the rendered audio, timing, safety, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import hilbert

from rtmirror.controls import ControlSpace
from rtmirror.events import CONTROL, NOTE_OFF, NOTE_ON, PITCH_BEND, Event
from rtmirror.synth import BuiltinVoice, Synth, make_synth
from rtmirror.synth.builtin import DEFAULTS, PARAM_NAMES, control_mapping

SR = 16000


def ctl(t, name, v):
    return Event(t, CONTROL, name=name, value=v)


def on(t, note, vel=127):
    return Event(t, NOTE_ON, note=note, velocity=vel)


def off(t, note):
    return Event(t, NOTE_OFF, note=note)


@pytest.fixture(scope="module")
def exp2():
    return ControlSpace.load("exp2")


@pytest.fixture(scope="module")
def voice(exp2):
    return BuiltinVoice(exp2, sample_rate=SR)


def envelope(y, f0, sr=SR):
    """Amplitude envelope of a near-sinusoidal signal: |analytic signal| averaged over one period."""
    env = np.abs(hilbert(y.astype(np.float64)))
    w = max(1, int(round(sr / f0)))
    return np.convolve(env, np.ones(w) / w, mode="same")


def crossing(env, level, start=0):
    """First index >= start where env reaches level, linearly interpolated (fractional samples)."""
    i = start + int(np.argmax(env[start:] >= level))
    if i == 0 or env[i - 1] >= level:
        return float(i)
    return i - 1 + (level - env[i - 1]) / (env[i] - env[i - 1])


def midi_hz(note):
    return 440.0 * 2 ** ((note - 69) / 12)


# A near-sine test tone: MIDI 84 (1047 Hz) through a ~2.5 kHz cutoff (its 2nd harmonic ~-24 dB).
TONE_NOTE = 84
TONE_CUTOFF = math.log(2500 / 20) / math.log(1000)


def test_is_a_synth_with_the_contract(voice):
    assert isinstance(voice, Synth)
    y = voice.render([on(0.0, 60)], 0.5)
    assert y.dtype == np.float32 and y.shape == (round(0.5 * SR),)
    assert make_synth("builtin", voice.space).sample_rate == 8000
    with pytest.raises(ValueError, match="unknown synth"):
        make_synth("casio", voice.space)


def test_loud_note_has_a_sensible_level():
    v = BuiltinVoice(ControlSpace.load("live"), sample_rate=SR)
    y = v.render([ctl(0, "OSC: Volume2", 1.0), ctl(0, "VCF1: Frequency", 0.8), on(0.0, 60)], 1.0)
    rms = float(np.sqrt(np.mean(y[SR // 4:].astype(np.float64) ** 2)))
    assert 0.1 <= rms <= 0.5
    assert np.max(np.abs(y)) <= 1.0


def test_higher_cutoff_raises_the_spectral_centroid(voice):
    centroids = []
    for v in np.linspace(0.15, 0.85, 8):
        y = voice.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "VCF1: Frequency", v), on(0.0, 48)], 0.5)
        seg = y[SR // 10:].astype(np.float64) * np.hanning(len(y) - SR // 10)
        p = np.abs(np.fft.rfft(seg)) ** 2
        f = np.fft.rfftfreq(len(seg), 1 / SR)
        centroids.append(float((p * f).sum() / p.sum()))
    assert np.all(np.diff(centroids) > 0), centroids


@pytest.mark.parametrize("attack_v", [0.2, 0.3, 0.4, 0.5])
def test_attack_time_follows_the_mapping(voice, attack_v):
    attack_s = float(control_mapping("ENV1: Attack", voice.space).to_physical(attack_v))
    y = voice.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "ENV1: Attack", attack_v),
                      ctl(0, "VCF1: Frequency", TONE_CUTOFF), on(0.01, TONE_NOTE)], 0.1 + 2 * attack_s)
    env = envelope(y, midi_hz(TONE_NOTE))
    peak = np.median(env[int((0.01 + 1.2 * attack_s) * SR):-SR // 20])   # the sustained level, away from the ends
    t10 = crossing(env, 0.1 * peak)
    t90 = crossing(env, 0.9 * peak)
    measured = (t90 - t10) / SR
    expected = 0.8 * attack_s          # linear attack: 10 % -> 90 % of the way takes 0.8 T
    assert measured == pytest.approx(expected, rel=0.1, abs=0.001)


@pytest.mark.parametrize("decay_v", [0.3, 0.4, 0.5])
def test_decay_time_follows_the_mapping(voice, decay_v):
    decay_s = float(control_mapping("ENV1: Decay", voice.space).to_physical(decay_v))
    y = voice.render([ctl(0, "ENV1: Sustain", 0.0), ctl(0, "ENV1: Attack", 0.0), ctl(0, "ENV1: Decay", decay_v),
                      ctl(0, "VCF1: Frequency", TONE_CUTOFF), on(0.01, TONE_NOTE)], 0.05 + 4 * decay_s)
    env = envelope(y, midi_hz(TONE_NOTE))
    i_peak = int(np.argmax(env))
    peak = env[i_peak]
    t90 = crossing(-env, -0.9 * peak, i_peak)
    t10 = crossing(-env, -0.1 * peak, i_peak)
    measured = (t10 - t90) / SR
    expected = decay_s * math.log(9)                    # exponential with time constant T
    assert measured == pytest.approx(expected, rel=0.1, abs=0.001)


def test_silence_without_notes(voice):
    y = voice.render([ctl(0.1, "VCF1: Frequency", 1.0), ctl(0.2, "VCF1: Resonance", 1.0),
                      Event(0.3, PITCH_BEND, value=2.0), off(0.4, 60)], 1.0)
    assert not np.any(y)


def test_note_off_releases_to_silence(voice):
    release_s = float(control_mapping("ENV1: Release", voice.space).to_physical(0.3))
    y = voice.render([ctl(0, "ENV1: Sustain", 0.8), ctl(0, "ENV1: Release", 0.3), on(0.0, 60), off(0.5, 60)], 1.0)
    assert np.abs(y[int(0.4 * SR):int(0.5 * SR)]).max() > 0.05
    tail = y[int(0.5 * SR):]
    # time constant T: after 14 T only a -120 dB remnant can be left; at -100 dB the voice goes idle
    assert np.abs(tail[int(14 * release_s * SR):]).max() < 1e-5
    assert not np.any(tail[int(14 * release_s * SR) + SR // 20:])


@settings(max_examples=15, deadline=None)
@given(t=st.floats(0.0, 0.4), sr=st.sampled_from([8000, 16000, 44100]))
def test_onset_is_sample_accurate(exp2, t, sr):
    v = BuiltinVoice(exp2, sample_rate=sr)
    y = v.render([ctl(0, "ENV1: Attack", 0.0), on(t, 64)], 0.5)
    nz = np.flatnonzero(y)
    assert nz.size and nz[0] == round(t * sr)


_names = st.sampled_from(list(PARAM_NAMES))
_event = st.one_of(
    st.builds(lambda t, n, v: ctl(t, n, v), st.floats(0, 0.3), _names, st.sampled_from([0.0, 1.0]) | st.floats(0, 1)),
    st.builds(lambda t, n, vel: on(t, n, vel), st.floats(0, 0.3), st.integers(0, 127), st.integers(0, 127)),
    st.builds(lambda t, n: off(t, n), st.floats(0, 0.3), st.integers(0, 127)),
    st.builds(lambda t, b: Event(t, PITCH_BEND, value=b), st.floats(0, 0.3), st.floats(-60, 60)),
)


@settings(max_examples=20, deadline=None)
@given(events=st.lists(_event, max_size=25), sr=st.sampled_from([8000, 16000]))
def test_random_events_never_give_nan_or_overflow(exp2, events, sr):
    y = BuiltinVoice(exp2, sample_rate=sr).render(events, 0.35)
    assert y.shape == (round(0.35 * sr),)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y), initial=0) <= 1.0


def test_max_resonance_stays_bounded_at_every_cutoff(voice):
    events = [ctl(0, "ENV1: Sustain", 1.0), ctl(0, "VCF1: Resonance", 1.0), on(0, 36)]
    events += [ctl(0.05 * i, "VCF1: Frequency", v) for i, v in enumerate(np.linspace(0, 1, 10))]
    y = voice.render(events, 0.6)
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.01


@pytest.mark.parametrize("note,sr", [(40, 8000), (62, 8000), (74, 16000), (84, 16000)])
def test_fundamental_matches_the_midi_note(exp2, note, sr):
    v = BuiltinVoice(exp2, sample_rate=sr)
    y = v.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "VCF1: Frequency", 0.5), on(0, note)], 1.0)
    seg = y[sr // 10:].astype(np.float64)
    # FFT peak (the saw's strongest partial is its fundamental), parabolic on log magnitude
    mag = np.log(np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 4 * len(seg))) + 1e-12)
    k = int(np.argmax(mag))
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    f_peak = (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (4 * len(seg))
    cents = 1200 * math.log2(f_peak / midi_hz(note))
    assert abs(cents) < 10, cents


def test_pitch_bend_shifts_the_fundamental(voice):
    y = voice.render([ctl(0, "ENV1: Sustain", 1.0), Event(0, PITCH_BEND, value=2.0), on(0, 57)], 0.5)
    seg = y[SR // 10:].astype(np.float64) * np.hanning(len(y) - SR // 10)
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    peak = f[np.argmax(np.abs(np.fft.rfft(seg)))]
    assert peak == pytest.approx(midi_hz(59), rel=0.01)


def test_same_events_same_audio(exp2):
    events = [on(0.0, 60), ctl(0.1, "VCF1: Frequency", 0.7), off(0.2, 60), on(0.25, 67, 90), off(0.45, 67)]
    a = BuiltinVoice(exp2, SR).render(events, 0.6)
    b = BuiltinVoice(exp2, SR).render(list(reversed(events)), 0.6)
    assert np.array_equal(a, b)


def test_vibrato_depth_and_rate_in_the_instantaneous_frequency(voice):
    rate_v = float(control_mapping("LFO1: Rate", voice.space).from_physical(5.0))   # 5 Hz
    depth_v = 0.5                                                                   # 1 semitone
    depth = float(control_mapping("OSC: Vibrato", voice.space).to_physical(depth_v))
    y = voice.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "LFO1: Rate", rate_v), ctl(0, "OSC: Vibrato", depth_v),
                      ctl(0, "VCF1: Frequency", 0.45), on(0, 69)], 1.0)
    phase = np.unwrap(np.angle(hilbert(y.astype(np.float64))))
    inst = np.diff(phase) * SR / (2 * np.pi)
    w = int(SR / 440 * 4)
    inst = np.convolve(inst, np.ones(w) / w, mode="valid")[SR // 10: -SR // 10]
    semis = 12 * np.log2(inst / 440.0)
    assert np.percentile(semis, 99) == pytest.approx(depth, abs=0.15)
    assert np.percentile(semis, 1) == pytest.approx(-depth, abs=0.15)
    crossings = np.flatnonzero(np.diff(np.sign(semis)) > 0).size   # upward zero crossings ~ rate * time
    assert crossings == pytest.approx(5.0 * len(semis) / SR, abs=1)


def test_lfo_phase_restarts_at_note_on(voice):
    def first_deviation(phase_v):
        y = voice.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "LFO1: Rate", 0.3), ctl(0, "OSC: Vibrato", 1.0),
                          ctl(0, "LFO1: Phase", phase_v), ctl(0, "VCF1: Frequency", 0.45), on(0.2, 69)], 0.35)
        ph = np.unwrap(np.angle(hilbert(y[int(0.2 * SR):].astype(np.float64))))
        inst = np.diff(ph) * SR / (2 * np.pi)
        return 12 * np.log2(np.median(inst[SR // 50: SR // 20]) / 440.0)
    # LFO1: Rate 0.3 ~ 0.6 Hz: over the first 50 ms the LFO stays near its restart phase
    assert first_deviation(0.25) > 1.5        # 90 deg: sine at its top, +2 semitones
    assert first_deviation(0.75) < -1.5       # 270 deg: at its bottom
    assert abs(first_deviation(0.0)) < 0.5    # 0 deg: at zero


def test_velocity_scales_amplitude(voice):
    loud = voice.render([ctl(0, "ENV1: Sustain", 1.0), on(0, 60, 127)], 0.3)
    soft = voice.render([ctl(0, "ENV1: Sustain", 1.0), on(0, 60, 64)], 0.3)
    assert np.abs(soft).max() / np.abs(loud).max() == pytest.approx(64 / 127, rel=0.05)


def _max_step(y):
    return float(np.abs(np.diff(y.astype(np.float64))).max())


def test_retrigger_and_parameter_jumps_are_click_free(voice):
    """A click is a jump far beyond the signal's own sample-to-sample steps."""
    base = [ctl(0, "ENV1: Sustain", 0.8), ctl(0, "VCF1: Frequency", 0.4), ctl(0, "OSC: Volume2", 0.3)]
    steady = voice.render(base + [on(0, 48)], 0.4)
    jumps = base + [on(0, 48), ctl(0.2, "OSC: Volume2", 1.0), ctl(0.25, "VCF1: Frequency", 0.6),
                    off(0.3, 48), on(0.3, 55), on(0.35, 50)]
    y = voice.render(jumps, 0.4)
    # the same voice held at the envelope's peak (a retrigger climbs back from sustain to 1)
    loud = voice.render([ctl(0, "ENV1: Sustain", 1.0), ctl(0, "OSC: Volume2", 1.0), ctl(0, "VCF1: Frequency", 0.6),
                         on(0, 48)], 0.4)
    assert _max_step(steady) > 0
    assert _max_step(y[int(0.19 * SR):]) <= 1.2 * _max_step(loud[SR // 10:])


def test_patch_values_and_defaults_reach_the_voice():
    exp1 = ControlSpace.load("exp1")
    v = BuiltinVoice(exp1, SR)
    init = v.initial_params()
    assert init[PARAM_NAMES.index("ENV1: Sustain")] == exp1.patch["ENV1: Sustain"]
    assert init[PARAM_NAMES.index("VCF1: Frequency")] == pytest.approx(
        exp1["VCF1: Frequency"].to_physical(DEFAULTS["VCF1: Frequency"]))
    # exp1's patch has sustain 0: a held note decays to silence-level
    y = v.render([on(0, 60)], 3.0)
    assert np.abs(y[-SR // 10:]).max() < 1e-3


def test_unknown_control_is_a_clear_error(voice):
    with pytest.raises(ValueError, match="no control"):
        voice.render([ctl(0, "VCF2: Frequency", 0.5)], 0.1)
    with pytest.raises(ValueError, match="finite"):
        voice.render([ctl(0, "VCF1: Frequency", float("nan"))], 0.1)


def test_polyblep_saw_aliasing_is_far_below_the_harmonics():
    """MIDI 84 (1047 Hz) with the filter wide open: energy off the harmonic grid vs on it."""
    live = ControlSpace.load("live")
    for sr, limit_db in ((8000, -25.0), (16000, -28.0)):
        y = BuiltinVoice(live, sr).render([ctl(0, "VCF1: Frequency", 1.0), on(0, 84)], 1.0)
        seg = y[sr // 4:].astype(np.float64)
        p = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        f = np.fft.rfftfreq(len(seg), 1 / sr)
        f0 = midi_hz(84)
        on_grid = np.zeros(len(f), bool)
        for k in range(1, int(sr / 2 / f0) + 1):
            on_grid |= np.abs(f - k * f0) < 8
        alias_db = 10 * np.log10(p[~on_grid].sum() / p[on_grid].sum())
        # the same test on a naive (non-band-limited) saw, to show the measure sees aliasing
        t = np.arange(len(seg)) / sr
        naive = 2 * ((f0 * t) % 1.0) - 1
        pn = np.abs(np.fft.rfft(naive * np.hanning(len(seg)))) ** 2
        naive_db = 10 * np.log10(pn[~on_grid].sum() / pn[on_grid].sum())
        assert alias_db < limit_db and alias_db < naive_db - 8, (sr, alias_db, naive_db)


def test_render_cli_plays_a_midi_file_through_the_builtin_voice(tmp_path):
    import mido
    import soundfile as sf
    from rtmirror.cli import main
    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.Message("control_change", control=74, value=80, time=0))    # VCF1: Frequency (live set)
    tr.append(mido.Message("note_on", note=69, velocity=110, time=0))
    tr.append(mido.Message("note_off", note=69, velocity=0, time=480))         # 0.5 s at 120 bpm
    mf.save(tmp_path / "a.mid")
    out = tmp_path / "a.wav"
    assert main(["render", str(tmp_path / "a.mid"), "-o", str(out), "--sample-rate", "16000"]) == 0
    y, sr = sf.read(out)
    assert sr == 16000 and len(y) == round(1.0 * sr)                           # 0.5 s + 0.5 s tail
    seg = y[1600:7200] * np.hanning(5600)
    f = np.fft.rfftfreq(8 * len(seg), 1 / sr)[np.argmax(np.abs(np.fft.rfft(seg, 8 * len(seg))))]
    assert f == pytest.approx(440.0, rel=0.01)
    assert main(["render", str(tmp_path / "missing.mid"), "-o", str(out)]) == 2


def test_render_cli_plays_a_control_csv_through_the_performer(tmp_path):
    import soundfile as sf
    from rtmirror.cli import main
    space = ControlSpace.load("live")
    rows = []
    for i in range(150):                                   # 1.2 s of 8 ms frames, gate on 0.1-0.9 s
        gate = 1.0 if 12 <= i < 112 else 0.0
        vals = {"pitch": space["pitch"].from_physical(69), "gate": gate, "velocity": 0.8,
                "OSC: Volume2": 0.9, "VCF1: Frequency": 0.5, "VCF1: Resonance": 0.2,
                "ENV1: Attack": 0.2, "ENV1: Decay": 0.4}
        rows.append(f"{i * 0.008:.4f}," + ",".join(f"{float(vals[n]):.5f}" for n in space.names))
    (tmp_path / "c.csv").write_text("time_s," + ",".join(space.names) + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "c.wav"
    assert main(["render", str(tmp_path / "c.csv"), "-o", str(out), "--set", "live", "--sample-rate", "16000"]) == 0
    y, sr = sf.read(out)
    on_sample = int(np.flatnonzero(y)[0])
    assert abs(on_sample - 12 * 0.008 * sr) <= 0.008 * sr    # the note starts within a frame of the gate
    seg = y[int(0.3 * sr):int(0.8 * sr)] * np.hanning(int(0.5 * sr))
    f = np.fft.rfftfreq(8 * len(seg), 1 / sr)[np.argmax(np.abs(np.fft.rfft(seg, 8 * len(seg))))]
    assert f == pytest.approx(440.0, rel=0.01)
    assert np.abs(y[int(1.05 * sr):]).max() < 1e-3          # released after the gate closes
