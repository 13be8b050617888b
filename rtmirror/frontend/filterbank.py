"""The NSL cochlear filter table, loaded from the package and laid out for the Numba kernel.

Channels are sorted by filter order (descending) into lanes, and the lanes cut into groups of
VECTOR (one SIMD register of float64). A group runs at the order of its highest-order channel,
padded up to the next entry of ORDERS; zero-padded taps leave their state at 0, so padding
changes nothing. Transposed direct form II in float64, as scipy.signal.lfilter / MATLAB filter:

    y       = b[0] v + z[0]
    z[k-1]  = b[k] v + z[k] - a[k] y        k = 1..order, z[order] = 0

Arrays (float64): b, a (groups, (MAX_ORDER + 1) * VECTOR), tap k of lane l at [g, k * VECTOR + l]
(flat rows: the generated kernels address every coefficient at a constant offset from one base);
state z (groups, MAX_ORDER, VECTOR).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ._filter_kernels import ORDERS, VECTOR

TABLE_PATH = Path(__file__).with_name("cochba.npz")
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


def _layout():
    orders = np.array([channel_order(k) for k in range(N_FILTERS)])
    lanes = -(-N_FILTERS // VECTOR) * VECTOR
    lane_channel = np.full(lanes, -1, dtype=np.int64)
    lane_channel[:N_FILTERS] = np.argsort(-orders, kind="stable")
    lane_order = np.where(lane_channel >= 0, orders[lane_channel], 0)
    group_order = lane_order.reshape(-1, VECTOR).max(axis=1)  # descending
    if group_order.max() > max(ORDERS):
        raise ValueError(f"filter order {group_order.max()} exceeds the generated kernels {ORDERS}")
    # (len(ORDERS), 2) group range [g0, g1) run by the kernel of each order
    padded = np.array([min(o for o in ORDERS if o >= k) for k in group_order])
    ranges = np.array([[np.searchsorted(-padded, -o, side="left"), np.searchsorted(-padded, -o, side="right")]
                       for o in ORDERS], dtype=np.int64)
    return lanes, lane_channel, int(orders.max()), ranges


LANES, LANE_CHANNEL, MAX_ORDER, ORDER_GROUPS = _layout()
N_GROUPS = LANES // VECTOR
# (LANES,) column of the filter-output scratch each lane writes: its channel, padding lanes -> 129
OUT_COLUMN = np.where(LANE_CHANNEL >= 0, LANE_CHANNEL, N_FILTERS)
for _arr in (LANE_CHANNEL, ORDER_GROUPS, OUT_COLUMN):
    _arr.setflags(write=False)


@lru_cache(maxsize=1)
def grouped_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """(b, a), each (groups, (MAX_ORDER + 1) * VECTOR) float64, normalized so that a[0] == 1."""
    b = np.zeros((N_GROUPS, MAX_ORDER + 1, VECTOR))
    a = np.zeros((N_GROUPS, MAX_ORDER + 1, VECTOR))
    for lane, ch in enumerate(LANE_CHANNEL):
        if ch < 0:
            continue
        bk, ak = channel_filter(int(ch))
        g, l = divmod(lane, VECTOR)
        b[g, :len(bk), l] = bk / ak[0]
        a[g, :len(ak), l] = ak / ak[0]
    b = b.reshape(N_GROUPS, -1)
    a = a.reshape(N_GROUPS, -1)
    b.setflags(write=False)
    a.setflags(write=False)
    return b, a
