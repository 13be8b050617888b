"""`rtmirror train CONFIG [--resume] [--out DIR] [--ship DIR]`: MirrorNet training (models/train/trainer.py).

CONFIG is a TOML file or the name of a shipped one (models/configs/NAME.toml: default, exp1, exp2,
exp3, tiny, ...). Under `torchrun --nproc_per_node=N` the same command trains data-parallel.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("config", help="TOML config file, or a shipped config name (default, exp1, exp2, exp3, tiny); "
                   "every key is type- and range-checked (models/train/config_check.py), e.g. threads "
                   "1..this machine's cores, name 1-64 of [A-Za-z0-9._-]")
    p.add_argument("--out", default=None, help="run directory (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--ship", default=None, metavar="DIR",
                   help="after training, copy the final weights + config + metrics + loss plot to DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars / per-epoch lines")


def ship(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy a run's model (no optimizer state), config, metrics and plot to dest, plus summary.json
    (training wall time, steps, the last validation numbers, the machine)."""
    import csv
    import json
    import os
    import platform

    from rtmirror.models.checkpoint import CONFIG_FILE, MODEL_FILE

    run_dir, dest = Path(run_dir), Path(dest)
    ck = run_dir / "checkpoint"
    dest.mkdir(parents=True, exist_ok=True)
    for src, name in ((ck / MODEL_FILE, MODEL_FILE), (ck / CONFIG_FILE, CONFIG_FILE),
                      (run_dir / "metrics.csv", "metrics.csv"), (run_dir / "loss.png", "loss.png")):
        if src.is_file():
            tmp = dest / (name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest / name)
    meta = json.loads((ck / CONFIG_FILE).read_text())
    last_val: dict = {}
    if (run_dir / "metrics.csv").is_file():
        with open(run_dir / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val_pitch_acc"):
                    last_val = {k: float(v) for k, v in row.items() if k.startswith("val_") and v}
    summary = {"progress": meta.get("progress"), "train_config_hash": meta.get("train_config_hash"),
               "train_time_min": round(float(meta.get("progress", {}).get("train_time_s", 0.0)) / 60, 1),
               "last_validation": last_val,
               "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), {platform.platform()}",
               "torch_threads": meta.get("train_config", {}).get("threads")}
    (dest / "summary.json.tmp").write_text(json.dumps(summary, indent=1) + "\n")
    (dest / "summary.json.tmp").replace(dest / "summary.json")
    return dest


def refuse_run_dir(cfg: dict, out: Path, resume: bool) -> str | None:
    """Why training into `out` must not start (None: it may), decided before anything is written:
    a refused run leaves the run folder (its config.json, metrics, checkpoint) as it was."""
    import json

    from rtmirror.models.checkpoint import CONFIG_FILE, MODEL_FILE
    from rtmirror.models.train.trainer import resume_key

    ck = out / "checkpoint"
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder for the run"
    if not (ck / MODEL_FILE).is_file():
        return None
    if not resume:
        return f"{ck} exists: pass --resume, or another --out"
    try:
        trained = json.loads((ck / CONFIG_FILE).read_text()).get("train_config", {})
    except (OSError, ValueError, AttributeError):
        return f"{ck / CONFIG_FILE}: unreadable; this checkpoint cannot be resumed, use another --out"
    if resume_key(trained) != resume_key(cfg):
        return (f"{ck}: checkpoint was trained with another config (only the schedule - epochs, rounds, "
                f"checkpoint interval - may change on resume); use another --out directory")
    return None


def run(args) -> int:
    from rtmirror.cli.common import one_line
    from rtmirror.models.train.trainer import load_config, train

    def fail(message: str) -> int:
        print(f"rtmirror train: {message}", file=sys.stderr)
        return 2

    try:
        cfg = load_config(args.config)
    except (OSError, ValueError) as exc:
        return fail(one_line(exc))
    out = Path(args.out) if args.out else Path("runs") / cfg["name"]
    try:
        why = refuse_run_dir(cfg, out, args.resume)
    except ValueError as exc:
        why = one_line(exc)
    if why:
        return fail(why)
    try:
        t = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except (FileExistsError, ValueError) as exc:
        return fail(one_line(exc))
    if t.rank == 0:
        print(f"done: {t.step} steps, {t.train_time_s / 60:.1f} min; checkpoint {out / 'checkpoint'}")
        if args.ship:
            print(f"shipped to {ship(out, args.ship)}")
    return 0
