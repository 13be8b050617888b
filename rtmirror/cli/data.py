"""`rtmirror data render ...` (render a melody dataset) and `rtmirror data info DIR`."""
from __future__ import annotations

import argparse
import sys
import time

from rtmirror.synth.dataset import DEFAULT_DURATION, DatasetConfig, DatasetError, MelodyDataset, render_dataset

# Limits checked before anything renders (a dataset of 1e9-second melodies asked for 29 TiB).
MAX_MELODIES = 1_000_000
MAX_MELODY_SECONDS = 600.0
MAX_SHARD_SIZE = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = sub.add_parser("render", help="render melodies through a synth: audio, spectrograms, control frames")
    r.add_argument("--synth", default="builtin", help="'builtin' or a plugin path (.so / .vst3)")
    r.add_argument("--param-map", default=None, help="plugin parameter map (name or TOML); default: by plugin file")
    r.add_argument("--set", default="exp1", dest="set_name", help="control set: exp1 | exp2 | live | FILE.toml[:SET]")
    r.add_argument("--kind", default="paper", choices=sorted(DEFAULT_DURATION), help="melody generator")
    r.add_argument("-n", type=int, required=True, help=f"number of melodies, 1..{MAX_MELODIES}")
    r.add_argument("-o", "--out", required=True, help="output directory (resumes if it holds the same dataset)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--shard-size", type=int, default=64, help=f"melodies per shard, 1..{MAX_SHARD_SIZE}")
    r.add_argument("--workers", type=int, default=None, help="processes, 1..the machine's cores (default: all cores)")
    r.add_argument("--duration", type=float, default=None,
                   help=f"seconds per melody, (0, {MAX_MELODY_SECONDS:g}] (default: {DEFAULT_DURATION})")
    r.add_argument("--no-progress", action="store_true")
    i = sub.add_parser("info", help="validate a rendered dataset and print its manifest summary")
    i.add_argument("dir")
    i.add_argument("--verify", action="store_true", help="also check every file's sha256")


def check_render_args(args) -> None:
    """The limits of `data render`, as one ValueError line."""
    import math
    import os
    if not 1 <= args.n <= MAX_MELODIES:
        raise ValueError(f"-n must be 1..{MAX_MELODIES} melodies, got {args.n}")
    if not 1 <= args.shard_size <= MAX_SHARD_SIZE:
        raise ValueError(f"--shard-size must be 1..{MAX_SHARD_SIZE}, got {args.shard_size}")
    if args.workers is not None and not 1 <= args.workers <= (os.cpu_count() or 1):
        raise ValueError(f"--workers must be 1..{os.cpu_count() or 1} (this machine's cores), got {args.workers}")
    if args.duration is not None and not (0 < args.duration <= MAX_MELODY_SECONDS and math.isfinite(args.duration)):
        raise ValueError(f"--duration must be in (0, {MAX_MELODY_SECONDS:g}] seconds per melody, got {args.duration}")


def run(args) -> int:
    from rtmirror.cli.common import load_space, one_line
    try:
        if args.action == "render":
            check_render_args(args)
            cfg = DatasetConfig.make(synth=args.synth, space=load_space(args.set_name), kind=args.kind, n=args.n, seed=args.seed,
                                     shard_size=args.shard_size, duration_s=args.duration, param_map=args.param_map)
            t0 = time.perf_counter()
            man = render_dataset(args.out, cfg, workers=args.workers, progress=not args.no_progress)
            dt = time.perf_counter() - t0
            print(f"{args.out}: {man['n']} melodies in {man['n_shards']} shards "
                  f"({man['n_frames']} frames x {len(man['control_names'])} controls each), {dt:.1f} s")
            return 0
        ds = MelodyDataset(args.dir, verify=args.verify)
        m = ds.manifest
        print(f"{args.dir}: {len(ds)} {m['kind']} melodies of {m['duration_s']} s, synth {m['synth']!r}, "
              f"set {ds.space.name!r} {ds.space.names}, {m['sample_rate']} Hz, {m['n_frames']} frames, "
              f"{m['n_shards']} shards, seed {m['seed']}" + (", checksums OK" if args.verify else ""))
        return 0
    except (DatasetError, OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f"rtmirror data: {one_line(exc)}", file=sys.stderr)
        return 2
