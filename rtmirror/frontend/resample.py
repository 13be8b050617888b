"""Any input sample rate: soxr resampling in front of the cochlea (streaming and offline)."""
from __future__ import annotations

import numpy as np

from .cochlea import check_sample_rate, check_signal


class StreamResampler:
    """Streaming mono float32 resampler over python-soxr's ResampleStream.

    process(block) -> the output samples available now; flush() -> the rest at end of stream;
    reset() -> fresh stream, same rates. delay_samples: soxr's pending output right now, in output
    samples: the output sample that belongs to the newest input sample leaves that much later.
    """

    def __init__(self, in_sr: int, out_sr: int, quality: str = "HQ"):
        import soxr

        self.in_sr = check_sample_rate(in_sr, "in_sr")
        self.out_sr = check_sample_rate(out_sr, "out_sr")
        self.quality = quality
        self._stream = soxr.ResampleStream(self.in_sr, self.out_sr, 1, dtype="float32", quality=quality)

    @property
    def delay_samples(self) -> float:
        return float(self._stream.delay())

    def process(self, block) -> np.ndarray:
        block = check_signal(block, "block", allow_empty=True, allow_nonfinite=True)
        block = np.ascontiguousarray(block, dtype=np.float32)
        return self._stream.resample_chunk(block)

    def flush(self) -> np.ndarray:
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)

    def reset(self) -> None:
        self._stream.clear()


def load_audio(path, sr: int) -> np.ndarray:
    """Read an audio file as mono float32 at sr Hz (channels averaged, soxr HQ resampling)."""
    import soundfile
    import soxr

    sr = check_sample_rate(sr, "sr")
    x, file_sr = soundfile.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    if x.shape[0] == 0:
        raise ValueError(f"{path}: no audio samples")
    x = x.mean(axis=1)
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)
