"""The `real` held-out set (sounds no training run hears) and its note scoring in two timings.

The set: N monophonic phrases (default 120), melody i played by family FAMILIES[i % 15], so
any first n melodies spread over the families. Sources, all reserved for evaluation:
  * the whole csound-soundfont GM bank (Debian package csound-soundfont, sf_GMbank.sf2) through
    FluidSynth ("fluidsynth:PROGRAM@FONT", reverb and chorus off) for 14 GM families;
  * the singer (models/eval/singer.py): sung vowels, one melody in three hummed, alternating
    female and male voices.
Melody i is rendered at 48 kHz through the one render path (rtmirror.synth.render.render_audio);
melodies whose round (i // 15) is not a multiple of 3 (5 of each family's 8) then go through a
room/mic variant (models/eval/rooms.py, seeded by the melody's seed), the rest are dry at a
peak of -12 dBFS. Phrases (`phrase_melody`): a tempo of 60-160 BPM, a key and mode, phrases of
3-8 notes in steps and leaps within the family's range, durations of 1/4..3 beats, legato,
detached and repeated notes, rests (breaths) between phrases, velocity contours, +-8 ms timing
jitter; 4.5-11 s per melody. Times sit on FluidSynth's 64-sample block grid at 48 kHz, where it
applies events, so the truth is exact to the sample.

Seeds: melody i uses default_rng(REAL_SEED_BASE + i), REAL_SEED_BASE = 10_500_000 (the held-out
range of models/eval/heldout.py, set number 5). Cache: datasets/heldout/real-n<N>/ (git-ignored):
one 24-bit WAV per melody and truth.json (notes, family, source, room variant); a cache is used
while today's code renders its first two melodies the same.

Scoring (`score`): note precision/recall/F1 by mir_eval (onset within 50 ms, pitch within 50
cents, offsets ignored; per melody, then the mean over melodies), the note-count ratio (estimated
/ true notes, pooled), and the onset lag (estimated - true onset) over notes matched with a
200 ms onset window (LAG_WINDOW_S: late notes that miss the 50 ms window still show their lag),
median and 90th percentile.

Timings of the model (an exported .onnx, through the Pipeline users run):
  * file: `rtmirror file`'s path (rtmirror.cli.file.process); events stamped at their frame;
  * live: the threaded Engine fed by FileInput(realtime=True) at 48 kHz in 128-sample blocks
    (one block every 2.67 ms, like a sound card), its MIDI going to a recorder that stamps each
    message with the wall clock when it leaves the engine; stamps are put on the audio's time
    line (block k is in the ring at start + (k+1) * 128 / 48000 s). This is the engine `rtmirror
    live --wav` runs (ring, worker, backlog drop, MIDI encoder) without the sound card and MIDI
    port; a JACK period each way would add ~2.7 ms at 48 kHz / 128.
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtmirror.events import NOTE_OFF, NOTE_ON, Event, sorted_events

REAL_SEED_BASE = 10_500_000
SAMPLE_RATE = 48000
BLOCK = 64                       # FluidSynth's block: events land on this grid
DEFAULT_N = 120
CACHE_VERSION = 1
CSOUND_FONT = "/usr/share/sounds/sf2/sf_GMbank.sf2"
LAG_WINDOW_S = 0.2
DRY_PEAK_DBFS = -12.0
SINGER = "singer"


@dataclass(frozen=True)
class Family:
    name: str
    source: str                  # "fluidsynth:PROGRAM@FONT" | "singer"
    lo: int                      # MIDI range the melodies keep to
    hi: int
    legato: float                # probability that a note joins the next without a gap


def _gm(program: int) -> str:
    return f"fluidsynth:{program}@{CSOUND_FONT}"


FAMILIES = (
    Family("flute", _gm(73), 60, 93, 0.35),
    Family("violin", _gm(40), 55, 88, 0.4),
    Family("cello", _gm(42), 36, 69, 0.4),
    Family("trumpet", _gm(56), 55, 82, 0.25),
    Family("sax", _gm(65), 49, 80, 0.35),
    Family("clarinet", _gm(71), 50, 86, 0.35),
    Family("oboe", _gm(68), 58, 88, 0.35),
    Family("choir aahs", _gm(52), 48, 76, 0.4),
    Family("voice oohs", _gm(53), 48, 76, 0.4),
    Family("ocarina", _gm(79), 60, 84, 0.3),
    Family("organ", _gm(19), 36, 84, 0.3),
    Family("piano", _gm(0), 36, 88, 0.2),
    Family("guitar", _gm(24), 40, 76, 0.15),
    Family("synth lead", _gm(81), 48, 84, 0.35),
    Family("singer", SINGER, 45, 79, 0.45),
)

MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10),
         "pentatonic": (0, 2, 4, 7, 9)}


def family_of(i: int) -> Family:
    return FAMILIES[i % len(FAMILIES)]


def has_room(i: int) -> bool:
    return (i // len(FAMILIES)) % 3 != 0


# ---------------------------------------------------------------------------------------------
# Melodies
# ---------------------------------------------------------------------------------------------
def _grid(t: float) -> float:
    return round(t * SAMPLE_RATE / BLOCK) * BLOCK / SAMPLE_RATE


def phrase_melody(rng: np.random.Generator, lo: int, hi: int, legato_prob: float):
    """-> (notes [(onset s, offset s, MIDI, velocity)], duration s). Monophonic: a note ends at
    or before the next onset; a repeated pitch always has a gap (>= 40 ms) before it."""
    duration = float(rng.uniform(4.5, 11.0))
    beat = 60.0 / float(np.exp(rng.uniform(np.log(60), np.log(160))))
    tonic = int(rng.integers(0, 12))
    steps = MODES[str(rng.choice(list(MODES)))]
    scale = [p for p in range(lo, hi + 1) if (p - tonic) % 12 in steps]
    lengths = [0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 3.0] + ([0.25, 0.25] if beat > 0.45 else [])
    idx = int(rng.integers(len(scale) // 4, 3 * len(scale) // 4 + 1))
    t = float(rng.uniform(0.2, 0.8))
    notes: list[tuple[float, float, int, int]] = []
    end = duration - 0.5                                 # room for the release / reverb tail
    while t < end - 0.1:
        n_phrase = int(rng.integers(3, 9))
        dyn = float(rng.uniform(50, 110))
        contour = float(rng.uniform(-20, 20))
        for k in range(n_phrase):
            slot = float(rng.choice(lengths)) * beat
            if t + 0.08 > end:
                break
            if notes:
                r = rng.random()
                if r < 0.15:                              # repeat the pitch
                    pass
                elif r < 0.85:                            # a step
                    idx += int(rng.choice([-2, -1, -1, 1, 1, 2]))
                else:                                     # a leap
                    idx += int(rng.choice([-1, 1])) * int(rng.integers(3, 8))
                top = len(scale) - 1                      # reflect at the range's ends
                idx = int(np.clip(-idx if idx < 0 else 2 * top - idx if idx > top else idx, 0, top))
            pitch = scale[idx]
            on = _grid(t + rng.normal(0.0, 0.008) if notes else t)
            if notes:
                prev_on, prev_off, prev_pitch, prev_vel = notes[-1]
                on = max(on, prev_on + 0.06)
                if pitch == prev_pitch:
                    on = max(on, _grid(prev_off + 0.04))
                elif prev_off > on:
                    prev_off = on
                notes[-1] = (prev_on, min(prev_off, on), prev_pitch, prev_vel)
            legato = rng.random() < legato_prob and k < n_phrase - 1
            sound = slot if legato else slot * float(rng.uniform(0.55, 0.95))
            off = _grid(min(on + max(sound, 0.06), end))
            if off - on < 0.05:
                break
            vel = int(np.clip(dyn + contour * k / max(n_phrase - 1, 1) + rng.normal(0, 8), 25, 127))
            notes.append((on, off, int(pitch), vel))
            t = on + slot
        t += float(rng.uniform(0.5, 2.0)) * beat            # a breath between phrases
    return notes, float(_grid(duration))


def melody_events(notes) -> list[Event]:
    events = []
    for on, off, pitch, vel in notes:
        events.append(Event(on, NOTE_ON, note=int(pitch), velocity=int(vel)))
        events.append(Event(off, NOTE_OFF, note=int(pitch)))
    return sorted_events(events)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def make_source(fam: Family, i: int, seed: int):
    """The synth of melody i: a GM program of the csound bank, or the singer."""
    if fam.source == SINGER:
        from rtmirror.models.eval.singer import Singer, SingerConfig
        round_ = i // len(FAMILIES)
        return Singer(SingerConfig(voice="female" if round_ % 2 == 0 else "male", hum=round_ % 3 == 2,
                                   seed=seed), sample_rate=SAMPLE_RATE)
    from rtmirror.controls import ControlSpace
    from rtmirror.synth import make_synth
    return make_synth(fam.source, ControlSpace.load("live"), sample_rate=SAMPLE_RATE)


def render_melody(i: int):
    """Melody i -> (audio (n,) float32 at 48 kHz, truth dict)."""
    from rtmirror.models.eval.rooms import apply_variant, draw_variant
    from rtmirror.synth.render import render_audio

    seed = REAL_SEED_BASE + i
    fam = family_of(i)
    rng = np.random.default_rng(seed)
    lo, hi = fam.lo, fam.hi
    if fam.source == SINGER:
        from rtmirror.models.eval.singer import RANGES
        lo, hi = RANGES["female" if (i // len(FAMILIES)) % 2 == 0 else "male"]
    notes, duration = phrase_melody(rng, lo, hi, fam.legato)
    synth = make_source(fam, i, seed)
    x = render_audio(synth, melody_events(notes), duration, SAMPLE_RATE, what=f"real: melody {i}")
    if not np.abs(x).max() > 0:
        raise RuntimeError(f"real: melody {i} ({fam.name}) rendered silence")
    variant = None
    if has_room(i):
        v = draw_variant(seed)
        active = np.zeros(len(x), bool)
        for on, off, _, _ in notes:
            active[int(on * SAMPLE_RATE):int(off * SAMPLE_RATE)] = True
        x = apply_variant(x, v, SAMPLE_RATE, active)
        variant = v.to_dict()
    else:
        x = (x * (10 ** (DRY_PEAK_DBFS / 20) / np.abs(x).max())).astype(np.float32)
    truth = {"index": i, "seed": seed, "family": fam.name, "source": getattr(synth, "name", fam.source)
             if fam.source == SINGER else fam.source, "duration_s": duration, "room": variant,
             "notes": [[float(a), float(b), int(p), int(v)] for a, b, p, v in notes]}
    return x, truth


@dataclass
class RealSet:
    """The rendered set on disk: wavs[i] (48 kHz, 24-bit) and truth[i] (a dict, see render_melody)."""
    path: Path
    wavs: list[Path]
    truth: list[dict]

    def __len__(self) -> int:
        return len(self.wavs)

    def audio(self, i: int) -> np.ndarray:
        import soundfile as sf
        x, sr = sf.read(self.wavs[i], dtype="float32")
        if sr != SAMPLE_RATE:
            raise ValueError(f"{self.wavs[i]}: {sr} Hz, the set is at {SAMPLE_RATE} Hz")
        return x

    def notes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (intervals (n, 2) s, MIDI pitches (n,))."""
        a = np.asarray(self.truth[i]["notes"], dtype=np.float64).reshape(-1, 4)
        return a[:, :2].copy(), a[:, 2].copy()

    def subset(self, n: int) -> "RealSet":
        return RealSet(self.path, self.wavs[:n], self.truth[:n])

    def fingerprint(self) -> str:
        """Hash of the truth and the WAV sizes: what anchor results are cached against."""
        h = hashlib.sha256(json.dumps(self.truth, sort_keys=True).encode())
        for w in self.wavs:
            h.update(str(w.stat().st_size).encode())
        return h.hexdigest()[:16]


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    from rtmirror.fileio import atomic_write
    with atomic_write(path, "wb") as f:
        sf.write(f, x, SAMPLE_RATE, format="WAV", subtype="PCM_24")


def _matches(cached: np.ndarray, fresh: np.ndarray) -> bool:
    # FluidSynth dithers its int16 output from a process-wide sequence; the 24-bit file rounds
    return cached.shape == fresh.shape and float(np.abs(cached - fresh).max()) <= 1e-3 * max(float(np.abs(fresh).max()), 1e-9)


def default_dir(n: int, cache_dir: Path | None = None) -> Path:
    from rtmirror.models.eval.heldout import default_cache_dir
    return Path(cache_dir or default_cache_dir()) / f"real-n{n}"


def get(n: int = DEFAULT_N, cache_dir: Path | None = None, progress: bool = True) -> RealSet:
    """The first n melodies: from the smallest cache of >= n that today's code still makes, else
    rendered (deterministic) into datasets/heldout/real-n<n>/."""
    from rtmirror.fileio import write_json_atomic

    base = default_dir(n, cache_dir).parent
    for d in sorted(base.glob("real-n*"), key=lambda p: int(p.name[6:]) if p.name[6:].isdigit() else 0):
        meta_path = d / "truth.json"
        if not d.name[6:].isdigit() or int(d.name[6:]) < n or not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("version") != CACHE_VERSION or len(meta.get("melodies", [])) < n:
            continue
        s = RealSet(d, [d / f"{i:04d}.wav" for i in range(len(meta["melodies"]))], meta["melodies"]).subset(n)
        if all(w.is_file() for w in s.wavs) and all(_matches(s.audio(i), render_melody(i)[0]) for i in range(min(2, n))):
            return s
        print(f"real set cache {d} is stale (the set's code changed): re-rendering", file=sys.stderr)
    from tqdm import tqdm
    d = default_dir(n, cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in tqdm(range(n), desc="real set", disable=not progress, leave=False):
        x, tr = render_melody(i)
        _write_wav(d / f"{i:04d}.wav", x)
        truth.append(tr)
    write_json_atomic(d / "truth.json", {"version": CACHE_VERSION, "sample_rate": SAMPLE_RATE,
                                         "seed_base": REAL_SEED_BASE, "families": [f.name for f in FAMILIES],
                                         "melodies": truth}, indent=1)
    return RealSet(d, [d / f"{i:04d}.wav" for i in range(n)], truth)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
def score_melody(ref_iv, ref_p, est_iv, est_p) -> dict:
    """mir_eval note P/R/F1 (50 ms, 50 cents, offsets ignored) + onset lags (est - ref, s) over
    the notes matched within LAG_WINDOW_S."""
    from rtmirror.models.eval.evaluate import match_notes, note_scores
    s = note_scores(ref_iv, ref_p, est_iv, est_p)
    pairs = match_notes(ref_iv, ref_p, est_iv, est_p, onset_tolerance=LAG_WINDOW_S)
    s["lags"] = [float(est_iv[j, 0] - ref_iv[k, 0]) for k, j in pairs]
    return s


def notes_array(notes) -> tuple[np.ndarray, np.ndarray]:
    """[(on, off, pitch), ...] -> (intervals (n, 2), pitches (n,)); zero-length notes get 1 ms."""
    a = np.asarray([n[:3] for n in notes], dtype=np.float64).reshape(-1, 3)
    iv = a[:, :2].copy()
    iv[:, 1] = np.maximum(iv[:, 1], iv[:, 0] + 1e-3)
    return iv, a[:, 2].copy()


def summarize(scores: list[dict]) -> dict:
    """Per-melody scores -> mean P/R/F1, pooled count ratio, lag median/p90 (ms)."""
    if not scores:
        return {"n": 0}
    lags = np.asarray([x for s in scores for x in s["lags"]], dtype=np.float64) * 1e3
    n_ref = sum(s["n_ref"] for s in scores)
    n_est = sum(s["n_est"] for s in scores)
    return {"n": len(scores), "f1": float(np.mean([s["f1"] for s in scores])),
            "precision": float(np.mean([s["precision"] for s in scores])),
            "recall": float(np.mean([s["recall"] for s in scores])),
            "count_ratio": n_est / n_ref if n_ref else math.nan, "n_ref": n_ref, "n_est": n_est,
            "lag_median_ms": float(np.median(lags)) if lags.size else math.nan,
            "lag_p90_ms": float(np.percentile(lags, 90)) if lags.size else math.nan}


def score(rs: RealSet, est_notes: dict[int, list]) -> dict:
    """{melody index: [(on, off, pitch), ...]} -> {"all": summary, "families": {name: summary}}."""
    per, by_family = [], {}
    for i, notes in sorted(est_notes.items()):
        ref_iv, ref_p = rs.notes(i)
        est_iv, est_p = notes_array(notes)
        s = score_melody(ref_iv, ref_p, est_iv, est_p)
        per.append(s)
        by_family.setdefault(rs.truth[i]["family"], []).append(s)
    order = [f.name for f in FAMILIES]
    return {"all": summarize(per),
            "families": {name: summarize(by_family[name]) for name in order if name in by_family}}


# ---------------------------------------------------------------------------------------------
# The model, in file and live timing
# ---------------------------------------------------------------------------------------------
def _pipeline_parts(model_path):
    from rtmirror.app import level_gate_config, performer_config
    from rtmirror.midi.ccmap import CCMap
    from rtmirror.runtime import EncoderRuntime

    runtime = EncoderRuntime(model_path)
    cc_map = CCMap.load(None)
    perf, _ = performer_config(runtime, cc_map)
    return runtime, cc_map, perf, level_gate_config(-75.0)


def file_notes(model_path, rs: RealSet, indices, progress: bool = True) -> dict[int, list]:
    """`rtmirror file` timing: the Pipeline over each WAV, events stamped at their frame."""
    from tqdm import tqdm

    from rtmirror.cli.file import process
    from rtmirror.engine import Pipeline
    from rtmirror.models.eval.evaluate import notes_from_events

    runtime, _, perf, gate = _pipeline_parts(model_path)
    out = {}
    for i in tqdm(list(indices), desc="model, file timing", disable=not progress, leave=False):
        x = rs.audio(i)
        res = process(Pipeline(runtime, SAMPLE_RATE, perf, level_gate=gate), x)
        iv, p, _ = notes_from_events(res.events, len(x) / SAMPLE_RATE)
        out[i] = [(float(a), float(b), int(q)) for (a, b), q in zip(iv, p)]
    return out


class _ArrivalRecorder:
    """A MIDI output for MidiOut: keeps (wall clock, message) as each message leaves the engine."""

    def __init__(self):
        self.got: list[tuple[float, tuple]] = []

    def send(self, t: float, msg) -> None:
        self.got.append((time.perf_counter(), tuple(msg)))

    def check(self):
        return None

    def close(self) -> None:
        pass


def notes_from_messages(stamped, end_s: float) -> list[tuple[float, float, int]]:
    """[(time s, MIDI bytes)] -> [(on, off, note)]; an open note closes at end_s."""
    open_notes: dict[int, float] = {}
    notes = []
    for t, m in stamped:
        status = m[0] & 0xF0
        if status == 0x90 and len(m) > 2 and m[2] > 0:
            if m[1] in open_notes:
                notes.append((open_notes.pop(m[1]), t, m[1]))
            open_notes[m[1]] = t
        elif status == 0x80 or (status == 0x90 and len(m) > 2 and m[2] == 0):
            if m[1] in open_notes:
                notes.append((open_notes.pop(m[1]), t, m[1]))
    notes += [(on, max(end_s, on), n) for n, on in open_notes.items()]
    return sorted(notes)


def live_notes(model_path, rs: RealSet, indices, block: int = 128, progress: bool = True):
    """Live timing: each WAV played in real time through the threaded Engine (see the module
    doc) -> ({melody index: notes stamped on leaving the engine}, stats)."""
    from tqdm import tqdm

    from rtmirror.audio_io import FileInput
    from rtmirror.engine import Engine
    from rtmirror.midi import MidiEncoder, MidiOut

    class ClockedFileInput(FileInput):
        def start(self) -> None:
            self.started_at = time.perf_counter()
            super().start()

    runtime, cc_map, perf, gate = _pipeline_parts(model_path)
    out, dropped, overflows, errors = {}, 0, 0, []
    for i in tqdm(list(indices), desc="model, live timing", disable=not progress, leave=False):
        x = rs.audio(i)
        src = ClockedFileInput(x, SAMPLE_RATE, block=block, realtime=True)
        rec = _ArrivalRecorder()
        midi = MidiOut(MidiEncoder(runtime.space, cc_map), [rec])
        engine = Engine(runtime, src, midi, performer_cfg=perf, level_gate=gate)
        if engine.run() != 0:
            errors.append(f"melody {i}: {engine.error}")
        dropped += engine.dropped_frames
        overflows += src.overflows
        out[i] = notes_from_messages([(t - src.started_at, m) for t, m in rec.got], len(x) / SAMPLE_RATE)
    return out, {"dropped_frames": dropped, "input_overflows": overflows, "errors": errors}


# ---------------------------------------------------------------------------------------------
# Anchors (separate venvs, tools/anchors/)
# ---------------------------------------------------------------------------------------------
ANCHORS = {
    "basic-pitch": ("basic-pitch", "basic_pitch_notes.py", "basic-pitch 0.4.0 (offline, ONNX)"),
    "pesto": ("pesto", "pesto_notes.py", "PESTO 2 streaming + causal segmenter"),
}


def run_anchor(name: str, rs: RealSet, anchor_root: Path, tools_dir: Path, progress: bool = True) -> tuple[dict, str]:
    """Run an anchor's runner in its venv on every WAV of rs -> ({index: notes}, its label).
    Results are cached beside the set, keyed by the set, the runner and the segmenter."""
    venv, script, label = ANCHORS[name]
    python = Path(anchor_root) / venv / "bin" / "python"
    runner = Path(tools_dir) / script
    if not python.is_file():
        raise FileNotFoundError(f"{python} missing: run tools/anchors/setup.sh {anchor_root}")
    h = hashlib.sha256(rs.fingerprint().encode() + runner.read_bytes()
                       + (Path(__file__).with_name("segmenter.py").read_bytes() if name == "pesto" else b""))
    cache = rs.path / "anchors" / f"{name}-n{len(rs)}-{h.hexdigest()[:12]}.json"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["nice", "-n", "10", str(python), str(runner), "--out", str(cache), *map(str, rs.wavs)]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=None if progress else subprocess.DEVNULL)
        if proc.returncode != 0 or not cache.is_file():
            raise RuntimeError(f"anchor {name} failed (exit {proc.returncode}): {' '.join(cmd[:5])} ...")
    data = json.loads(cache.read_text())
    by_path = data["notes"]
    return {i: by_path[str(w)] for i, w in enumerate(rs.wavs)}, data.get("anchor", label)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------
def _cell(v, fmt="{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def markdown(results: dict, rs: RealSet, command: str, notes: list[str], timbre: str = "") -> str:
    """results: {system label: score() output} -> docs/eval/real.md; timbre: an optional markdown
    section (models/eval/timbre.py) put before the notes."""
    lines = ["# The `real` held-out set: the shipped model against two anchors", "",
             f"Command: `{command}`", "",
             f"{len(rs)} melodies, {len({t['family'] for t in rs.truth})} families, "
             f"{sum(t['room'] is not None for t in rs.truth)} through a room/mic variant "
             "(models/eval/real.py, rooms.py, singer.py; how the set is made and scored is in "
             "[REAL_SET.md](REAL_SET.md)). Note F1: mir_eval, onset 50 ms, pitch 50 cents, offsets "
             "ignored, mean over melodies. Lag: estimated - true onset over notes matched within "
             f"{LAG_WINDOW_S * 1e3:.0f} ms (positive: late). Count: estimated / true notes.", ""]
    lines += ["## All melodies", "", "| system | melodies | F1 | precision | recall | count | lag median ms | lag p90 ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, res in results.items():
        a = res["all"]
        lines.append(f"| {label} | {a['n']} | {_cell(a['f1'])} | {_cell(a['precision'])} | {_cell(a['recall'])} | "
                     f"{_cell(a['count_ratio'])} | {_cell(a['lag_median_ms'], '{:+.0f}')} | {_cell(a['lag_p90_ms'], '{:+.0f}')} |")
    lines += ["", "## Per family: note F1 (lag median ms)", "",
              "| family | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for fam in [f.name for f in FAMILIES]:
        cells = []
        for res in results.values():
            s = res["families"].get(fam)
            cells.append("–" if not s else f"{_cell(s['f1'])} ({_cell(s['lag_median_ms'], '{:+.0f}')})")
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    for label, res in results.items():
        lines += ["", f"### {label}", "", "| family | melodies | F1 | precision | recall | count | lag median ms | lag p90 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for fam, s in res["families"].items():
            lines.append(f"| {fam} | {s['n']} | {_cell(s['f1'])} | {_cell(s['precision'])} | {_cell(s['recall'])} | "
                         f"{_cell(s['count_ratio'])} | {_cell(s['lag_median_ms'], '{:+.0f}')} | {_cell(s['lag_p90_ms'], '{:+.0f}')} |")
    if timbre:
        lines += ["", timbre.rstrip()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
