"""`rtmirror bench encoder`: the exported encoder under onnxruntime on one core.

Measures, interleaved in rounds so that a shared machine's load hits every number alike:
  - step latency per frame (k = 1, the live path: one 8 ms frame in, one control frame out),
    median / p90 / p99 / max, through EncoderRuntime.step (state kept, input checks included);
  - step cost per frame at k = 8 (a 64 ms block, for hosts that batch);
  - anchors in the same run: a numpy float32 matrix-vector product with the encoder's own
    multiply-adds per frame (the arithmetic floor of a dense implementation), and the streaming
    frontend's cost per frame (CochlearStream on one hop of samples);
  - the full-sequence graph (run_full) in frames/s on --seconds of frames.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from rtmirror.runtime import EncoderRuntime


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="step graph .onnx (default: the shipped model)")
    p.add_argument("--frames", type=int, default=6000, help="timed k=1 steps in all (default 6000 = 48 s)")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the run_full input (default 60 s)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--pin", type=int, default=None, help="pin the process to this CPU (Linux)")


def _timed(fn, n: int, cpu: list | None = None) -> np.ndarray:
    """n calls of fn(), each timed alone: wall seconds (returned) and, if cpu is a list, this
    thread's CPU seconds appended to it (what the call cost, without time spent preempted)."""
    out = np.empty(n)
    cpu_s = np.empty(n)
    pc, tt = time.perf_counter, time.thread_time
    for i in range(n):
        c0 = tt()
        t0 = pc()
        fn()
        out[i] = pc() - t0
        cpu_s[i] = tt() - c0
    if cpu is not None:
        cpu.append(cpu_s)
    return out


def _us(a: np.ndarray) -> str:
    return (f"median {np.median(a) * 1e6:7.1f} us  p90 {np.percentile(a, 90) * 1e6:7.1f}  "
            f"p99 {np.percentile(a, 99) * 1e6:7.1f}  max {a.max() * 1e6:8.1f}")


def run(args) -> int:
    if args.pin is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.pin})
    rt = EncoderRuntime(args.model, threads=args.threads)
    rng = np.random.default_rng(0)
    stats = rt.manifest.get("stats", {})
    macs = int(stats.get("macs_per_frame", 0))
    print(f"model: {rt.path} ({rt.path.stat().st_size / 1024:.0f} KiB), controls {rt.n_controls}, "
          f"lookahead {rt.lookahead}, {len(rt.state_shapes)} states, "
          f"{stats.get('n_params', '?')} params, {macs or '?'} MACs/frame")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}; "
          f"onnxruntime intra-op threads {args.threads}; frame period {1e3 / rt.frame_rate:.1f} ms")

    frame = np.abs(rng.normal(0.0, 0.3, (1, 128))).astype(np.float32)
    block8 = np.abs(rng.normal(0.0, 0.3, (8, 128))).astype(np.float32)
    # Anchor 1: dense float32 matvec with the encoder's multiply-adds per frame.
    rows = max(1, macs // 128) if macs else 4096
    W = rng.standard_normal((rows, 128)).astype(np.float32)
    v = frame[0].copy()
    y = np.empty(rows, np.float32)
    matvec = lambda: np.dot(W, v, out=y)  # noqa: E731
    # Anchor 2: the streaming frontend on one hop of audio (what feeds each encoder step live).
    frontend = None
    try:
        from rtmirror.frontend import CochlearStream
        fe = CochlearStream(rt.frontend)
        hop_block = (0.1 * rng.standard_normal(rt.frontend.hop)).astype(np.float32)
        fe.process(np.zeros(rt.frontend.sample_rate, np.float32))            # compile + settle
        frontend = lambda: fe.process(hop_block)  # noqa: E731
    except Exception as exc:  # the benchmark still runs without the frontend anchor
        print(f"(frontend anchor unavailable: {type(exc).__name__}: {exc})")

    for _ in range(300):                                                    # warm-up
        rt.step(frame)
        matvec()
    per_round = max(1, args.frames // args.rounds)
    step1, step8, mv, fr, step1_cpu = [], [], [], [], []
    for _ in range(args.rounds):
        step1.append(_timed(lambda: rt.step(frame), per_round, step1_cpu))
        step8.append(_timed(lambda: rt.step(block8), max(1, per_round // 8)) / 8)
        mv.append(_timed(matvec, per_round))
        if frontend is not None:
            fr.append(_timed(frontend, per_round))
    step1, step8, mv = np.concatenate(step1), np.concatenate(step8), np.concatenate(mv)
    step1_cpu = np.concatenate(step1_cpu)

    print(f"\nstep k=1 (per frame):      {_us(step1)}   ({len(step1)} steps, wall clock)")
    print(f"step k=1 CPU time:         {_us(step1_cpu)}   (thread CPU time: without preemption)")
    print(f"step k=8 (per frame):      {_us(step8)}")
    print(f"anchor matvec {rows}x128:  {_us(mv)}")
    if fr:
        fr = np.concatenate(fr)
        print(f"anchor frontend per hop:   {_us(fr)}")
    med1, p99 = np.median(step1), np.percentile(step1, 99)
    print(f"\nstep k=1 / matvec (median): {med1 / np.median(mv):.1f}x   "
          f"(onnxruntime per-call and per-node overhead over the arithmetic floor)")
    if len(fr):
        print(f"step k=1 / frontend (median): {med1 / np.median(fr):.2f}x")
    print(f"CPU share of one core at {rt.frame_rate:.0f} frames/s: {med1 * rt.frame_rate * 100:.2f} % (median)")
    p99_cpu = np.percentile(step1_cpu, 99)
    print(f"target p99 <= 500 us: wall {'MET' if p99 <= 500e-6 else 'MISSED'} ({p99 * 1e6:.0f} us), "
          f"CPU time {'MET' if p99_cpu <= 500e-6 else 'MISSED'} ({p99_cpu * 1e6:.0f} us)"
          + ("   [load average above the core count: wall-clock tails include time preempted]"
             if os.getloadavg()[0] > (os.cpu_count() or 1) else ""))

    T = int(round(args.seconds * rt.frame_rate))
    spec = np.abs(rng.normal(0.0, 0.3, (T, 128))).astype(np.float32)
    rt.run_full(spec[:256])                                                 # load the full graph
    times = _timed(lambda: rt.run_full(spec), 3)
    best = times.min()
    print(f"\nrun_full on {T} frames ({args.seconds:g} s): best {best * 1e3:.1f} ms of 3 -> "
          f"{T / best:,.0f} frames/s = {T / best / rt.frame_rate:,.0f}x real time "
          f"({'full-sequence graph' if rt.manifest.get('full') else 'step graph, k = T'})")
    mv_fps = 1.0 / np.median(mv)
    print(f"run_full frames/s / (1 / matvec median): {T / best / mv_fps:.2f}x")
    return 0
