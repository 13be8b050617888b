"""Generate the cochlear filter kernels (rtmirror/frontend/generated/`filters_x4.py`, `filters_x8.py`)
and the hair-cell / integration passes (`cell_kernels.py`), with their state in registers.

Why generated: the fastest form of the 129 IIR filters keeps each filter's state in CPU registers
across a block of samples and runs `lanes` channels side by side in one SIMD register. Numba only
keeps scalars in registers, and LLVM's SLP vectorizer only packs them into SIMD registers when
every lane and tap is spelled out, so each filter order K gets its own straight-line function:

    for each group of `lanes` channels (sorted by order, filterbank.filter_layout):
        z{k}_{l} = state                                   # (K x lanes) scalars -> K registers
        for each sample v:
            y_l       = b[0 * lanes + l] v + z0_l
            z{k-1}_l  = b[k * lanes + l] v + z{k}_l - a[k * lanes + l] y_l   # k = 1..K (z{K} = 0)
            hc[i, channel of the lane] = y_l

Two layouts: 4 lanes (one AVX2 register of float64; 33 groups, 12 distinct orders, 1316 lane-taps)
and 8 lanes (one AVX-512 register; 17 groups, 9 orders, 1376 lane-taps: 4.6 % more taps in half
the vector instructions). The 8-lane functions ask LLVM for 512-bit vectors
(_simd.prefer_512_bit_vectors): LLVM's default tuning for these CPUs prefers 256 bits. Every
distinct group order gets its own function, so no group runs padded taps beyond its first lane;
filter_all runs them all. The hair cell and the lateral inhibition + integration (haircell_source,
integrate_source) are laid out the same way: blocks of 32 channels, their states in registers
along the chunk.
Run:  .venv/bin/python tools/make_filter_kernels.py   (by path: it needs none of the
files it writes, so it also restores a missing or broken one; `-m rtmirror.frontend.make_filter_kernels`
works as long as the package imports)
then delete rtmirror/frontend/__pycache__/*.nbi *.nbc (numba does not see changes in callees).
tests/test_frontend.py checks that the committed files are what this script writes.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[1] / "rtmirror" / "frontend"
GENERATED = FRONTEND / "generated"


def _load_filterbank():
    """filterbank.py by its path: importing it through the package would import cochlea.py, which
    imports the modules this script writes (so a missing or broken one could not be regenerated)."""
    spec = importlib.util.spec_from_file_location("_rtmirror_filterbank", FRONTEND / "filterbank.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_fb = _load_filterbank()
LANE_WIDTHS, MAX_ORDER, filter_layout = _fb.LANE_WIDTHS, _fb.MAX_ORDER, _fb.filter_layout
CELL_OUTPUT = GENERATED / "cell_kernels.py"


def filters_output(lanes: int) -> Path:
    return GENERATED / f"filters_x{lanes}.py"


# Orders up to this read and write their state as a (groups, MAX_ORDER * lanes) row at literal
# offsets, zg = z[g]; zg[k * lanes + l]: fewer address computations per group than z[g, k, l]
# (0.15-0.25 us less per kernel call, the same sample loop, and less to compile). The
# higher ones keep z[g, k, l] on the (groups, MAX_ORDER, lanes) view: with the 2-D state
# LLVM's SLP vectorizer built their state loads from shuffles (order 24: 55 shuffles instead of 4).
ROW_STATE_MAX_ORDER = 15

# Above ROW_STATE_MAX_ORDER, the 4-lane (AVX2, 16 ymm registers) filters keep only their states
# 0..REGISTER_STATES-1 in registers; the rest stay in the group's state row and are read and
# written there every sample, each tap's four lanes computed before its four stores (so LLVM's SLP
# vectorizer can bundle them: a store between the loads, of a row that may alias the coefficients,
# keeps them scalar). Left to itself, LLVM spilled ~12 of the order-18 states through the stack
# every sample: 2.6-2.8 cycles per tap for orders 18, 21, 24 against ~1.1 for the rest; this form
# runs at 1.2-1.5 (same arithmetic in the same order: bit-identical output). With AVX-512's 32
# registers every state fits: the 8-lane filters keep the register form.
REGISTER_STATES = {4: 10}


def memory_states(order: int, width: int) -> bool:
    return order > ROW_STATE_MAX_ORDER and width in REGISTER_STATES


def row_state(order: int, width: int) -> bool:
    return order <= ROW_STATE_MAX_ORDER or memory_states(order, width)


def function_source(order: int, width: int) -> str:
    lanes = range(width)
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        f"def filter_order{order}(xin, n, b, a, z, hc, g0, g1, out_column):",
        f"    \"\"\"Groups g0..g1-1 (order <= {order}) over xin[:n]; lane outputs to hc[:n, out_column[lane]].\"\"\"",
    ]
    if width == 8:
        out.append("    prefer_512_bit_vectors()  # one zmm register per tap row, not two ymm")
    out += [
        "    for g in range(g0, g1):",
        f"        bg = b[g]  # (taps * {width},): literal indices = constant offsets from one base",
        "        ag = a[g]",
    ]
    if row_state(order, width):
        out.append(f"        zg = z[g]  # (MAX_ORDER * {width},): state k of lane l at the literal index k * {width} + l")
        zs = [[f"zg[{k * width + l}]" for l in lanes] for k in range(order)]
    else:
        zs = [[f"z[g, {k}, {l}]" for l in lanes] for k in range(order)]
    # states 0..in_registers-1 are locals (registers); the others are read and written in zg
    in_registers = REGISTER_STATES[width] if memory_states(order, width) else order
    state = [[f"z{k}_{l}" if k < in_registers else zs[k][l] for l in lanes] for k in range(order)]
    out.append("        " + "; ".join(f"c{l} = out_column[g * {width} + {l}]" for l in lanes))
    for k in range(in_registers):
        out.append("        " + "; ".join(f"z{k}_{l} = {zs[k][l]}" for l in lanes))
    out.append("        for i in range(n):")
    out.append("            v = xin[i]")
    out.append("            row = hc[i]")
    for l in lanes:
        out.append(f"            y{l} = bg[{l}] * v + {state[0][l]}")
    for k in range(1, order + 1):
        in_memory = k - 1 >= in_registers
        for l in lanes:
            older = f" + {state[k][l]}" if k < order else ""
            tap = k * width + l
            target = f"t{l}" if in_memory else state[k - 1][l]
            out.append(f"            {target} = bg[{tap}] * v{older} - ag[{tap}] * y{l}")
        if in_memory:  # the four lanes' loads before their stores (see REGISTER_STATES)
            out.append("            " + "; ".join(f"{state[k - 1][l]} = t{l}" for l in lanes))
    for l in lanes:
        out.append(f"            row[c{l}] = y{l}")
    for k in range(in_registers):
        out.append("        " + "; ".join(f"{zs[k][l]} = z{k}_{l}" for l in lanes))
    return "\n".join(out)


def filter_all_source(width: int) -> str:
    """All groups, highest order first, each by the function of its order."""
    layout = filter_layout(width)
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        "def filter_all(xin, n, b, a, z, hc):",
        "    \"\"\"Every group over xin[:n] into hc[:n] (CHUNK, 130); b, a, z: the flat coefficient and state areas\n"
        "    of the kernel's buffer (at least N_GROUPS * TAPS, N_GROUPS * MAX_ORDER * LANES long).\"\"\"",
        "    bg = b[:N_GROUPS * TAPS].reshape((N_GROUPS, TAPS))",
        "    ag = a[:N_GROUPS * TAPS].reshape((N_GROUPS, TAPS))",
        "    zr = z[:N_GROUPS * MAX_ORDER * LANES].reshape((N_GROUPS, MAX_ORDER * LANES))  # row state",
    ]
    if not all(row_state(order, width) for order in layout.orders):
        out.append("    z3 = zr.reshape((N_GROUPS, MAX_ORDER, LANES))  # the same state, for the higher orders")
    for i in reversed(range(len(layout.orders))):
        order = layout.orders[i]
        g0, g1 = layout.order_groups[i]
        state = "zr" if row_state(order, width) else "z3"
        out.append(f"    filter_order{order}(xin, n, bg, ag, {state}, hc, {g0}, {g1}, OUT_COLUMN)")
    return "\n".join(out)


def filters_source(width: int) -> str:
    layout = filter_layout(width)
    isa = {4: "AVX2", 8: "AVX-512"}[width]
    head = [
        "# GENERATED by tools/make_filter_kernels.py -- do not edit; regenerate instead.",
        f"# Straight-line TDF-II cochlear filters, {width} channels per group ({isa}), one function per order,",
        "# state in registers.",
        "# flake8: noqa",
        "import numpy as np",
        "from numba import njit",
        "",
    ]
    if width == 8:
        head += ["from rtmirror.frontend._simd import prefer_512_bit_vectors", ""]
    head += [
        f"LANES = {width}",
        f"N_GROUPS = {layout.n_groups}",
        f"MAX_ORDER = {MAX_ORDER}",
        f"TAPS = {(MAX_ORDER + 1) * width}  # (MAX_ORDER + 1) * LANES: one group's coefficient row",
        f"ORDERS = {layout.orders!r}  # the group orders that get a function (NSL: 7..24)",
        "# (N_GROUPS * LANES,) scratch column of each lane: its channel, padding lanes 129 (filterbank.filter_layout)",
        f"OUT_COLUMN = np.array({layout.out_column.tolist()!r}, dtype=np.int64)",
    ]
    parts = [function_source(k, width) for k in layout.orders] + [filter_all_source(width)]
    return "\n".join(head + parts) + "\n"


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
    each hop. average (tc = 0): alpha = 1 and the integrators restart at every frame.
    The samples up to the next frame boundary run in a loop without a branch: with the read-out
    inside the per-sample loop, LLVM kept the integrators scalar (32 of them spill)."""
    chans = range(width)
    out = [
        "",
        "",
        "@njit(nogil=True, cache=True, fastmath={\"contract\"})",
        f"def integrate{width}(hcb, n, c0, acc, out, alpha, average, scale, phase, hop, n_frames):",
        f"    \"\"\"Channels c0..c0+{width - 1}, hcb[i, j] = hc[i, c0 + j]; returns the frame count after hc[:n].\"\"\"",
        "    " + "; ".join(f"a{j} = acc[c0 + {j}]" for j in chans),
        "    start = 0",
        "    while start < n:",
        "        stop = min(n, start + hop - phase)",
        "        for i in range(start, stop):",
        "            row = hcb[i]",
    ]
    for j in chans:
        out.append(f"            a{j} = alpha * a{j} + max(row[{j}] - row[{j + 1}], 0.0)")
    out.append("        phase += stop - start")
    out.append("        start = stop")
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


def cell_source() -> str:
    head = [
        "# GENERATED by tools/make_filter_kernels.py -- do not edit; regenerate instead.",
        "# Hair-cell and lateral inhibition + integration passes (blocks of 32 channels), state in registers.",
        "# flake8: noqa",
        "import math",
        "",
        "from numba import njit",
        "",
        f"BLOCK = {BLOCK}",
        f"STEP_THRESHOLD = {STEP_THRESHOLD!r}",
        f"SIGMOID, STEP, HALF_WAVE = {SIGMOID}, {STEP}, {HALF_WAVE}",
    ]
    # channel 128 (only the lateral inhibition of channel 127 reads it) gets its own 1-channel pass rather
    # than a 33-channel copy of the 32-channel one: ~5 s less first-use compile
    parts = [haircell_source(BLOCK), haircell_source(1), integrate_source(BLOCK)]
    return "\n".join(head + parts) + "\n"


def generated() -> dict[Path, str]:
    """{path: source} of every generated module."""
    files = {filters_output(width): filters_source(width) for width in LANE_WIDTHS}
    files[CELL_OUTPUT] = cell_source()
    return files


def main() -> int:
    for path, source in generated().items():
        tmp = path.with_name(path.stem + ".tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
