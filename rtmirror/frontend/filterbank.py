"""The NSL cochlear filter table, loaded from the package and laid out for the Numba kernel.

The kernel runs LANES neighbouring channels side by side (SIMD across channels: every channel's
recursion is independent), so the table is regrouped as zero-padded (group, tap, lane) arrays.
A zero-padded tap leaves its transposed-direct-form state at 0, so padding changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).with_name("cochba.npz")
N_FILTERS = 129  # the table's channels; lateral inhibition leaves 128
LANES = 8  # channels per SIMD group (two AVX2 float64 vectors)


@lru_cache(maxsize=1)
def load_table() -> np.ndarray:
    """COCHBA, (26, 129) complex128; see make_filter_table.py for provenance and layout."""
    with np.load(TABLE_PATH, allow_pickle=False) as f:
        table = f["COCHBA"]
    if table.shape[1] != N_FILTERS or table.dtype != np.complex128:
        raise ValueError(f"corrupt filter table {TABLE_PATH}: {table.shape} {table.dtype}")
    table.setflags(write=False)
    return table


def channel_filter(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) of channel k (0 = lowest CF) as in NSL wav2aud, A[0] == 1."""
    table = load_table()
    p = int(round(table[0, k].real))
    return table[1:p + 2, k].real.copy(), table[1:p + 2, k].imag.copy()


def center_frequencies(shift: int = 0) -> np.ndarray:
    """CF of the 129 filters in Hz at the shifted sample rate: 440 * 2**((k - 31) / 24 + shift)."""
    return 440.0 * 2.0 ** ((np.arange(N_FILTERS) - 31) / 24.0 + shift)


@dataclass(frozen=True)
class GroupedFilters:
    b: np.ndarray  # (groups, max_order + 1, LANES) float64, normalized by A[0]
    a: np.ndarray  # (groups, max_order + 1, LANES) float64, a[:, 0] unused (== 1)
    order: np.ndarray  # (groups,) int64, highest order within each group

    @property
    def n_groups(self) -> int:
        return self.b.shape[0]


@lru_cache(maxsize=1)
def grouped_filters() -> GroupedFilters:
    n_groups = -(-N_FILTERS // LANES)
    filters = [channel_filter(k) for k in range(N_FILTERS)]
    max_order = max(len(b) - 1 for b, _ in filters)
    b = np.zeros((n_groups, max_order + 1, LANES))
    a = np.zeros((n_groups, max_order + 1, LANES))
    order = np.zeros(n_groups, dtype=np.int64)
    for k, (bk, ak) in enumerate(filters):
        g, lane = divmod(k, LANES)
        b[g, :len(bk), lane] = bk / ak[0]
        a[g, :len(ak), lane] = ak / ak[0]
        order[g] = max(order[g], len(bk) - 1)
    for arr in (b, a, order):
        arr.setflags(write=False)
    return GroupedFilters(b, a, order)
