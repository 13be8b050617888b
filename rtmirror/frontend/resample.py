"""Any input sample rate: soxr resampling in front of the cochlea (streaming and offline)."""
from __future__ import annotations

import numpy as np

from .cochlea import check_sample_rate, check_signal


class StreamResampler:
    """Streaming mono float32 resampler over python-soxr's ResampleStream (time-aligned output).

    process(block) -> the output samples ready now (any block length, 0 included; non-finite
    samples become 0 so one NaN cannot smear over the filter length); flush() -> the rest at the
    end of a stream; reset() -> a fresh stream at the same rates.

    Latency, in OUTPUT samples. soxr withholds output it cannot compute yet and releases it in
    bursts (it filters in internal chunks), so the lag varies from call to call:
      delay_samples      now: in_total * out_sr / in_sr - out_total (the newest input sample's
                         output leaves this many output samples later); 0 when nothing was fed.
      max_delay_samples  its worst case for these rates and quality, measured once at
                         construction on a scratch stream fed 32-sample blocks (larger blocks see
                         slightly less). Use it for a latency budget.
    """

    def __init__(self, in_sr: int, out_sr: int, quality: str = "HQ"):
        self.in_sr = check_sample_rate(in_sr, "in_sr")
        self.out_sr = check_sample_rate(out_sr, "out_sr")
        self.quality = quality
        self._stream = self._new_stream()
        self._in_total = 0
        self._out_total = 0
        self.max_delay_samples = self._measure_max_delay()

    def _new_stream(self):
        import soxr

        return soxr.ResampleStream(self.in_sr, self.out_sr, 1, dtype="float32", quality=self.quality)

    def _measure_max_delay(self, seconds: float = 0.5, block: int = 32) -> float:
        probe = self._new_stream()
        x = np.random.default_rng(0).standard_normal(int(self.in_sr * seconds)).astype(np.float32)
        worst, n_in, n_out = 0.0, 0, 0
        for start in range(0, len(x), block):
            n_out += len(probe.resample_chunk(x[start:start + block]))
            n_in += len(x[start:start + block])
            worst = max(worst, n_in * self.out_sr / self.in_sr - n_out)
        return worst

    @property
    def ratio(self) -> float:
        return self.out_sr / self.in_sr

    @property
    def delay_samples(self) -> float:
        return self._in_total * self.ratio - self._out_total

    def process(self, block) -> np.ndarray:
        block = check_signal(block, "block", allow_empty=True, allow_nonfinite=True)
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.size and not np.isfinite(block).all():  # soxr would smear NaN over many outputs
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        out = self._stream.resample_chunk(block)
        self._in_total += block.shape[0]
        self._out_total += out.shape[0]
        return out

    def flush(self) -> np.ndarray:
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._out_total += out.shape[0]
        return out

    def reset(self) -> None:
        self._stream.clear()
        self._in_total = self._out_total = 0


def load_audio(path, sr: int) -> np.ndarray:
    """Read an audio file as mono float32 at sr Hz (channels averaged, soxr HQ resampling); the
    file's limits (rate, duration, channels) are rtmirror.audio_file's."""
    import soxr

    from rtmirror.audio_file import read_audio

    sr = check_sample_rate(sr, "sr")
    x, file_sr = read_audio(path)  # header limits checked before reading; finite, non-empty
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)
