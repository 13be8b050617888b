"""Audio sources for the engine: a sounddevice input stream, or a file fed in blocks.

Both put mono float32 into a `Ring` (rtmirror.ring) that the engine's worker drains, and expose
`sample_rate`, `start()`, `stop()`, `finished`, `error`, `overflows`, and for the latency report
`period_s` (the block one callback delivers) and `device_latency_s` (the driver's own input
latency, beyond the period).

The sounddevice callback only copies into the preallocated ring (mono downmix or one channel,
in place) and counts status flags: it never blocks, allocates per block, logs or raises.
sounddevice is imported lazily: PortAudio scans host APIs at import, and JACK is listed only if
its server ran at that moment (`rescan()` re-initializes PortAudio to pick up a new server).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from rtmirror.ring import Ring


def _sd():
    try:
        import sounddevice as sd
    except OSError as exc:   # "PortAudio library not found"
        raise RuntimeError(f"audio input unavailable: {exc} (install libportaudio2)") from None
    return sd


def rescan() -> None:
    """Re-initialize PortAudio so devices/host APIs that appeared since import are listed."""
    sd = _sd()
    sd._terminate()
    sd._initialize()


def forget_jack() -> None:
    """Re-initialize PortAudio without JACK (call before stopping a JACK server this process
    used): PortAudio's JACK host API aborts the process at exit (pa_jack.c Terminate assertion)
    when the server is already gone."""
    import os
    sd = _sd()
    while sd._initialized > 0:
        sd._terminate()
    saved = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = "rtmirror-no-server"
    try:
        sd._initialize()
    finally:
        if saved is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = saved


def list_input_devices() -> list[dict]:
    """[{index, name, hostapi, channels, default_samplerate, default}] for devices with inputs."""
    try:
        sd = _sd()
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except Exception:
        return []
    out = []
    for i, d in enumerate(devices):
        if d["max_input_channels"] > 0:
            out.append({"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
                        "channels": d["max_input_channels"],
                        "default_samplerate": d["default_samplerate"], "default": i == default_in})
    return out


def find_input_device(spec: str | int | None) -> int | None:
    """A device index from an index, an exact name or a unique substring; None = the default.

    Raises LookupError with the list of inputs when nothing (or more than one) matches."""
    devices = list_input_devices()
    if not devices:
        raise LookupError("no audio input device found")
    if spec is None or spec == "":
        for d in devices:
            if d["default"]:
                return d["index"]
        return devices[0]["index"]
    s = str(spec)
    if s.isdigit():
        idx = int(s)
        if any(d["index"] == idx for d in devices):
            return idx
        raise LookupError(f"no input device with index {idx}; inputs: {_names(devices)}")
    exact = [d["index"] for d in devices if d["name"] == s]
    if exact:
        return exact[0]
    hits = [d["index"] for d in devices if s.lower() in d["name"].lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no input device matches {s!r}; inputs: {_names(devices)}")
    raise LookupError(f"input device {s!r} is ambiguous: {[d['name'] for d in devices if d['index'] in hits]}")


def _names(devices) -> str:
    return ", ".join(f"[{d['index']}] {d['name']}" for d in devices) or "none"


class MicInput:
    """A sounddevice InputStream feeding a Ring.

    device: index/name/None (default input); sample_rate: None = the device's default rate (the
    engine resamples); channel: None = mono downmix of all channels, else that channel (0-based).
    """

    def __init__(self, device=None, sample_rate: int | None = None, channel: int | None = None,
                 blocksize: int = 0, ring_seconds: float = 2.0, latency="low"):
        sd = _sd()
        self.device = find_input_device(device)
        info = sd.query_devices(self.device)
        self.device_name = info["name"]
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        n_in = int(info["max_input_channels"])
        if channel is not None and not (0 <= channel < n_in):
            raise ValueError(f"channel {channel} out of range: {self.device_name!r} has {n_in} input channels")
        self.channel = channel
        self.n_channels = 1 if channel is None and n_in == 1 else (n_in if channel is None else channel + 1)
        self.blocksize = blocksize
        self.latency = latency
        self.ring = Ring(int(ring_seconds * self.sample_rate))
        self.overflows = 0
        self.callbacks = 0
        self.block_frames = 0              # frames in the latest callback
        self._error: str | None = None
        self.finished = False              # a live input never runs out
        self.stuck = False                 # stop() gave up on PortAudio's abort/close (server gone)
        self._stream_latency = 0.0
        self._stream = None
        self._stopping = False
        self._active_checked = 0.0

    def _callback(self, indata, frames, time_info, status) -> None:
        # Real-time context: copy, count, return. Nothing here may raise or block.
        try:
            if status:
                self.overflows += 1
            self.ring.write_frames(indata, self.channel)
            self.callbacks += 1
            self.block_frames = frames
        except Exception:
            self.overflows += 1

    def _finished(self) -> None:
        if not self._stopping:
            self._error = f"input stream {self.device_name!r} stopped unexpectedly (device lost?)"

    @property
    def error(self) -> str | None:
        """Why the input ended, or None. Besides the stream's finished callback, a stream that is
        no longer active while nobody stopped it counts (PortAudio's JACK host API marks its
        streams inactive when the server shuts down and never calls the finished callback);
        checked at most 4 times a second."""
        if self._error is None and self._stream is not None and not self._stopping:
            now = time.monotonic()
            if now - self._active_checked >= 0.25:
                self._active_checked = now
                try:
                    active = bool(self._stream.active)
                except Exception:
                    active = False
                if not active and not self._stopping:
                    self._error = (f"input stream {self.device_name!r} is no longer running "
                                   f"(device lost or audio server gone)")
        return self._error

    @error.setter
    def error(self, value: str | None) -> None:
        self._error = value

    def start(self) -> None:
        sd = _sd()
        self._stopping = False
        self._stream = sd.InputStream(
            device=self.device, channels=self.n_channels, samplerate=self.sample_rate,
            blocksize=self.blocksize, dtype="float32", latency=self.latency,
            callback=self._callback, finished_callback=self._finished)
        self._stream_latency = float(self._stream.latency)
        self._stream.start()

    @property
    def period_s(self) -> float:
        """The audio period: the newest callback's block (the requested blocksize before the
        first callback, 0 when that is PortAudio's choice)."""
        return (self.block_frames or self.blocksize) / self.sample_rate

    @property
    def device_latency_s(self) -> float:
        """PortAudio's input latency beyond the period being filled (its report includes the
        period on most host APIs; PortAudio's JACK host API reports the port's capture latency,
        0 for a JACK client feeding the input directly)."""
        return max(0.0, self._stream_latency - self.period_s)

    @property
    def latency_s(self) -> float:
        """Input buffer latency, worst case: PortAudio's report, at least one period."""
        return max(self._stream_latency, self.period_s)

    def abort(self) -> None:
        """Stop the stream as a device loss would (used by fault tests)."""
        if self._stream is not None:
            self._stream.abort()

    def stop(self, timeout: float = 2.0) -> None:
        """Abort and close the stream, waiting at most `timeout` s: PortAudio's abort blocks
        forever when the JACK server died under the stream (it waits for a process cycle that never
        comes), so it runs in a daemon thread; `stuck` says it was left behind (the process should
        then end with os._exit: PortAudio's own exit handler would block or abort too)."""
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is None:
            return
        failed: list[BaseException] = []
        done = threading.Event()

        def close() -> None:
            try:
                stream.abort()
                stream.close()
            except BaseException as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=close, name="rtmirror-input-close", daemon=True).start()
        if not done.wait(timeout):
            self.stuck = True
            self._error = self._error or f"input stream {self.device_name!r} did not close (audio server gone?)"
            return
        if failed:
            raise failed[0]


class FileInput:
    """Feeds a mono signal into a Ring in blocks from a thread.

    realtime=True: one block every block/sample_rate seconds (like a sound card; a full ring drops
    and counts). realtime=False: as fast as the consumer takes it (waits for room, never drops).
    """

    def __init__(self, audio: np.ndarray, sample_rate: int, block: int = 128, realtime: bool = True,
                 ring_seconds: float = 2.0):
        self.audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self.sample_rate = int(sample_rate)
        self.block = int(block)
        self.realtime = realtime
        self.ring = Ring(max(int(ring_seconds * self.sample_rate), 4 * self.block))
        self.overflows = 0
        self.error: str | None = None
        self.finished = False
        self.period_s = self.block / self.sample_rate if realtime else 0.0
        self.device_latency_s = 0.0
        self.latency_s = self.period_s
        self.pushed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, path, sample_rate: int | None = None, **kw) -> "FileInput":
        if sample_rate is None:
            from rtmirror.audio_file import read_audio
            x, sr = read_audio(path)
            return cls(x, sr, **kw)
        from rtmirror.frontend import load_audio
        return cls(load_audio(str(path), sample_rate), sample_rate, **kw)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._feed, name="rtmirror-file-input", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        period = self.block / self.sample_rate
        t_next = time.perf_counter()
        x = self.audio
        for i in range(0, len(x), self.block):
            if self._stop.is_set():
                return
            blk = x[i:i + self.block]
            if self.realtime:
                t_next += period
                delay = t_next - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                if not self.ring.write(blk):
                    self.overflows += 1
            else:
                while self.ring.free() < len(blk):      # wait for room: never drop
                    if self._stop.wait(0.0005):
                        return
                self.ring.write(blk)
            self.pushed += len(blk)
        self.finished = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)


class LiveResampler:
    """Low-latency streaming resampler: windowed-sinc (Kaiser) polyphase FIR, any rate pair.

    Why not soxr's stream here: measured with 128-sample blocks, soxr's ResampleStream holds back
    36 ms (HQ, 16 kHz -> 8 kHz) to 95 ms (HQ, 48 kHz -> 8 kHz) of output in its internal
    buffering, more than the whole live latency budget (2 frames + lookahead + the audio buffer).
    This filter's latency is its half length: `zero_crossings` periods of the lower rate
    (12 -> 1.5 ms at 8 kHz), with the passband edge at `cutoff` x the lower Nyquist rate and
    ~80 dB stopband (Kaiser beta 8). Output sample k is the input signal at time k / out_sr
    (minus the reported `delay_samples`): it never shifts the timeline, it only waits for
    the future half of its window.

    Every output sample is computed from the same inputs with the same arithmetic whatever the
    block sizes, so the result is block-partition invariant (tested); `resample()` is the
    offline twin (one block).
    """

    def __init__(self, in_sr: int, out_sr: int, zero_crossings: int = 12, cutoff: float = 0.9,
                 beta: float = 8.0):
        from math import gcd
        self.in_sr, self.out_sr = int(in_sr), int(out_sr)
        if self.in_sr <= 0 or self.out_sr <= 0:
            raise ValueError(f"sample rates must be positive, got {in_sr}, {out_sr}")
        g = gcd(self.in_sr, self.out_sr)
        self._up, self._down = self.out_sr // g, self.in_sr // g     # out k <-> input k * down / up
        scale = min(1.0, self.out_sr / self.in_sr)                   # cutoff relative to the input rate
        fc = cutoff * scale                                          # in cycles per 2 input samples
        self.half = int(np.ceil(zero_crossings / scale))             # taps each side, input samples
        # Polyphase table: phase p (fractional offset p / up of an input sample) -> 2*half taps.
        n = np.arange(-self.half + 1, self.half + 1)                 # tap offsets from floor(pos)
        frac = np.arange(self._up)[:, None] / self._up               # (up, 1)
        t = n[None, :] - frac                                        # input samples from the exact position
        window = np.kaiser(2 * self.half + 1, beta)
        w = np.interp(t, np.arange(-self.half, self.half + 1), window)
        self._taps = (fc * np.sinc(fc * t) * w).astype(np.float64)   # (up, 2*half)
        self._offsets = n
        self.reset()

    @property
    def delay_samples(self) -> float:
        """Latency in output samples: the future half of the window."""
        return self.half * self.out_sr / self.in_sr

    def reset(self) -> None:
        self._hist = np.zeros(2 * self.half, np.float64)   # zeros before the stream started
        self._hist_start = -2 * self.half                  # absolute input index of _hist[0]
        self._n_in = 0                                     # input samples received
        self._k = 0                                        # next output sample

    def process(self, block) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        self._hist = np.concatenate([self._hist, x])
        self._n_in += len(x)
        # Output k needs inputs up to floor(k * down / up) + half.
        # ceil((n_in - half) * up / down): the first k not ready (was rounded with up - 1, which
        # overshot when upsampling and read past the history: IndexError below ~7 kHz input)
        k_end = ((self._n_in - self.half) * self._up + self._down - 1) // self._down
        k_end = max(k_end, self._k)
        ks = np.arange(self._k, k_end)
        num = ks * self._down
        base, phase = num // self._up, num % self._up                    # floor(pos), fraction * up
        if len(ks):
            # rows of the sliding window view: (n_out, 2*half) without an index array; the same
            # products and the same row sums as gathering hist[base + offsets]
            windows = np.lib.stride_tricks.sliding_window_view(self._hist, len(self._offsets))
            rows = windows[base + self._offsets[0] - self._hist_start]
            taps = self._taps[0] if self._up == 1 else self._taps[phase]
            y = (taps * rows).sum(axis=1)
        else:
            y = np.zeros(0)
        self._k = k_end
        # Keep what the next outputs can still need.
        keep_from = (self._k * self._down) // self._up - self.half + 1 - self._hist_start
        keep_from = max(0, min(keep_from, len(self._hist)))
        self._hist = self._hist[keep_from:]
        self._hist_start += keep_from
        return y.astype(np.float32)

    def flush(self) -> np.ndarray:
        """End of stream: the outputs that waited for future input, computed with zeros after it.
        Total output = ceil(n_in * out_sr / in_sr) samples. Call reset() before reusing."""
        total = -(-self._n_in * self._up // self._down)
        before = self._k
        y = self.process(np.zeros(self.half + 1, np.float32))
        return y[: max(0, total - before)]


def resample(x: np.ndarray, in_sr: int, out_sr: int) -> np.ndarray:
    """Offline twin of LiveResampler: the whole signal as one block, plus the flushed tail."""
    r = LiveResampler(in_sr, out_sr)
    return np.concatenate([r.process(x), r.flush()])
