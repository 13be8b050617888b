"""The NSL cochlear filter table, loaded from the package and laid out for the Numba kernel.

Channels are sorted by filter order (descending) into lanes, and the lanes cut into groups of
`lanes` channels (one SIMD register of float64: 4 for AVX2, 8 for AVX-512). A group runs at the
order of its highest-order channel; zero-padded taps leave their state at 0, so padding changes
nothing but the rounding of one addition. Transposed direct form II in float64, as
scipy.signal.lfilter / MATLAB filter:

    y       = b[0] v + z[0]
    z[k-1]  = b[k] v + z[k] - a[k] y        k = 1..order, z[order] = 0

Arrays (float64): b, a (groups, (MAX_ORDER + 1) * lanes), tap k of lane l at [g, k * lanes + l]
(flat rows: the generated kernels address every coefficient at a constant offset from one base);
state z (groups, MAX_ORDER, lanes).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).resolve().parents[1] / "resources" / "cochba.npz"
N_FILTERS = 129  # the table's channels; lateral inhibition leaves 128


@lru_cache(maxsize=1)
def load_table() -> np.ndarray:
    """COCHBA, (26, 129) complex128; see make_filter_table.py for provenance and layout."""
    with np.load(TABLE_PATH, allow_pickle=False) as f:
        table = f["COCHBA"]
    if table.shape != (26, N_FILTERS) or table.dtype != np.complex128:
        raise ValueError(f"corrupt filter table {TABLE_PATH}: {table.shape} {table.dtype}")
    table.setflags(write=False)
    return table


def channel_order(k: int) -> int:
    return int(round(load_table()[0, k].real))


def channel_filter(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) of channel k (0 = lowest CF) as NSL wav2aud reads them, A[0] == 1."""
    table = load_table()
    p = channel_order(k)
    return table[1:p + 2, k].real.copy(), table[1:p + 2, k].imag.copy()


def center_frequencies(shift: int = 0) -> np.ndarray:
    """CF of the 129 filters in Hz at the shifted sample rate: 440 * 2**((k - 31) / 24 + shift)."""
    return 440.0 * 2.0 ** ((np.arange(N_FILTERS) - 31) / 24.0 + shift)


@lru_cache(maxsize=1)
def group_delay_samples() -> np.ndarray:
    """(129,) group delay of each cochlear filter at its own CF, in samples (at any shift: the
    table is the same, only the sample rate changes). -d(phase)/d(omega) of B/A, evaluated as
    Re(sum k c_k e^{-jwk} / sum c_k e^{-jwk}) for the numerator minus the same for the denominator."""
    omega = 2 * np.pi * center_frequencies(0) / 16000.0  # CF in radians per sample
    delays = np.empty(N_FILTERS)
    for ch in range(N_FILTERS):
        total = 0.0
        for sign, coeffs in ((1.0, channel_filter(ch)[0]), (-1.0, channel_filter(ch)[1])):
            k = np.arange(len(coeffs))
            phasor = np.exp(-1j * omega[ch] * k)
            total += sign * np.real(np.sum(k * coeffs * phasor) / np.sum(coeffs * phasor))
        delays[ch] = total
    delays.setflags(write=False)
    return delays


LANE_WIDTHS = (4, 8)  # float64 lanes per group: AVX2 (and narrower) machines, AVX-512 machines


@dataclass(frozen=True)
class FilterLayout:
    """The 129 channels in groups of `lanes` (sorted by order, descending; make_filter_kernels.py
    generates one function per distinct group order, so no group runs more taps than its first lane).

    lane_channel (n_groups * lanes,) channel of each lane, -1 for the padding lanes at the end;
    out_column   (n_groups * lanes,) column of the filter-output scratch each lane writes: its
                 channel, the padding lanes 129;
    group_order  (n_groups,) descending; orders: the distinct ones, ascending;
    order_groups (len(orders), 2) the group range [g0, g1) of each entry of orders."""

    lanes: int
    n_groups: int
    lane_channel: np.ndarray
    out_column: np.ndarray
    group_order: np.ndarray
    orders: tuple[int, ...]
    order_groups: np.ndarray


@lru_cache(maxsize=None)
def filter_layout(lanes: int) -> FilterLayout:
    if lanes not in LANE_WIDTHS:
        raise ValueError(f"lanes must be one of {LANE_WIDTHS}, got {lanes!r}")
    orders = np.array([channel_order(k) for k in range(N_FILTERS)])
    n_groups = -(-N_FILTERS // lanes)
    lane_channel = np.full(n_groups * lanes, -1, dtype=np.int64)
    lane_channel[:N_FILTERS] = np.argsort(-orders, kind="stable")
    lane_order = np.where(lane_channel >= 0, orders[lane_channel], 0)
    group_order = lane_order.reshape(n_groups, lanes).max(axis=1)
    distinct = tuple(sorted(set(group_order.tolist())))
    order_groups = np.array([[np.searchsorted(-group_order, -o, side="left"),
                              np.searchsorted(-group_order, -o, side="right")] for o in distinct], dtype=np.int64)
    out_column = np.where(lane_channel >= 0, lane_channel, N_FILTERS)
    for arr in (lane_channel, out_column, group_order, order_groups):
        arr.setflags(write=False)
    return FilterLayout(lanes, n_groups, lane_channel, out_column, group_order, distinct, order_groups)


MAX_ORDER = max(channel_order(k) for k in range(N_FILTERS))  # 24


@lru_cache(maxsize=None)
def grouped_coefficients(lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a), each (groups, (MAX_ORDER + 1) * lanes) float64, normalized so that a[0] == 1."""
    layout = filter_layout(lanes)
    b = np.zeros((layout.n_groups, MAX_ORDER + 1, lanes))
    a = np.zeros((layout.n_groups, MAX_ORDER + 1, lanes))
    for lane, ch in enumerate(layout.lane_channel):
        if ch < 0:
            continue
        bk, ak = channel_filter(int(ch))
        g, l = divmod(lane, lanes)
        b[g, :len(bk), l] = bk / ak[0]
        a[g, :len(ak), l] = ak / ak[0]
    b = b.reshape(layout.n_groups, -1)
    a = a.reshape(layout.n_groups, -1)
    b.setflags(write=False)
    a.setflags(write=False)
    return b, a
