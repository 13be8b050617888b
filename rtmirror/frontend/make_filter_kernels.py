"""Generate `_filter_kernels.py`: the cochlear filters with their state in registers.

Why generated: the fastest form of the 129 IIR filters keeps each filter's state in CPU registers
across a block of samples and runs VECTOR channels side by side in one SIMD register. Numba only
keeps scalars in registers, and LLVM's SLP vectorizer only packs them into SIMD registers when
every lane and tap is spelled out, so each filter order K gets its own straight-line function:

    for each group of VECTOR lanes (channels sorted by order, see filterbank.py):
        z{k}_{l} = state                                   # (K x VECTOR) scalars -> K registers
        for each sample v:
            y_l       = b[0 * VECTOR + l] v + z0_l
            z{k-1}_l  = b[k * VECTOR + l] v + z{k}_l - a[k * VECTOR + l] y_l   # k = 1..K (z{K} = 0)
            hc[i, channel of the lane] = y_l

Every distinct group order of the filter table gets its own function (ORDERS, 12 orders from
7 to 24), so no group runs padded taps (with 8 fixed orders 7-12, 16, 24: 377 taps per sample
instead of 362); filter_all runs them all.
The same holds for the hair cell and the lateral inhibition + integration (haircell_source,
integrate_source): blocks of 32 channels, their states in registers along the chunk.
Run:  .venv/bin/python -m rtmirror.frontend.make_filter_kernels
then delete rtmirror/frontend/__pycache__/*.nbi *.nbc (numba does not see changes in callees).
tests/test_frontend.py checks that the committed file is what this script writes.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).with_name("_filter_kernels.py")
TABLE_PATH = Path(__file__).with_name("cochba.npz")
VECTOR = 4  # lanes per group: one AVX2 register of float64


def group_orders() -> tuple[int, ...]:
    """The distinct orders of the channel groups (ascending), laid out as filterbank.py does:
    channels sorted by order, descending, VECTOR lanes per group, so a group's order is its first
    lane's. Read from the table directly (filterbank.py imports the generated module)."""
    with np.load(TABLE_PATH, allow_pickle=False) as f:
        orders = np.round(f["COCHBA"][0].real).astype(int)
    return tuple(sorted(set(np.sort(orders)[::-1][::VECTOR].tolist())))


# Orders up to this read and write their state as a (groups, MAX_ORDER * VECTOR) row at literal
# offsets, zg = z[g]; zg[k * VECTOR + l]: fewer address computations per group than z[g, k, l]
# (0.15-0.25 us less per kernel call, the same sample loop, and less to compile; team F7). The
# higher ones keep z[g, k, l] on the (groups, MAX_ORDER, VECTOR) view: with the 2-D state
# LLVM's SLP vectorizer built their state loads from shuffles (order 24: 55 shuffles instead of 4).
ROW_STATE_MAX_ORDER = 15


def function_source(order: int) -> str:
    lanes = range(VECTOR)
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        f"def filter_order{order}(xin, n, b, a, z, hc, g0, g1, out_column):",
        f"    \"\"\"Groups g0..g1-1 (order <= {order}) over xin[:n]; lane outputs to hc[:n, out_column[lane]].\"\"\"",
        "    for g in range(g0, g1):",
        "        bg = b[g]  # (taps * VECTOR,): literal indices = constant offsets from one base",
        "        ag = a[g]",
    ]
    if order <= ROW_STATE_MAX_ORDER:
        out.append("        zg = z[g]  # (MAX_ORDER * VECTOR,): state k of lane l at the literal index k * VECTOR + l")
        zs = [[f"zg[{k * VECTOR + l}]" for l in lanes] for k in range(order)]
    else:
        zs = [[f"z[g, {k}, {l}]" for l in lanes] for k in range(order)]
    out.append("        " + "; ".join(f"c{l} = out_column[g * {VECTOR} + {l}]" for l in lanes))
    for k in range(order):
        out.append("        " + "; ".join(f"z{k}_{l} = {zs[k][l]}" for l in lanes))
    out.append("        for i in range(n):")
    out.append("            v = xin[i]")
    out.append("            row = hc[i]")
    for l in lanes:
        out.append(f"            y{l} = bg[{l}] * v + z0_{l}")
    for k in range(1, order + 1):
        for l in lanes:
            state = f" + z{k}_{l}" if k < order else ""
            tap = k * VECTOR + l
            out.append(f"            z{k - 1}_{l} = bg[{tap}] * v{state} - ag[{tap}] * y{l}")
    for l in lanes:
        out.append(f"            row[c{l}] = y{l}")
    for k in range(order):
        out.append("        " + "; ".join(f"{zs[k][l]} = z{k}_{l}" for l in lanes))
    return "\n".join(out)


def filter_all_source(orders: tuple[int, ...]) -> str:
    """All groups, highest order first; order_groups[i] = [g0, g1) of ORDERS[i] (filterbank.ORDER_GROUPS)."""
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        "def filter_all(xin, n, b, a, z, z3, hc, order_groups, out_column):",
        "    \"\"\"Every group over xin[:n], each by the function of its order; z (groups, MAX_ORDER * VECTOR) and\n"
        "    z3 (groups, MAX_ORDER, VECTOR) are two views of the same filter state (see ROW_STATE_MAX_ORDER).\"\"\"",
    ]
    for i in reversed(range(len(orders))):
        state = "z" if orders[i] <= ROW_STATE_MAX_ORDER else "z3"
        out.append(f"    filter_order{orders[i]}(xin, n, b, a, {state}, hc, order_groups[{i}, 0], order_groups[{i}, 1], out_column)")
    return "\n".join(out)


BLOCK = 32  # channels per hair-cell / integration pass: 8 AVX2 registers of float64 state
# hair-cell modes (cochlea.py)
SIGMOID, STEP, HALF_WAVE = 0, 1, 2
STEP_THRESHOLD = 1e-15


def haircell_source(width: int) -> str:
    """Hair cell in place on hc[:n, c0:c0 + width], the low-pass states in registers along the chunk
    (per sample over all channels, the states went through memory: a load and a store each).
    hcb is hc seen from column c0 (same row stride), so that every access is a literal index:
    a runtime c0 + j costs a negative-index check per element and stops the SLP vectorizer."""
    chans = range(width)
    g = {SIGMOID: "1.0 / (1.0 + math.exp(-row[{j}] / factor))",
         STEP: "(1.0 if row[{j}] > STEP_THRESHOLD else 0.0)",
         HALF_WAVE: "max(row[{j}], 0.0)"}
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        f"def haircell{width}(hcb, n, c0, lpf, mode, factor, beta):",
        f"    \"\"\"Channels c0..c0+{width - 1}, hcb[i, j] = hc[i, c0 + j]: hc[i, ch] <- lpf[ch] = g(hc[i, ch]) + beta lpf[ch].\"\"\"",
        "    " + "; ".join(f"h{j} = lpf[c0 + {j}]" for j in chans),
    ]
    for m, expr in g.items():
        out.append(f"    {'if' if m == SIGMOID else 'elif'} mode == {m}:")
        out.append("        for i in range(n):")
        out.append("            row = hcb[i]")
        for j in chans:
            out.append(f"            h{j} = {expr.format(j=j)} + beta * h{j}")
        for j in chans:
            out.append(f"            row[{j}] = h{j}")
    out.append("    " + "; ".join(f"lpf[c0 + {j}] = h{j}" for j in chans))
    return "\n".join(out)


def integrate_source(width: int) -> str:
    """Lateral inhibition, half-wave rectification and integration of channels c0..c0+width-1 over
    hc[:n], the integrators in registers along the chunk; frames read out at the last sample of
    each hop. average (tc = 0): alpha = 1 and the integrators restart at every frame."""
    chans = range(width)
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        f"def integrate{width}(hcb, n, c0, acc, out, alpha, average, scale, phase, hop, n_frames):",
        f"    \"\"\"Channels c0..c0+{width - 1}, hcb[i, j] = hc[i, c0 + j]; returns the frame count after hc[:n].\"\"\"",
        "    " + "; ".join(f"a{j} = acc[c0 + {j}]" for j in chans),
        "    for i in range(n):",
        "        row = hcb[i]",
    ]
    for j in chans:
        out.append(f"        a{j} = alpha * a{j} + max(row[{j}] - row[{j + 1}], 0.0)")
    out.append("        phase += 1")
    out.append("        if phase == hop:")
    out.append("            phase = 0")
    out.append("            frame = out[n_frames]")
    for j in chans:
        out.append(f"            frame[c0 + {j}] = a{j} * scale")
    out.append("            if average:")
    out.append("                " + "; ".join(f"a{j} = 0.0" for j in chans))
    out.append("            n_frames += 1")
    out.append("    " + "; ".join(f"acc[c0 + {j}] = a{j}" for j in chans))
    out.append("    return n_frames")
    return "\n".join(out)


def module_source() -> str:
    head = [
        "# GENERATED by rtmirror/frontend/make_filter_kernels.py -- do not edit; regenerate instead.",
        "# Straight-line TDF-II cochlear filters (one function per order) and hair-cell / integration passes\n"
        "# (blocks of 32 channels), state in registers.",
        "# flake8: noqa",
        "import math",
        "",
        "from numba import njit",
        "",
        f"VECTOR = {VECTOR}",
        f"ORDERS = {group_orders()!r}  # the filter orders that get a function (NSL: 7..24)",
        f"BLOCK = {BLOCK}",
        f"STEP_THRESHOLD = {STEP_THRESHOLD!r}",
        f"SIGMOID, STEP, HALF_WAVE = {SIGMOID}, {STEP}, {HALF_WAVE}",
    ]
    orders = group_orders()
    parts = [function_source(k) for k in orders] + [filter_all_source(orders)]
    # channel 128 (only the lateral inhibition of channel 127 reads it) gets its own 1-channel pass rather
    # than a 33-channel copy of the 32-channel one: ~5 s less first-use compile (team F7)
    parts += [haircell_source(BLOCK), haircell_source(1), integrate_source(BLOCK)]
    return "\n".join(head + parts) + "\n"


def main() -> int:
    tmp = OUTPUT.with_name(OUTPUT.stem + ".tmp")
    tmp.write_text(module_source())
    os.replace(tmp, OUTPUT)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
