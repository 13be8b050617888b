"""MirrorNet training: the paper's regimen with the real synth in the loop (Siriwardena, Marion &
Shamma, "The MirrorNet", ICASSP 2022, arXiv 2110.05695; docs/TRAINING.md).

    phases = decoder_init  D learns random-control renders: truth controls -> spec
             encoder_init  ("init" only) E learns the same renders supervised (masked losses)
             round r = 0 .. rounds-1:
               render      E proposes controls for the target audio x; the Performer turns them
                           into events and the REAL synth re-renders them (process pool):
                           spec' = frontend(synth(Performer(E(x))))
               decoder     D learns (E(x), spec')  [+ a share of random renders, decoder_random_mix]
               encoder     E learns ||D(E(x)) - x|| with D frozen [+ encoder_sup_weight * supervised]
    mode = "supervised": the baseline — only E on labelled random renders (encoder_init phase).

The gap ||D(E(x)) - spec'|| (E exploiting D's mistakes) is logged per round before and after D's
epochs. Everything is in the compressed domain of the encoder's input (layers.compress).

Determinism and resume: the data sets are rendered from seeds ([seed, i] per melody) and cached in
the run directory; each epoch's batches come from default_rng([seed, phase, epoch]); nothing else
is random. A checkpoint (after an epoch, at most every `checkpoint.minutes`, and at each phase's
end) holds weights, optimizer states and the position (phase, epoch), so a resumed run repeats
exactly the uninterrupted one. Under torchrun (WORLD_SIZE > 1) the same code runs data-parallel
(DistributedDataParallel: gloo on CPU, nccl on CUDA); rank r takes every world-th batch; rank 0
writes. Outputs (run directory): checkpoint/, metrics.csv, loss.png, data/ (cached renders).
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from rtmirror.controls import ControlSpace
from rtmirror.fileio import atomic_write, save_npy_atomic, write_text_atomic
from rtmirror.frontend.config import FrontendConfig
from rtmirror.performer import PerformerConfig
from rtmirror.synth.augment import AugmentConfig

from rtmirror.models.checkpoint import (MODEL_FILE, config_hash, load_checkpoint, load_train_state, optimizer_state,
                         save_checkpoint)
from rtmirror.models.decoder import Decoder, DecoderConfig
from rtmirror.models.encoder import Encoder, EncoderConfig
from rtmirror.models.layers import compress, receptive_past
from rtmirror.models.train.config_check import load_checked
from rtmirror.models.train.losses import knob_scales_from, spectrogram_loss, supervised_loss
from rtmirror.synth.render import Renderer, RenderSpec, render_key

# Every knob with its default; a config file overrides any of them (unknown keys are an error).
DEFAULTS: dict = {
    "name": "run",
    "seed": 0,
    "mode": "mirror",            # mirror | supervised (baseline: E on labelled random renders only)
    "device": "auto",            # auto | cpu | cuda
    "threads": 1,                # torch intra-op threads per process (the machine is shared)
    "data": {
        "set": "exp1",           # control set: shipped name or FILE.toml:SET
        "kind": "paper",         # target melodies: paper | general
        "n": 200,                # target (unlabelled) melodies
        "duration_s": 2.0,
        "target_synth": "",      # who plays the target audio: a synth spec, or a table {spec = weight}
                                 # (a weighted mix, one source per melody); "" = the synth in the loop
        "target_set": "",        # control set of the target melodies + their synth; "" = set (exp2: "exp2")
        "random_kind": "",       # melodies of the random-control renders; "" = kind
        "n_random": 200,         # random-control renders (D init, E init, D mix)
        "n_val": 32,             # validation melodies (target distribution, truth known)
        "workers": 1,            # render processes (0 = in the training process)
    },
    "synth": {"spec": "builtin", "param_map": ""},
    "frontend": {},              # FrontendConfig fields
    "performer": {},             # PerformerConfig fields
    "encoder": {},               # EncoderConfig fields (n_controls/pitch from the control set)
    "decoder": {},               # DecoderConfig fields
    "augment": AugmentConfig().to_dict(),   # rooms and microphones on the target audio (synth/augment.py)
    "init": {"enabled": True, "decoder_epochs": 10, "encoder_epochs": 5,
             "from_checkpoint": ""},    # start E and D from a trained run's weights (same controls)
    "mirror": {"rounds": 3, "decoder_epochs": 3, "encoder_epochs": 3,
               "decoder_random_mix": 0.25, "encoder_sup_weight": 0.0,
               "target_note_weight": 0.0},   # supervised pitch + gate on the targets (their notes are known)
    "optim": {"batch": 16, "crop_frames": 200, "lr_encoder": 1e-3, "lr_decoder": 1e-3,
              "lr_decay_per_round": 1.0, "grad_clip": 1.0,
              "knob_loss": "raw"},   # raw (10 x MSE) | standardized (MSE / variance per knob, losses.py)
    "checkpoint": {"minutes": 3.0},
}

CSV_COLUMNS = ["wall_s", "phase", "round", "epoch", "step", "lr", "loss", "loss_mirror", "loss_sup",
               "loss_gate", "loss_pitch", "loss_knobs", "gap_before", "gap_after", "val_loss_mirror",
               "val_pitch_acc", "val_gate_acc", "val_knob_mae", "loss_target_sup"]


# -- configuration -------------------------------------------------------------------------------
def merge_config(overrides: dict, base: dict | None = None) -> dict:
    """DEFAULTS (or base) updated by overrides, section by section; unknown keys raise ValueError."""
    out = copy.deepcopy(DEFAULTS if base is None else base)
    for k, v in overrides.items():
        if k not in out:
            raise ValueError(f"unknown config key {k!r} (known: {sorted(out)})")
        if isinstance(out[k], dict) and k not in ("frontend", "performer", "encoder", "decoder"):
            if not isinstance(v, dict):
                raise ValueError(f"config section {k!r} must be a table")
            unknown = set(v) - set(out[k])
            if unknown:
                raise ValueError(f"unknown keys in [{k}]: {sorted(unknown)} (known: {sorted(out[k])})")
            out[k].update(v)
        else:
            out[k] = copy.deepcopy(v)
    if out["mode"] not in ("mirror", "supervised"):
        raise ValueError(f"mode must be 'mirror' or 'supervised', got {out['mode']!r}")
    if out["optim"]["knob_loss"] not in ("raw", "standardized"):
        raise ValueError(f"optim.knob_loss must be 'raw' or 'standardized', got {out['optim']['knob_loss']!r}")
    from rtmirror.models.train.sources import check_training_source
    for name in [n for n, _ in target_sources(out["data"]["target_synth"])] + [out["synth"]["spec"]]:
        check_training_source(name)
    AugmentConfig.from_dict(out["augment"])
    return out


def target_sources(target_synth) -> tuple[tuple[str, float], ...]:
    """[data] target_synth -> ((spec, weight), ...): "" -> (), "NAME" -> ((NAME, 1.0),), a table
    {NAME = weight} -> its entries (weights > 0, normalized when drawn)."""
    if isinstance(target_synth, str):
        return ((target_synth, 1.0),) if target_synth else ()
    if not isinstance(target_synth, dict) or not target_synth:
        raise ValueError(f"[data] target_synth must be a synth spec or a table {{spec = weight}}, got {target_synth!r}")
    out = []
    for name, w in target_synth.items():
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0):
            raise ValueError(f"[data] target_synth: weight of {name!r} must be a number > 0, got {w!r}")
        out.append((str(name), float(w)))
    return tuple(out)


def load_config(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        shipped = Path(__file__).resolve().parents[1] / "configs" / f"{path}.toml"
        if not shipped.is_file():
            raise FileNotFoundError(f"config not found: {path} (nor {shipped})")
        p = shipped
    return load_checked(p, merge_config)   # types and ranges: models/train/config_check.py


# The schedule may change between a run and its resumption (extend or cut a run that is too slow
# for its time budget); nothing else may.
def encoder_kwargs(cfg: dict) -> dict:
    """EncoderConfig fields of a training config. The local pitch read-out (models/encoder.py)
    trusts the argmax of the pitch classes, which only the supervised cross-entropy makes
    meaningful: a run that never trains it (mirror, no init, no supervised anchor) reads the
    pitch out globally, as it was trained, unless the config names pitch_readout."""
    kw = dict(cfg["encoder"])
    ce = cfg["mode"] == "supervised" or cfg["init"]["enabled"] or float(cfg["mirror"]["encoder_sup_weight"]) > 0
    if "pitch_readout" not in kw and not ce:
        kw["pitch_readout"] = 0
    return kw


SCHEDULE_KEYS = {"init": ("decoder_epochs", "encoder_epochs"),
                 "mirror": ("rounds", "decoder_epochs", "encoder_epochs"), "checkpoint": ("minutes",)}


def resume_key(cfg: dict) -> str:
    """Hash of the config without its schedule: what must match for --resume."""
    c = merge_config(cfg)                 # fill keys added to DEFAULTS since the run started
    for sec, keys in SCHEDULE_KEYS.items():
        for k in keys:
            c.get(sec, {}).pop(k, None)
    return config_hash(c)


def phase_plan(cfg: dict) -> list[tuple[str, int, int]]:
    """[(phase, round, epochs)] in order. round -1 = initialization."""
    init = cfg["init"]
    if cfg["mode"] == "supervised":
        return [("encoder_init", -1, int(init["encoder_epochs"]))]
    plan = [("decoder_init", -1, int(init["decoder_epochs"]))]
    if init["enabled"]:
        plan.append(("encoder_init", -1, int(init["encoder_epochs"])))
    m = cfg["mirror"]
    for r in range(int(m["rounds"])):
        plan += [("decoder", r, int(m["decoder_epochs"])), ("encoder", r, int(m["encoder_epochs"]))]
    return [p for p in plan if p[2] > 0]


# -- distributed helpers -------------------------------------------------------------------------
def _dist_env() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _device(cfg: dict, local_rank: int) -> torch.device:
    want = cfg["device"]
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device = 'cuda' but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def render_specs(cfg: dict, space: ControlSpace, frontend: FrontendConfig, performer: PerformerConfig):
    """(loop spec, target spec, target space) of a run: the synth in the loop renders the random
    sets and E's proposals; the target spec (another synth or set, exp2/exp3) renders x. The target
    spec IS the loop spec when neither is set."""
    d = cfg["data"]
    loop = RenderSpec(cfg["synth"]["spec"], space.to_dict(), frontend.to_dict(), float(d["duration_s"]),
                      asdict(performer), cfg["synth"]["param_map"] or None)
    target_space = ControlSpace.load(d["target_set"]) if d["target_set"] else space
    missing = set(space.names) - set(target_space.names)
    if missing:
        raise ValueError(f"target set {target_space.name!r} lacks controls {sorted(missing)} of {space.name!r}")
    sources = target_sources(d["target_synth"])
    aug = AugmentConfig.from_dict(cfg["augment"])
    if not (sources or d["target_set"] or aug.enabled):
        return loop, loop, target_space
    first = sources[0][0] if sources else loop.synth
    target = RenderSpec(first, target_space.to_dict(), loop.frontend, loop.duration_s, loop.performer,
                        loop.param_map if first == loop.synth else None,
                        sources=sources if len(sources) > 1 else (),
                        augment=aug.to_dict() if aug.enabled else None)
    return loop, target, target_space


def knobs_known(spec: RenderSpec, loop: RenderSpec, source: np.ndarray) -> np.ndarray:
    """(n,) bool: melodies whose knob truth means something to the model - those played by the
    synth in the loop (a foreign synth's notes are known, its knobs are not ours)."""
    names = [n for n, _ in spec.sources] or [spec.synth]
    return np.array([names[int(i)] == loop.synth for i in source], dtype=bool)


def render_plan(cfg: dict, loop: RenderSpec, target: RenderSpec) -> dict[str, tuple]:
    """part -> (render spec, melody kind, seed, n) for the random, target and val sets of a run."""
    d, seed = cfg["data"], int(cfg["seed"])
    kind = d["kind"]
    return {"random": (loop, d["random_kind"] or kind, seed * 1000 + 2, int(d["n_random"])),
            "target": (target, kind, seed * 1000 + 1, int(d["n"])),
            "val": (target, kind, seed * 1000 + 3, int(d["n_val"]))}


class Trainer:
    """One training run (one process; one rank under torchrun)."""

    def __init__(self, cfg: dict, run_dir: str | Path, progress: bool = True):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.rank, self.world = _dist_env()
        self.device = _device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.set_num_threads(max(1, int(cfg["threads"])))
        torch.manual_seed(int(cfg["seed"]))               # weight init: identical on every rank

        d = cfg["data"]
        self.space = ControlSpace.load(d["set"])
        self.frontend = FrontendConfig.from_dict({**FrontendConfig().to_dict(), **cfg["frontend"]})
        self.performer = PerformerConfig(**cfg["performer"])
        self.enc_cfg = EncoderConfig.for_space(self.space, **encoder_kwargs(cfg))
        self.dec_cfg = DecoderConfig.for_space(self.space, **cfg["decoder"])
        self.encoder = Encoder(self.enc_cfg).to(self.device)
        self.decoder = Decoder(self.dec_cfg).to(self.device)
        o = cfg["optim"]
        self.opt_e = torch.optim.Adam(self.encoder.parameters(), lr=float(o["lr_encoder"]))
        self.opt_d = torch.optim.Adam(self.decoder.parameters(), lr=float(o["lr_decoder"]))
        if self.world > 1:
            self.encoder_ddp = DDP(self.encoder)
            self.decoder_ddp = DDP(self.decoder)
        else:
            self.encoder_ddp, self.decoder_ddp = self.encoder, self.decoder
        self.i_pitch = self.space.role_index("pitch")
        self.i_gate = self.space.role_index("gate")
        self.warm = receptive_past(self.enc_cfg.kernel, self.enc_cfg.dilations)   # frames of E context

        self.loop_spec, self.target_spec, self.target_space = render_specs(cfg, self.space, self.frontend, self.performer)
        self.plan = phase_plan(cfg)
        self.step = 0
        self.train_time_s = 0.0
        self.position = (0, 0)                            # (phase index, epochs done in it)
        self.proposals: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # round -> (E(x) frames, spec')
        self.last_gap_before = math.nan
        self.renderer: Renderer | None = None              # the mirror rounds' render pool (kept)
        self._scales: torch.Tensor | None = None           # standardizing knob weights (_knob_scales)
        self._last_plot = time.monotonic()                 # the loss plot is redrawn at most every 2 min

    # -- data ------------------------------------------------------------------------------------
    def _cached_render(self, name: str, spec: RenderSpec, kind: str, seed: int, n: int, renderer) -> tuple:
        """Render (or load from run_dir/data) n melodies -> (spec (n,T,128), truth (n,T,K), source (n,))."""
        ddir = self.run_dir / "data"
        key = render_key(spec, kind, seed, n)
        paths = [ddir / f"{name}.spec.npy", ddir / f"{name}.truth.npy", ddir / f"{name}.source.npy",
                 ddir / f"{name}.key.json"]
        if self.rank == 0 and not (paths[3].is_file() and paths[3].read_text() == key and paths[2].is_file()):
            arrays = renderer.melodies(kind, seed, n, progress=f"render {name}" if self.progress else None)
            ddir.mkdir(parents=True, exist_ok=True)
            for arr, p in zip(arrays, paths):
                save_npy_atomic(p, arr)
            write_text_atomic(paths[3], key)
        if self.world > 1:
            dist.barrier()
        return tuple(np.load(p, allow_pickle=False) for p in paths[:3])

    def prepare_data(self) -> None:
        plan = render_plan(self.cfg, self.loop_spec, self.target_spec)
        workers = self.cfg["data"]["workers"]
        with Renderer(self.loop_spec, workers) as r:
            self.random = self._cached_render("random", *plan["random"], r)[:2]
            if self.target_spec is self.loop_spec:
                target = self._cached_render("target", *plan["target"], r)
                val = self._cached_render("val", *plan["val"], r)
        if self.target_spec is not self.loop_spec:
            with Renderer(self.target_spec, workers) as r:
                target = self._cached_render("target", *plan["target"], r)
                val = self._cached_render("val", *plan["val"], r)
        # truth frames in the model's control order (exp2's extra knobs are not the model's)
        cols = [self.target_space.index(n) for n in self.space.names]
        self.target = (target[0], target[1][..., cols])
        self.val = (val[0], val[1][..., cols])
        self.target_known = knobs_known(self.target_spec, self.loop_spec, target[2])   # (n,) bool
        self.val_known = knobs_known(self.target_spec, self.loop_spec, val[2])

    # -- helpers ---------------------------------------------------------------------------------
    def _t(self, a: np.ndarray) -> torch.Tensor:
        """(n, T, C) numpy -> (n, C, T) float tensor on the device."""
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).transpose(1, 2).to(self.device)

    def _c(self, spec: torch.Tensor) -> torch.Tensor:
        return compress(spec, self.enc_cfg.input_eps, self.enc_cfg.input_scale)

    def _batches(self, phase_idx: int, epoch: int, n: int, T: int):
        """This rank's batches of one epoch: [(melody indices, crop offsets)], deterministic."""
        o = self.cfg["optim"]
        bs, crop = int(o["batch"]), min(int(o["crop_frames"]), T)
        rng = np.random.default_rng([int(self.cfg["seed"]), phase_idx, epoch])
        order = rng.permutation(n)
        offs = rng.integers(0, T - crop + 1, size=n)
        n_batches = max(1, n // bs)
        out = []
        for b in range(n_batches):
            idx = order[b * bs:(b + 1) * bs] if n >= bs else order
            out.append((idx, offs[idx], crop))
        return out[self.rank::self.world] if len(out) >= self.world else out

    @staticmethod
    def _crop(a: np.ndarray, idx, offs, crop) -> np.ndarray:
        return np.stack([a[i, o:o + crop] for i, o in zip(idx, offs)])

    def _encode_all(self, spec: np.ndarray, batch: int = 32) -> np.ndarray:
        """E on whole sequences (eval, no grad): (n, T, 128) -> (n, T, K)."""
        self.encoder.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(spec), batch):
                out.append(self.encoder(self._t(spec[i:i + batch])).transpose(1, 2).cpu().numpy())
        self.encoder.train()
        return np.concatenate(out)

    def _decode_loss_all(self, frames: np.ndarray, spec: np.ndarray, batch: int = 32) -> float:
        """mean ||D(frames) - compress(spec)||^2 over whole sequences (eval, no grad)."""
        self.decoder.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(frames), batch):
                pred = self.decoder(self._t(frames[i:i + batch]))
                tot += float(spectrogram_loss(pred, self._c(self._t(spec[i:i + batch])))) * len(pred)
                n += len(pred)
        self.decoder.train()
        return tot / max(1, n)

    # -- the steps -------------------------------------------------------------------------------
    def _apply(self, loss: torch.Tensor, opt, params) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = float(self.cfg["optim"]["grad_clip"])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        self.step += 1

    def _sup_loss(self, spec: torch.Tensor, truth: torch.Tensor, knobs_known: torch.Tensor | None = None,
                  encoded: tuple | None = None):
        """Supervised loss of E on (spec, truth) (B, C, T); knobs_known (B,) 0/1 masks the knob terms
        per melody (None: all known); encoded: E's (controls, logits) for spec when already computed."""
        controls, logits = encoded if encoded is not None else self._encode_train(spec)
        w = self.warm
        return supervised_loss(controls[:, :, w:], None if logits is None else logits[:, :, w:], truth[:, :, w:],
                               self.i_pitch, self.i_gate, self.enc_cfg.pitch_classes,
                               knob_scales=self._knob_scales(), knobs_known=knobs_known)

    def _knob_scales(self) -> torch.Tensor | None:
        """Standardizing knob weights from the labelled random renders (optim.knob_loss), computed once."""
        if self.cfg["optim"]["knob_loss"] != "standardized":
            return None
        if self._scales is None:
            self._scales = torch.from_numpy(knob_scales_from(self.random[1], self.i_pitch, self.i_gate)).to(self.device)
        return self._scales

    def _encode_train(self, spec: torch.Tensor):
        """E.encode through the DDP wrapper when distributed (so gradients are all-reduced)."""
        if self.world > 1:
            return self.encoder_ddp(spec, with_logits=True)
        return self.encoder.encode(spec)

    def run_epoch(self, phase_idx: int, phase: str, rnd: int, epoch: int) -> dict:
        m = self.cfg["mirror"]
        sums: dict[str, float] = {}
        count = 0
        from tqdm import tqdm

        if phase in ("decoder_init", "decoder"):
            src_in, src_out = (self.random[1], self.random[0]) if phase == "decoder_init" else self.proposals[rnd]
            batches = self._batches(phase_idx, epoch, len(src_in), src_in.shape[1])
            mix = float(m["decoder_random_mix"]) if phase == "decoder" else 0.0
            rng = np.random.default_rng([int(self.cfg["seed"]), phase_idx, epoch, 1])
            self.encoder.requires_grad_(False)
            self.decoder.requires_grad_(True)
        else:
            src = self.random if phase == "encoder_init" else self.target
            batches = self._batches(phase_idx, epoch, len(src[0]), src[0].shape[1])
            rng = np.random.default_rng([int(self.cfg["seed"]), phase_idx, epoch, 1])
            self.encoder.requires_grad_(True)
            self.decoder.requires_grad_(False)
        bar = tqdm(batches, desc=f"{phase} r{rnd} e{epoch}", leave=False, disable=not self.progress)
        for idx, offs, crop in bar:
            parts: dict[str, float] = {}
            if phase in ("decoder_init", "decoder"):
                x_in, y = self._crop(src_in, idx, offs, crop), self._crop(src_out, idx, offs, crop)
                n_mix = int(round(mix * len(idx)))
                if n_mix:   # keep D general: a share of labelled random renders in every batch
                    ri = rng.integers(0, len(self.random[0]), n_mix)
                    ro = rng.integers(0, self.random[0].shape[1] - crop + 1, n_mix)
                    x_in[:n_mix] = self._crop(self.random[1], ri, ro, crop)
                    y[:n_mix] = self._crop(self.random[0], ri, ro, crop)
                loss = spectrogram_loss(self.decoder_ddp(self._t(x_in)), self._c(self._t(y)))
                self._apply(loss, self.opt_d, self.decoder.parameters())
            elif phase == "encoder_init":
                spec, truth = self._t(self._crop(src[0], idx, offs, crop)), self._t(self._crop(src[1], idx, offs, crop))
                loss, parts = self._sup_loss(spec, truth)
                self._apply(loss, self.opt_e, self.encoder.parameters())
            else:   # encoder, mirror: ||D(E(x)) - x|| with D frozen (+ optional supervised terms)
                x = self._t(self._crop(src[0], idx, offs, crop))
                controls, logits = self._encode_train(x)
                w = self.warm
                loss = spectrogram_loss(self.decoder(controls)[:, :, w:], self._c(x)[:, :, w:])
                mirror_part = float(loss.detach())
                tw = float(m["target_note_weight"])
                if tw > 0:   # the targets' notes are known (we rendered them); their knobs only for the loop synth
                    known = torch.from_numpy(self.target_known[idx].astype(np.float32)).to(self.device)
                    notes, tparts = self._sup_loss(x, self._t(self._crop(src[1], idx, offs, crop)), known,
                                                   encoded=(controls, logits))
                    loss = loss + tw * notes
                    parts["target_sup"] = tparts["sup"]
                sw = float(m["encoder_sup_weight"])
                if sw > 0:
                    ri = rng.integers(0, len(self.random[0]), len(idx))
                    ro = rng.integers(0, self.random[0].shape[1] - crop + 1, len(idx))
                    sup, sup_parts = self._sup_loss(self._t(self._crop(self.random[0], ri, ro, crop)),
                                                    self._t(self._crop(self.random[1], ri, ro, crop)))
                    loss = loss + sw * sup
                    parts.update(sup_parts)
                self._apply(loss, self.opt_e, self.encoder.parameters())
                parts["mirror"] = mirror_part
            parts["loss"] = float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
        bar.close()
        self.encoder.requires_grad_(True)
        self.decoder.requires_grad_(True)
        return {k: v / max(1, count) for k, v in sums.items()}

    def render_round(self, rnd: int) -> float:
        """E proposes for the target audio; the real synth plays it. Returns the gap with the current D."""
        frames = self._encode_all(self.target[0])                       # (n, T, K)
        if self.renderer is None:
            self.renderer = Renderer(self.loop_spec, self.cfg["data"]["workers"])
        played = self.renderer.frames(frames, progress=f"synth plays E(x) r{rnd}" if self.progress else None)
        self.proposals[rnd] = (frames, played)
        return self._decode_loss_all(frames, played)

    def validate(self) -> dict:
        spec, truth = self.val
        frames = self._encode_all(spec)                                  # (n, T, K)
        out = {"val_loss_mirror": self._decode_loss_all(frames, spec) if self.cfg["mode"] == "mirror" else math.nan}
        w = self.warm
        f, t = frames[:, w:], truth[:, w:]
        if self.i_gate is not None:
            on = t[..., self.i_gate] > 0.5
            out["val_gate_acc"] = float(np.mean((f[..., self.i_gate] > 0.5) == on))
        else:
            on = np.ones(t.shape[:2], bool)
        if self.i_pitch is not None and on.any():
            c = self.space.controls[self.i_pitch]
            err = np.abs(c.to_physical(f[..., self.i_pitch]) - c.to_physical(t[..., self.i_pitch]))
            out["val_pitch_acc"] = float(np.mean(err[on] < 0.5))
        rest = [k for k in range(len(self.space)) if k not in (self.i_pitch, self.i_gate)]
        on_known = on & self.val_known[:, None]           # knob truth only where the loop synth played
        if rest and on_known.any():
            out["val_knob_mae"] = float(np.mean(np.abs(f[..., rest] - t[..., rest])[on_known]))
        return out

    # -- checkpoint / logs -----------------------------------------------------------------------
    def meta(self) -> dict:
        pi, ep = self.position
        phase, rnd, _ = self.plan[pi] if pi < len(self.plan) else ("done", -1, 0)
        return {"control_space": self.space.to_dict(), "frontend": self.frontend.to_dict(),
                "performer": asdict(self.performer), "synth": self.cfg["synth"]["spec"],
                "train_config": self.cfg, "train_config_hash": config_hash(self.cfg),
                "progress": {"phase_index": pi, "epoch": ep, "phase": phase, "round": rnd,
                             "step": self.step, "train_time_s": round(self.train_time_s, 1),
                             "rounds": int(self.cfg["mirror"]["rounds"]), "complete": pi >= len(self.plan),
                             "gap_before": self.last_gap_before}}

    def save(self, plot: bool = True) -> None:
        if self.rank != 0:
            return
        st = optimizer_state({"encoder": self.opt_e, "decoder": self.opt_d})
        save_checkpoint(self.run_dir / "checkpoint", self.encoder, self.decoder, self.meta(), st)
        done = self.position[0] >= len(self.plan)
        if plot and (done or time.monotonic() - self._last_plot > 120.0):
            self._last_plot = time.monotonic()
            try:
                plot_metrics(self.run_dir / "metrics.csv", self.run_dir / "loss.png")
            except Exception as exc:     # a plot must never stop training
                print(f"loss plot failed: {exc}")

    def resume(self) -> bool:
        ck_dir = self.run_dir / "checkpoint"
        if not (ck_dir / MODEL_FILE).is_file():
            return False
        ck = load_checkpoint(ck_dir)
        if resume_key(ck.meta.get("train_config", {})) != resume_key(self.cfg):
            raise ValueError(f"{ck_dir}: checkpoint was trained with another config (only the schedule "
                             f"- epochs, rounds, checkpoint interval - may change on resume); "
                             f"use another --out directory")
        self.encoder.load_state_dict(ck.encoder.state_dict())
        self.decoder.load_state_dict(ck.decoder.state_dict())
        info = load_train_state(ck_dir, {"encoder": self.opt_e, "decoder": self.opt_d})
        p = ck.meta["progress"]
        if info["progress"].get("step") != p["step"]:
            raise ValueError(f"{ck_dir}: optimizer state (step {info['progress'].get('step')}) does not "
                             f"match the weights (step {p['step']})")
        pi, ep = int(p["phase_index"]), int(p["epoch"])
        old_plan = phase_plan(ck.meta["train_config"])
        done_old = [q[:2] for q in old_plan[:pi + 1]]
        if done_old != [q[:2] for q in self.plan[:pi + 1]][:len(done_old)] or len(self.plan) < pi:
            raise ValueError(f"{ck_dir}: the new schedule changes phases already done "
                             f"(done: {old_plan[:pi + 1]}, new: {self.plan[:pi + 1]})")
        if pi < len(self.plan) and ep >= self.plan[pi][2]:   # a shortened phase is already complete
            pi, ep = pi + 1, 0
        self.position = (pi, ep)
        self.step = int(p["step"])
        self.train_time_s = float(p["train_time_s"])
        self.last_gap_before = float(p.get("gap_before", math.nan))
        if self.rank == 0:
            _truncate_metrics(self.run_dir / "metrics.csv", self.step)
        return True

    def warm_start(self, path: str | Path) -> None:
        """E's and D's weights from a trained checkpoint (init.from_checkpoint) with the same controls
        and frontend: the run starts where that one ended (its optimizer state is not taken)."""
        ck = load_checkpoint(path)
        for what, mine in (("control_space", self.space.to_dict()), ("frontend", self.frontend.to_dict())):
            if ck.meta.get(what) != mine:
                raise ValueError(f"init.from_checkpoint {path}: its {what} differs from this config's; "
                                 f"start from a checkpoint trained on the same controls and frontend")
        if ck.decoder is None:
            raise ValueError(f"init.from_checkpoint {path}: the checkpoint has no decoder (export-only file?)")
        try:
            self.encoder.load_state_dict(ck.encoder.state_dict())
            self.decoder.load_state_dict(ck.decoder.state_dict())
        except RuntimeError as exc:
            raise ValueError(f"init.from_checkpoint {path}: its networks do not fit [encoder]/[decoder] of "
                             f"this config ({str(exc).splitlines()[0]})") from None

    def log(self, row: dict) -> None:
        if self.rank != 0:
            return
        path = self.run_dir / "metrics.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    # -- the run ---------------------------------------------------------------------------------
    def train(self, resume: bool = False, stop_after_epochs: int | None = None) -> dict:
        """Run the plan (from the checkpoint if resume). stop_after_epochs: return early (tests)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.run_dir / "config.json").write_text(json.dumps(self.cfg, indent=1, sort_keys=True) + "\n")
        if resume:
            resumed = self.resume()
        elif (self.run_dir / "checkpoint" / MODEL_FILE).is_file():
            raise FileExistsError(f"{self.run_dir}/checkpoint exists: pass --resume, or another --out")
        else:
            resumed = False
            if self.rank == 0 and (self.run_dir / "metrics.csv").is_file():
                (self.run_dir / "metrics.csv").unlink()
        if not resumed and self.cfg["init"]["from_checkpoint"]:
            self.warm_start(self.cfg["init"]["from_checkpoint"])
        t0 = time.perf_counter()
        self.prepare_data()
        self.train_time_s += time.perf_counter() - t0
        try:
            return self._run_plan(stop_after_epochs)
        finally:
            if self.renderer is not None:
                self.renderer.close()
                self.renderer = None

    def _run_plan(self, stop_after_epochs: int | None) -> dict:
        ck_every = 60.0 * float(self.cfg["checkpoint"]["minutes"])
        last_save = time.monotonic()
        epochs_run = 0
        last = {}
        for pi in range(self.position[0], len(self.plan)):
            phase, rnd, n_epochs = self.plan[pi]
            start_epoch = self.position[1] if pi == self.position[0] else 0
            o = self.cfg["optim"]
            decay = float(o["lr_decay_per_round"]) ** max(rnd, 0)
            for g in self.opt_e.param_groups:
                g["lr"] = float(o["lr_encoder"]) * decay
            for g in self.opt_d.param_groups:
                g["lr"] = float(o["lr_decoder"]) * decay
            if phase == "decoder" and rnd not in self.proposals:
                t0 = time.perf_counter()
                gap_before = self.render_round(rnd)
                self.train_time_s += time.perf_counter() - t0
                if start_epoch == 0:              # (a resumed phase keeps the logged value)
                    self.last_gap_before = gap_before
            for epoch in range(start_epoch, n_epochs):
                t0 = time.perf_counter()
                stats = self.run_epoch(pi, phase, rnd, epoch)
                row = {"phase": phase, "round": rnd, "epoch": epoch, "lr": (self.opt_d if "decoder" in phase else self.opt_e).param_groups[0]["lr"],
                       **{("loss_" + k if k in ("sup", "gate", "pitch", "knobs", "mirror", "target_sup") else k): v for k, v in stats.items()}}
                final = epoch == n_epochs - 1
                if final:
                    if phase == "decoder":
                        row["gap_before"] = self.last_gap_before
                        row["gap_after"] = self._decode_loss_all(*self.proposals[rnd])
                    if phase in ("encoder_init", "encoder"):
                        row.update(self.validate())
                self.train_time_s += time.perf_counter() - t0
                self.position = (pi, epoch + 1) if not final else (pi + 1, 0)
                row.update(wall_s=round(self.train_time_s, 1), step=self.step)
                self.log(row)
                last = row
                if self.progress and self.rank == 0:
                    shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
                    print(" ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
                epochs_run += 1
                if final or time.monotonic() - last_save >= ck_every:
                    self.save(plot=final)
                    last_save = time.monotonic()
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                    self.save(plot=False)
                    return last
            if phase == "encoder":
                self.proposals.pop(rnd, None)      # this round's renders are stale now
        self.save(plot=True)
        return last


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from (they will be redone)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(float(r["step"])) <= step]
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(keep)


def plot_metrics(csv_path: Path, png_path: Path) -> None:
    """Loss per phase against step (log scale), gaps, and validation pitch accuracy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return

    def col(r, k):
        try:
            return float(r[k])
        except (TypeError, ValueError, KeyError):
            return math.nan

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for phase in ("decoder_init", "encoder_init", "decoder", "encoder"):
        pts = [(col(r, "step"), col(r, "loss")) for r in rows if r["phase"] == phase]
        if pts:
            ax.plot(*zip(*pts), ".-", label=f"{phase} loss")
    for k in ("loss_mirror", "gap_before", "gap_after", "val_loss_mirror"):
        pts = [(col(r, "step"), col(r, k)) for r in rows if math.isfinite(col(r, k))]
        if pts:
            ax.plot(*zip(*pts), "o--", label=k)
    ax.set_yscale("log")
    ax.set_ylabel("loss (compressed spectrogram MSE / supervised)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for k in ("val_pitch_acc", "val_gate_acc"):
        pts = [(col(r, "step"), col(r, k)) for r in rows if math.isfinite(col(r, k))]
        if pts:
            ax2.plot(*zip(*pts), "o-", label=k)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("optimizer step")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    wall = col(rows[-1], "wall_s")
    fig.suptitle(f"{csv_path.parent.name}: {len(rows)} epochs, {wall / 60:.1f} min training wall time")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.08, hspace=0.12)
    with atomic_write(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def train(cfg: dict, run_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_after_epochs: int | None = None) -> Trainer:
    t = Trainer(cfg, run_dir, progress=progress)
    t.train(resume=resume, stop_after_epochs=stop_after_epochs)
    return t
