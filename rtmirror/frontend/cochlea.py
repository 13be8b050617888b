"""NSL auditory spectrogram (`wav2aud`): offline `wav2aud` and streaming `CochlearStream`.

Both run the same Numba kernel over the same per-sample state, so any partition of the input into
blocks gives the frames `wav2aud` gives on the whole signal. Per sample (NSL wav2aud, Yang, Wang &
Shamma 1992; NSLtools by the Neural Systems Lab, U. Maryland):

  x  -> [normalization: none | agc]                        (unitseq: offline only, z-scores x)
     -> cochlear filter k (ARMA, order 7..24, 129 channels)  y_k
     -> hair cell: g(y_k) (factor > 0 sigmoid 1/(1+exp(-y/factor)), 0 step y>0, -1 half-wave,
        -2 linear), then low-pass 1/(1 - beta z^-1), beta = exp(-1/(0.5 ms * fs)), not when linear
     -> lateral inhibition d_k = h_k - h_{k+1} (next-higher channel), half-wave rectified
     -> leaky integration a_k[n] = d_k[n] + alpha a_k[n-1], alpha = exp(-1/(tc ms * fs)),
        read at the last sample of every frame; tc = 0: the frame's mean of d_k instead
  -> (frames, 128) float32, frame t = samples [t*hop, (t+1)*hop); T = len(x) // hop.

fs = 16 kHz * 2**shift (the octave shift runs the same filter table at a lower rate, so every
centre frequency moves down by |shift| octaves).
"""
from __future__ import annotations

import math
import sys
import threading
import time

import numba
import numpy as np
from numba import njit

from rtmirror.frontend.generated import cell_kernels as cells
from rtmirror.frontend.generated import filters_x4
from rtmirror.frontend.generated import filters_x8
from rtmirror.frontend._simd import default_lanes
from .config import FrontendConfig
from .filterbank import LANE_WIDTHS, MAX_ORDER, N_FILTERS, filter_layout, group_delay_samples, grouped_coefficients

N_OUT = N_FILTERS - 1  # 128
CHUNK = 256  # samples per filter pass; hc scratch (CHUNK, 130) float64 = 266 kB
HAIRCELL_TC_MS = 0.5
# Anti-denormal guard: a +-1e-20 Nyquist-rate dither keeps every IIR state away from subnormal
# numbers in long silences (subnormals cost ~100x per operation on x86). It is 1e-20 absolute,
# far below float32 resolution of any audible input, and deterministic per sample index, so
# streaming and offline stay identical.
DENORMAL_GUARD = 1e-20
STEP_THRESHOLD = cells.STEP_THRESHOLD  # the step hair cell ignores the guard's ~1e-19 ripple: silence stays 0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000

# hair-cell modes (the generated hair-cell passes use the same numbers)
SIGMOID, STEP, HALF_WAVE, LINEAR = cells.SIGMOID, cells.STEP, cells.HALF_WAVE, 3
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # native byte order: run without a copy
_F32, _F64 = _KERNEL_DTYPES


def haircell_mode(factor: float) -> int:
    if factor > 0:
        return SIGMOID
    for mode, value in ((STEP, 0.0), (HALF_WAVE, -1.0), (LINEAR, -2.0)):
        if factor == value:
            return mode
    raise ValueError(f"factor must be > 0 (sigmoid), 0 (step), -1 (half-wave) or -2 (linear), got {factor!r}")


def _params(cfg: FrontendConfig) -> np.ndarray:
    """Per-stream constants packed for the kernel (float64[9])."""
    fs = cfg.sample_rate
    mode = haircell_mode(cfg.factor)
    beta = math.exp(-1.0 / (HAIRCELL_TC_MS * 1e-3 * fs))
    alpha = math.exp(-1.0 / (cfg.tc_ms * 1e-3 * fs)) if cfg.tc_ms > 0 else 0.0
    agc_on = 1.0 if cfg.normalization == "agc" else 0.0
    agc_c = 1.0 - math.exp(-1.0 / (cfg.agc_tau_s * fs))  # one-pole power tracker coefficient
    return np.array([mode, cfg.factor, beta, alpha, 1.0 if cfg.tc_ms > 0 else 0.0,
                     agc_on, agc_c, cfg.agc_target_rms, cfg.agc_max_gain], dtype=np.float64)


# One float64 buffer holds the kernel's coefficients, state, scratch and output frames (offsets in
# float64 elements, each a multiple of 8 = 64 bytes), so that a call passes 2 arrays (the block and
# this buffer) instead of 13: Numba's dispatcher pays for every array argument (with 13 and the
# float64 copy of each block, ~6.6 us per process() call; 4 arrays ~2.8 us; 2 arrays ~2.4 us).
def _aligned(n: int) -> int:
    return -(-n // 8) * 8


# The coefficient and state areas have room for either filter layout (4 or 8 lanes per group), so
# every offset is one constant whichever kernel runs.
COEF_SLOTS = _aligned(max(filter_layout(w).n_groups * (MAX_ORDER + 1) * w for w in LANE_WIDTHS))
STATE_SLOTS = _aligned(max(filter_layout(w).n_groups * MAX_ORDER * w for w in LANE_WIDTHS))
AT_B = 0                                          # (groups, (MAX_ORDER + 1) * lanes) b coefficients
AT_A = AT_B + COEF_SLOTS                          # (groups, (MAX_ORDER + 1) * lanes) a coefficients
AT_Z = AT_A + COEF_SLOTS                          # (groups, MAX_ORDER, lanes) filter state
AT_LPF = AT_Z + STATE_SLOTS                       # (129,) hair-cell low-pass
AT_ACC = AT_LPF + _aligned(N_FILTERS)             # (128,) integrators
AT_PARAMS = AT_ACC + _aligned(N_OUT)              # (N_PARAMS,) constants (_params)
N_PARAMS = 9
AT_POWER = AT_PARAMS + N_PARAMS                   # AGC power (state)
# integer state as float64 slots (exact integers below 2**53; only the non-finite count grows
# without bound, by one per bad sample): samples into the current frame, non-finite count, dither
# phase (samples seen & 1), hop
AT_PHASE = AT_POWER + 1
AT_NONFINITE = AT_POWER + 2
AT_DITHER = AT_POWER + 3
AT_HOP = AT_POWER + 4
AT_XIN = AT_PARAMS + _aligned(N_PARAMS + 5)       # (CHUNK,) conditioned input (scratch)
AT_HC = AT_XIN + CHUNK                            # (CHUNK, 130) filter outputs (scratch)
AT_OUT = AT_HC + _aligned(CHUNK * (N_FILTERS + 1) + N_OUT)  # + the overhang of _hc_from's last row
# from AT_OUT to the end: output frames, (frames, 128) float32 (64 float64 slots per frame)
FRAME_SLOTS = N_OUT // 2


@njit(nogil=True, cache=True)
def _hc_from(buf, c0):
    """hc seen from column c0: (CHUNK, 130) C array, [i, j] = hc[i, c0 + j] for c0 + j <= 129 (the
    generated hair-cell and integration passes index it with literals only)."""
    return buf[AT_HC + c0:AT_HC + c0 + CHUNK * (N_FILTERS + 1)].reshape((CHUNK, N_FILTERS + 1))


@njit(nogil=True, cache=True, fastmath={"contract"})
def _condition_input(x, start, n, buf):
    """x[start:start + n] -> xin (n <= CHUNK): non-finite -> 0 (counted), causal AGC, anti-denormal dither."""
    xin = buf[AT_XIN:AT_XIN + CHUNK]
    agc_on = buf[AT_PARAMS + 5] != 0.0
    agc_c = buf[AT_PARAMS + 6]
    target = buf[AT_PARAMS + 7]
    max_gain = buf[AT_PARAMS + 8]
    power = buf[AT_POWER]
    nonfinite = 0
    dither = int(buf[AT_DITHER])
    for i in range(n):
        v = np.float64(x[start + i])
        if not np.isfinite(v):
            v = 0.0
            nonfinite += 1
        if agc_on:
            power += agc_c * (v * v - power)
            if power < 1e-30:
                power = 1e-30
            if power * max_gain * max_gain <= target * target:
                v *= max_gain
            else:
                v *= target / math.sqrt(power)
        xin[i] = v + (DENORMAL_GUARD if ((dither + i) & 1) == 0 else -DENORMAL_GUARD)
    buf[AT_POWER] = power
    buf[AT_NONFINITE] += nonfinite
    buf[AT_DITHER] = (dither + n) & 1


@njit(nogil=True, cache=True, fastmath={"contract"})
def _haircell_and_integrate(buf, n, n_frames):
    """The filter outputs hc[:n] -> hair cell, lateral inhibition, integration; frames completed
    here land in the output area from frame n_frames on. Returns the new frame count."""
    lpf = buf[AT_LPF:AT_LPF + N_FILTERS]
    acc = buf[AT_ACC:AT_ACC + N_OUT]
    mode = int(buf[AT_PARAMS])
    factor = buf[AT_PARAMS + 1]
    beta = buf[AT_PARAMS + 2]
    alpha = buf[AT_PARAMS + 3]
    leaky = buf[AT_PARAMS + 4] != 0.0
    out = buf[AT_OUT:].view(np.float32).reshape(((buf.shape[0] - AT_OUT) // FRAME_SLOTS, N_OUT))
    hop = int(buf[AT_HOP])
    average = not leaky  # tc = 0: the frame's mean instead of a leaky integrator
    alpha_eff = alpha if leaky else 1.0
    scale = 1.0 if leaky else 1.0 / hop
    # hair cell: nonlinearity + membrane low-pass, in place on hc (skipped for linear)
    if mode != LINEAR:
        for c0 in range(0, N_OUT, cells.BLOCK):
            cells.haircell32(_hc_from(buf, c0), n, c0, lpf, mode, factor, beta)
        cells.haircell1(_hc_from(buf, N_OUT), n, N_OUT, lpf, mode, factor, beta)  # channel 128
    # lateral inhibition (next-higher channel), half-wave rectification, integration;
    # blocks of channels with their integrators in registers over the chunk
    phase = int(buf[AT_PHASE])
    first = n_frames
    for c0 in range(0, N_OUT, cells.BLOCK):
        n_frames = cells.integrate32(_hc_from(buf, c0), n, c0, acc, out, alpha_eff, average, scale, phase, hop,
                                     first)
    buf[AT_PHASE] = (phase + n) % hop
    return n_frames


# Run x (n,) float32/float64 through the cochlea; write completed frames to the output area
# (frames 0..n_frames-1); return n_frames. Per chunk of CHUNK samples: input conditioning, the 129
# cochlear filters (channel groups in registers, sample-inner; make_filter_kernels.py), hair cell
# and integration. One kernel per filter layout (4 or 8 lanes, filterbank.filter_layout) - they
# differ only in the filter call.
#
# buf: float64 (AT_OUT + frames * FRAME_SLOTS,), see the AT_* offsets: coefficients b, a
# (filterbank.grouped_coefficients of the kernel's width), state z (groups, MAX_ORDER, lanes),
# lpf (129,) hair-cell low-pass, acc (128,) integrators, AGC power; params (_params); scratch xin
# (CHUNK,) conditioned input, hc (CHUNK, 130) filter outputs in channel order (column 129 takes the
# padding lanes); integer state in float64 slots (AT_PHASE..AT_HOP); from AT_OUT on, the output
# frames (frames, 128) float32.
@njit(nogil=True, cache=True, fastmath={"contract"})
def _cochlea_kernel_x4(x, buf):
    n_frames = 0
    for start in range(0, x.shape[0], CHUNK):
        n = min(CHUNK, x.shape[0] - start)
        _condition_input(x, start, n, buf)
        filters_x4.filter_all(buf[AT_XIN:AT_XIN + CHUNK], n, buf[AT_B:AT_A], buf[AT_A:AT_Z], buf[AT_Z:AT_LPF],
                              _hc_from(buf, 0))
        n_frames = _haircell_and_integrate(buf, n, n_frames)
    return n_frames


@njit(nogil=True, cache=True, fastmath={"contract"})
def _cochlea_kernel_x8(x, buf):
    n_frames = 0
    for start in range(0, x.shape[0], CHUNK):
        n = min(CHUNK, x.shape[0] - start)
        _condition_input(x, start, n, buf)
        filters_x8.filter_all(buf[AT_XIN:AT_XIN + CHUNK], n, buf[AT_B:AT_A], buf[AT_A:AT_Z], buf[AT_Z:AT_LPF],
                              _hc_from(buf, 0))
        n_frames = _haircell_and_integrate(buf, n, n_frames)
    return n_frames


KERNELS = {4: _cochlea_kernel_x4, 8: _cochlea_kernel_x8}


_compile_lock = threading.Lock()
_compiled: set[int] = set()  # lane widths whose kernel is compiled or loaded in this process


def resolve_lanes(lanes: int | None) -> int:
    """The filter layout to run: lanes as given (4 or 8), or None for this CPU's (_simd.default_lanes)."""
    lanes = default_lanes() if lanes is None else lanes
    if lanes not in KERNELS:
        raise ValueError(f"lanes must be one of {tuple(KERNELS)} (or None for this CPU's), got {lanes!r}")
    return lanes


def _ensure_compiled(lanes: int) -> None:
    """Compile (or load from numba's cache) the kernel of that width (float32 and float64 input)
    with LLVM's SLP vectorizer on: it packs the generated filters' per-lane scalars into SIMD
    registers (numba leaves SLP off by default, NUMBA_SLP_VECTORIZE). First use on a machine (or
    after an edit of this file or a generated kernel module): about a minute of CPU, then
    cached. Only the width in use is compiled."""
    if lanes in _compiled:
        return
    with _compile_lock:
        if lanes in _compiled:
            return
        # loading from the cache takes < 1 s; a compile shows a progress bar rather than leaving
        # the user waiting (numba gives no progress of its own: the bar follows the elapsed time
        # against the typical compile time)
        notice = _CompileProgress()
        notice.start()
        old = numba.core.config.SLP_VECTORIZE
        numba.core.config.SLP_VECTORIZE = 1
        try:
            state = _CochleaState(FrontendConfig(normalization="none"), lanes=lanes, compile=False)
            for dtype in (np.float64, np.float32):  # both input types the stream takes directly
                state.run(np.zeros(4, dtype))
        finally:
            notice.cancel()
            numba.core.config.SLP_VECTORIZE = old
        _compiled.add(lanes)


class _CompileProgress(threading.Thread):
    """After 2 s without the kernels loaded from cache: a bar on stderr over the typical compile
    time (~60 s of CPU), ticking once a second until cancel()."""

    TYPICAL_S = 60

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._done = threading.Event()

    def run(self) -> None:
        if self._done.wait(2.0):
            return
        from tqdm import tqdm

        with tqdm(total=self.TYPICAL_S, desc="rtmirror: compiling the cochlear frontend (first use, cached after)",
                  unit="s", file=sys.stderr, leave=False, bar_format="{desc}: {bar} {n:.0f}/~{total} s") as bar:
            t0 = time.monotonic()
            while not self._done.wait(1.0):
                bar.n = min(self.TYPICAL_S - 1, time.monotonic() - t0)
                bar.refresh()
        print("rtmirror: cochlear frontend compiled and cached", file=sys.stderr, flush=True)

    def cancel(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join(2.0)


class _CochleaState:
    """Preallocated kernel state for one configuration and filter layout (lanes: 4, 8, or None for
    this CPU's), with room for `frames` output frames."""

    def __init__(self, cfg: FrontendConfig, frames: int = 1, lanes: int | None = None, compile: bool = True):
        haircell_mode(cfg.factor)
        self.lanes = resolve_lanes(lanes)
        self.kernel = KERNELS[self.lanes]
        if compile:
            _ensure_compiled(self.lanes)
        self.cfg = cfg
        self._allocate(frames)
        b, a = grouped_coefficients(self.lanes)
        self.buf[AT_B:AT_B + b.size] = b.ravel()
        self.buf[AT_A:AT_A + a.size] = a.ravel()
        self.buf[AT_PARAMS:AT_PARAMS + N_PARAMS] = _params(cfg)
        self.reset()

    def _allocate(self, frames: int) -> None:
        """A new buffer with room for `frames` output frames; coefficients and state carried over.
        self.out is the (frames, 128) float32 view of its output area."""
        size = AT_OUT + frames * FRAME_SLOTS
        raw = np.zeros(size + 8)
        skip = (-raw.ctypes.data // 8) % 8  # start on a 64-byte boundary (cache line, AVX loads)
        buf = raw[skip:skip + size]
        if hasattr(self, "buf"):
            buf[:AT_OUT] = self.buf[:AT_OUT]
        self.buf = buf
        self.out = buf[AT_OUT:].view(np.float32).reshape((frames, N_OUT))

    def grow(self, frames: int) -> None:
        if frames > self.out.shape[0]:
            self._allocate(frames)

    def reset(self) -> None:
        self.buf[AT_Z:AT_PARAMS] = 0.0  # filter states, hair-cell low-pass, integrators
        # AGC starts at the target level (gain 1), not at silence (which would start at max gain)
        self.buf[AT_POWER] = self.cfg.agc_target_rms ** 2
        self.buf[AT_PHASE:AT_HOP] = 0.0  # frame phase, non-finite count, dither phase
        self.buf[AT_HOP] = self.cfg.hop

    @property
    def nonfinite_count(self) -> int:
        return int(self.buf[AT_NONFINITE])

    def run(self, x: np.ndarray) -> int:
        """x: (n,) C-contiguous float32 or float64, completing at most self.out.shape[0] frames;
        they land in self.out[:returned count]."""
        return self.kernel(x, self.buf)


def check_signal(x, what: str = "x", allow_empty: bool = False, allow_nonfinite: bool = False) -> np.ndarray:
    """A 1-D float waveform, or a ValueError that says what is wrong and how to fix it."""
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        raise ValueError(f"{what} is {x.dtype} (integer PCM?): convert to float in [-1, 1] first, "
                         f"e.g. x.astype(np.float32) / 32768 for int16, or read it with load_audio")
    if x.dtype.kind != "f":
        raise ValueError(f"{what} must be a float array, got dtype {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{what} must be mono, shape (n,), got shape {x.shape}: downmix first "
                         f"(x.mean(axis=1)) or read it with load_audio(path, sr)")
    if x.size == 0 and not allow_empty:
        raise ValueError(f"{what} is empty")
    if not allow_nonfinite and x.size and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"{what} has {bad.size} non-finite samples (NaN/Inf), first at index {bad[0]}")
    return x


def check_sample_rate(sr, what: str = "sample rate") -> int:
    if not isinstance(sr, (int, np.integer, float)) or not math.isfinite(sr) or sr != int(sr) \
            or not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise ValueError(f"{what} must be an integer in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz, got {sr!r}")
    return int(sr)


def unitseq(x: np.ndarray) -> np.ndarray:
    """NSL unitseq: zero mean, unit variance (MATLAB std, n - 1) over the whole waveform."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    std = x.std(ddof=1) if x.size > 1 else 0.0
    return x / std if std > 0 else x


def wav2aud(x, cfg: FrontendConfig | None = None, sr: int | None = None, lanes: int | None = None) -> np.ndarray:
    """Auditory spectrogram of a mono float waveform at cfg.sample_rate -> (len(x) // hop, 128) float32.

    sr, if given, must equal cfg.sample_rate (a guard against feeding 44.1 kHz audio to a 8 kHz
    model): resample with load_audio(path, sr) or StreamResampler first. A trailing partial frame
    is dropped. Raises ValueError on empty, non-finite, integer, or multi-channel input.
    lanes: the filter layout (4 or 8 channels per SIMD register; None = this CPU's, see _simd.py).
    The two layouts differ by float64 rounding only (~1e-16 relative), each equals its stream.
    """
    cfg = FrontendConfig() if cfg is None else cfg
    if sr is not None:
        sr = check_sample_rate(sr, "sr")
        if sr != cfg.sample_rate:
            raise ValueError(f"x is at {sr} Hz but this frontend runs at {cfg.sample_rate} Hz "
                             f"(shift={cfg.shift}): resample first with load_audio(path, {cfg.sample_rate}) "
                             f"or StreamResampler({sr}, {cfg.sample_rate})")
    x = check_signal(x)
    if cfg.normalization == "unitseq":
        x = unitseq(x)
    state = _CochleaState(cfg, frames=x.shape[0] // cfg.hop, lanes=lanes)
    n = state.run(np.ascontiguousarray(x, dtype=np.float64))
    assert n == state.out.shape[0]
    return state.out.copy()  # not the view: it would keep the whole kernel buffer (~330 kB) alive


_N_VIEWS = 64  # process() returns precomputed views for up to 63 frames per call


class CochlearStream:
    """Streaming `wav2aud`: feed blocks of any length, get the frames each block completes.

    process(block) returns (n_new, 128) float32. By default that is a VIEW into a preallocated
    buffer, overwritten by the next call (no allocation in the steady state): copy it if you keep
    it (or pass copy=True). The buffer grows only when a block longer than any before arrives.

    Latency: a frame is emitted with the last sample of its hop, so there is no buffering delay
    (delay_samples = 0). The model itself smooths, identically offline: `group_delay_s` (128,)
    is each cochlear filter's group delay at its CF (longest at low CF: ~19 ms at 180 Hz at 16 kHz, ~38 ms at 90 Hz at 8 kHz),
    and the leaky integrator averages over about tc_ms.

    Non-finite samples are replaced by 0 and counted in `nonfinite_count`; they never reach the
    filter state. "unitseq" normalization needs the whole signal and is refused here.
    lanes: the filter layout, as for wav2aud (None = this CPU's).
    """

    delay_samples = 0

    def __init__(self, cfg: FrontendConfig | None = None, lanes: int | None = None):
        cfg = FrontendConfig() if cfg is None else cfg
        if cfg.normalization == "unitseq":
            raise ValueError("normalization='unitseq' z-scores the whole waveform, so it is offline-only: "
                             "use normalization='agc' (causal, the default) or 'none' for streaming")
        self.cfg = cfg
        self._state = _CochleaState(cfg, lanes=lanes)
        self._kernel = self._state.kernel
        self._max_block = 0
        self._grow(1024)  # (frames, 128) output buffer, float64 input copy for other dtypes

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def group_delay_s(self) -> np.ndarray:
        """(128,) cochlear filter group delay at each output channel's CF, in seconds."""
        return group_delay_samples()[:N_OUT] / self.cfg.sample_rate

    @property
    def lanes(self) -> int:
        """The filter layout in use: 4 or 8 channels per SIMD register."""
        return self._state.lanes

    @property
    def nonfinite_count(self) -> int:
        return self._state.nonfinite_count

    def reset(self) -> None:
        """Back to the initial state (silence before the first sample), counters cleared."""
        self._state.reset()

    def process(self, block, copy: bool = False) -> np.ndarray:
        """block (n,) float32/float64, any n >= 0 -> (frames completed by it, 128) float32 view."""
        # The per-call path is kept short: at 128-sample blocks every 0.1 us here is ~0.8 ns per
        # sample, against ~200 ns of filtering. The common case (a native float32/float64 1-D array
        # with unit stride, no longer than any block before) costs 5 attribute tests, by identity
        # where it can (native arrays share the _F32/_F64 dtype objects); the rest goes through
        # _prepare, which checks, grows and copies as needed.
        if type(block) is not np.ndarray:
            block = np.asarray(block)
        dtype = block.dtype
        if not ((dtype is _F32 or dtype is _F64) and block.ndim == 1 and block.strides[0] == dtype.itemsize
                and len(block) <= self._max_block):
            block = self._prepare(block)
        n = self._kernel(block, self._buf)
        frames = self._frames[n] if n < _N_VIEWS else self._state.out[:n]
        return frames.copy() if copy else frames

    def _prepare(self, block: np.ndarray) -> np.ndarray:
        """process()'s slow path: refuse what is not a 1-D float array, grow the buffers for a longer
        block, copy other float types, strided or byte-swapped views to float64."""
        block = check_signal(block, "block", allow_empty=True, allow_nonfinite=True)
        n_in = block.shape[0]
        if n_in > self._max_block:
            self._grow(n_in)
        dtype = block.dtype
        if dtype in _KERNEL_DTYPES and (n_in < 2 or block.strides[0] == dtype.itemsize):
            return block
        x = self._in[:n_in]
        np.copyto(x, block)
        return x

    def _grow(self, n_in: int) -> None:
        """Room for blocks up to n_in samples (at least doubling): the float64 input copy and the
        output frames such a block can complete, (hop - 1 + n_in) // hop."""
        self._max_block = max(n_in, 2 * self._max_block)
        self._in = np.zeros(self._max_block)
        self._state.grow((self.cfg.hop - 1 + self._max_block) // self.cfg.hop)
        self._buf = self._state.buf
        # the views process() returns, made once (slicing per call cost ~0.15 us)
        out = self._state.out
        self._frames = [out[:n] for n in range(min(out.shape[0] + 1, _N_VIEWS))]
