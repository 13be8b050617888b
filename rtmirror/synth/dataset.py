"""Melody datasets: render melodies through a synth into sharded, memory-mappable .npy files.

On-disk format (docs/DATASET.md has the full description):

    DIR/manifest.json                     format, version, synth, control space, frontend, seed, ...
    DIR/shard-00000/audio.npy             (M, n_samples) float32  audio at the frontend's rate
    DIR/shard-00000/spec.npy              (M, T, 128)    float32  wav2aud(audio, frontend)
    DIR/shard-00000/controls.npy          (M, T, K)      float32  events_to_frames(melody.events)
    DIR/shard-00000/notes.npy             (N, 4)         float64  onset_s, offset_s, pitch, velocity
    DIR/shard-00000/note_index.npy        (M + 1,)       int64    melody j's notes: notes[idx[j]:idx[j+1]]
    DIR/shard-00000/index.npy             (M,)           int64    global melody index i
    DIR/shard-00000/shard.json            sizes and sha256 of the files above

Melody i is `make_melody(kind, np.random.default_rng([seed, i]), space, duration_s)`, so a
dataset is reproducible from its manifest and independent of sharding and worker count.
Shards are written to a temporary directory and moved into place with os.replace: a killed run
leaves complete shards and temporary litter only; the next run removes the litter, keeps the
complete shards that validate, and renders the rest (resume). manifest.json is written
atomically too, first with "complete": false, at the end with every shard's checksums.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.frontend.config import FrontendConfig
from rtmirror.synth.melody import make_melody

FORMAT = "rtmirror-melody-dataset"
VERSION = 1
ARRAYS = ("audio", "spec", "controls", "notes", "note_index", "index")
DEFAULT_DURATION = {"paper": 2.0, "general": 4.0}


@dataclass(frozen=True)
class DatasetConfig:
    synth: str = "builtin"                 # "builtin" or a plugin path (.so / .vst3)
    space: dict = field(default_factory=lambda: ControlSpace.load("exp1").to_dict())   # ControlSpace.to_dict()
    kind: str = "paper"                    # paper | general
    n: int = 100                           # melodies
    seed: int = 0
    shard_size: int = 64
    duration_s: float = 2.0
    frontend: dict = field(default_factory=lambda: FrontendConfig().to_dict())
    param_map: str | None = None           # plugin parameter map (name or TOML path); None = default

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_DURATION:
            raise ValueError(f"kind must be one of {sorted(DEFAULT_DURATION)}, got {self.kind!r}")
        if self.n < 1 or self.shard_size < 1:
            raise ValueError(f"n and shard_size must be >= 1, got {self.n}, {self.shard_size}")
        if not (self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        ControlSpace.from_dict(self.space)
        FrontendConfig.from_dict(self.frontend)

    @classmethod
    def make(cls, synth: str = "builtin", space: ControlSpace | str = "exp1", kind: str = "paper",
             n: int = 100, seed: int = 0, shard_size: int = 64, duration_s: float | None = None,
             frontend: FrontendConfig | None = None, param_map: str | None = None) -> "DatasetConfig":
        space = ControlSpace.load(space) if isinstance(space, str) else space
        return cls(synth=str(synth), space=space.to_dict(), kind=kind, n=int(n), seed=int(seed),
                   shard_size=int(shard_size), duration_s=float(duration_s or DEFAULT_DURATION.get(kind, 2.0)),
                   frontend=(frontend or FrontendConfig()).to_dict(), param_map=param_map)

    @property
    def control_space(self) -> ControlSpace:
        return ControlSpace.from_dict(self.space)

    @property
    def frontend_config(self) -> FrontendConfig:
        return FrontendConfig.from_dict(self.frontend)

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def shard_range(self, s: int) -> range:
        return range(s * self.shard_size, min(self.n, (s + 1) * self.shard_size))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration_s * self.frontend_config.sample_rate))

    @property
    def n_frames(self) -> int:
        return self.n_samples // self.frontend_config.hop

    def shapes(self, m: int) -> dict[str, tuple]:
        """Expected shapes of a shard's fixed-shape arrays for m melodies."""
        return {"audio": (m, self.n_samples), "spec": (m, self.n_frames, self.frontend_config.n_channels),
                "controls": (m, self.n_frames, len(self.space["controls"])), "note_index": (m + 1,), "index": (m,)}


class DatasetError(ValueError):
    """A dataset directory that is missing, corrupt, or not the dataset asked for."""


def shard_name(s: int) -> str:
    return f"shard-{s:05d}"


# -- rendering one melody / one shard (runs in worker processes) --------------------------------
_SYNTH_CACHE: dict = {}


def _synth_for(cfg: DatasetConfig):
    key = (cfg.synth, json.dumps(cfg.space, sort_keys=True), cfg.param_map)
    if key not in _SYNTH_CACHE:
        from rtmirror.synth.render import make_any_synth
        synth = make_any_synth(cfg.synth, cfg.control_space, cfg.frontend_config, cfg.param_map)
        _SYNTH_CACHE.clear()
        _SYNTH_CACHE[key] = synth
    return _SYNTH_CACHE[key]


def render_melody(cfg: DatasetConfig, i: int) -> dict:
    """Melody i of the dataset -> dict(audio (n,), spec (T,128), controls (T,K), notes (n_notes,4)),
    through the one render path (rtmirror.synth.render)."""
    from rtmirror.frontend import wav2aud
    from rtmirror.synth.render import render_audio, truth_frames

    space, fe = cfg.control_space, cfg.frontend_config
    mel = make_melody(cfg.kind, np.random.default_rng([cfg.seed, i]), space, cfg.duration_s, seed=i,
                      frame_rate=fe.frame_rate)
    audio = render_audio(_synth_for(cfg), mel.events, cfg.duration_s, fe.sample_rate,
                         what=f"synth {cfg.synth!r}, melody {i}")
    controls = truth_frames(mel.events, len(audio), fe.sample_rate, fe.frame_rate, space)
    return {"audio": audio, "spec": wav2aud(audio, fe), "controls": controls, "notes": mel.notes_array()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_PROGRESS = None   # a worker's queue for per-melody progress ticks (set by _init_worker)


def _init_worker(queue) -> None:
    global _PROGRESS
    _PROGRESS = queue


def _render_shard(job: tuple[str, dict, int]) -> tuple[int, dict]:
    """Render shard s into a temporary directory, then move it into place atomically."""
    out_dir, cfg_dict, s = job
    cfg = DatasetConfig(**cfg_dict)
    out = Path(out_dir)
    idx = cfg.shard_range(s)
    items = []
    for i in idx:
        items.append(render_melody(cfg, i))
        if _PROGRESS is not None:
            _PROGRESS.put(1)
    arrays = {
        "audio": np.stack([it["audio"] for it in items]),
        "spec": np.stack([it["spec"] for it in items]),
        "controls": np.stack([it["controls"] for it in items]),
        "notes": np.concatenate([it["notes"] for it in items]).reshape(-1, 4),
        "note_index": np.concatenate([[0], np.cumsum([len(it["notes"]) for it in items])]).astype(np.int64),
        "index": np.asarray(idx, dtype=np.int64),
    }
    tmp = out / f".tmp-{shard_name(s)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    files = {}
    for name, a in arrays.items():
        p = tmp / f"{name}.npy"
        np.save(p, a, allow_pickle=False)
        files[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "bytes": p.stat().st_size, "sha256": _sha256(p)}
    info = {"shard": s, "n": len(idx), "files": files}
    _write_json_atomic(tmp / "shard.json", info)
    final = out / shard_name(s)
    if final.exists():   # an invalid leftover (validated by the caller) or a concurrent duplicate
        shutil.rmtree(final)
    os.replace(tmp, final)
    return s, info


# -- validation ---------------------------------------------------------------------------------
def _write_json_atomic(path: Path, obj) -> None:
    from rtmirror.fileio import write_json_atomic
    write_json_atomic(path, obj, indent=1, sort_keys=True, allow_nan=True)


def _check_shard(out: Path, cfg: DatasetConfig, s: int, info: dict | None = None, checksums: bool = True) -> dict:
    """Validate shard s against its shard.json (or `info`) and the config; returns the info or raises."""
    d = out / shard_name(s)
    if not d.is_dir():
        raise DatasetError(f"{d}: missing shard")
    try:
        own = json.loads((d / "shard.json").read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{d}/shard.json: unreadable ({exc})") from None
    if info is not None and own != info:
        raise DatasetError(f"{d}: shard.json does not match the manifest")
    m = len(cfg.shard_range(s))
    if own.get("n") != m or set(own.get("files", {})) != set(ARRAYS):
        raise DatasetError(f"{d}: expected {m} melodies and files {ARRAYS}")
    shapes = cfg.shapes(m)
    for name, meta in own["files"].items():
        p = d / f"{name}.npy"
        if not p.is_file() or p.stat().st_size != meta["bytes"]:
            raise DatasetError(f"{p}: missing or wrong size (truncated?)")
        if name in shapes and tuple(meta["shape"]) != shapes[name]:
            raise DatasetError(f"{p}: shape {tuple(meta['shape'])}, expected {shapes[name]}")
        if checksums and _sha256(p) != meta["sha256"]:
            raise DatasetError(f"{p}: checksum mismatch (corrupt file)")
    return own


def _params(cfg: DatasetConfig) -> dict:
    return {"format": FORMAT, "version": VERSION, **asdict(cfg)}


def _derived(cfg: DatasetConfig) -> dict:
    fe = cfg.frontend_config
    return {"sample_rate": fe.sample_rate, "frame_rate": fe.frame_rate, "n_samples": cfg.n_samples,
            "n_frames": cfg.n_frames, "n_shards": cfg.n_shards, "control_names": cfg.control_space.names,
            "melody_rule": "melody i = make_melody(kind, np.random.default_rng([seed, i]), space, duration_s)"}


def read_manifest(out_dir: str | Path) -> dict:
    p = Path(out_dir) / "manifest.json"
    if not p.is_file():
        raise DatasetError(f"{out_dir}: no manifest.json (not a rendered dataset?)")
    try:
        man = json.loads(p.read_text())
    except ValueError as exc:
        raise DatasetError(f"{p}: corrupt manifest ({exc})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise DatasetError(f"{p}: not an rtmirror melody dataset manifest")
    if man.get("version") != VERSION:
        raise DatasetError(f"{p}: format version {man.get('version')!r}, this rtmirror reads {VERSION}")
    return man


def _config_from_manifest(man: dict, where) -> DatasetConfig:
    try:
        return DatasetConfig(**{k: man[k] for k in DatasetConfig.__dataclass_fields__})
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: manifest has invalid dataset parameters ({exc})") from None


# -- the driver ---------------------------------------------------------------------------------
def render_dataset(out_dir: str | Path, cfg: DatasetConfig, workers: int | None = None,
                   progress: bool = True) -> dict:
    """Render (or resume) the dataset described by cfg into out_dir; returns the manifest."""
    from tqdm import tqdm

    out = Path(out_dir)
    if cfg.synth != "builtin" and not Path(cfg.synth).is_file():
        raise DatasetError(f"synth plugin not found: {cfg.synth}")
    _synth_for(cfg)   # fail here, before any file is written, if the synth cannot load
    out.mkdir(parents=True, exist_ok=True)
    params = _params(cfg)
    if (out / "manifest.json").exists():
        old = read_manifest(out)
        diff = sorted(k for k in params if old.get(k) != params[k])
        if diff:
            raise DatasetError(f"{out} holds a different dataset (differs in {diff}); "
                               f"use another directory or delete it")
    else:
        _write_json_atomic(out / "manifest.json", {**params, **_derived(cfg), "complete": False, "shards": []})
    for litter in out.glob(".tmp-*"):   # what a killed run left behind
        shutil.rmtree(litter, ignore_errors=True)

    infos: dict[int, dict] = {}
    todo = []
    for s in range(cfg.n_shards):
        try:
            infos[s] = _check_shard(out, cfg, s)
        except DatasetError:
            if (out / shard_name(s)).exists():
                shutil.rmtree(out / shard_name(s))
            todo.append(s)
    done_n = sum(len(cfg.shard_range(s)) for s in infos)
    jobs = [(str(out), asdict(cfg), s) for s in todo]
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(jobs) or 1))
    with tqdm(total=cfg.n, initial=done_n, unit="melody", desc=f"render {out.name}", disable=not progress) as bar:
        if workers == 1:
            for s, info in map(_render_shard, jobs):
                infos[s] = info
                bar.update(info["n"])
        else:
            ctx = mp.get_context("spawn")
            ticks = ctx.Queue()   # workers tick once per melody, so slow synths still show progress
            reader = threading.Thread(target=_count_ticks, args=(ticks, bar), daemon=True)
            reader.start()
            try:
                with ctx.Pool(workers, initializer=_init_worker, initargs=(ticks,)) as pool:
                    for s, info in pool.imap_unordered(_render_shard, jobs):
                        infos[s] = info
            finally:
                ticks.put(None)
                reader.join(timeout=5)
            bar.update(max(0, cfg.n - bar.n))   # ticks still in flight when the pool shut down
    manifest = {**params, **_derived(cfg), "complete": True,
                "shards": [{"name": shard_name(s), **infos[s]} for s in range(cfg.n_shards)]}
    _write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _count_ticks(queue, bar) -> None:
    while queue.get() is not None:
        bar.update(1)


# -- the reader ---------------------------------------------------------------------------------
class MelodyDataset:
    """Read a rendered dataset: `len(ds)`, `ds[i] -> dict of arrays` (memory-mapped, read-only).

    Validates the manifest and every shard's files (existence, size, shape) on open; with
    verify=True also their sha256 checksums. Raises DatasetError with the reason.
    """

    def __init__(self, path: str | Path, verify: bool = False):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if not self.manifest.get("complete"):
            raise DatasetError(f"{self.path}: incomplete dataset (rendering was interrupted; "
                               f"rerun the same `rtmirror data render` to resume)")
        self.config = _config_from_manifest(self.manifest, self.path)
        shards = self.manifest.get("shards")
        if not isinstance(shards, list) or len(shards) != self.config.n_shards:
            raise DatasetError(f"{self.path}: manifest lists {len(shards or [])} shards, expected {self.config.n_shards}")
        for s, entry in enumerate(shards):
            info = {k: v for k, v in entry.items() if k != "name"}
            if entry.get("name") != shard_name(s):
                raise DatasetError(f"{self.path}: manifest shard {s} is named {entry.get('name')!r}")
            _check_shard(self.path, self.config, s, info, checksums=verify)
        self.space = self.config.control_space
        self.frontend = self.config.frontend_config
        self._shards: list[dict | None] = [None] * self.config.n_shards

    def __len__(self) -> int:
        return self.config.n

    def shard(self, s: int) -> dict[str, np.ndarray]:
        """Shard s's arrays, memory-mapped read-only (audio (M,n), spec (M,T,128), controls (M,T,K), ...)."""
        if self._shards[s] is None:
            d = self.path / shard_name(s)
            try:
                self._shards[s] = {name: np.load(d / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
            except ValueError as exc:
                raise DatasetError(f"{d}: unreadable array ({exc})") from None
        return self._shards[s]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"melody {i} out of range (dataset has {len(self)})")
        s, j = divmod(i, self.config.shard_size)
        a = self.shard(s)
        lo, hi = int(a["note_index"][j]), int(a["note_index"][j + 1])
        return {"audio": a["audio"][j], "spec": a["spec"][j], "controls": a["controls"][j],
                "notes": a["notes"][lo:hi], "index": int(a["index"][j])}

    def stack(self, name: str) -> np.ndarray:
        """One fixed-shape array over the whole dataset, in memory: 'audio' | 'spec' | 'controls'."""
        if name not in ("audio", "spec", "controls"):
            raise ValueError(f"stack: one of audio, spec, controls, got {name!r}")
        return np.concatenate([self.shard(s)[name] for s in range(self.config.n_shards)])
