"""Cost of the device's portable C++ core: instructions per MFCC frame and per
recogniser step (callgrind, host), code size and static RAM (Cortex-M4
cross-compile), and an ESTIMATE of the board latency derived from them.

    python benchmarks/micro_core_cost.py [--frames=2000] [--steps=20000]

Needs cmake + g++ (host build), valgrind, and for the size figures
arm-none-eabi-g++ (skipped with a note if absent).

Method. `kws_bench_host` (micro_app/tools/bench_host.cc, built scalar:
-O2 -fno-tree-vectorize, since the Cortex-M4F has no float SIMD) runs N hops
of audio through the front-end, one frame per hop exactly as on the board, or
N recogniser steps. callgrind collects instructions only inside
`kws_bench_mfcc` / `kws_bench_recognizer`; running N and 2N and taking the
difference cancels one-off costs (first-call symbol binding).

The board figure is an ESTIMATE, not a measurement: it assumes one Cortex-M4F
cycle per x86-64 instruction at 64 MHz. The M4 is single issue; most ALU and
FPU ops take 1 cycle but loads 2, VMLA/VFMA 3 and taken branches 2-4, while an
x86 instruction often does more work (memory operands, addressing). The range
printed uses 1.0-1.5 cycles per instruction; measure on the board
(BENCH line, mfcc_us) to replace it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kws_tf import native  # noqa: E402

BOARD_HZ = 64e6


def callgrind_instructions(exe: pathlib.Path, what: str, n: int, function: str) -> tuple[int, str]:
    """Instructions collected inside `function` for `exe what n`, and the annotate text."""
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--toggle-collect={function}",
             f"--callgrind-out-file={out}", str(exe), what, str(n)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
        m = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
        if not m:
            raise RuntimeError("no 'Collected' line from callgrind:\n" + proc.stderr[-2000:])
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", str(out)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        return int(m.group(1)), annotate


def per_item(exe, what, n, function) -> tuple[float, str]:
    i1, _ = callgrind_instructions(exe, what, n, function)
    i2, annotate = callgrind_instructions(exe, what, 2 * n, function)
    return (i2 - i1) / n, annotate


def top_functions(annotate: str, total_items: int, limit: int = 8) -> list[str]:
    """Self cost per item of the most expensive functions, from callgrind_annotate."""
    rows = []
    for line in annotate.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if m and ":" in m.group(2):
            name = m.group(2).split(":", 1)[1].split(" [")[0]
            rows.append((int(m.group(1).replace(",", "")) / total_items, name))
    return [f"{cost:10.0f}  {name}" for cost, name in rows[:limit]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="MFCC frames per callgrind run (N; 2N also runs)")
    parser.add_argument("--steps", type=int, default=20000, help="recogniser steps per callgrind run")
    args = parser.parse_args()

    if shutil.which("valgrind") is None:
        print("valgrind not found (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    build_dir = native.build(targets=("kws_bench_host",))
    exe = build_dir / "kws_bench_host"
    host = subprocess.run([str(exe), "all", "20000"], stdout=subprocess.PIPE, text=True, check=True).stdout

    mfcc, mfcc_annotate = per_item(exe, "mfcc", args.frames, "kws_bench_mfcc")
    rec, _ = per_item(exe, "recognizer", args.steps, "kws_bench_recognizer")

    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores; "
          f"compiler flags -O2 -fno-tree-vectorize (scalar)")
    print("== host wall clock (informative)")
    print(host.strip())
    print("== instructions (callgrind, difference of N and 2N runs)")
    print(f"mfcc_instructions_per_frame={mfcc:.0f}")
    print(f"recognizer_instructions_per_step={rec:.0f}")
    print("== where a frame's instructions go (self cost per frame, 2N run)")
    for row in top_functions(mfcc_annotate, 2 * args.frames):
        print(row)

    print("== ESTIMATE of board latency (NOT measured): Cortex-M4F at 64 MHz, "
          "assuming 1.0-1.5 cycles per host instruction")
    for name, instr, budget_us in (("mfcc_frame", mfcc, 500.0), ("recognizer_step", rec, None)):
        lo, hi = instr / BOARD_HZ * 1e6, 1.5 * instr / BOARD_HZ * 1e6
        line = f"ESTIMATE {name}_us={lo:.0f}..{hi:.0f}"
        if budget_us:
            line += f" (target <= {budget_us:.0f} us = {budget_us * BOARD_HZ / 1e6:.0f} cycles)"
            line += f"; cpu_share_of_realtime={lo / 10000 * 100:.1f}..{hi / 10000 * 100:.1f}% of each 10 ms hop"
        print(line)

    script = ROOT / "micro_app" / "cross_compile.sh"
    print("== Cortex-M4 build (micro_app/cross_compile.sh)")
    if shutil.which("arm-none-eabi-g++") is None:
        print("skipped: arm-none-eabi-g++ not found")
    else:
        proc = subprocess.run([str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(proc.stdout.strip())
        if proc.returncode != 0:
            return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
