"""`rtmirror spectrogram IN.wav -o OUT.png`: draw the auditory spectrogram of an audio file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rtmirror.audio_file import LIMITS_HELP
from rtmirror.frontend.config import NORMALIZATIONS, FrontendConfig

DEFAULT = FrontendConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=f"audio file (WAV, FLAC, ...; mixed to mono; limits: {LIMITS_HELP})")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--frame-ms", type=float, default=DEFAULT.frame_ms,
                   help="frame length in ms, (0, 1000], at least one sample (default %(default)s)")
    p.add_argument("--tc-ms", type=float, default=DEFAULT.tc_ms,
                   help="integration time constant in ms, [0, 1000], 0 = frame mean")
    p.add_argument("--factor", type=float, default=DEFAULT.factor,
                   help="hair cell: >0 sigmoid (up to 1000), 0 step, -1 half-wave, -2 linear")
    p.add_argument("--shift", type=int, default=DEFAULT.shift,
                   help="octave shift -4..2: 0 = 16 kHz, -1 = 8 kHz")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default=DEFAULT.normalization)
    p.add_argument("--title", default=None)


def frequency_ticks(shift: int) -> tuple[list[float], list[str]]:
    """Positions (output channel index) and labels of round frequencies on the log-frequency axis."""
    from rtmirror.frontend.filterbank import center_frequencies

    cf = center_frequencies(shift)[:128]
    ticks, labels = [], []
    for hz in (62.5, 125, 250, 500, 1000, 2000, 4000, 8000, 16000):
        if cf[0] <= hz <= cf[-1]:
            ticks.append(31 + 24 * (np.log2(hz / 440.0) - shift))  # CF_k = 440 * 2**((k-31)/24 + shift)
            labels.append(f"{hz / 1000:g} k" if hz >= 1000 else f"{hz:g}")
    return ticks, labels


def draw(spec: np.ndarray, cfg: FrontendConfig, path: Path, title: str) -> None:
    """spec (frames, 128) -> PNG, time in s, frequency in Hz on a log axis (channels are log-spaced)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = spec.shape[0] / cfg.frame_rate
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 2.0 + duration)), 4.0), dpi=120)
    # a power-law compression so quiet partials stay visible next to loud ones
    shown = np.power(np.maximum(spec, 0.0) / max(float(spec.max()), 1e-12), 0.5)
    img = ax.imshow(shown.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                    extent=(0.0, duration, -0.5, 127.5), vmin=0.0, vmax=1.0)
    ticks, labels = frequency_ticks(cfg.shift)
    ax.set_yticks(ticks, labels)
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(img, ax=ax, pad=0.01, label="(level / max)^0.5")
    fig.tight_layout()
    from rtmirror.fileio import atomic_write
    with atomic_write(path, "wb") as f:      # never a half-written PNG
        fig.savefig(f, format="png")
    plt.close(fig)


def run(args) -> int:
    from rtmirror.frontend import load_audio, wav2aud
    from rtmirror.cli.common import one_line

    def fail(message: str) -> int:
        print(f"rtmirror spectrogram: {message}", file=sys.stderr)
        return 2

    try:
        cfg = FrontendConfig(frame_ms=args.frame_ms, tc_ms=args.tc_ms, factor=args.factor, shift=args.shift,
                             normalization=args.normalization)
    except ValueError as exc:
        return fail(f"{exc}; see --help for the ranges")
    try:
        x = load_audio(args.input, cfg.sample_rate)
    except ValueError as exc:
        return fail(one_line(exc))
    if len(x) < cfg.hop:
        return fail(f"{args.input}: shorter than one frame ({cfg.frame_ms:g} ms); give a longer recording")
    spec = wav2aud(x, cfg)
    title = args.title or (f"{args.input.name}: auditory spectrogram, {cfg.sample_rate} Hz, "
                           f"[{cfg.frame_ms:g}, {cfg.tc_ms:g}, {cfg.factor:g}, {cfg.shift}], {cfg.normalization}")
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        draw(spec, cfg, args.output, title)
    except OSError as exc:
        return fail(one_line(exc))
    print(f"wrote {args.output} ({spec.shape[0]} frames x 128 channels, {len(x) / cfg.sample_rate:.2f} s)")
    return 0
