"""The one render path: melody or control frames -> synth -> resample -> exact length -> wav2aud,
with the ground truth (events_to_frames) on the same frame grid. `rtmirror data render`
(rtmirror.synth.dataset), training (models/train), the held-out sets (models/eval/heldout.py) and
the benchmarks all render through `render_audio` and `truth_frames` here.

`render_audio(synth, events, duration_s, sample_rate)`: a synth's output at the frontend's rate,
cut or zero-padded to round(duration_s * sample_rate) samples, refused if not finite.
`truth_frames(events, n_samples, sample_rate, frame_rate, space)`: (n_samples // hop, K) truth.

For training, two jobs run in a process pool (spawn context: no forked numba/torch/DawDreamer state) so
the synth keeps up with the network:
  * `render_melodies`: melody i of a set (make_melody(kind, default_rng([seed, i]), ...)) through a
    synth -> its spectrogram (T, 128) and ground-truth control frames (T, K) (events_to_frames);
  * `render_frames`: control frames the encoder proposed (T, K) -> Performer (frames_to_events, the
    exact code used live) -> synth -> spectrogram (T, 128): the mirror rounds' re-rendering.

A synth is named by a spec string: "builtin", a plugin path (.so/.vst3, DawDreamer, with its shipped
parameter map), or "fluidsynth:PROGRAM" (a GM sound-font instrument; notes only: exp3's piano).
Audio is resampled (soxr) to the frontend's rate when the synth runs at another rate, then cut or
zero-padded to exactly duration_s so every spectrogram has T = n_samples // hop frames.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from rtmirror.controls import ControlSpace
from rtmirror.frontend.config import FrontendConfig
from rtmirror.performer import PerformerConfig, events_to_frames, frames_to_events

# Training melodies use seeds [seed, i] (a list seed): they never meet the held-out sets' integer
# seeds (models/eval/heldout.py, 10_000_000 and up). Melody i's source, its synth's random patch
# (a synth with `vary(rng)`) and its augmentation draw from their own streams [seed, i, STREAM].
SOURCE_STREAM, PATCH_STREAM, AUGMENT_STREAM = 101, 102, 103


@dataclass(frozen=True)
class RenderSpec:
    synth: str                 # "builtin" | plugin path | "fluidsynth:PROGRAM"
    space: dict                # ControlSpace.to_dict()
    frontend: dict             # FrontendConfig.to_dict()
    duration_s: float
    performer: dict            # PerformerConfig fields
    param_map: str | None = None
    # A weighted mix of synths for melodies (training targets): melody i is played by one source
    # drawn from ((synth, weight), ...) with default_rng([seed, i, SOURCE_STREAM]); () = `synth` alone.
    sources: tuple = ()
    augment: dict | None = None   # AugmentConfig.to_dict() (rtmirror.synth.augment), applied before wav2aud

    @property
    def n_frames(self) -> int:
        fe = FrontendConfig.from_dict(self.frontend)
        return int(round(self.duration_s * fe.sample_rate)) // fe.hop


# -- per-process synth -------------------------------------------------------------------------
_CACHE: dict = {}


def _setup(spec: RenderSpec):
    """(space, frontend config, performer config) of a spec; its synths are built once per process
    and spec (`_synth`)."""
    key = repr(spec)
    if _CACHE.get("key") != key:
        _CACHE.clear()
        _CACHE.update(key=key, synths={}, value=(ControlSpace.from_dict(spec.space), FrontendConfig.from_dict(spec.frontend),
                                                 PerformerConfig(**spec.performer)))
    return _CACHE["value"]


def _synth(spec: RenderSpec, name: str):
    space, fe, _ = _setup(spec)
    synths = _CACHE["synths"]
    if name not in synths:
        synths[name] = make_any_synth(name, space, fe, spec.param_map if name == spec.synth else None)
    return synths[name]


def source_index(spec: RenderSpec, seed: int, i: int) -> int:
    """Which of spec.sources plays melody i of (seed) (0 when the spec has one synth)."""
    if len(spec.sources) <= 1:
        return 0
    w = np.array([float(wt) for _, wt in spec.sources])
    return int(np.random.default_rng([seed, i, SOURCE_STREAM]).choice(len(w), p=w / w.sum()))


NATIVE_RATE_SYNTHS = ("builtin", "wide")   # synths that render at the frontend's rate directly


def make_any_synth(name: str, space: ControlSpace, fe: FrontendConfig, param_map=None):
    """A synth from the registry (rtmirror.synth.make_synth); the built-in and wide voices run at
    the frontend's rate, so their audio needs no resampling."""
    from rtmirror.synth import make_synth
    return make_synth(name, space, sample_rate=fe.sample_rate if name in NATIVE_RATE_SYNTHS else None,
                      param_map=param_map)


def render_audio(synth, events, duration_s: float, sample_rate: int, what: str = "") -> np.ndarray:
    """events through synth -> mono float32 (round(duration_s * sample_rate),) at sample_rate."""
    x = np.asarray(synth.render(events, duration_s), dtype=np.float32).reshape(-1)
    if synth.sample_rate != sample_rate:
        import soxr
        x = soxr.resample(x, synth.sample_rate, sample_rate, quality="HQ").astype(np.float32)
    n = int(round(duration_s * sample_rate))
    audio = np.zeros(n, np.float32)            # exact length, whatever the resampler returns
    audio[: min(n, len(x))] = x[:n]
    if not np.all(np.isfinite(audio)):
        raise RuntimeError(f"{what or 'render'}: synth {getattr(synth, 'name', type(synth).__name__)} "
                           f"rendered non-finite audio")
    return audio


def truth_frames(events, n_samples: int, sample_rate: int, frame_rate: float, space: ControlSpace) -> np.ndarray:
    """Ground-truth control frames (T, K) float32 of events, T = the frontend's frame count."""
    hop = int(round(sample_rate / frame_rate))
    return events_to_frames(events, n_samples // hop, space, frame_rate).astype(np.float32)


def _spectrogram(synth, events, spec: RenderSpec, fe: FrontendConfig) -> np.ndarray:
    from rtmirror.frontend.cochlea import wav2aud

    return wav2aud(render_audio(synth, events, spec.duration_s, fe.sample_rate, spec.synth), fe)   # (T, 128)


def _melody_job(args) -> tuple[np.ndarray, np.ndarray, int]:
    spec, kind, seed, i = args
    from rtmirror.frontend.cochlea import wav2aud
    from rtmirror.synth.melody import make_melody

    space, fe, _ = _setup(spec)
    mel = make_melody(kind, np.random.default_rng([seed, i]), space, spec.duration_s, seed=i,
                      frame_rate=fe.frame_rate)
    src = source_index(spec, seed, i)
    name = spec.sources[src][0] if spec.sources else spec.synth
    synth = _synth(spec, name)
    if hasattr(synth, "vary"):        # a random patch per melody (the wide voice)
        synth.vary(np.random.default_rng([seed, i, PATCH_STREAM]))
    audio = render_audio(synth, mel.events, spec.duration_s, fe.sample_rate, name)
    if spec.augment:
        from rtmirror.synth.augment import AugmentConfig, augment
        audio = augment(audio, fe.sample_rate, AugmentConfig.from_dict(spec.augment),
                        np.random.default_rng([seed, i, AUGMENT_STREAM]))
    s = wav2aud(audio, fe)                                                 # (T, 128)
    return s, events_to_frames(mel.events, s.shape[0], space, fe.frame_rate), src


def _frames_job(args) -> np.ndarray:
    spec, frames = args
    space, fe, perf = _setup(spec)
    events = frames_to_events(np.asarray(frames, np.float64), space, fe.frame_rate, perf)
    return _spectrogram(_synth(spec, spec.synth), events, spec, fe)


def _warm_worker() -> None:
    """Pool initializer: import the loop's modules up front. If that fails (e.g. a broken checkout),
    the pool breaks and the caller gets BrokenProcessPool instead of waiting forever."""
    import rtmirror.frontend.cochlea  # noqa: F401
    import rtmirror.performer  # noqa: F401
    import rtmirror.synth  # noqa: F401


class Renderer:
    """Runs render jobs in `workers` spawned processes (0: in this process). Use as a context manager.

    Workers import the package when they start: a long run that must not see later edits of a
    shared checkout should use workers = 0 (modules already imported) or an installed copy."""

    def __init__(self, spec: RenderSpec, workers: int = 1):
        self.spec = spec
        self.workers = int(workers)
        self._pool = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _map(self, fn, jobs, progress: str | None):
        from tqdm import tqdm

        if self.workers <= 0:
            it = map(fn, jobs)
        else:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                 initializer=_warm_worker)
            it = self._pool.map(fn, jobs, chunksize=4)
        return list(tqdm(it, total=len(jobs), desc=progress, leave=False, disable=progress is None))

    def melodies(self, kind: str, seed: int, n: int, progress: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Melodies 0..n-1 of (kind, seed) -> spec (n, T, 128) float32, truth frames (n, T, K)
        float32, source (n,) int64: the index in spec.sources that played each (0 for one synth)."""
        out = self._map(_melody_job, [(self.spec, kind, int(seed), i) for i in range(n)], progress)
        return (np.stack([o[0] for o in out]).astype(np.float32),
                np.stack([o[1] for o in out]).astype(np.float32),
                np.array([o[2] for o in out], dtype=np.int64))

    def frames(self, frames: np.ndarray, progress: str | None = None) -> np.ndarray:
        """Control frames (n, T, K) -> what the synth plays for them, spec (n, T, 128) float32."""
        out = self._map(_frames_job, [(self.spec, f) for f in frames], progress)
        return np.stack(out).astype(np.float32)


def spec_dict(spec: RenderSpec) -> dict:
    return asdict(spec)


def render_key(spec: RenderSpec, kind: str, seed: int, n: int) -> str:
    """What identifies a rendered set (n melodies of `kind` from `seed` through `spec`): the cache
    key training writes beside its renders and report runs compare to share them. A spec without
    sources or augmentation has the key it had before those fields existed."""
    import json
    d = asdict(spec)
    for k in ("sources", "augment"):
        if not d[k]:
            d.pop(k)
    if "sources" in d:
        d["sources"] = [list(x) for x in d["sources"]]
    return json.dumps({"spec": d, "kind": kind, "seed": int(seed), "n": int(n)}, sort_keys=True)
