"""`rtmirror bench data`: dataset rendering throughput (melodies/s) for the built-in voice and a
VST (amsynth through DawDreamer), against an anchor measured in the same run: wav2aud alone on the
same melodies (the part every synth pays)."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

AMSYNTH = "/usr/lib/vst/amsynth_vst.so"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=48, help="melodies per synth")
    parser.add_argument("--set", default="exp1", dest="set_name")
    parser.add_argument("--kind", default="paper", choices=("paper", "general"))
    parser.add_argument("--workers", type=int, default=1, help="processes for the end-to-end render")
    parser.add_argument("--plugin", default=AMSYNTH, help="VST to benchmark ('' to skip)")
    parser.add_argument("--plugin-n", type=int, default=8, help="melodies for the VST (it is slow)")


def _per_stage(cfg, n: int) -> dict:
    """In-process seconds per melody: melody+truth, synth render (+resample), wav2aud."""
    from rtmirror.frontend import wav2aud
    from rtmirror.performer import events_to_frames
    from rtmirror.synth.dataset import _synth_for
    from rtmirror.synth.melody import make_melody

    space, fe = cfg.control_space, cfg.frontend_config
    synth = _synth_for(cfg)
    mels = [make_melody(cfg.kind, np.random.default_rng([cfg.seed, i]), space, cfg.duration_s,
                        frame_rate=fe.frame_rate) for i in range(n)]
    synth.render(mels[0].events, cfg.duration_s)   # warm-up (JIT, plugin load)
    t0 = time.perf_counter()
    for m in mels:
        events_to_frames(m.events, cfg.n_frames, space, fe.frame_rate)
    t1 = time.perf_counter()
    xs = []
    for m in mels:
        x = synth.render(m.events, cfg.duration_s)
        if synth.sample_rate != fe.sample_rate:
            import soxr
            x = soxr.resample(x, synth.sample_rate, fe.sample_rate, quality="HQ")
        xs.append(np.ascontiguousarray(x[: cfg.n_samples], dtype=np.float32))
    t2 = time.perf_counter()
    wav2aud(xs[0], fe)
    t3 = time.perf_counter()
    for x in xs:
        wav2aud(x, fe)
    t4 = time.perf_counter()
    return {"truth": (t1 - t0) / n, "synth": (t2 - t1) / n, "wav2aud": (t4 - t3) / n}


def run(args) -> int:
    from rtmirror.synth.dataset import DatasetConfig, render_dataset

    synths = ["builtin"] + ([args.plugin] if args.plugin else [])
    print(f"rtmirror bench data: {args.n} (VST: {args.plugin_n}) {args.kind} melodies ({args.set_name}), "
          f"end-to-end with {args.workers} worker(s)")
    anchor = None
    for spec in synths:
        if spec != "builtin" and not Path(spec).is_file():
            print(f"  {spec}: not found, skipped")
            continue
        n = args.n if spec == "builtin" else args.plugin_n
        cfg = DatasetConfig.make(synth=spec, space=args.set_name, kind=args.kind, n=n, seed=0,
                                 shard_size=max(1, n // max(1, args.workers)))
        st = _per_stage(cfg, n)
        if anchor is None:
            anchor = st["wav2aud"]
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            render_dataset(d, cfg, workers=args.workers, progress=False)
            total = time.perf_counter() - t0
        rate = n / total
        name = "builtin" if spec == "builtin" else Path(spec).name
        print(f"  {name:18s} end-to-end {rate:8.1f} melodies/s ({total:.2f} s, incl. process start + writes)")
        print(f"  {'':18s} per melody: synth {st['synth'] * 1e3:7.2f} ms, wav2aud {st['wav2aud'] * 1e3:6.2f} ms, "
              f"truth frames {st['truth'] * 1e3:5.2f} ms; in-process "
              f"{1.0 / sum(st.values()):7.1f} melodies/s = {anchor / sum(st.values()):.2f} x the anchor")
    print(f"  anchor: wav2aud alone {1.0 / anchor:8.1f} melodies/s ({anchor * 1e3:.2f} ms per {cfg.duration_s:g} s melody)")
    return 0
