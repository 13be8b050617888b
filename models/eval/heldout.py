"""Held-out evaluation sets: melodies no training run sees, made on demand and cached.

Sets (name -> melodies, control space of the truth, synth that plays them):
  exp1          paper melodies (2 s, 5 notes), exp1 space, the built-in voice
  exp2          paper melodies with the 3 extra LFO/vibrato knobs, exp2 space, the built-in voice
  general       general melodies (4 s, MIDI 36-84, rests, legato), live space, the built-in voice
  exp3-amsynth  exp1 paper melodies played by amsynth (DawDreamer) through its shipped map
  exp3-piano    exp1 paper melodies (notes only) played by a sampled GM piano (FluidSynth,
                the csound-soundfont GM bank sf_GMbank.sf2, program 0, reverb and chorus off;
                FluidR3_GM and the other system GM fonts are kept for independent checks)
  real          a note-transcription set, not control frames: 120 phrases over 15 instrument
                families (the whole csound GM bank + a singer), part through room/mic variants,
                scored in file and live timing; made and scored by models/eval/real.py (NOTE_SETS)
Every melody is rendered at its synth's rate, resampled (soxr) to the frontend rate (8 kHz) and
stored with its ground truth: the notes (onset, offset, MIDI pitch, velocity) and the control
frames `events_to_frames` gives (exp3: only pitch and gate are truth; the knobs are not scored).

Seeds: melody i of a set uses numpy.random.default_rng(seed_base + i) with seed_base =
HELDOUT_SEED_BASE + 100_000 * set number, i.e. seeds 10_000_000 .. 10_599_999 (`real` is set number
5: 10_500_000 + i). Training must draw its melodies from seeds below 10_000_000 (models/train/trainer.py and rtmirror.synth.dataset do).
Melody i is the same whatever the set size, so a cache of N melodies serves any n <= N.

Cache: datasets/heldout/<set>-n<N>.npz (no pickles) + .json (what made it); spectrograms are
cached per frontend configuration beside it. datasets/ is git-ignored. A cache is used only while
today's code still makes it: `get` re-renders its first melodies and compares (a changed synth or
melody generator re-renders the set), and the spectrogram cache is checked against wav2aud.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.synth.melody import FRAME_RATE

HELDOUT_SEED_BASE = 10_000_000
CACHE_VERSION = 1
AMSYNTH_PATH = "/usr/lib/vst/amsynth_vst.so"
# the csound-soundfont GM bank: reserved for evaluation (no training run uses it)
CSOUND_GM_FONT = "/usr/share/sounds/sf2/sf_GMbank.sf2"


@dataclass(frozen=True)
class SetSpec:
    number: int          # picks the seed range
    melody: str          # "paper" | "general"
    space: str           # control space of the melodies and the truth
    synth: str           # "builtin" | a plugin path | "fluidsynth:PROGRAM"
    truth_knobs: bool    # are the knob values ground truth for this audio?
    description: str

    @property
    def seed_base(self) -> int:
        return HELDOUT_SEED_BASE + 100_000 * self.number


SETS: dict[str, SetSpec] = {
    "exp1": SetSpec(0, "paper", "exp1", "builtin", True, "paper melodies, built-in voice (exp1 controls)"),
    "exp2": SetSpec(1, "paper", "exp2", "builtin", True, "paper melodies, built-in voice, + LFO/vibrato knobs (exp2)"),
    "general": SetSpec(2, "general", "live", "builtin", True, "general melodies (MIDI 36-84), built-in voice, live patch"),
    "exp3-amsynth": SetSpec(3, "paper", "exp1", AMSYNTH_PATH, False, "paper melodies played by amsynth (VST2 via DawDreamer)"),
    "exp3-piano": SetSpec(4, "paper", "exp1", f"fluidsynth:0@{CSOUND_GM_FONT}", False,
                          "paper melodies (notes) played by a GM piano (FluidSynth, csound GM bank)"),
}

# Sets scored as note transcription only (no control-frame truth), in file and live timing, by
# models/eval/real.py (`rtmirror eval --checkpoint MODEL.onnx --sets real`).
NOTE_SETS: dict[str, str] = {
    "real": "120 phrases, 15 families (csound GM bank + singer), room/mic variants on 5 in 8 (models/eval/real.py)",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("RTMIRROR_DATASETS", "datasets")) / "heldout"


def make_set_synth(spec: SetSpec, space: ControlSpace, sample_rate: int = 8000):
    from rtmirror.synth import make_synth
    return make_synth(spec.synth, space, sample_rate=sample_rate if spec.synth == "builtin" else None)


# ---------------------------------------------------------------------------------------------
# The set
# ---------------------------------------------------------------------------------------------
@dataclass
class HeldoutSet:
    name: str
    space: ControlSpace
    sample_rate: int
    duration_s: float
    audio: np.ndarray            # (N, n) float32 at sample_rate
    truth: np.ndarray            # (N, T, K) float32 ground-truth control frames (space's order)
    note_table: np.ndarray       # (M, 5) float64: melody index, onset s, offset s, MIDI pitch, velocity
    seeds: np.ndarray            # (N,) int64
    truth_knobs: tuple[str, ...] # knobs whose truth is meaningful for this audio
    truth_velocity: bool
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.audio)

    def notes(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Melody i -> (intervals (n, 2), pitches (n,), velocities (n,))."""
        rows = self.note_table[self.note_table[:, 0] == i]
        return rows[:, 1:3].copy(), rows[:, 3].copy(), rows[:, 4].copy()

    def spectrograms(self, cfg) -> np.ndarray:
        """(N, T, 128) float32 auditory spectrograms for this frontend config (cached on disk
        beside the set when it has a path)."""
        from rtmirror.frontend import wav2aud

        if cfg.sample_rate != self.sample_rate:
            raise ValueError(f"set {self.name!r} is at {self.sample_rate} Hz, the frontend wants {cfg.sample_rate} Hz")
        key = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        cache = self.path.with_name(f"{self.path.stem}.spec-{key}.npy") if self.path else None
        if cache is not None and cache.is_file():
            spec = np.load(cache, allow_pickle=False, mmap_mode="r")
            # a cache of the full file serves its subsets; a changed frontend makes it stale
            if spec.shape[0] >= len(self) and np.allclose(spec[0], wav2aud(self.audio[0], cfg), rtol=1e-4, atol=1e-6):
                return np.array(spec[: len(self)])
        spec = np.stack([wav2aud(x, cfg) for x in self.audio]).astype(np.float32)
        if cache is not None:
            _atomic_save_npy(cache, spec)
        return spec

    def subset(self, n: int) -> "HeldoutSet":
        """The first n melodies (the same melodies a set of size n would have)."""
        if n > len(self):
            raise ValueError(f"set {self.name!r} has {len(self)} melodies, asked for {n}")
        table = self.note_table[self.note_table[:, 0] < n]
        return HeldoutSet(self.name, self.space, self.sample_rate, self.duration_s, self.audio[:n],
                          self.truth[:n], table, self.seeds[:n], self.truth_knobs, self.truth_velocity,
                          self.path)


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    from rtmirror.fileio import save_npy_atomic
    save_npy_atomic(path, arr)


def render_melody(name: str, i: int, space: ControlSpace, synth, sample_rate: int = 8000,
                  frame_rate: float = FRAME_RATE):
    """Melody i of set `name` -> (audio (n,) float32 at sample_rate, truth (T, K), melody), through
    the one render path (rtmirror.synth.render); frames of 1/frame_rate s, the model's."""
    from rtmirror.synth.melody import make_melody
    from rtmirror.synth.render import render_audio, truth_frames

    spec = SETS[name]
    seed = spec.seed_base + i
    mel = make_melody(spec.melody, np.random.default_rng(seed), space, seed=seed, frame_rate=frame_rate)
    x = render_audio(synth, mel.events, mel.duration_s, sample_rate, what=f"{name}: melody {i}")
    if np.abs(x).max() == 0.0:
        raise RuntimeError(f"{name}: melody {i} rendered silence through {spec.synth}")
    return x, truth_frames(mel.events, len(x), sample_rate, frame_rate, space), mel


def generate(name: str, n: int, sample_rate: int = 8000, frame_rate: float = FRAME_RATE, progress: bool = True) -> HeldoutSet:
    """Render set `name` with n melodies (deterministic: melody i from seed seed_base + i)."""
    from tqdm import tqdm

    if name in NOTE_SETS:
        raise KeyError(f"held-out set {name!r} is a note set: models/eval/real.py makes and scores it")
    if name not in SETS:
        raise KeyError(f"unknown held-out set {name!r}; known: {sorted(SETS)}")
    spec = SETS[name]
    space = ControlSpace.load(spec.space)
    synth = make_set_synth(spec, space, sample_rate)
    audio, truth, table, seeds = [], [], [], []
    duration = None
    for i in tqdm(range(n), desc=f"held-out {name}", disable=not progress, leave=False):
        x, frames, mel = render_melody(name, i, space, synth, sample_rate, frame_rate)
        duration = mel.duration_s if duration is None else duration
        if mel.duration_s != duration:
            raise ValueError(f"{name}: melodies of one set must share a duration")
        audio.append(x)
        truth.append(frames)
        for on, off, pitch, vel in mel.notes:
            table.append((i, on, off, pitch, vel))
        seeds.append(spec.seed_base + i)
    knobs = tuple(c.name for c in space.knobs) if spec.truth_knobs else ()
    return HeldoutSet(name, space, sample_rate, float(duration), np.stack(audio), np.stack(truth).astype(np.float32),
                      np.asarray(table, dtype=np.float64).reshape(-1, 5), np.asarray(seeds, dtype=np.int64),
                      knobs, spec.melody == "general")


def is_current(ds: HeldoutSet, probes: int = 2) -> bool:
    """Does today's code (synth, melodies, control space) still make this cached set? Re-renders
    its first `probes` melodies and compares: a changed synth or generator makes the cache stale."""
    spec = SETS[ds.name]
    space = ControlSpace.load(spec.space)
    if space.to_dict() != ds.space.to_dict():
        return False
    synth = make_set_synth(spec, space, ds.sample_rate)
    hop_rate = ds.truth.shape[1] / ds.duration_s
    for i in range(min(probes, len(ds))):
        x, frames, _ = render_melody(ds.name, i, space, synth, ds.sample_rate, hop_rate)
        # atol: FluidSynth dithers its int16 output from a process-wide sequence (+-1 LSB = 3e-5)
        if x.shape != ds.audio[i].shape or not np.allclose(x, ds.audio[i], rtol=0, atol=1e-4):
            return False
        if frames.shape != ds.truth[i].shape or not np.array_equal(frames, ds.truth[i]):
            return False
    return True


def save(ds: HeldoutSet, path: Path) -> None:
    """npz (arrays only, no pickles) + json sidecar, each written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from rtmirror.fileio import atomic_write, write_json_atomic
    with atomic_write(path, "wb") as f:
        np.savez(f, audio=ds.audio, truth=ds.truth, note_table=ds.note_table, seeds=ds.seeds)
    meta = {"version": CACHE_VERSION, "name": ds.name, "space": ds.space.to_dict(), "sample_rate": ds.sample_rate,
            "duration_s": ds.duration_s, "n": len(ds), "synth": SETS[ds.name].synth,
            "seed_base": SETS[ds.name].seed_base, "truth_knobs": list(ds.truth_knobs),
            "truth_velocity": ds.truth_velocity, "description": SETS[ds.name].description}
    write_json_atomic(path.with_suffix(".json"), meta, indent=1)
    ds.path = path


def load(path: Path) -> HeldoutSet:
    meta = json.loads(path.with_suffix(".json").read_text())
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(f"{path}: cache version {meta.get('version')} != {CACHE_VERSION}; delete it to regenerate")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("audio", "truth", "note_table", "seeds")}
    return HeldoutSet(meta["name"], ControlSpace.from_dict(meta["space"]), int(meta["sample_rate"]),
                      float(meta["duration_s"]), arrays["audio"], arrays["truth"], arrays["note_table"],
                      arrays["seeds"], tuple(meta["truth_knobs"]), bool(meta["truth_velocity"]), path)


def get(name: str, n: int, cache_dir: Path | None = None, sample_rate: int = 8000, progress: bool = True,
        frame_rate: float = FRAME_RATE) -> HeldoutSet:
    """Set `name` with n melodies: from the smallest cache holding >= n melodies, else rendered
    and cached."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    candidates = []
    for p in cache_dir.glob(f"{name}-n*.npz"):
        try:
            size = int(p.stem.rsplit("-n", 1)[1])
        except ValueError:
            continue
        if size >= n and p.with_suffix(".json").is_file():
            candidates.append((size, p))
    for size, p in sorted(candidates):
        try:
            ds = load(p)
        except (ValueError, OSError, KeyError):
            continue
        if ds.sample_rate != sample_rate or abs(ds.truth.shape[1] / ds.duration_s - frame_rate) > 1e-6:
            continue
        if not is_current(ds):
            print(f"held-out cache {p} is stale (the synth or melody code changed): re-rendering")
            for stale in [p, p.with_suffix(".json"), *p.parent.glob(f"{p.stem}.spec-*.npy")]:
                stale.unlink(missing_ok=True)
            continue
        return ds if size == n else ds.subset(n)
    ds = generate(name, n, sample_rate=sample_rate, frame_rate=frame_rate, progress=progress)
    rate = "" if frame_rate == FRAME_RATE else f"-fr{frame_rate:g}"
    save(ds, cache_dir / f"{name}-n{n}{rate}.npz")
    return ds
