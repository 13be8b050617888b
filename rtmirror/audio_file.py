"""The one audio-file reader: header checked before anything is allocated, one-line errors.

`read_audio(path)` -> (mono float32, the file's sample rate). The header (soundfile.info) is checked
first: a 96 KB WAV whose header claims 1 Hz or 2 GHz would otherwise be resampled into gigabytes.
Channels are mixed down block by block, so memory is one mono copy of the file. Every refusal is
a ValueError of one line, "<file>: <what is wrong>; <the fix>", which the CLI prints as is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# The live and offline resamplers are tested at 4..192 kHz (tests/test_frontend_resample.py);
# 384 kHz is the highest rate common interfaces record at.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384_000
MAX_SECONDS = 4 * 3600.0  # one long set; 4 h mono at 48 kHz is 2.8 GB of float32
MAX_CHANNELS = 64
LIMITS_HELP = (f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, at most {MAX_SECONDS / 3600:g} h, "
               f"1..{MAX_CHANNELS} channels (mixed to mono)")

_BLOCK_FRAMES = 1 << 16


def check_audio_header(path: str | Path, *, max_seconds: float = MAX_SECONDS, what: str = "") -> tuple[int, int, int]:
    """(frames, sample rate, channels) from the header, or a one-line ValueError. Reads no samples."""
    import soundfile as sf

    name = f"{what} {path}".strip()
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{name}: no such file; check the path")
    if not p.is_file():
        raise ValueError(f"{name}: is not a file (a folder?); give an audio file (WAV/FLAC/OGG)")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile's errors carry the reason on one line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{name}: cannot read audio file ({reason}); give a WAV/FLAC/OGG file") from None
    rate, frames, channels = int(info.samplerate), int(info.frames), int(info.channels)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name}: the header says {rate} Hz, outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; "
                         "the file is corrupt or needs resampling to a normal rate (e.g. 48000 Hz)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{name}: {channels} channels, outside 1..{MAX_CHANNELS}; "
                         "mix it down or export fewer channels")
    if frames <= 0:
        raise ValueError(f"{name}: no audio samples (0 frames); give a recording that is not empty")
    if frames / rate > max_seconds:
        raise ValueError(f"{name}: {frames / rate:.0f} s long, over the {max_seconds:.0f} s limit; "
                         "cut it into shorter files")
    return frames, rate, channels


def read_audio(path: str | Path, *, max_seconds: float = MAX_SECONDS, what: str = "") -> tuple[np.ndarray, int]:
    """(mono float32 (n,), sample rate) at the file's own rate; `what` names the file in errors
    (e.g. "--wav"). Refuses bad headers, empty files and non-finite samples."""
    import soundfile as sf

    frames, rate, channels = check_audio_header(path, max_seconds=max_seconds, what=what)
    name = f"{what} {path}".strip()
    mono = np.empty(frames, np.float32)
    n = 0
    try:
        with sf.SoundFile(str(path)) as f:
            while n < frames:
                block = f.read(min(_BLOCK_FRAMES, frames - n), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break  # a truncated file: the header promised more than the data holds
                mono[n:n + block.shape[0]] = block.mean(axis=1) if channels > 1 else block[:, 0]
                n += block.shape[0]
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{name}: cannot read the samples ({reason}); re-export the file") from None
    if n == 0:
        raise ValueError(f"{name}: no audio samples could be read; re-export the file")
    mono = mono[:n]
    if not np.isfinite(mono).all():
        raise ValueError(f"{name}: contains non-finite samples (NaN/Inf); re-export it (e.g. as 16-bit PCM)")
    return mono, rate
