"""`rtmirror eval`: evaluate encoders on held-out sets; `--report` also rewrites REPORT.md.

    rtmirror eval                                  # every checkpoint under models/checkpoints/
    rtmirror eval --checkpoint models/checkpoints/exp1 --sets exp1,exp3-piano -n 50
    rtmirror eval --report                         # the one command that regenerates REPORT.md
    rtmirror eval --checkpoint MODEL.onnx --sets real --live-n 30 --anchors   # docs/eval/real.md

`--sets real` (models/eval/real.py) scores exported .onnx models on the note set `real` through
the Pipeline users run, in file and live timing, with the anchors beside them (--anchors: the
venvs tools/anchors/setup.sh makes); it needs no torch.

Each model is evaluated on the sets that fit its control space (exp1 -> exp1 + exp3, exp2 -> exp2,
live -> general + exp3 piano) unless --sets names them. Results go to docs/report/results.json;
the report's figures and WAVs to docs/report/.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from rtmirror.cli.common import one_line
from rtmirror.fileio import write_json_atomic

DEFAULT_CHECKPOINTS = Path("models/checkpoints")
DEFAULT_SETS_BY_SPACE = {
    "exp1": ["exp1", "exp3-amsynth", "exp3-piano"],
    "exp2": ["exp2"],
    "live": ["general", "exp3-piano"],
}
SET_ORDER = ["exp1", "exp2", "general", "exp3-amsynth", "exp3-piano"]



def add_arguments(p) -> None:
    p.add_argument("--checkpoint", action="append", default=[], metavar="DIR|MODEL.onnx[=NAME]",
                   help="checkpoint directory, or an exported .onnx scored through the Pipeline users run "
                        "(repeatable); default: every model under models/checkpoints/")
    p.add_argument("--sets", default="", help="comma list of held-out sets, each optionally SET:N "
                   "(exp1, exp2, general, exp3-amsynth, exp3-piano); default: by the model's control set")
    p.add_argument("-n", "--n", type=int, default=200, help="melodies per set (default 200, the issue's exp1 size)")
    p.add_argument("--n-exp3", type=int, default=None, help="melodies per exp3 set (default: --n)")
    p.add_argument("--report", action="store_true", help="also write REPORT.md with figures and WAVs")
    p.add_argument("--out", default=None, help="report path (implies --report; default REPORT.md)")
    p.add_argument("--fig-dir", default="docs/report", help="figures, WAVs and results.json")
    p.add_argument("--examples", type=int, default=2, help="examples per set in the report")
    p.add_argument("--main", default=None, help="the exp1 MirrorNet model the targets are checked on")
    p.add_argument("--supervised", default=None, help="the supervised-only baseline (for the exp3 comparison)")
    p.add_argument("--runs", default="runs", help="where training runs keep metrics CSVs (loss curves)")
    p.add_argument("--note", action="append", default=[], help="a line for the report's 'What ran' section")
    p.add_argument("--cache-dir", default=None, help="held-out set cache (default datasets/heldout)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse cached results of unchanged checkpoints on unchanged sets (same numbers, "
                        "datasets/heldout/results/); only the report's example melodies are re-run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--train-baselines", default=None, metavar="CONFIG",
                   help="train the baselines of a MirrorNet config (TOML or shipped name) into runs/: "
                        "NAME-noinit (init off, no supervised term) and NAME-supervised (same optimizer steps); then exit")
    p.add_argument("--train", default=None, metavar="CONFIG",
                   help="train one config as a report run (runs/NAME, docs/report/configs/NAME.json); then exit")
    p.add_argument("--live-n", type=int, default=0, metavar="N",
                   help="with --sets real: also score the first N melodies in live timing (real time: ~8 s each)")
    p.add_argument("--anchors", action="store_true",
                   help="with --sets real: run basic-pitch and PESTO (+ causal segmenter) on the same files")
    p.add_argument("--anchor-root", default="/work/anchors", metavar="DIR",
                   help="where the anchor venvs are (DIR/basic-pitch, DIR/pesto; tools/anchors/setup.sh DIR)")
    p.add_argument("--real-out", default="docs/eval/real.md", metavar="MD",
                   help="with --sets real: the results page (a .json beside it)")
    p.add_argument("--timbre", action="store_true",
                   help="with --sets real: also compare the built-in voice with the inferred knobs and with the "
                        "default patch against the input (auditory-spectrogram distance per family)")
    p.add_argument("--with-base", action="store_true",
                   help="with --train-baselines: train the MirrorNet config itself too (as NAME)")


def plan_steps(cfg: dict) -> int:
    """Optimizer steps a models/train/trainer.py config takes: per epoch max(1, n // batch) of its data."""
    from rtmirror.models.train.trainer import phase_plan

    bs = int(cfg["optim"]["batch"])
    d = cfg["data"]
    size = {"decoder_init": d["n_random"], "encoder_init": d["n_random"], "decoder": d["n"], "encoder": d["n"]}
    return sum(epochs * max(1, int(size[phase]) // bs) for phase, _, epochs in phase_plan(cfg))


def baseline_configs(base: dict, with_base: bool = False) -> dict[str, dict]:
    """The issue's baselines of a MirrorNet config: the same nets, data and seeds;
    NAME-noinit: no supervised start for E; NAME-supervised: E only, on the labelled random
    renders, for as many optimizer steps as the MirrorNet run takes in all (D's and E's)."""
    import copy
    import math

    from rtmirror.models.train.trainer import merge_config

    if base["mode"] != "mirror":
        raise ValueError("--train-baselines needs a MirrorNet (mode = 'mirror') config")
    name = base["name"]
    out = {}
    if with_base:
        out[name] = copy.deepcopy(base)
    noinit = copy.deepcopy(base)
    noinit["name"] = f"{name}-noinit"
    noinit["init"]["enabled"] = False
    noinit["mirror"]["encoder_sup_weight"] = 0.0      # no supervised term for E at all
    out[noinit["name"]] = noinit
    sup = copy.deepcopy(base)
    sup["name"] = f"{name}-supervised"
    sup["mode"] = "supervised"
    per_epoch = max(1, int(base["data"]["n_random"]) // int(base["optim"]["batch"]))
    sup["init"]["encoder_epochs"] = int(math.ceil(plan_steps(base) / per_epoch))
    out[sup["name"]] = merge_config({}, sup)
    return out


def _render_key(cfg: dict, part: str) -> str | None:
    """The cache key training writes for run_dir/data/PART (random | target | val), derived by the
    trainer's own functions (render_specs, render_plan, render_key)."""
    from rtmirror.controls import ControlSpace
    from rtmirror.frontend import FrontendConfig
    from rtmirror.models.train.trainer import render_plan, render_specs
    from rtmirror.performer import PerformerConfig
    from rtmirror.synth.render import render_key

    space = ControlSpace.load(cfg["data"]["set"])
    fe = FrontendConfig.from_dict({**FrontendConfig().to_dict(), **cfg["frontend"]})
    loop, target, _ = render_specs(cfg, space, fe, PerformerConfig(**cfg["performer"]))
    plan = render_plan(cfg, loop, target)
    return render_key(*plan[part]) if part in plan else None


def train_baselines(args) -> int:
    """--train-baselines CONFIG [--with-base] or --train CONFIG: report runs, one after another.
    Runs with the same loop synth and seeds reuse the first run's random renders."""
    import shutil

    from rtmirror.models.train.trainer import load_config, train

    if args.train:
        base = load_config(args.train)
        cfgs = {base["name"]: base}
    else:
        base = load_config(args.train_baselines)
        cfgs = baseline_configs(base, args.with_base)
    cfg_dir = Path(args.fig_dir) / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    for name, cfg in cfgs.items():
        (cfg_dir / f"{name}.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
        run_dir = Path(args.runs) / name
        # renders already made by another report run with the same key (train.py re-checks the key)
        for key_file in sorted(Path(args.runs).glob("*/data/*.key.json")):
            part = key_file.name[: -len(".key.json")]
            dst = run_dir / "data"
            if key_file.parent == dst or (dst / key_file.name).exists():
                continue
            mine = _render_key(cfg, part)
            if mine is not None and key_file.read_text() == mine:
                dst.mkdir(parents=True, exist_ok=True)
                for suffix in (".spec.npy", ".truth.npy", ".key.json"):
                    shutil.copyfile(key_file.parent / (part + suffix), dst / (part + suffix))
                print(f"   reusing {key_file.parent / part}.* renders", flush=True)
        resume = (run_dir / "checkpoint" / "model.safetensors").is_file()
        print(f"== {name}: {plan_steps(cfg)} optimizer steps -> {run_dir} (resume={resume})", flush=True)
        t = train(cfg, run_dir, resume=resume, progress=not args.quiet)
        print(f"== {name}: done, {t.step} steps, {t.train_time_s / 60:.1f} min", flush=True)
    return 0


def _parse_checkpoints(specs: list[str], fig_dir: Path, runs: Path) -> list[tuple[str, Path]]:
    """--checkpoint values, or by default every models/checkpoints/NAME/ plus the report's own
    runs: runs/NAME/checkpoint for each docs/report/configs/NAME.json (--train-baselines)."""
    out = []
    if not specs:
        if DEFAULT_CHECKPOINTS.is_dir():
            for d in sorted(DEFAULT_CHECKPOINTS.iterdir()):
                if (d / "model.safetensors").is_file():
                    out.append((d.name, d))
        names = {n for n, _ in out}
        for cfg in sorted((fig_dir / "configs").glob("*.json"), key=lambda p: p.stem):
            d = runs / cfg.stem / "checkpoint"
            if cfg.stem not in names and (d / "model.safetensors").is_file():
                out.append((cfg.stem, d))
        return out
    for s in specs:
        path, _, name = s.partition("=")
        p = Path(path)
        d = p if p.is_dir() else p.parent
        # runs/NAME/checkpoint -> NAME
        default = p.stem if p.suffix == ".onnx" else d.parent.name if d.name == "checkpoint" else d.name
        out.append((name or default, p))
    return out


def _parse_sets(text: str, n: int, n_exp3: int | None) -> list[tuple[str, int]] | None:
    if not text:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, size = item.partition(":")
        out.append((name, int(size) if size else (n_exp3 or n) if name.startswith("exp3") else n))
    return out


def _role(meta: dict) -> str:
    """'supervised' | 'mirror (init)' | 'mirror (no init)' | '?' from a checkpoint's training config."""
    tc = meta.get("train_config") or {}
    mode = str(tc.get("mode", tc.get("regimen", ""))).lower()
    if "supervised" in mode:
        return "supervised"
    init = tc.get("init", tc.get("supervised_init"))
    if isinstance(init, dict):
        init = init.get("enabled", init.get("steps", 0))
    if mode or "mirror" in tc:
        return "mirror (init)" if init else "mirror (no init)"
    return "?"


def _training_text(meta: dict) -> str:
    """'mirror (init), 3 rounds, 5200 steps, 95 min, complete' from models/train/trainer.py's meta."""
    prog = meta.get("progress") or {}
    tc = meta.get("train_config") or {}
    bits = [_role(meta)]
    if bits[0].startswith("mirror") and "rounds" in prog:
        bits.append(f"{prog['rounds']} mirror rounds")
    data = tc.get("data") or {}
    if data:
        bits.append(f"{data.get('n', '?')} target + {data.get('n_random', '?')} random {data.get('kind', '')} melodies")
    if "step" in prog:
        bits.append(f"{prog['step']} steps")
    if isinstance(prog.get("train_time_s"), (int, float)):
        bits.append(f"{prog['train_time_s'] / 60:.0f} min")
    if "complete" in prog:
        bits.append("complete" if prog["complete"] else f"**stopped early** (phase {prog.get('phase')}, round {prog.get('round')})")
    return ", ".join(bits)


def _result_cache_path(args, model, set_name: str, n: int) -> Path | None:
    """datasets/heldout/results/NAME-<weights+evaluator hash>-SET-nN.json: the summary of one
    evaluation, valid while the checkpoint file, this evaluator and the held-out set are unchanged
    (the set itself is verified against today's code when it is loaded)."""
    import hashlib

    from rtmirror.models.eval import evaluate as E
    from rtmirror.models.eval import heldout as H

    path = Path(model.info.get("path", ""))
    weights = path / "model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        return None
    h = hashlib.sha256(weights.read_bytes())
    h.update(Path(E.__file__).read_bytes())
    h.update(json.dumps([model.frontend.to_dict(), str(model.performer)], sort_keys=True).encode())
    base = Path(args.cache_dir) if args.cache_dir else H.default_cache_dir()
    return base / "results" / f"{model.name}-{h.hexdigest()[:12]}-{set_name}-n{n}.json"


def run(args) -> int:
    from rtmirror.models.eval.heldout import NOTE_SETS

    requested = [item.partition(":")[0].strip() for item in args.sets.split(",") if item.strip()]
    if any(s in NOTE_SETS for s in requested):
        if not all(s in NOTE_SETS for s in requested):
            print(f"rtmirror eval: note sets ({', '.join(NOTE_SETS)}) run on their own; drop "
                  f"{', '.join(s for s in requested if s not in NOTE_SETS)} from --sets", file=sys.stderr)
            return 2
        return run_real(args)
    import torch

    from rtmirror.models.eval import evaluate as E
    from rtmirror.models.eval import heldout as H

    torch.set_num_threads(max(1, args.threads))
    if args.train_baselines or args.train:
        return train_baselines(args)
    if args.out is not None:
        args.report = True
    args.out = args.out or "REPORT.md"
    ckpts = _parse_checkpoints(args.checkpoint, Path(args.fig_dir), Path(args.runs))
    if not ckpts:
        print(f"rtmirror eval: no checkpoints (none under {DEFAULT_CHECKPOINTS}/, none given)", file=sys.stderr)
        return 2
    forced_sets = _parse_sets(args.sets, args.n, args.n_exp3)
    fig_dir = Path(args.fig_dir)
    for s, _ in forced_sets or []:
        if s not in H.SETS:
            print(f"rtmirror eval: unknown set {s!r}; known: {', '.join(H.SETS)}", file=sys.stderr)
            return 2

    models = {}
    for name, path in ckpts:    # every model loads before anything is written
        try:
            models[name] = E.onnx_model(path, name) if str(path).endswith(".onnx") else E.load_model(path, name)
        except (OSError, ValueError, KeyError) as exc:
            print(f"rtmirror eval: cannot load {path}: {one_line(exc)}", file=sys.stderr)
            return 2
    fig_dir.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    kept: dict[tuple[str, str], E.SetResult] = {}
    datasets: dict[str, H.HeldoutSet] = {}
    t0 = time.time()
    for name, model in models.items():
        sets = forced_sets or [(s, (args.n_exp3 or args.n) if s.startswith("exp3") else args.n)
                               for s in DEFAULT_SETS_BY_SPACE.get(model.space.name, ["exp1"])]
        results[name] = {}
        for set_name, n in sets:
            key = f"{set_name}:{n}"
            if key not in datasets:
                try:
                    datasets[key] = H.get(set_name, n, args.cache_dir, sample_rate=model.frontend.sample_rate,
                                          progress=not args.quiet)
                except (OSError, RuntimeError, ImportError, ValueError) as exc:
                    print(f"rtmirror eval: held-out set {set_name} unavailable: {exc}", file=sys.stderr)
                    continue
            cache = _result_cache_path(args, model, set_name, n)
            keep = args.examples if args.report else 0
            if args.reuse and cache is not None and cache.is_file():
                summary = json.loads(cache.read_text())
                # the figures still need arrays: re-run only the example melodies
                res = E.evaluate_set(model, datasets[key].subset(min(keep, n)), keep=keep, progress=False)
                res.summary = summary
                print(f"   (reused {cache})")
            else:
                res = E.evaluate_set(model, datasets[key], keep=keep, progress=not args.quiet)
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    write_json_atomic(cache, res.summary, allow_nan=True)
            results[name][set_name] = res.summary
            kept[(name, set_name)] = res
            s = res.summary
            print(f"{name:>28s} {set_name:>13s} n={s['n_melodies']:4d}  noteF1 {s['note_f1']:.3f}  "
                  f"pitch {100 * s['frame_pitch_acc']:.1f}%  resynth r {s['resynth_corr']:.3f}  "
                  + "  ".join(f"{c}: r {v['r']:.2f}" for c, v in s["controls"].items()), flush=True)
    elapsed = time.time() - t0

    out_json = fig_dir / "results.json"
    payload = {"results": results, "elapsed_s": elapsed,
               "models": {m: {"path": mod.info.get("path"), "space": mod.space.name,
                              "role": _role(mod.info.get("meta", {}))} for m, mod in models.items()}}
    write_json_atomic(out_json, payload, indent=1, allow_nan=True,
                      default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    print(f"results -> {out_json} ({elapsed:.0f} s)")
    if args.report:
        write_full_report(args, models, results, kept, datasets, elapsed)
        print(f"report -> {args.out}")
    return 0


def write_full_report(args, models, results, kept, datasets, elapsed) -> None:

    from rtmirror.models.eval import heldout as H
    from rtmirror.models.eval import report as R

    fig_dir = Path(args.fig_dir)
    roles = {m: _role(mod.info.get("meta", {})) for m, mod in models.items()}
    main = args.main or next((m for m, mod in models.items() if mod.space.name == "exp1" and roles[m] == "mirror (init)"
                              and "exp1" in results.get(m, {})), None) \
        or next((m for m, mod in models.items() if mod.space.name == "exp1" and "exp1" in results.get(m, {})), None)
    supervised = args.supervised or next((m for m in models if roles[m] == "supervised"
                                          and models[m].space.name == "exp1"), None)

    # loss curves: metrics CSV in the checkpoint directory, else runs/<name>/
    curves = {}
    for m, mod in models.items():
        path = Path(mod.info.get("path", ""))
        for cand in [path / "metrics.csv", path.parent / "metrics.csv", Path(args.runs) / m / "metrics.csv"]:
            if cand.is_file():
                try:
                    curves[m] = R.read_metrics_csv(cand)
                except (OSError, ValueError):
                    pass
                break
    loss_png = fig_dir / "loss_curves.png"
    has_loss = R.loss_curves_png(loss_png, curves)

    # examples: for each set the main model (or the first one that ran on it)
    examples = []
    for set_name in SET_ORDER:
        cands = [m for m in models if (m, set_name) in kept]
        if not cands:
            continue
        m = main if main in cands else (next((c for c in cands if roles[c].startswith("mirror")), cands[0]))
        res, mod = kept[(m, set_name)], models[m]
        ds = next(d for k, d in datasets.items() if k.startswith(set_name + ":"))
        specs = ds.spectrograms(mod.frontend)
        for mr in [r for r in res.melodies if r.est_frames is not None][: args.examples]:
            stem = f"{set_name}_{mr.index}"
            tri = fig_dir / f"{stem}_triptych.png"
            R.triptych_png(tri, mod.to_decoder_domain(specs[mr.index]), mr.decoded_spec,
                           mod.to_decoder_domain(mr.resynth_spec), mod.frontend.frame_rate, mod.frontend.shift,
                           f"{set_name} #{mr.index}, {m} (compressed spectrograms)", mr.resynth_corr_log,
                           mr.decoder_corr)
            ctl = fig_dir / f"{stem}_controls.png"
            R.controls_png(ctl, mr.est_frames, ds.truth[mr.index], mod.space, ds.space, mod.frontend.frame_rate,
                           f"{set_name} #{mr.index}, {m}: note F1 {mr.notes['f1']:.2f}, "
                           f"pitch acc {100 * mr.pitch_acc:.0f} %", ds.truth_knobs)
            wav_in, wav_out = fig_dir / f"{stem}_input.wav", fig_dir / f"{stem}_resynth.wav"
            R.write_wav(wav_in, ds.audio[mr.index], ds.sample_rate)
            R.write_wav(wav_out, mr.resynth_audio, mod.frontend.sample_rate)
            rel = lambda p: os.path.relpath(p, Path(args.out).parent or ".")
            examples.append((set_name, m, rel(tri), rel(ctl), rel(wav_in), rel(wav_out)))

    set_info = {}
    for set_name in SET_ORDER:
        sizes = sorted({int(k.split(":")[1]) for k in datasets if k.startswith(set_name + ":")})
        if sizes:
            spec = H.SETS[set_name]
            set_info[set_name] = {"n": ", ".join(map(str, sizes)), "description": spec.description,
                                  "seeds": f"{spec.seed_base} + i"}
    models_info = {}
    for m, mod in models.items():
        meta = mod.info.get("meta", {})
        path = mod.info.get("path")
        own = (Path(args.fig_dir) / "configs" / f"{m}.json").is_file()
        target = ((meta.get("train_config") or {}).get("data") or {}).get("target_synth")
        models_info[m] = {"space": mod.space.name, "synth": (meta.get("synth", "?") if isinstance(meta.get("synth"), str)
                                                             else json.dumps(meta.get("synth")))
                          + (f"; targets played by {target}" if target else ""),
                          "training": _training_text(meta),
                          "notes": (f"this report's run `{path}`" + (" (git-ignored)" if str(path).startswith(str(args.runs)) else "")
                                    + f", config `{args.fig_dir}/configs/{m}.json`"
                                    if own else f"`{path}`")}
    notes = list(args.note)
    evaluated = {s for r in results.values() for s in r}
    for s in SET_ORDER:
        if s not in evaluated:
            notes.append(f"Set `{s}` was not evaluated: no model for its control set "
                         f"({H.SETS[s].space}) was given." if not s.startswith("exp3") else
                         f"Set `{s}` was not evaluated (no exp1/live model, or the set could not be rendered).")
    small = sorted({(k.split(':')[0], int(k.split(':')[1])) for k in datasets if int(k.split(':')[1]) < 200})
    if small:
        notes.append("Reduced set sizes (CPU budget): " + ", ".join(f"{s} {n}" for s, n in small)
                     + " melodies (the issue asks for >= 200 on exp1).")
    if not any(roles[m] == "supervised" for m in models):
        notes.append("No supervised-only baseline was evaluated.")
    if not any(roles[m] == "mirror (no init)" for m in models):
        notes.append("No MirrorNet-without-init baseline was evaluated.")
    adapted = [m for m, mod in models.items()
               if ((mod.info.get("meta", {}).get("train_config") or {}).get("data") or {}).get("target_synth")]
    if adapted:
        notes.append("Trained on another synth's audio (exp3-style MirrorNet adaptation): "
                     + ", ".join(f"`{m}`" for m in adapted) + "; every other model meets exp3 audio zero-shot.")
    else:
        notes.append("exp3 sets are evaluated zero-shot: no evaluated encoder trained on amsynth or piano audio "
                     "(no exp3 MirrorNet adaptation run was available).")
    notes.append(f"Evaluation wall time {elapsed / 60:.1f} min on a shared 2-core VM, torch threads {args.threads}"
                 + (" (--reuse: the summaries of checkpoints and sets unchanged since an earlier run of this "
                    "evaluator were reused, only the example melodies re-run)." if args.reuse else "."))
    command = "rtmirror eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else "rtmirror eval --report"
    R.write_report(Path(args.out), results, models_info, set_info,
                   {"loss": os.path.relpath(loss_png, Path(args.out).parent or ".") if has_loss else None,
                    "examples": examples}, notes, main, supervised, command,
                   discussion=_read_discussion(fig_dir))


def _read_discussion(fig_dir: Path) -> str:
    """docs/report/discussion.md: the hand-written reading of the numbers, kept in the report."""
    p = fig_dir / "discussion.md"
    return p.read_text() if p.is_file() else ""


def run_real(args) -> int:
    """--sets real[:N]: each .onnx in file timing (and live on the first --live-n), the anchors on
    the same WAVs; prints a table, writes --real-out (markdown) and a .json beside it."""
    from rtmirror.models.eval import real as R

    onnx = [(name, p) for name, p in _parse_checkpoints(args.checkpoint, Path(args.fig_dir), Path(args.runs))
            if str(p).endswith(".onnx")]
    if not onnx or len(onnx) != len(args.checkpoint):
        print("rtmirror eval: --sets real scores exported models: give --checkpoint MODEL.onnx "
              "(rtmirror/resources/default.onnx is the shipped one)", file=sys.stderr)
        return 2
    for _, p in onnx:
        if not Path(p).is_file():
            print(f"rtmirror eval: {p} not found: give an existing --checkpoint MODEL.onnx", file=sys.stderr)
            return 2
    n = R.DEFAULT_N
    for item in args.sets.split(","):
        name, _, size = item.strip().partition(":")
        if size:
            try:
                n = int(size)
            except ValueError:
                print(f"rtmirror eval: --sets {item}: the size must be a number, e.g. real:120", file=sys.stderr)
                return 2
    if n < 1 or args.live_n < 0:
        print("rtmirror eval: melody counts must be positive (--sets real:N, --live-n N)", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        rs = R.get(n, args.cache_dir, progress=not args.quiet)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"rtmirror eval: cannot make the real set: {exc} (sound fonts: apt-get install csound-soundfont)",
              file=sys.stderr)
        return 2
    results: dict[str, dict] = {}
    notes: list[str] = list(args.note)
    timbre: dict[str, dict] = {}
    t_render = time.time() - t0

    def show(label: str, res: dict) -> None:
        a = res["all"]
        print(f"{label:>44s}  n={a['n']:3d}  F1 {a['f1']:.3f}  P {a['precision']:.3f}  R {a['recall']:.3f}  "
              f"count {a['count_ratio']:.2f}  lag {a['lag_median_ms']:+.0f} / p90 {a['lag_p90_ms']:+.0f} ms", flush=True)

    for name, path in onnx:
        from rtmirror.runtime import ModelError
        try:
            est = R.file_notes(path, rs, range(len(rs)), progress=not args.quiet)
        except (ModelError, ValueError, OSError) as exc:
            print(f"rtmirror eval: cannot run {path}: {exc}", file=sys.stderr)
            return 2
        results[f"{name} (file)"] = R.score(rs, est)
        show(f"{name} (file)", results[f"{name} (file)"])
        if args.live_n:
            k = min(args.live_n, len(rs))
            est, stats = R.live_notes(path, rs, range(k), progress=not args.quiet)
            label = f"{name} (live, first {k})"
            results[label] = R.score(rs, est)
            results[label]["stats"] = stats
            show(label, results[label])
            notes.append(f"`{label}`: the Engine at 48 kHz / 128-sample blocks in real time; "
                         f"{stats['dropped_frames']} frames dropped, {stats['input_overflows']} input overflows"
                         + (f"; errors: {'; '.join(stats['errors'])}" if stats["errors"] else "") + ".")
            # the same melodies in file timing, so the two timings compare on one subset
            sub = f"{name} (file, first {k})"
            results[sub] = R.score(rs, {i: v for i, v in R.file_notes(path, rs, range(k), progress=False).items()})
            show(sub, results[sub])
        if args.timbre:
            from rtmirror.models.eval import timbre as TB
            scores = TB.timbre_scores(path, rs, range(len(rs)), progress=not args.quiet)
            timbre[name] = {"summary": TB.timbre_summary(scores), "melodies": scores}
            a = timbre[name]["summary"]["all"]
            print(f"{name + ' timbre':>44s}  d inferred {a['d_inferred']:.3f}  d default {a['d_default']:.3f}  "
                  f"improvement {a['improvement']:+.1%}  closer {a['closer']:.0%}", flush=True)
    if args.anchors:
        tools = Path(__file__).resolve().parents[2] / "tools" / "anchors"
        for anchor in R.ANCHORS:
            try:
                est, label = R.run_anchor(anchor, rs, Path(args.anchor_root), tools, progress=not args.quiet)
            except (OSError, RuntimeError) as exc:
                print(f"rtmirror eval: anchor {anchor} unavailable: {exc}", file=sys.stderr)
                continue
            short = R.ANCHORS[anchor][2]
            results[short] = R.score(rs, est)
            show(short, results[short])
            notes.append(f"`{short}`: {label}.")
    elapsed = time.time() - t0
    notes.append(f"Wall time {elapsed / 60:.1f} min on a shared 2-core VM (set {'rendered' if t_render > 30 else 'from cache'}).")
    command = "rtmirror eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 \
        else "rtmirror eval --sets real"
    out = Path(args.real_out)
    from rtmirror.fileio import write_text_atomic
    out.parent.mkdir(parents=True, exist_ok=True)
    timbre_md = ""
    if timbre:
        from rtmirror.models.eval.timbre import timbre_markdown
        timbre_md = "\n".join(timbre_markdown(t["summary"], name if len(timbre) > 1 else "") for name, t in timbre.items())
    write_text_atomic(out, R.markdown(results, rs, command, notes, timbre=timbre_md))
    write_json_atomic(out.with_suffix(".json"), {"command": command, "n": len(rs), "results": results,
                                                 **({"timbre": timbre} if timbre else {})},
                      indent=1, allow_nan=True)
    print(f"results -> {out} ({elapsed:.0f} s)")
    return 0
