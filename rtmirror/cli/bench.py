"""`rtmirror bench NAME [args]`: runs rtmirror/benchmarks/NAME.py (add_arguments + run)."""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("frontend", "synth", "data", "encoder", "live", "file")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=BENCHMARKS)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for that benchmark")


def run(args) -> int:
    mod = importlib.import_module(f"rtmirror.benchmarks.{args.name}")
    p = argparse.ArgumentParser(prog=f"rtmirror bench {args.name}")
    mod.add_arguments(p)
    return int(mod.run(p.parse_args(args.rest)) or 0)
