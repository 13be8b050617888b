"""File mode: the live path's blocks == file mode, and `rtmirror file` writes a correct MIDI file,
a control CSV and a resynthesis."""
from __future__ import annotations

import csv

import mido
import numpy as np
import pytest
import soundfile as sf

from rtmirror.audio_io import FileInput
from rtmirror.testing.probe import demo_audio, write_probe_model
from rtmirror.cli import main
from rtmirror.engine import Engine, EngineConfig, Pipeline
from rtmirror.cli.file import process, process_full
from rtmirror.events import NOTE_OFF, NOTE_ON
from rtmirror.midi import MidiEncoder, MidiOut
from rtmirror.runtime import EncoderRuntime

from midi_checks import note_timeline

SR = 16000


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return write_probe_model(tmp_path_factory.mktemp("probe") / "probe.onnx")


@pytest.fixture(scope="module")
def melody():
    return demo_audio(EncoderRuntime().space, 3.0, SR, seed=21)


@pytest.mark.parametrize("which", ["shipped", "probe"])
def test_live_path_blocks_equal_file_mode(which, probe, melody):
    """The threaded engine fed in 128-sample blocks through the ring gives the same events and
    the same MIDI bytes as file mode's 4096-sample blocks."""
    audio, _ = melody
    model = None if which == "shipped" else probe
    runtime = EncoderRuntime(model)
    engine = Engine(runtime, FileInput(audio, SR, block=128, realtime=False),
                    MidiOut(MidiEncoder(runtime.space), []), cfg=EngineConfig(max_backlog_s=None, record=True))
    assert engine.run() == 0 and engine.exhausted
    offline = process(Pipeline(EncoderRuntime(model), SR), audio, 4096)
    assert engine.events == offline.events
    midi = MidiOut(MidiEncoder(runtime.space), [])
    msgs = midi.send_frames(offline.events, offline.times) + midi.close(offline.times[-1])
    assert [m for _, m in engine.messages] == [m for _, m in msgs]
    assert engine.pipeline.frames == len(offline.controls)


# -- the full-sequence graph (the default) == the streaming path (--streaming) ------------------
CTL_TOL = 1e-5     # step graph vs full graph: onnxruntime's float rounding (~2e-6 measured)

VARIANTS = {
    "default": {},
    "key": {"key": "D", "scale": "minor"},
    "key-auto": {"key": "auto"},
    "legato": {"legato": True},
    "pitch-bend": {"pitch_bend": True},
    "settle-0": {"settle_frames": 0},
    "settle-4": {"settle_frames": 4},
}


def _pipeline(model, sr, variant):
    from rtmirror.app import LiveOptions, performer_config, scale_lock
    from rtmirror.midi.ccmap import CCMap
    v = VARIANTS[variant]
    runtime = EncoderRuntime(model)
    cc_map = CCMap.load()
    cfg, _ = performer_config(runtime, cc_map, pitch_bend=v.get("pitch_bend", False), legato=v.get("legato", False),
                              settle_frames=v.get("settle_frames"))
    lock = scale_lock(LiveOptions(key=v.get("key"), scale=v.get("scale", "major")), cc_map.bend_range)
    return Pipeline(runtime, sr, cfg, scale_lock=lock)


def _held_cc(msgs, times):
    """{controller: (n_frames,) wire value held at each frame time} from CC messages."""
    out = {}
    for t, m in msgs:
        if m[0] & 0xF0 == 0xB0:
            out.setdefault(m[1], []).append((t, m[2]))
    held = {}
    for cc, tv in out.items():
        ts, vs = np.array([t for t, _ in tv]), np.array([v for _, v in tv])
        i = np.searchsorted(ts, times + 1e-9, side="right") - 1
        held[cc] = np.where(i >= 0, vs[np.maximum(i, 0)], -1)
    return held


def assert_same_performance(full, stream, space):
    """Same spectrogram and frames; controls within CTL_TOL; note events identical (notes,
    velocities, frames); every other event at the same frame, its value within CTL_TOL; the MIDI
    notes identical and each CC's value within one step at every frame (a control sitting on a
    rounding boundary may round the other way)."""
    np.testing.assert_array_equal(full.spec, stream.spec)
    np.testing.assert_array_equal(full.times, stream.times)
    assert full.controls.shape == stream.controls.shape
    assert np.abs(full.controls - stream.controls).max() <= CTL_TOL
    notes = lambda r: [e for e in r.events if e.kind in (NOTE_ON, NOTE_OFF)]   # noqa: E731
    assert notes(full) == notes(stream) and notes(full)
    assert [(e.time, e.kind, e.name, e.note) for e in full.events] == \
        [(e.time, e.kind, e.name, e.note) for e in stream.events]
    for a, b in zip(full.events, stream.events):
        assert a.value == pytest.approx(b.value, abs=CTL_TOL)

    def midi(r):
        out = MidiOut(MidiEncoder(space), [])
        return out.send_frames(r.events, r.times) + out.close(r.times[-1])
    ma, mb = midi(full), midi(stream)
    is_note = lambda m: m[1][0] & 0xE0 == 0x80       # noqa: E731  note-on/off (0x8n, 0x9n)
    assert [m for m in ma if is_note(m)] == [m for m in mb if is_note(m)]
    ha, hb = _held_cc(ma, full.times), _held_cc(mb, stream.times)
    assert ha.keys() == hb.keys()
    for cc in ha:
        assert np.abs(ha[cc] - hb[cc]).max() <= 1, cc
    assert abs(len(ma) - len(mb)) <= max(2, len(mb) // 100)


@pytest.mark.parametrize("which", ["shipped", "probe"])
@pytest.mark.parametrize("seed", [3, 8, 21])
def test_full_graph_equals_streaming(which, seed, probe):
    """process_full (spectrogram at once, the full-sequence graph, Pipeline.play on every row)
    gives the streaming path's performance on random melodies of the built-in voice."""
    model = None if which == "shipped" else probe
    audio, _ = demo_audio(EncoderRuntime().space, 4.0, SR, seed=seed)
    full = process_full(_pipeline(model, SR, "default"), audio)
    stream = process(_pipeline(model, SR, "default"), audio, 1000)
    assert_same_performance(full, stream, EncoderRuntime(model).space)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "default"])
def test_full_graph_equals_streaming_with_note_options(variant, melody):
    """--key/--scale (fixed and auto), --legato, --pitch-bend, --settle-frames: the same events."""
    audio, _ = melody
    full = process_full(_pipeline(None, SR, variant), audio)
    stream = process(_pipeline(None, SR, variant), audio, 4096)
    assert_same_performance(full, stream, EncoderRuntime().space)
    if VARIANTS[variant].get("pitch_bend"):
        assert any(e.kind == "pitch_bend" for e in full.events)


def test_full_graph_at_other_rates_and_with_bad_samples(probe):
    """44.1 kHz input (the live resampler, offline in chunks), NaN/Inf samples replaced as the
    stream replaces them, and a pipeline reused for a second file."""
    import soxr
    audio, _ = demo_audio(EncoderRuntime().space, 3.0, SR, seed=5)
    x = soxr.resample(audio, SR, 44100).astype(np.float32)
    x[[100, 5000, 70000]] = [np.nan, np.inf, -np.inf]
    pipe = _pipeline(probe, 44100, "default")
    process_full(pipe, x[:44100])                      # a first file: reset() before the next
    full = process_full(pipe, x)
    stream = process(_pipeline(probe, 44100, "default"), x, 777)
    assert pipe.nonfinite_samples == 3
    assert_same_performance(full, stream, pipe.space)


def test_file_cli_full_and_streaming_write_the_same_notes(tmp_path, melody):
    """`rtmirror file` (full graph) and `rtmirror file --streaming` write the same notes."""
    audio, _ = melody
    wav = tmp_path / "in.wav"
    sf.write(wav, audio, SR, subtype="FLOAT")
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    assert main(["file", str(wav), "-o", str(a)]) == 0
    assert main(["file", str(wav), "-o", str(b), "--streaming", "--block", "333"]) == 0
    notes = lambda p: [(m.type, m.note, m.velocity, m.time) for m in mido.MidiFile(p)   # noqa: E731
                       if m.type in ("note_on", "note_off")]
    assert notes(a) == notes(b) and notes(a)


def test_file_cli_writes_midi_csv_and_resynthesis(tmp_path, probe, melody):
    audio, mel = melody
    wav = tmp_path / "in.wav"
    stereo = np.stack([audio, audio], axis=1)
    sf.write(wav, stereo, SR)
    out, ctl, res = tmp_path / "out.mid", tmp_path / "c.csv", tmp_path / "r.wav"
    assert main(["file", str(wav), "-o", str(out), "--controls", str(ctl), "--resynth", str(res),
                 "--model", str(probe), "--channel", "2"]) == 0
    mid = mido.MidiFile(out)
    assert any(m.type == "set_tempo" for m in mid.tracks[0])
    t, ons, sounding = 0.0, [], set()
    for m in mid:
        t += m.time
        if m.type == "note_on" and m.velocity > 0:
            assert m.channel == 1 and m.note not in sounding
            sounding.add(m.note)
            ons.append(t)
        elif m.type in ("note_off", "note_on"):
            sounding.discard(m.note)
    assert not sounding and ons
    # note-ons after a silence land on the melody's onsets
    ons = np.asarray(ons)
    for (on, *_), prev in zip(mel.notes[1:], mel.notes):
        if on - prev[1] > 0.03:
            assert np.min(np.abs(ons - on)) <= 0.03
    rows = list(csv.reader(ctl.open()))
    space = EncoderRuntime(probe).space
    assert rows[0] == ["time_s"] + space.names
    assert abs(len(rows) - 1 - len(audio) / SR * 125) <= 3
    y, sr = sf.read(res)
    assert abs(len(y) / sr - len(audio) / SR) < 0.01 and np.abs(y).max() > 0.01


def test_file_mode_any_sample_rate(tmp_path, probe):
    """44.1 kHz input: resampled by the pipeline, the same notes within a frame or two."""
    import soxr
    from rtmirror.testing.probe import tone_bursts
    audio, _ = tone_bursts(6, SR)
    x441 = soxr.resample(audio, SR, 44100).astype(np.float32)
    a = process(Pipeline(EncoderRuntime(probe), SR), audio)
    b_pipe = Pipeline(EncoderRuntime(probe), 44100)
    b = process(b_pipe, x441)
    on_a = onsets_after_silence(a.events)
    on_b = onsets_after_silence(b.events)          # the resampler delays output, never shifts it
    assert len(on_a) == len(on_b) == 6
    np.testing.assert_allclose(on_b, on_a, atol=0.0161)      # within two 8 ms frames


def onsets_after_silence(events, gap: float = 0.03) -> list[float]:
    """Note-on times that follow at least `gap` seconds without a sounding note."""
    out, sounding, last_off = [], 0, -1.0
    for e in events:
        if e.kind == "note_on":
            if sounding == 0 and e.time - last_off >= gap:
                out.append(e.time)
            sounding += 1
        elif e.kind == "note_off":
            sounding -= 1
            last_off = e.time
    return out


def test_file_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio")
    assert main(["file", str(bad), "-o", str(tmp_path / "o.mid")]) == 2
    assert "cannot read audio file" in capsys.readouterr().err
    assert not (tmp_path / "o.mid").exists()


def _env_without_devices():
    import os
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(JACK_DEFAULT_SERVER="rtmirror-no-such-server", JACK_NO_START_SERVER="1",
               RTMIRROR_MIDI_API="", QT_QPA_PLATFORM="offscreen")
    return env


def test_demo_without_input_device_plays_the_melody_and_finishes(tmp_path):
    """`rtmirror demo` (what `make run` calls) on a machine with no input device and no MIDI
    API: says so, plays the built-in melody through the engine, prints what it sends, writes
    demo.mid, and exits by itself."""
    import subprocess
    import sys
    env = _env_without_devices()
    devices = subprocess.run([sys.executable, "-m", "rtmirror", "devices"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    extra = [] if "no audio input devices" in devices.stdout else ["--melody"]   # a box with a sound card
    p = subprocess.run([sys.executable, "-m", "rtmirror", "demo", "--fast", "--seconds", "3"] + extra,
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if not extra:
        assert "no audio input device found" in p.stderr
    assert "no MIDI API usable" in p.stderr or "virtual port" in p.stderr
    assert "All Notes Off" in p.stdout                 # the printed messages end with the panic
    mid = mido.MidiFile(tmp_path / "demo.mid")
    msgs = [m for m in mid if not m.is_meta]
    assert msgs and msgs[-1].type == "control_change" and msgs[-1].control == 123


def test_file_cli_pitch_bend_option(tmp_path, probe, melody):
    """--pitch-bend: the probe's half-semitone pitch steps go out as bends within the CC map's
    range (2 semitones), and every bend is back at centre when the stream ends."""
    audio, _ = melody
    wav = tmp_path / "in.wav"
    sf.write(wav, audio, SR)
    out = tmp_path / "b.mid"
    assert main(["file", str(wav), "-o", str(out), "--model", str(probe), "--pitch-bend"]) == 0
    bends = [m.pitch for m in mido.MidiFile(out) if m.type == "pitchwheel"]
    assert bends and any(b != 0 for b in bends)
    assert all(-8192 <= b <= 8191 for b in bends) and bends[-1] == 0


def test_shipped_model_plays_the_melody(capsys):
    """File mode with the shipped (trained) model on melodies of the built-in voice it never saw:
    onsets, mid-note pitch and the gate against the ground truth (events_to_frames)."""
    from rtmirror.performer import events_to_frames
    runtime = EncoderRuntime()
    hits = pitch_ok = total = 0
    gate_acc = []
    for seed in (3, 11, 21):
        audio, mel = demo_audio(runtime.space, 4.0, SR, seed=seed)
        res = process(Pipeline(runtime, SR), audio)
        ons = np.array([e.time for e in res.events if e.kind == "note_on"])
        timeline = note_timeline(res.events)
        for on, off, pitch, _ in mel.notes:
            total += 1
            hits += bool(len(ons)) and np.min(np.abs(ons - on)) <= 0.05
            mid = [n for t, n in timeline if t <= (on + off) / 2]
            pitch_ok += bool(mid) and mid[-1] is not None and abs(mid[-1] - pitch) <= 1
        truth = events_to_frames(mel.events, len(res.controls), runtime.space)
        g = runtime.space.role_index("gate")
        gate_acc.append(np.mean((res.controls[:, g] > 0.5) == (truth[:, g] > 0.5)))
    print(f"shipped model, file mode: onsets {hits}/{total}, pitch {pitch_ok}/{total}, "
          f"gate frame accuracy {np.mean(gate_acc):.3f}")
    assert hits >= 0.8 * total and pitch_ok >= 0.8 * total and np.mean(gate_acc) >= 0.9


def test_settle_frames_option_trades_latency(tmp_path):
    """--settle-frames 0 plays each note-on at once (no wait for a settled pitch): on the same
    melody its note-ons come no later than the default's, and on average earlier."""
    import mido
    import soundfile as sf

    from rtmirror.testing.probe import demo_audio
    from rtmirror.cli import main
    from rtmirror.controls import ControlSpace

    audio, mel = demo_audio(ControlSpace.load("live"), 4.0, 16000, seed=21)
    wav = tmp_path / "m.wav"
    sf.write(wav, audio, 16000, subtype="FLOAT")

    def onsets(*extra):
        out = tmp_path / "o.mid"
        assert main(["file", str(wav), "-o", str(out), *extra]) == 0
        t, got = 0.0, []
        for m in mido.MidiFile(out):          # iterating a MidiFile yields delta times in seconds
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                got.append(t)
        return np.array(got)

    def lags(ons):   # per true note: the first note-on within 100 ms after its onset
        out = []
        for on, *_ in mel.notes:
            near = ons[(ons >= on - 0.02) & (ons <= on + 0.1)]
            if len(near):
                out.append(near.min() - on)
        return np.array(out)

    slow, fast = lags(onsets()), lags(onsets("--settle-frames", "0"))
    assert len(fast) >= len(slow) >= 1
    assert fast.mean() < slow.mean()
