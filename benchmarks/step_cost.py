"""ESTIMATED Cortex-M4 cost of the windowed and the per-frame step model, per Invoke and per 10 ms hop.

    python benchmarks/step_cost.py export/real_c32_secant export/real_c32_tanh \\
        --anchors ../shared/anchors --markdown [--json OUT] [--per_op]

Positional arguments: export folders (their `model_int8.tflite`, the windowed model, and
`model_step_int8.tflite`, the step model, when present) and single `.tflite` files (a model
with more than one input is taken as a step model). `--anchors DIR` adds the MLPerf Tiny
DS-CNN and TFLM micro_speech flatbuffers (default: $KWS_ANCHORS when set).

Method: EVERYTHING HERE IS AN ESTIMATE from counted work and unit costs, not a measurement.
For every op of the flatbuffer the work is counted from the tensor shapes:
- CONV_2D: output elements x kernel taps x input channels (MACs); DEPTHWISE_CONV_2D: output
  elements x kernel taps; FULLY_CONNECTED: output elements x input features;
- AVERAGE_POOL_2D: input elements; CONCATENATION / SPLIT_V: bytes copied (all outputs);
- other ops: output elements; RESHAPE: per op.
Instructions = work x the unit cost in `UNIT_COSTS` (Thumb-2 instructions of the board's Feb-2023
TFLM Arduino library with CMSIS-NN, from ../shared/ON_CHIP.md where measured, each entry says
where it comes from) + `DISPATCH_PER_OP` for each op (interpreter loop, kernel prologue,
per-channel set-up: ON_CHIP notes that small tensors show a per-op overhead on top of the unit
costs; the step model's tensors are one frame, so this matters there; totals at 0 and 1000
per op are shown too). The windowed unit costs were derived from whole-window (101 frame)
tensors; a one-frame op may cost more per MAC than that (loop set-up, requantisation per
channel): the dispatch sensitivity is the stand-in for that error until the board is measured.

Per hop: the step model runs once per 10 ms hop, the windowed model once every 4 hops (today's
device schedule, `--windowed_every`). MFCC (30,520 Thumb-2 instructions per frame, every hop)
and the recogniser (1,601 per step; every hop for the step model, every 4th hop for the
windowed one) are BENCHMARKS.md section 3's counted figures. Time = instructions x 1.0-1.5
cycles per instruction / 64 MHz (ON_CHIP's range); duty = that time / 10 ms.

Validation: the same cost model is applied to the windowed models and the anchors whose Invoke
ON_CHIP.md counted exactly in an emulator (`MEASURED_ON_CHIP`); the script prints the estimate
next to the measurement. ON_CHIP's SparkNet figures are for the tanh gate (TANH + ADD +
MINIMUM present); the unit costs were read off the C=32 tanh model, so that row agrees by
construction and the other three rows are the real test of the model.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --------------------------------------------------------------------------- cost data
# op -> (unit, Thumb-2 instructions per unit, fixed instructions per op besides dispatch, source).
# unit: "mac" | "out" (output element) | "in" (input element) | "byte" (bytes copied) | "op".
UNIT_COSTS: dict[str, tuple[str, float, float, str]] = {
    "DEPTHWISE_CONV_2D": ("mac", 13.0, 0.0,
                          "ON_CHIP.md 'Rough unit costs': depthwise (1xk, k = 11...29) ~ 13 instructions "
                          "per MAC (C=32: DEPTHWISE_CONV_2D x4 3.19 M / 239,168 MACs)"),
    "CONV_2D": ("mac", 3.4, 0.0,
                "ON_CHIP.md 'Rough unit costs': 1x1 convolution ~ 3.4 per MAC (C=32: CONV_2D x9 2.73 M / "
                "827,776 MACs); used for every CONV_2D, also non-1x1 (DS-CNN's 10x4 input conv)"),
    "FULLY_CONNECTED": ("mac", 3.4, 0.0,
                        "ASSUMED = 1x1 CONV_2D (CMSIS-NN s8 mat-mult family); not measured per op"),
    "TANH": ("out", 810.0, 0.0, "ON_CHIP.md: int8 TANH ~ 810 per element (2.62 M / 3,232; reference C++)"),
    "LOGISTIC": ("out", 810.0, 0.0, "ASSUMED = TANH (same reference fixed-point code family)"),
    "ADD": ("out", 100.0, 0.0, "ON_CHIP.md: ADD ~ 100 per element (1.29 M / 4 x 3,232)"),
    "SUB": ("out", 100.0, 0.0, "ASSUMED = ADD"),
    "MUL": ("out", 100.0, 0.0, "ASSUMED = ADD"),
    "MINIMUM": ("out", 86.0, 0.0, "ON_CHIP.md: MINIMUM ~ 86 per element (0.28 M / 3,232; reference C++)"),
    "MAXIMUM": ("out", 86.0, 0.0, "ASSUMED = MINIMUM"),
    "RELU": ("out", 10.0, 0.0, "ASSUMED ~10 per element (clamp loop); not measured"),
    "RELU6": ("out", 10.0, 0.0, "ASSUMED ~10 per element (clamp loop); not measured"),
    "AVERAGE_POOL_2D": ("in", 14.0, 0.0,
                        "ON_CHIP.md: average pool ~ 14 per (input) element (0.04 M / 3,232)"),
    "SOFTMAX": ("out", 200.0, 0.0, "ASSUMED ~200 per element (CMSIS-NN arm_softmax_s8); not measured"),
    "RESHAPE": ("op", 0.0, 200.0, "ON_CHIP.md per-op table, C=32: RESHAPE 200 (whole op)"),
    "CONCATENATION": ("byte", 0.5, 100.0,
                      "ASSUMED memcpy: TFLM's reference Concatenation memcpy()s each input block; the ARMv7-M "
                      "newlib(-nano) memcpy copies 64 aligned bytes in 34 instructions (~0.53/byte, "
                      "arm-none-eabi-objdump of libc_nano.a); +100 per op for the shape loops"),
    "GATHER": ("byte", 0.5, 100.0,
               "ASSUMED memcpy per position: TFLM's gather.cc memcpy()s inner_size bytes per coordinate (one "
               "frame of C bytes here) at ~0.53/byte; + GATHER_PER_ROW per coordinate for the call and the "
               "bounds check, + 100 per op"),
    "SPLIT_V": ("byte", 6.0, 100.0,
                "ASSUMED byte loop: TFLM's split_v.cc (Feb-2023 Arduino library) copies with "
                "`for (j...) output_ptr[j] = input_ptr[j]`, int8 = 1 byte per iteration; the core's flags "
                "(-Os -mcpu=cortex-m4 -mthumb, GCC 12.2 here; the board's GCC 7 may differ by +-1) compile "
                "it to 6 instructions per byte (cmp, blt, ldrsb, strb, adds, b), no memcpy; +100 per op"),
}
STATE_COPY_PER_BYTE = 0.53  # ASSUMED newlib memcpy rate (see CONCATENATION): the app's state copy-back
GATHER_PER_ROW = 30.0  # ASSUMED: memcpy call + loop + bounds check per gathered frame
DISPATCH_PER_OP = 300.0  # ASSUMED per-op overhead (interpreter loop + kernel prologue + per-channel set-up)
DISPATCH_SENSITIVITY = (0.0, 300.0, 1000.0)
UNKNOWN_OP_COST = ("out", 0.0, 0.0, "NO UNIT COST: counted as dispatch only")

# BENCHMARKS.md section 3 (counted Thumb-2 instructions, Arduino -Os build, qemu-arm).
MFCC_PER_FRAME = 30_520
RECOGNISER_PER_STEP = 1_601
HOP_MS = 10.0
CLOCK_HZ = 64e6
CPI = (1.0, 1.5)  # ON_CHIP.md / BENCHMARKS.md: 1.0-1.5 cycles per Thumb-2 instruction
WINDOWED_EVERY = 4  # hops between windowed Invokes on the device today
GOALS_PER_HOP = {32: 200_000, 16: 120_000}  # instructions per hop, MFCC + model + recogniser

# ../shared/ON_CHIP.md "Cost of one Invoke() on Cortex-M4": exact emulator counts (MACs, instructions).
MEASURED_ON_CHIP = {
    "sparknet_c32_tanh": (1_066_944, 10_160_796, "SparkNet C=32 windowed, tanh gate"),
    "sparknet_c16_tanh": (396_304, 6_974_875, "SparkNet C=16 windowed, tanh gate"),
    "mlperf_tiny_kws_dscnn_int8": (2_656_768, 9_912_843, "MLPerf Tiny DS-CNN"),
    "tflm_micro_speech_int8": (336_000, 2_394_936, "TFLM micro_speech"),
}
# ON_CHIP.md per op type for C=32 tanh (instructions), to show where the model is off.
MEASURED_C32_BY_OP = {"DEPTHWISE_CONV_2D": 3.19e6, "CONV_2D": 2.73e6, "TANH": 2.62e6, "ADD": 1.29e6,
                      "MINIMUM": 0.28e6, "AVERAGE_POOL_2D": 0.04e6, "RESHAPE": 200}
ANCHOR_FILES = ("mlperf_tiny_kws_dscnn_int8.tflite", "tflm_micro_speech_int8.tflite")

_DTYPE_BYTES = {"INT8": 1, "UINT8": 1, "BOOL": 1, "INT16": 2, "FLOAT16": 2, "INT32": 4, "FLOAT32": 4,
                "INT64": 8, "FLOAT64": 8}


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _nbytes(t) -> int:
    return _prod(t.shape) * _DTYPE_BYTES.get(t.dtype, 1)


# --------------------------------------------------------------------------- counting

def op_work(info, op_index: int) -> dict:
    """Counted work of one op: MACs, elements touched, bytes copied (no unit costs)."""
    name, ins, outs = info.op_io[op_index]
    ins = [i for i in ins if i >= 0]
    tin = [info.tensors[i] for i in ins]
    tout = [info.tensors[o] for o in outs]
    out_elems = sum(_prod(t.shape) for t in tout)
    macs = 0
    elements = out_elems
    copied = 0
    if name == "CONV_2D":
        w = tin[1].shape  # [cout, kh, kw, cin]
        macs = out_elems * _prod(w[1:])
    elif name == "DEPTHWISE_CONV_2D":
        w = tin[1].shape  # [1, kh, kw, cout]
        macs = out_elems * int(w[1]) * int(w[2])
    elif name == "FULLY_CONNECTED":
        macs = out_elems * int(tin[1].shape[-1])
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM"):
        elements = _prod(tin[0].shape)
    elif name == "CONCATENATION":
        copied = sum(_nbytes(t) for t in tout)
        elements = copied
    elif name == "SPLIT_V" or name == "SPLIT":
        copied = sum(_nbytes(t) for t in tout)
        elements = copied
    rows = 0
    if name == "GATHER":
        copied = sum(_nbytes(t) for t in tout)
        elements = copied
        rows = _prod(tin[1].shape)
    return {"op": name, "macs": int(macs), "elements": int(elements), "bytes_copied": int(copied),
            "out_elements": int(out_elems), "rows": int(rows)}


def op_instructions(work: dict, dispatch: float = DISPATCH_PER_OP, costs: dict | None = None) -> float:
    unit, per, fixed, _ = (costs or UNIT_COSTS).get(work["op"], UNKNOWN_OP_COST)
    amount = {"mac": work["macs"], "out": work["out_elements"], "in": work["elements"],
              "byte": work["bytes_copied"], "op": 0}[unit]
    return amount * per + fixed + dispatch + work.get("rows", 0) * GATHER_PER_ROW


def analyse(model_bytes: bytes, name: str, kind: str) -> dict:
    """Per-op rows and totals of one flatbuffer. kind: 'windowed' | 'step' | 'anchor'."""
    from kws_tf.tflite_tools import inspect_model

    info = inspect_model(model_bytes)
    rows = []
    for i in range(len(info.ops)):
        w = op_work(info, i)
        unit, per, fixed, _ = UNIT_COSTS.get(w["op"], UNKNOWN_OP_COST)
        w.update(index=i, unit=unit, unit_cost=per, fixed=fixed, instructions=op_instructions(w))
        rows.append(w)
    by_op: dict = {}
    for r in rows:
        d = by_op.setdefault(r["op"], {"count": 0, "macs": 0, "elements": 0, "instructions": 0.0})
        d["count"] += 1
        d["macs"] += r["macs"]
        d["elements"] += r["elements"]
        d["instructions"] += r["instructions"]
    state_bytes = sum(_nbytes(info.tensors[i]) for i in info.inputs[1:]) if kind == "step" else 0
    res = {
        "name": name, "kind": kind, "bytes": len(model_bytes), "num_ops": len(rows),
        "input_shapes": [list(info.tensors[i].shape) for i in info.inputs],
        "macs": sum(r["macs"] for r in rows),
        "bytes_copied": sum(r["bytes_copied"] for r in rows),
        "state_bytes": state_bytes,
        "unknown_ops": sorted({r["op"] for r in rows if r["op"] not in UNIT_COSTS}),
        "instructions": sum(r["instructions"] for r in rows),
        "instructions_at_dispatch": {str(int(d)): sum(op_instructions(r, d) for r in rows)
                                     for d in DISPATCH_SENSITIVITY},
        "by_op": by_op, "ops": rows,
        "channels": _sparknet_channels(info), "gate": "tanh" if "TANH" in info.ops else "secant",
    }
    # Copy sensitivity: both copy ops as memcpy (0.5/byte) or both as byte loops (6/byte).
    for label, rate in (("copies_memcpy", 0.5), ("copies_byte_loop", 6.0)):
        alt = dict(UNIT_COSTS)
        for op in ("CONCATENATION", "SPLIT_V", "GATHER"):
            u, _, fixed, src = alt[op]
            alt[op] = (u, rate, fixed, src)
        res["instructions_" + label] = sum(op_instructions(r, DISPATCH_PER_OP, alt) for r in rows)
    return res


def _sparknet_channels(info) -> int | None:
    """C of a SparkNet graph (output channels of its first CONV_2D), None for other graphs."""
    shape = tuple(info.tensors[info.inputs[0]].shape)
    if len(shape) != 4 or shape[:2] != (1, 1) or shape[-1] != 32:
        return None
    for name, _, outs in info.op_io:
        if name == "CONV_2D":
            return int(info.tensors[outs[0]].shape[-1])
    return None


def measured_key(res: dict) -> str | None:
    if res["kind"] == "anchor":
        stem = pathlib.Path(res["name"]).stem
        return stem if stem in MEASURED_ON_CHIP else None
    if res["kind"] == "windowed" and res["channels"] in (16, 32) and res["gate"] == "tanh":
        return f"sparknet_c{res['channels']}_tanh"
    return None


# --------------------------------------------------------------------------- per hop

def per_hop(res: dict, every: int, dispatch_key: str | None = None) -> dict:
    """Model + MFCC + recogniser instructions per 10 ms hop, ms and duty at 64 MHz."""
    every = 1 if res["kind"] == "step" else every
    model_invoke = res["instructions"] if dispatch_key is None else res["instructions_at_dispatch"][dispatch_key]
    model = model_invoke / every
    rec = RECOGNISER_PER_STEP / every
    # The app copies each state output back into its input after every Invoke (memcpy).
    state_copy = STATE_COPY_PER_BYTE * res.get("state_bytes", 0) if res["kind"] == "step" else 0.0
    total = MFCC_PER_FRAME + model + rec + state_copy
    ms = tuple(total * c / CLOCK_HZ * 1e3 for c in CPI)
    goal = GOALS_PER_HOP.get(res["channels"])
    return {"runs_every_hops": every, "model_per_invoke": model_invoke, "model_per_hop": model,
            "mfcc_per_hop": MFCC_PER_FRAME, "recogniser_per_hop": rec, "state_copy_per_hop": state_copy,
            "total_per_hop": total,
            "ms_per_hop": ms, "duty_pct": tuple(100 * m / HOP_MS for m in ms),
            "macs_per_hop": res["macs"] / every, "goal_per_hop": goal,
            "meets_goal": None if goal is None else total <= goal}


# --------------------------------------------------------------------------- inputs

def collect(paths: list[str], anchors: str | None) -> list[dict]:
    models = []
    for p in paths:
        path = pathlib.Path(p)
        if path.is_dir():
            found = False
            for fname, kind in (("model_int8.tflite", "windowed"), ("model_step_int8.tflite", "step")):
                f = path / fname
                if f.is_file():
                    models.append(analyse(f.read_bytes(), f"{path.name}/{fname}", kind))
                    found = True
            if not found:
                print(f"warning: {path} has no model_int8.tflite / model_step_int8.tflite", file=sys.stderr)
        elif path.is_file():
            data = path.read_bytes()
            from kws_tf.tflite_tools import inspect_model

            info = inspect_model(data)
            kind = "anchor" if path.name in ANCHOR_FILES else ("step" if len(info.inputs) > 1 else "windowed")
            models.append(analyse(data, path.name if kind == "anchor" else str(path), kind))
        else:
            raise SystemExit(f"error: {p} is neither a folder nor a file")
    if anchors:
        for fname in ANCHOR_FILES:
            f = pathlib.Path(anchors) / fname
            if f.is_file():
                models.append(analyse(f.read_bytes(), fname, "anchor"))
            else:
                print(f"warning: anchor {f} not found", file=sys.stderr)
    return models


# --------------------------------------------------------------------------- reports

def _k(x: float) -> str:
    return f"{x / 1e3:,.1f} k" if abs(x) < 1e6 else f"{x / 1e6:,.2f} M"


def _md(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(models: list[dict], every: int, markdown: bool, per_op: bool) -> str:
    def table(headers, rows):
        if markdown:
            return _md(headers, rows)
        widths = [max(len(str(x)) for x in [h] + [r[i] for r in rows]) for i, h in enumerate(headers)]
        def line(r):
            return "  ".join(str(c).rjust(w) if str(c)[:1].isdigit() or str(c)[:1] in "+-" else str(c).ljust(w)
                             for c, w in zip(r, widths)).rstrip()
        return "\n".join([line(headers), "-" * (sum(widths) + 2 * len(widths))] + [line(r) for r in rows])

    h = "###" if markdown else "=="
    out = [f"{h} ESTIMATE (counted work x unit costs from ON_CHIP.md, {DISPATCH_PER_OP:.0f} instr/op dispatch; "
           "NOT a measurement)", ""]

    out += [f"{h} Per Invoke", ""]
    rows = []
    for m in models:
        d = m["instructions_at_dispatch"]
        rows.append([m["name"], m["kind"], m["num_ops"], f"{m['macs']:,}", f"{m['bytes_copied']:,}",
                     f"{m['state_bytes']:,}" if m["kind"] == "step" else "-",
                     f"{m['instructions']:,.0f}", f"{d['0']:,.0f}", f"{d['1000']:,.0f}",
                     ", ".join(m["unknown_ops"]) or "-"])
    out += [table(["model", "kind", "ops", "MACs", "bytes copied", "state bytes", "instr/Invoke (est.)",
                   "@0/op", "@1000/op", "ops without unit cost"], rows), ""]

    hop_models = [m for m in models if m["kind"] in ("windowed", "step")]
    if hop_models:
        out += [f"{h} Per 10 ms hop (MFCC {MFCC_PER_FRAME:,} + model + recogniser {RECOGNISER_PER_STEP:,}/step; "
                f"step model every hop, windowed every {every} hops; {CLOCK_HZ / 1e6:.0f} MHz, "
                f"{CPI[0]}-{CPI[1]} cycles/instr)", ""]
        rows = []
        for m in hop_models:
            p = per_hop(m, every)
            goal = "-" if p["goal_per_hop"] is None else (
                f"≤ {p['goal_per_hop'] / 1e3:.0f} k: {'yes' if p['meets_goal'] else 'NO'}")
            rows.append([m["name"], f"1/{p['runs_every_hops']}", f"{p['model_per_invoke']:,.0f}",
                         f"{p['model_per_hop']:,.0f}", f"{p['recogniser_per_hop']:,.0f}",
                         f"{p['total_per_hop']:,.0f}",
                         f"{p['ms_per_hop'][0]:.2f}–{p['ms_per_hop'][1]:.2f}",
                         f"{p['duty_pct'][0]:.1f}–{p['duty_pct'][1]:.1f}", goal,
                         f"{p['macs_per_hop']:,.0f}", m["num_ops"],
                         f"{m['state_bytes']:,}" if m["kind"] == "step" else "-"])
        out += [f"(ON_CHIP's Cortex-M4 timing model put the windowed C=32 at 213-293 ms for 10.16 M instructions, "
                f"i.e. 1.34-1.85 cycles/instr: the {CPI[1]} end of the range here is not the worst case.)", ""]
        out += [table(["model", "invokes/hop", "model instr/Invoke", "model instr/hop", "recogniser/hop",
                       "total instr/hop", "ms/hop", "duty %", "goal (total/hop)", "MACs/hop", "ops",
                       "state bytes"], rows), ""]

        out += [f"{h} Sensitivity of the total per hop (instructions)", ""]
        rows = []
        for m in hop_models:
            tot = [per_hop(m, every, str(int(d)))["total_per_hop"] for d in DISPATCH_SENSITIVITY]
            e = 1 if m["kind"] == "step" else every
            base = MFCC_PER_FRAME + RECOGNISER_PER_STEP / e
            rows.append([m["name"]] + [f"{t:,.0f}" for t in tot]
                        + [f"{base + m['instructions_copies_memcpy'] / e:,.0f}",
                           f"{base + m['instructions_copies_byte_loop'] / e:,.0f}"])
        out += [table(["model"] + [f"dispatch {d:.0f}/op" for d in DISPATCH_SENSITIVITY]
                      + ["copies all memcpy 0.5/B", "copies all byte loop 6/B"], rows), ""]

        for m in (m for m in hop_models if m["kind"] == "step"):
            out += [f"{h} Where the step model's instructions go: {m['name']}", ""]
            rows = [[op, d["count"], f"{d['macs']:,}", f"{d['elements']:,}", f"{d['instructions']:,.0f}",
                     f"{100 * d['instructions'] / m['instructions']:.0f} %"]
                    for op, d in sorted(m["by_op"].items(), key=lambda kv: -kv[1]["instructions"])]
            out += [table(["op", "count", "MACs", "elements / bytes copied", "instr (est., incl. dispatch)",
                           "share"], rows), ""]

    val = [m for m in models if measured_key(m)]
    out += [f"{h} Validation: estimate vs ON_CHIP.md's emulator count (instructions per Invoke)", ""]
    if val:
        rows = []
        for m in val:
            macs, meas, label = MEASURED_ON_CHIP[measured_key(m)]
            d = m["instructions_at_dispatch"]
            rows.append([label, m["name"], f"{m['macs']:,}" + ("" if m["macs"] == macs else f" (ON_CHIP {macs:,})"),
                         f"{meas:,}", f"{m['instructions']:,.0f}", f"{100 * (m['instructions'] / meas - 1):+.1f} %",
                         f"{100 * (d['0'] / meas - 1):+.1f} … {100 * (d['1000'] / meas - 1):+.1f} %"])
        out += [table(["ON_CHIP model", "file", "MACs counted", "measured instr", "estimate",
                       "error", "error @0…1000/op"], rows), ""]
        for m in val:
            if measured_key(m) == "sparknet_c32_tanh":
                rows = [[op, f"{MEASURED_C32_BY_OP[op]:,.0f}", f"{m['by_op'][op]['instructions']:,.0f}"]
                        for op in MEASURED_C32_BY_OP if op in m["by_op"]]
                out += [f"Per op type, {m['name']} (unit costs were read off this model: agrees by construction)", "",
                        table(["op", "ON_CHIP measured", "estimate"], rows), ""]
                break
    else:
        out += ["(no windowed tanh C=32/C=16 export or anchor given: nothing to validate against)", ""]

    if per_op:
        for m in models:
            out += [f"{h} Ops of {m['name']} ({m['kind']})", ""]
            rows = [[r["index"], r["op"], f"{r['macs']:,}", f"{r['elements']:,}", f"{r['unit_cost']:g}/{r['unit']}",
                     f"{r['instructions']:,.0f}"] for r in m["ops"]]
            rows.append(["", "total", f"{m['macs']:,}", "", "", f"{m['instructions']:,.0f}"])
            out += [table(["#", "op", "MACs", "elements / bytes", "unit cost", "instr (est.)"], rows), ""]

    out += [f"{h} Unit costs (Thumb-2 instructions; + {DISPATCH_PER_OP:.0f} dispatch per op)", ""]
    used = sorted({op for m in models for op in m["by_op"]})
    rows = [[op, f"{UNIT_COSTS[op][1]:g} per {UNIT_COSTS[op][0]}" + (f" + {UNIT_COSTS[op][2]:g}" if UNIT_COSTS[op][2] else ""),
             UNIT_COSTS[op][3]] for op in used if op in UNIT_COSTS]
    out += [table(["op", "cost", "source"], rows)]
    return "\n".join(out)


def plot_per_hop(models: list[dict], every: int, path) -> None:
    """Left: total per hop of every model (log scale). Right: the step models' hop split into
    MFCC, model ops by type and recogniser + state copy, with the goals (linear scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [m for m in models if m["kind"] != "anchor"]
    if not rows:
        return
    label = lambda m: f"{pathlib.Path(m['name']).parent.name or m['name']}\n{m['kind']}"  # noqa: E731
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.3]})
    totals = [per_hop(m, every)["total_per_hop"] / 1e3 for m in rows]
    ax1.bar([label(m) for m in rows], totals, color=["tab:blue" if m["kind"] == "step" else "tab:gray" for m in rows])
    for i, t in enumerate(totals):
        ax1.text(i, t, f"{t:,.0f}k", ha="center", va="bottom", fontsize=7)
    full_hop = CLOCK_HZ * HOP_MS / 1e3 / CPI[1] / 1e3
    ax1.axhline(full_hop, ls=":", color="k", lw=1)
    ax1.text(-0.4, full_hop, "a whole hop at 1.5 cycles/instr", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("Thumb-2 instructions per 10 ms hop, thousands (ESTIMATE)")
    ax1.set_title("MFCC + model + recogniser per hop\n(windowed model every 4 hops, step model every hop)", fontsize=9)
    plt.setp(ax1.get_xticklabels(), fontsize=6, rotation=90)

    steps = [m for m in rows if m["kind"] == "step"]
    if steps:
        names = [label(m) for m in steps]
        hops = [per_hop(m, every) for m in steps]
        ops = sorted({op for m in steps for op in m["by_op"]})
        bottom = np.zeros(len(steps))
        cmap = plt.get_cmap("tab20")
        parts = [("MFCC frame", [h["mfcc_per_hop"] for h in hops], "0.65")]
        parts += [(op, [m["by_op"].get(op, {}).get("instructions", 0.0) for m in steps], cmap(k % 20))
                  for k, op in enumerate(ops)]
        parts.append(("recogniser + state copy",
                      [h["recogniser_per_hop"] + h.get("state_copy_per_hop", 0.0) for h in hops], "0.3"))
        for name, values, colour in parts:
            values = np.asarray(values, float) / 1e3
            ax2.bar(names, values, bottom=bottom, label=name, color=colour)
            bottom += values
        for c, goal in sorted(GOALS_PER_HOP.items()):
            ax2.axhline(goal / 1e3, ls="--", lw=1, color="tab:red" if c == 32 else "tab:purple")
            ax2.text(len(steps) - 0.5, goal / 1e3, f"goal C={c}", va="bottom", ha="right", fontsize=8)
        ax2.set_ylabel("thousands of instructions per hop (ESTIMATE)")
        ax2.set_title("per-frame step models: where a hop goes", fontsize=9)
        ax2.legend(fontsize=7, ncol=2, loc="upper left")
        plt.setp(ax2.get_xticklabels(), fontsize=6, rotation=90)
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="export folders and/or .tflite files")
    p.add_argument("--anchors", default=os.environ.get("KWS_ANCHORS"),
                   help="folder with the two anchor flatbuffers (default $KWS_ANCHORS)")
    p.add_argument("--json", help="write every number to this JSON file")
    p.add_argument("--markdown", action="store_true", help="markdown tables on stdout")
    p.add_argument("--per_op", action="store_true", help="also list every op of every model")
    p.add_argument("--windowed_every", type=int, default=WINDOWED_EVERY, help="hops between windowed Invokes")
    p.add_argument("--png", help="bar chart of the estimated instructions per 10 ms hop (with the goals)")
    args = p.parse_args(argv)
    if not args.models and not args.anchors:
        p.error("give at least one export folder, .tflite file or --anchors DIR")
    models = collect(args.models, args.anchors)
    print(report(models, args.windowed_every, args.markdown, args.per_op))
    if args.png:
        plot_per_hop(models, args.windowed_every, args.png)
    if args.json:
        doc = {"note": "ESTIMATE from counted work and unit costs, not a measurement",
               "dispatch_per_op": DISPATCH_PER_OP, "dispatch_sensitivity": list(DISPATCH_SENSITIVITY),
               "unit_costs": {k: {"unit": u, "per_unit": c, "fixed": f, "source": s}
                              for k, (u, c, f, s) in UNIT_COSTS.items()},
               "mfcc_per_frame": MFCC_PER_FRAME, "recogniser_per_step": RECOGNISER_PER_STEP,
               "clock_hz": CLOCK_HZ, "cycles_per_instruction": list(CPI), "windowed_every": args.windowed_every,
               "goals_per_hop": GOALS_PER_HOP, "measured_on_chip": MEASURED_ON_CHIP,
               "models": [dict(m, per_hop=per_hop(m, args.windowed_every) if m["kind"] != "anchor" else None,
                               measured=MEASURED_ON_CHIP.get(measured_key(m)) if measured_key(m) else None)
                          for m in models]}
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
