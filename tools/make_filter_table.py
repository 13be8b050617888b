"""Regenerate `cochba.npz`, the NSL cochlear filter table, from naplib's copy.

Provenance: the table is NSLtools' `aud24.mat` (variable COCHBA; Neural Systems Lab, University
of Maryland: 129 ARMA filters, 24 channels/octave, CF = 440 * 2**((k - 31) / 24) Hz at 16 kHz).
The PyPI package `naplib` ships the identical numbers as `naplib/features/cochba.mat`
(tests/test_frontend.py checks equality whenever naplib is installed).

Layout of COCHBA, shape (26, 129) complex128, one column per channel (low to high frequency):
  COCHBA[0, k].real        = p, the filter order of channel k
  COCHBA[1:p+2, k].real    = numerator B (p+1 taps)
  COCHBA[1:p+2, k].imag    = denominator A (p+1 taps, A[0] == 1)

Run:  .venv/bin/python tools/make_filter_table.py [PATH/TO/cochba.mat]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).resolve().parents[1] / "rtmirror" / "resources" / "cochba.npz"


def naplib_table_path() -> Path:
    import naplib.features  # noqa: F401  (dev/test extra)

    return Path(sys.modules["naplib.features"].__file__).with_name("cochba.mat")


def read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    table = loadmat(str(path), variable_names=["COCHBA"])["COCHBA"]
    return np.ascontiguousarray(table, dtype=np.complex128)  # (26, 129)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else naplib_table_path()
    table = read_mat(src)
    tmp = TABLE_PATH.with_name(TABLE_PATH.stem + ".tmp.npz")
    np.savez_compressed(tmp, COCHBA=table)
    os.replace(tmp, TABLE_PATH)  # atomic: never a half-written table
    print(f"wrote {TABLE_PATH} {table.shape} from {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
