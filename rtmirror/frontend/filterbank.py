"""The NSL cochlear filter table, loaded from the package and laid out for the Numba kernel.

The kernel advances all 129 channel filters one sample at a time, vectorized ACROSS channels
(each channel's recursion is independent; LLVM's loop vectorizer turns the channel loops into
AVX2 code). Transposed direct form II, float64, per tap k (1 <= k <= order):

    y       = b[0] v + z[0]
    z[k-1]  = b[k] v + z[k] - a[k] y          (z[order] == 0)

To waste no lanes, channels are sorted by filter order (descending) into "lanes": tap k then only
runs over the first n_active[k] lanes (rounded up to the vector width). Everything the filters
touch lives in ONE flat float64 array at compile-time-constant offsets, so LLVM can prove the
rows independent and needs no runtime alias checks:

    bank[B0 + k*LANES + lane]   numerator b[k]        k = 0..MAX_ORDER
    bank[A0 + k*LANES + lane]   denominator a[k]      (a[0] == 1, unused)
    bank[Z0 + k*LANES + lane]   filter state z[k]     (row MAX_ORDER stays 0)
    bank[Y0 + lane]             this sample's filter output y
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).with_name("cochba.npz")
N_FILTERS = 129  # the table's channels; lateral inhibition leaves 128
VECTOR = 4  # float64 lanes per AVX2 register: lane counts are padded to this


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


_ORDERS = np.array([channel_order(k) for k in range(N_FILTERS)])
MAX_ORDER = int(_ORDERS.max())
LANES = -(-N_FILTERS // VECTOR) * VECTOR  # 132
LANE_CHANNEL = np.full(LANES, -1, dtype=np.int64)  # (LANES,) channel in each lane, -1 = padding
LANE_CHANNEL[:N_FILTERS] = np.argsort(-_ORDERS, kind="stable")
CHANNEL_LANE = np.argsort(LANE_CHANNEL[:N_FILTERS])  # (129,) lane of each channel
_LANE_ORDER = np.where(LANE_CHANNEL >= 0, _ORDERS[LANE_CHANNEL], 0)
# (MAX_ORDER + 1,) lanes that tap k must run over (a prefix, orders descend along the lanes)
N_ACTIVE = np.array([min(LANES, -(-int((_LANE_ORDER >= k).sum()) // VECTOR) * VECTOR)
                     for k in range(MAX_ORDER + 1)], dtype=np.int64)
B0 = 0
A0 = B0 + (MAX_ORDER + 1) * LANES
Z0 = A0 + (MAX_ORDER + 1) * LANES
Y0 = Z0 + (MAX_ORDER + 1) * LANES
BANK_SIZE = Y0 + LANES
for _arr in (LANE_CHANNEL, CHANNEL_LANE, N_ACTIVE):
    _arr.setflags(write=False)


def new_bank() -> np.ndarray:
    """A fresh (BANK_SIZE,) float64 bank: coefficients filled in, states zero."""
    bank = np.zeros(BANK_SIZE)
    for lane, ch in enumerate(LANE_CHANNEL):
        if ch < 0:
            continue
        b, a = channel_filter(int(ch))
        taps = np.arange(len(b)) * LANES + lane
        bank[B0 + taps] = b / a[0]
        bank[A0 + taps] = a / a[0]
    return bank


def clear_state(bank: np.ndarray) -> None:
    bank[Z0:] = 0.0
