"""Which SIMD width the cochlear filters run at, and how the 8-lane filters get 512-bit vectors.

The filters run `lanes` channels side by side in one register of float64: 8 on a CPU with
AVX-512, 4 elsewhere (AVX2; on narrower SIMD LLVM splits the 4 lanes). The choice follows the CPU
that numba compiles for (its host, or NUMBA_CPU_FEATURES). Each width has its own kernel
(cochlea.py), so either runs correctly on any CPU, only at a different speed;
RTMIRROR_FRONTEND_LANES=4 or 8 overrides the choice (benchmarks, tests).
"""
from __future__ import annotations

import os
from functools import lru_cache

from numba.core import config, types
from numba.extending import intrinsic

LANES_ENV = "RTMIRROR_FRONTEND_LANES"


@lru_cache(maxsize=1)
def compile_target_has_avx512() -> bool:
    """True when the CPU numba compiles for has AVX-512F."""
    features = config.CPU_FEATURES
    if features is None:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


def default_lanes() -> int:
    value = os.environ.get(LANES_ENV, "").strip()
    if value:
        if value not in ("4", "8"):
            raise ValueError(f"{LANES_ENV} must be 4 or 8, got {value!r}")
        return int(value)
    return 8 if compile_target_has_avx512() else 4


@intrinsic
def prefer_512_bit_vectors(typingctx):
    """Mark the calling function "prefer-vector-width"="512" (clang's -mprefer-vector-width=512) and
    do nothing else. LLVM's tuning for AVX-512 Intel CPUs prefers 256-bit vectors, so the SLP
    vectorizer would split an 8-lane tap row into two ymm registers; with this attribute it uses one
    zmm register (measured: ~1.5x faster filters on an AVX-512 VM, docs/bench/frontend.md). On a CPU
    without AVX-512 the attribute only allows what the CPU has, i.e. 256-bit vectors. llvmlite's
    FunctionAttributes accepts keyword attributes only, hence the plain set.add of the string form."""

    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen
