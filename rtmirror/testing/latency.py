"""Onset -> note-on through a real JACK server, for tests/test_latency.py and `rtmirror bench live
--jack`: play audio into the live engine's PortAudio input, record its MIDI port with JACK arrival
frames, and line the notes up with the audio's onsets and with file mode on the same audio.

Time line: the player process's clock (rtmirror.testing.jack.JackPlayer): audio sample i was
played at `time_of(i)` (its cycle's start + its offset / rate), a MIDI message arrived at its
cycle's start + its frame offset / rate. Wall-clock seconds, so a late JACK cycle counts as
long as it really took.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Take:
    rate: int
    got: list[tuple[float, tuple]]    # (arrival s, MIDI message), in order
    time_of: object                   # audio sample -> when it was played (s, same clock)
    engine: object                    # the stopped rtmirror.engine.Engine (its latency(), stats)

    def note_ons(self) -> list[tuple[float, int]]:
        """(arrival s, note) of every note-on received."""
        return [(f, m[1]) for f, m in self.got if m[0] & 0xF0 == 0x90 and m[2] > 0]


def jack_input_device() -> int:
    """PortAudio's JACK input device (after a rescan: PortAudio lists JACK only if its server ran
    when it initialized)."""
    from rtmirror import audio_io
    audio_io.rescan()
    devs = [d for d in audio_io.list_input_devices() if "JACK" in d["hostapi"]]
    if not devs:
        raise RuntimeError("PortAudio does not list the JACK host API")
    return devs[0]["index"]


def live_engine(device: int, rate: int, model, port: str, **options):
    """The engine `rtmirror live` builds for a JACK input at `rate` and a virtual JACK MIDI port."""
    from rtmirror.app import LiveOptions, build_engine
    opts = dict(input=str(device), sample_rate=rate, input_channel=0,
                model=None if model is None else str(model), midi_api="jack", virtual=port)
    opts.update(options)
    return build_engine(LiveOptions(**opts), on_message=lambda m: None)


def play_take(engine, audio: np.ndarray, port: str, name: str = "lat", tail_s: float = 0.3) -> Take:
    """Start the engine, play `audio` into its input once while recording its MIDI port, both in a
    player process of its own (rtmirror.testing.jack_player: frame-exact, and no Python of the
    player waits for this process's GIL inside JACK's cycle); stops the engine."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from rtmirror.testing.jack import time_of

    with tempfile.TemporaryDirectory() as tmp:
        wav, out = Path(tmp) / "audio.npy", Path(tmp) / "take.npz"
        np.save(wav, np.asarray(audio, np.float32))
        engine.start()
        proc = subprocess.Popen([sys.executable, "-m", "rtmirror.testing.jack_player", str(wav), str(out),
                                 "--name", f"{name}-player", "--midi-from", port],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the JACK player did not start")
            time.sleep(0.2)                                 # the connections carry audio by then
            proc.stdin.write("play\n")
            proc.stdin.flush()
            if proc.stdout.readline().strip() != "done":
                raise RuntimeError("the JACK player stopped before the end")
            time.sleep(tail_s)
        finally:
            engine.stop()
            time.sleep(0.05)                                # the All Notes Off crosses JACK
            if proc.poll() is None:
                proc.stdin.write("stop\n")
                proc.stdin.flush()
            proc.wait(20)
        z = np.load(out)
        got = [(float(t), tuple(int(b) for b in m)) for t, m in zip(z["midi_times"], z["midi_bytes"])]
        cycles, rate = z["cycles"], int(z["rate"])
    return Take(rate, got, lambda sample: time_of(cycles, sample, rate), engine)


def onset_latencies_ms(take: Take, onsets: np.ndarray, window_s: float = 0.3) -> np.ndarray:
    """Per onset (audio samples): the first note-on at or after it, within window_s; ms."""
    ons = np.array([t for t, _ in take.note_ons()], float)
    out = []
    for o in np.asarray(onsets):
        t = take.time_of(o)
        after = ons[ons >= t]
        if len(after) and after[0] - t < window_s:
            out.append(1e3 * (after[0] - t))
    return np.asarray(out)


def live_note_ons_s(take: Take) -> list[tuple[float, int]]:
    """Note-ons received, on the audio's time line: (arrival s after the audio's first sample, note)."""
    t0 = take.time_of(0)
    return [(t - t0, n) for t, n in take.note_ons()]


def file_mode_note_ons(model, audio: np.ndarray, rate: int, settle_frames: int | None = None):
    """(time s, note) of the note-ons `rtmirror file` makes of `audio` (its Pipeline, its rules)."""
    from rtmirror.app import level_gate_config, performer_config
    from rtmirror.cli.file import process
    from rtmirror.engine import Pipeline
    from rtmirror.midi.ccmap import CCMap
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime(None if model is None else str(model))
    cfg, _ = performer_config(runtime, CCMap.load(None), settle_frames=settle_frames)
    from rtmirror.app import LiveOptions
    pipe = Pipeline(runtime, rate, cfg, level_gate=level_gate_config(LiveOptions.gate_floor_dbfs))
    r = process(pipe, audio, 4096)
    return [(e.time, e.note) for e in r.events if e.kind == "note_on"]


def match_notes(file_ons, live_ons, shift_s: float, tol_s: float):
    """Pair each file-mode note-on (t, note) with a live one of the same note at t + shift_s
    within tol_s (each live note used once). Returns (pairs [(file t, live t, note)], unmatched
    file notes, unmatched live notes)."""
    free = list(live_ons)
    pairs, missed = [], []
    for t, note in file_ons:
        best = None
        for i, (tl, nl) in enumerate(free):
            if nl == note and abs(tl - (t + shift_s)) <= tol_s and (
                    best is None or abs(tl - t - shift_s) < abs(free[best][0] - t - shift_s)):
                best = i
        if best is None:
            missed.append((t, note))
        else:
            pairs.append((t, free[best][0], note))
            free.pop(best)
    return pairs, missed, free
