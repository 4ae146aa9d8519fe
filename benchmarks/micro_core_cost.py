"""Cost of the device's portable C++ core: instructions per MFCC frame and per
recogniser step (callgrind, host), code size and static RAM (Cortex-M4
cross-compile), and an ESTIMATE of the board latency derived from them.

    python benchmarks/micro_core_cost.py [--frames=2000] [--steps=20000]

Needs cmake + g++ (host build), valgrind, and for the size figures
arm-none-eabi-g++ (skipped with a note if absent); with qemu-arm as well
(Debian: qemu-user) it also counts the Thumb-2 instructions the board executes.

Method. `kws_bench_host` (micro_app/tools/bench_host.cc, built scalar:
-O2 -fno-tree-vectorize, since the Cortex-M4F has no float SIMD) runs N hops
of audio through the front-end, one frame per hop exactly as on the board, or
N recogniser steps. callgrind collects instructions only inside
`kws_bench_mfcc` / `kws_bench_recognizer`; running N and 2N and taking the
difference cancels one-off costs (first-call symbol binding).

Board instructions. `micro_app/tools/bench_arm.cc` is the same loop built
with the board's compiler and flags (Cortex-M4F, -O2, and -Os as the Arduino
core uses), run under qemu-arm in Linux user mode (tools/qemu_linux_syscalls.c
supplies the entry point and write/exit), one instruction per translation
block with every executed block logged: the count of executed Thumb-2
instructions is exact for this code and input; only their cycle cost is not.

The board figure is an ESTIMATE, not a measurement: cycles = Thumb-2
instructions (x86 instructions when qemu is missing) x 1.0-1.5 cycles per
instruction at 64 MHz. The M4 is single issue; most ALU and FPU ops take 1
cycle, but loads 1-2 (back-to-back loads pipeline), VDIV 14, taken branches
2-4, and flash wait states add stalls the instruction count cannot see.
Measure on the board (BENCH line, mfcc_us) to replace it.
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


def _qemu_count(qemu_flags: list[str], elf: pathlib.Path) -> int:
    """Executed instructions of `elf` under qemu-arm (one instruction per logged block)."""
    proc = subprocess.Popen(["qemu-arm", "-cpu", "cortex-a15", *qemu_flags, "-d", "exec,nochain",
                             "-D", "/dev/stdout", str(elf)], stdout=subprocess.PIPE)
    count = sum(1 for line in proc.stdout if line.startswith(b"Trace"))
    if proc.wait() != 0:
        raise RuntimeError(f"{elf} failed under qemu-arm")
    return count


def arm_instruction_counts(generated: pathlib.Path, work: pathlib.Path) -> dict[str, float]:
    """Thumb-2 instructions per MFCC frame / recogniser step, counted under qemu-arm.

    Cortex-A15 is qemu's CPU model here only because Linux user mode cannot
    load an M-profile binary; the code is the Cortex-M4 build (Thumb-2 +
    single-precision VFP), which that core executes identically.
    """
    src = ROOT / "micro_app" / "src"
    tools = ROOT / "micro_app" / "tools"
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
    help_text = subprocess.run(["qemu-arm", "--help"], stdout=subprocess.PIPE, text=True).stdout
    one_insn = ["-one-insn-per-tb"] if "one-insn-per-tb" in help_text else ["-singlestep"]
    work.mkdir(parents=True, exist_ok=True)
    syscalls = work / "qemu_linux_syscalls.o"
    subprocess.run(["arm-none-eabi-gcc", *cpu, "-O2", "-c", str(tools / "qemu_linux_syscalls.c"), "-o",
                    str(syscalls)], check=True)
    out = {}
    for label, what, n, opt in (("mfcc_frame", 0, 4, "-O2"), ("mfcc_frame_Os", 0, 4, "-Os"),
                                ("recognizer_step", 1, 64, "-O2")):
        counts = []
        for items in (n, 2 * n):
            elf = work / f"bench_{label}_{items}.elf"
            subprocess.run(["arm-none-eabi-g++", *cpu, opt, "-fno-exceptions", "-fno-rtti", "-std=gnu++14",
                            f"-DKWS_BENCH_ITEMS={items}", f"-DKWS_BENCH_WHAT={what}", f"-I{src}",
                            f"-I{generated}", str(tools / "bench_arm.cc"), str(src / "fft.cpp"),
                            str(src / "mfcc_frontend.cpp"), str(src / "recognizer.cpp"), str(syscalls),
                            "--specs=nosys.specs", "-nostartfiles", "-lm", "-o", str(elf)],
                           check=True, stderr=subprocess.DEVNULL)
            counts.append(_qemu_count(one_insn, elf))
        out[label] = (counts[1] - counts[0]) / n
    return out


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

    script = ROOT / "micro_app" / "cross_compile.sh"
    arm_dir = ROOT / "micro_app" / "build-arm"
    arm = None
    print("== Cortex-M4 build (micro_app/cross_compile.sh)")
    if shutil.which("arm-none-eabi-g++") is None:
        print("skipped: arm-none-eabi-g++ not found")
    else:
        proc = subprocess.run([str(script), str(arm_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, "PYTHON": sys.executable})
        print(proc.stdout.strip())
        if proc.returncode != 0:
            return proc.returncode
        if shutil.which("qemu-arm") is None:
            print("== board instruction counts skipped: qemu-arm not found (Debian: qemu-user)")
        else:
            arm = arm_instruction_counts(arm_dir / "generated", arm_dir / "qemu_bench")
            print("== Thumb-2 instructions executed (Cortex-M4 build under qemu-arm, N / 2N difference)")
            print(f"arm_mfcc_instructions_per_frame={arm['mfcc_frame']:.0f} (-O2; "
                  f"{arm['mfcc_frame_Os']:.0f} with the Arduino core's -Os)")
            print(f"arm_recognizer_instructions_per_step={arm['recognizer_step']:.0f}")

    basis = "Thumb-2 instructions" if arm else "x86-64 instructions (no qemu-arm)"
    mfcc_i = arm["mfcc_frame"] if arm else mfcc
    rec_i = arm["recognizer_step"] if arm else rec
    print(f"== ESTIMATE of board latency (NOT measured): Cortex-M4F at 64 MHz, "
          f"cycles = {basis} x 1.0-1.5")
    for name, instr, budget_us in (("mfcc_frame", mfcc_i, 500.0), ("recognizer_step", rec_i, None)):
        lo, hi = instr / BOARD_HZ * 1e6, 1.5 * instr / BOARD_HZ * 1e6
        line = f"ESTIMATE {name}_us={lo:.0f}..{hi:.0f}"
        if budget_us:
            line += f" (target <= {budget_us:.0f} us = {budget_us * BOARD_HZ / 1e6:.0f} cycles)"
            line += f"; cpu_share_of_realtime={lo / 10000 * 100:.1f}..{hi / 10000 * 100:.1f}% of each 10 ms hop"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
