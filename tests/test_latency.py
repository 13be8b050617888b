"""Latency as the engine reports it (rtmirror.engine.Latency) against what a real JACK dummy server
measures (16 kHz, 128-sample periods; the session's server), and live against file mode.

The audio is played and the MIDI recorded by a JACK client in a process of its own
(rtmirror.testing.jack_player), on one wall clock: onset -> note-on arrival per tone burst, with
the probe encoder (a real ONNX step graph whose note-on follows an onset after a known delay).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rtmirror.ring import Ring

SR = 16000


def test_ring_wait_returns_when_a_block_is_written_and_on_wake():
    ring = Ring(1024)
    assert ring.wait(0.0) == 0
    got = []
    t = threading.Thread(target=lambda: got.append(ring.wait(30.0)))
    t.start()
    time.sleep(0.05)
    ring.write(np.ones(64, np.float32))
    t.join(30.0)
    assert got == [64] and not t.is_alive()
    ring.read(np.zeros(64, np.float32))
    t = threading.Thread(target=lambda: got.append(ring.wait(30.0)))
    t.start()
    time.sleep(0.05)
    ring.wake()                              # a stop request: no data, the wait ends
    t.join(30.0)
    assert got == [64, 0] and not t.is_alive()
    assert ring.written_at > 0


def test_latency_parts_sum_and_the_model_share(tmp_path):
    """The parts add up to the total; the model's share is its manifest delay."""
    from rtmirror.audio_io import FileInput
    from rtmirror.engine import Engine, Latency
    from rtmirror.manifest import model_delay
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime()
    engine = Engine(runtime, FileInput(np.zeros(SR, np.float32), SR, block=128), None, midi_out_periods=0.5)
    lat = engine.latency()
    assert isinstance(lat, Latency)
    assert lat.total_ms == pytest.approx(sum(lat.parts.values()))
    assert lat.model_ms == pytest.approx(model_delay(runtime.lookahead, engine.pipeline.performer.cfg,
                                                     engine.pipeline.frame_rate)["total_ms"])
    assert lat.period_ms == pytest.approx(8.0) and lat.input_ms == pytest.approx(4.0)
    assert lat.midi_out_ms == pytest.approx(4.0) and lat.frame_ms == pytest.approx(4.0)
    assert "model" in lat.describe() and f"{lat.total_ms:.1f}" in lat.describe()


@pytest.fixture(scope="module")
def jack_device(jack_server, require_portaudio):
    from rtmirror import audio_io
    from rtmirror.testing.latency import jack_input_device
    yield jack_input_device()
    audio_io.forget_jack()


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from rtmirror.testing.probe import write_probe_model
    return write_probe_model(tmp_path_factory.mktemp("probe") / "probe.onnx")


@pytest.mark.jack
def test_measured_latency_is_the_reported_sum_within_a_period(jack_device, probe):
    from rtmirror.testing.latency import live_engine, onset_latencies_ms, play_take
    from rtmirror.testing.probe import tone_bursts

    # onsets spread over a frame: the median measures the mean wait of the phase-dependent stages
    audio, onsets = tone_bursts(16, SR, spread_s=0.008, seed=3)
    engine = live_engine(jack_device, SR, probe, "rtm-lat", max_backlog_s=0.5)
    take = play_take(engine, audio, "rtm-lat")
    assert engine.error is None, engine.error
    lat = onset_latencies_ms(take, onsets)
    reported = engine.latency()
    print(f"\nJACK 16 kHz/128: measured median {np.median(lat):.1f} ms over {len(lat)} bursts; "
          f"reported {reported.describe()}")
    assert len(lat) == len(onsets)
    assert reported.worker_ms > 0                        # measured by the worker
    assert abs(np.median(lat) - reported.total_ms) <= reported.period_ms


@pytest.mark.jack
def test_live_gives_the_notes_of_file_mode_shifted_by_the_reported_delay(jack_device):
    """A melody (built-in voice) through JACK into the shipped model: the note-ons that arrive
    are those `rtmirror file` makes of the same audio, each later by the reported delay from a
    file-mode event time to the MIDI port, within one frame."""
    from rtmirror.runtime import EncoderRuntime
    from rtmirror.testing.latency import file_mode_note_ons, live_engine, live_note_ons_s, match_notes, play_take
    from rtmirror.testing.probe import demo_audio

    melody, _ = demo_audio(EncoderRuntime().space, 6.0, SR, seed=5)
    audio = np.concatenate([np.zeros(SR // 2, np.float32), melody])
    engine = live_engine(jack_device, SR, None, "rtm-lat-mel", max_backlog_s=0.5)
    take = play_take(engine, audio, "rtm-lat-mel")
    assert engine.error is None, engine.error
    lat = engine.latency()
    frame = 2 * lat.frame_ms / 1e3
    file_ons = file_mode_note_ons(None, audio, SR)
    live_ons = live_note_ons_s(take)
    pairs, missed, extra = match_notes(file_ons, live_ons, lat.file_to_port_ms / 1e3, frame)
    shifts = [1e3 * (tl - t) for t, tl, _ in pairs]
    print(f"\nfile mode {len(file_ons)} note-ons, live {len(live_ons)}; {len(pairs)} within one frame of "
          f"file + {lat.file_to_port_ms:.1f} ms (median shift {np.median(shifts):.1f} ms); "
          f"missed {missed}, extra {extra}")
    assert len(file_ons) >= 10
    assert len(pairs) >= 0.9 * len(file_ons) and len(extra) <= 0.1 * len(file_ons)
