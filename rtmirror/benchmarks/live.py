"""`rtmirror bench live`: the live engine's cost per frame, its latency, and a soak.

Parts (all in one run, each a flag away; the probe encoder and JACK clients are rtmirror.testing's):
  1. compute: processing time per 8 ms frame for frontend + encoder + Performer + MIDI encoding
     (median, p99) and the CPU share of one core, on a rendered melody fed in 128-sample blocks
     (16 kHz, like a JACK period), with the frontend alone measured in the same run as anchor.
  2. latency (--jack): end to end through a real JACK dummy server at 128-sample periods: a
     player client plays clicks into rtmirror's input, a MidiIn records note-ons on rtmirror's
     virtual port; onset -> note-on per click, next to the static breakdown (buffer, resampler,
     frame, cochlear group delay, encoder lookahead, compute). Uses the *probe* encoder below so
     the measurement does not depend on how well the shipped model was trained.
  3. soak (--soak-seconds): that much audio fed as fast as possible through the threaded engine
     (ring + worker + MIDI file sink): RSS and tracemalloc growth, drops, notes all closed.

The probe encoder (`write_probe_model`) is a real ONNX step graph with a manifest, run by the
real EncoderRuntime: gate = mean spectrogram energy above a threshold, pitch from the loudest
channel (NSL CF = 440 * 2**((k - 31)/24 + shift)), one state (the previous frame: lookahead 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from rtmirror.testing.probe import demo_audio, melody_onsets, tone_bursts, write_probe_model


def cochlear_group_delay_ms(frontend) -> dict:
    """Impulse -> the frame where each channel peaks: the cochlear filters' + leaky integrator's
    delay (frequency dependent), measured, in ms past the end of the impulse's frame."""
    import dataclasses

    from rtmirror.frontend import CochlearStream
    cfg = dataclasses.replace(frontend, normalization="none")
    x = np.zeros(cfg.sample_rate, np.float32)
    pos = cfg.sample_rate // 2 - 1                        # the last sample of a frame
    x[pos] = 1.0
    spec = CochlearStream(cfg).process(x, copy=True)     # (T, 128)
    frame_of_impulse = (pos + 1) // cfg.hop - 1
    peak = spec[frame_of_impulse:].argmax(axis=0)        # frames after the impulse's own frame
    ms = peak * 1e3 / cfg.frame_rate
    cf = 440.0 * 2.0 ** ((np.arange(128) - 31) / 24 + cfg.shift)
    near = lambda f: float(ms[int(np.argmin(np.abs(cf - f)))])   # noqa: E731
    return {"median": float(np.median(ms)), "at_220Hz": near(220.0), "at_1kHz": near(1000.0),
            "max": float(ms.max())}


# -- 1. compute ---------------------------------------------------------------------------------
def bench_compute(model, seconds: float, block: int = 128, sr: int = 16000) -> dict:
    from rtmirror.engine import Pipeline
    from rtmirror.frontend import CochlearStream, StreamResampler
    from rtmirror.midi import MidiEncoder, MidiOut
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime(model)
    audio, _ = demo_audio(runtime.space, seconds, sr)
    blocks = [audio[i:i + block] for i in range(0, len(audio), block)]

    # anchor: resampler + frontend alone, same blocks
    res, coch = StreamResampler(sr, runtime.frontend.sample_rate), CochlearStream(runtime.frontend)
    for b in blocks[:50]:
        coch.process(res.process(b))                      # JIT warm-up
    coch.reset()
    res = StreamResampler(sr, runtime.frontend.sample_rate)
    front, n_front = [], 0
    for b in blocks:
        t0 = time.perf_counter()
        n = len(coch.process(res.process(b)))
        front.append(time.perf_counter() - t0)
        n_front += n

    pipe = Pipeline(runtime, sr)
    midi = MidiOut(MidiEncoder(runtime.space), [])
    for b in blocks[:50]:
        pipe.process(b)
    pipe.reset()
    per_frame, per_frame_cpu, cpu0, wall0 = [], [], time.thread_time(), time.perf_counter()
    for b in blocks:
        t0, c0 = time.perf_counter(), time.thread_time()
        r = pipe.process(b)
        midi.send_frames(r.events, r.times)
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        if len(r.spec):
            per_frame += [dt / len(r.spec)] * len(r.spec)
            per_frame_cpu += [dc / len(r.spec)] * len(r.spec)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    audio_s = len(audio) / sr
    pf = np.asarray(per_frame) * 1e3
    fr = np.asarray(front) * 1e3 * len(blocks) / max(n_front, 1)
    return {
        "model": str(runtime.path), "audio_s": audio_s, "frames": len(pf),
        "frame_ms_median": float(np.median(pf)), "frame_ms_p99": float(np.percentile(pf, 99)),
        "frame_ms_max": float(pf.max()),
        # thread CPU time per frame: the work itself, without the time other processes took the core
        "frame_cpu_ms_median": float(np.median(per_frame_cpu) * 1e3),
        "frame_cpu_ms_p99": float(np.percentile(per_frame_cpu, 99) * 1e3),
        "cpu_share_of_core": cpu / audio_s,              # CPU seconds per second of audio
        "realtime_factor": audio_s / wall,
        "frontend_ms_per_frame_mean": float(np.mean(fr)),
        "frontend_share_of_core": float(np.sum(front)) / audio_s,
        "macs_per_frame": runtime.manifest.get("stats", {}).get("macs_per_frame"),
    }


# -- 2. latency through JACK ----------------------------------------------------------------------
def bench_latency_jack(runs: list[tuple], rate: int = 16000, period: int = 128) -> dict:
    """Start a JACK dummy server at rate/period; for each (label, model, audio, onset samples,
    settle frames or None for the default) play the audio into the live engine and time the
    note-ons. Returns {label: result}."""
    from rtmirror.audio_io import forget_jack
    from rtmirror.testing.jack import JackServer

    server = JackServer(rate, period).start()
    try:
        return {label: measure_latency_jack(model, audio, onsets, rate, settle_frames=settle)
                for label, model, audio, onsets, settle in runs}
    finally:
        forget_jack()
        server.stop()


def measure_latency_jack(model, audio: np.ndarray, onsets: np.ndarray, rate: int,
                         settle_frames: int | None = None) -> dict:
    """With a JACK server running: the engine `rtmirror live` builds on PortAudio's JACK input,
    a player + MIDI recorder in a process of their own (rtmirror.testing.latency); latency of the
    first note-on at or after each onset (within 300 ms), the engine's reported Latency, and the
    overhead = measured - the model's delay (manifest: lookahead + settling)."""
    from rtmirror.testing.latency import jack_input_device, live_engine, onset_latencies_ms, play_take

    engine = live_engine(jack_input_device(), rate, model, "rtmirror-bench", settle_frames=settle_frames)
    take = play_take(engine, audio, "rtmirror-bench", name="bench")
    lat = onset_latencies_ms(take, onsets)
    reported = engine.latency()
    over = lat - reported.model_ms
    pct = (lambda a, q: float(np.percentile(a, q)) if len(a) else None)   # noqa: E731
    return {"onsets": len(onsets), "detected": len(lat),
            "latency_ms_median": pct(lat, 50), "latency_ms_p90": pct(lat, 90),
            "overhead_ms_median": pct(over, 50), "overhead_ms_p90": pct(over, 90), "overhead_ms_p99": pct(over, 99),
            "reported_total_ms": reported.total_ms, "model_ms": reported.model_ms,
            "breakdown_ms": reported.parts, "period_ms": reported.period_ms,
            "dropped_frames": engine.snapshot.dropped_frames, "input_overflows": engine.source.overflows,
            "error": engine.error}


class NoteChecker:
    """A MIDI output that stores nothing: counts notes, checks every note-on gets its note-off."""

    def __init__(self):
        self.sounding: set[int] = set()
        self.notes = self.unmatched = self.all_notes_off = 0

    def send(self, t, m) -> None:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            self.notes += 1
            self.sounding.add(m[1])
        elif m[0] & 0xF0 in (0x80, 0x90):
            self.unmatched += m[1] not in self.sounding
            self.sounding.discard(m[1])
        elif m[0] & 0xF0 == 0xB0 and m[1] == 123:
            self.all_notes_off += 1

    def close(self) -> None:
        pass


# -- 3. soak --------------------------------------------------------------------------------------
def bench_soak(model, seconds: float, out_dir: Path) -> dict:
    """`seconds` of audio (a rendered melody looped) fed as fast as possible through the engine."""
    import resource
    import tracemalloc

    from rtmirror.audio_io import FileInput
    from rtmirror.engine import Engine, EngineConfig
    from rtmirror.midi import MidiEncoder, MidiOut
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime(model)
    sr = 16000
    loop, _ = demo_audio(runtime.space, 30.0, sr, seed=3)
    n_total = int(seconds * sr)
    audio = np.resize(loop, n_total)                      # repeats the 30 s melody
    rec = NoteChecker()
    midi = MidiOut(MidiEncoder(runtime.space), [rec])
    src = FileInput(audio, sr, block=128, realtime=False)
    engine = Engine(runtime, src, midi, cfg=EngineConfig(max_backlog_s=None))

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    tracemalloc.start()
    samples = []
    t0 = time.perf_counter()
    engine.start()
    try:
        from tqdm import tqdm
        bar = tqdm(total=round(seconds), unit="s audio", desc="soak", leave=False)
        done_prev = 0
        while engine.running:
            engine.join(1.0)
            done = src.pushed // sr
            bar.update(done - done_prev)
            done_prev = done
            cur, _ = tracemalloc.get_traced_memory()
            samples.append((src.pushed / sr, rss_mb(), cur / 2**20))
        bar.close()
    finally:
        engine.stop()
    wall = time.perf_counter() - t0
    tracemalloc.stop()
    s = np.asarray(samples) if samples else np.zeros((1, 3))
    tail = s[len(s) // 5:]                                # after warm-up
    return {
        "audio_s": n_total / sr, "wall_s": wall, "realtime_factor": n_total / sr / wall,
        "frames": engine.pipeline.frames, "dropped_frames": engine.snapshot.dropped_frames,
        "ring_refused_samples": src.ring.dropped_samples,
        "notes": rec.notes, "notes_left_sounding": len(rec.sounding), "unmatched_note_offs": rec.unmatched,
        "all_notes_off_sent": rec.all_notes_off,
        "rss_mb_start": float(tail[0, 1]), "rss_mb_end": float(tail[-1, 1]),
        "tracemalloc_mb_start": float(tail[0, 2]), "tracemalloc_mb_end": float(tail[-1, 2]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "midi_messages": midi.sent, "error": engine.error,
    }


# -- CLI ----------------------------------------------------------------------------------------------
def model_frontend(model):
    from rtmirror.runtime import EncoderRuntime
    return EncoderRuntime(model).frontend


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="encoder .onnx for the compute and soak parts (default: shipped)")
    p.add_argument("--seconds", type=float, default=20.0, help="audio for the compute part")
    p.add_argument("--jack", action="store_true", help="also measure end-to-end latency through a JACK dummy server")
    p.add_argument("--clicks", type=int, default=20, help="tone bursts for the JACK latency part (probe encoder)")
    p.add_argument("--melody-seconds", type=float, default=20.0, help="melody for the JACK latency part (the model)")
    p.add_argument("--soak-seconds", type=float, default=0.0,
                   help="also run the soak with this much audio fed as fast as possible (e.g. 3600)")
    p.add_argument("--settle-frames", type=int, nargs="*", default=[], metavar="N",
                   help="JACK part: also time the melody with these note-settling windows (default: 0 4)")
    p.add_argument("--jack-configs", nargs="+", default=["16000/128"], metavar="RATE/PERIOD",
                   help="JACK part: server rate/period pairs (default 16000/128; e.g. 48000/128 48000/64 44100/256)")
    p.add_argument("--json", help="write all numbers to this JSON file")


def run(args) -> int:
    import tempfile
    results: dict = {"machine": f"{os.cpu_count()} CPUs, {sys.platform}"}
    c = bench_compute(args.model, args.seconds)
    results["compute"] = c
    print(f"compute ({c['audio_s']:.0f} s of audio in 128-sample blocks at 16 kHz, model {Path(c['model']).name}):")
    print(f"  per 8 ms frame: median {c['frame_ms_median']:.3f} ms, p99 {c['frame_ms_p99']:.3f} ms "
          f"(target p99 <= 1 ms), max {c['frame_ms_max']:.2f} ms")
    print(f"  thread CPU time per frame (without preemption by other processes): median "
          f"{c['frame_cpu_ms_median']:.3f} ms, p99 {c['frame_cpu_ms_p99']:.3f} ms")
    print(f"  CPU share of one core: {100 * c['cpu_share_of_core']:.1f} % (target <= 10 %); "
          f"{c['realtime_factor']:.1f}x real time")
    gd = cochlear_group_delay_ms(model_frontend(args.model))
    results["cochlear_group_delay_ms"] = gd
    print(f"  cochlear group delay (impulse -> channel peak): median {gd['median']:.1f} ms, "
          f"220 Hz {gd['at_220Hz']:.1f} ms, 1 kHz {gd['at_1kHz']:.1f} ms")
    print(f"  anchor, resampler + frontend alone: {c['frontend_ms_per_frame_mean']:.3f} ms/frame, "
          f"{100 * c['frontend_share_of_core']:.1f} % of a core; whole pipeline / frontend = "
          f"{c['cpu_share_of_core'] / max(c['frontend_share_of_core'], 1e-9):.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        if args.jack:
            from rtmirror.runtime import EncoderRuntime
            probe = write_probe_model(Path(tmp) / "probe.onnx")
            space = EncoderRuntime(args.model).space
            name = Path(args.model).name if args.model else "shipped model"
            results["latency_jack"] = {}
            for config in args.jack_configs:
                rate, period = (int(v) for v in config.split("/"))
                bursts, burst_onsets = tone_bursts(args.clicks, rate, spread_s=0.008, seed=1)
                mel_audio, mel = demo_audio(space, args.melody_seconds, rate, seed=5)
                mel_audio = np.concatenate([np.zeros(rate // 2, np.float32), mel_audio])
                runs = [("probe encoder, tone bursts", probe, bursts, burst_onsets, None),
                        (f"{name}, melody (built-in voice)", args.model, mel_audio, melody_onsets(mel, rate), None)]
                for n in args.settle_frames:      # the same melody under other note-settling windows
                    runs.append((f"{name}, melody, --settle-frames {n}", args.model, mel_audio,
                                 melody_onsets(mel, rate), n))
                lats = bench_latency_jack(runs, rate, period)
                results["latency_jack"][config] = lats
                print(f"latency through JACK ({rate} Hz, {period}-sample periods = {1e3 * period / rate:.2f} ms):")
                for label, lat in lats.items():
                    if lat["latency_ms_median"] is None:
                        print(f"  {label}: no note-on detected ({lat['error']})")
                        continue
                    print(f"  {label}: onset -> note-on received: median {lat['latency_ms_median']:.1f} ms, "
                          f"p90 {lat['latency_ms_p90']:.1f} ms ({lat['detected']}/{lat['onsets']} onsets); "
                          f"reported {lat['reported_total_ms']:.1f} ms")
                    print(f"    engine overhead (measured - model delay {lat['model_ms']:.1f} ms): median "
                          f"{lat['overhead_ms_median']:.1f}, p90 {lat['overhead_ms_p90']:.1f}, "
                          f"p99 {lat['overhead_ms_p99']:.1f} ms; dropped frames {lat['dropped_frames']}, "
                          f"input overflows (xruns) {lat['input_overflows']}")
                    print("    reported: " + ", ".join(f"{k[:-3]} {v:.2f}" for k, v in lat["breakdown_ms"].items()))
        if args.soak_seconds > 0:
            s = bench_soak(args.model, args.soak_seconds, Path(tmp))
            results["soak"] = s
            print(f"soak: {s['audio_s']:.0f} s of audio in {s['wall_s']:.0f} s ({s['realtime_factor']:.1f}x real time), "
                  f"{s['frames']} frames, dropped {s['dropped_frames']}, notes {s['notes']}, "
                  f"left sounding {s['notes_left_sounding']}")
            print(f"  RSS {s['rss_mb_start']:.1f} -> {s['rss_mb_end']:.1f} MB, tracemalloc "
                  f"{s['tracemalloc_mb_start']:.2f} -> {s['tracemalloc_mb_end']:.2f} MB, error: {s['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
