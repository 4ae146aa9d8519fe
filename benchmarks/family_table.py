"""The model family side by side: a sweep's mean ± std table plus each model's ESTIMATED board cost.

    python benchmarks/family_table.py runs/sweeps/family_e40 [runs/sweeps/family_pruned_e40 ...] \\
        [--structure sincnet:162] [--out runs/sweeps/family_table] [--anchors ../shared/anchors]

Inputs: sweep output folders (`python -m kws_tf.sweep`; their `table.json` and the jobs' exports).
`--structure MODEL:C` adds a model that was not trained here (its accuracy is left blank): it is
built from the registry with untrained weights, converted to int8 with the project's converter
(deploy graph, calibration on random inputs of its front-end's shape) and measured the same way.

Per (model, C, tag) it adds to the sweep's columns:
- the ESTIMATED Cortex-M4 (Nano 33 BLE Sense, 64 MHz) instructions of one Invoke of the seed-0
  export's windowed int8 model, counted from its flatbuffer with `benchmarks/step_cost.py`'s
  per-kernel unit costs (from ../shared/ON_CHIP.md where measured; the ops it only assumes --
  LOGISTIC = TANH, MUL = ADD, STRIDED_SLICE as an element copy -- are named there);
- the cost of one second of audio as the device schedules it: a windowed model every 40 ms
  (25 Invokes) plus its front-end every 10 ms hop (MFCC 30,520 instructions per frame, counted
  under qemu-arm in BENCHMARKS.md §3; log-mel is taken at the same figure, an upper bound since it
  skips the DCT; a waveform model has no front-end), and, where the export has SparkNet's per-frame
  step model, that model at 100 hops per second instead;
- time per second of audio at 1.0-1.5 cycles per instruction (ON_CHIP's range), i.e. the duty cycle.

Writes `<out>/family_table.md`, `<out>/family_table.json` and `<out>/family_table.png`
(validation accuracy mean ± std against estimated board instructions per second of audio).
Nothing here is measured on a board.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import step_cost  # noqa: E402  (benchmarks/step_cost.py: the one cost model)

WINDOWED_PER_SECOND = 25  # the device runs a windowed model every 4th 10 ms hop
HOPS_PER_SECOND = 100
FRONTEND_PER_FRAME = {"mfcc": step_cost.MFCC_PER_FRAME, "logmel": step_cost.MFCC_PER_FRAME, "waveform": 0}


def board_cost(windowed: bytes, step: bytes | None, frontend: str) -> dict:
    """ESTIMATED instructions per Invoke and per second of audio (see the module doc)."""
    win = step_cost.analyse(windowed, "windowed", "windowed")
    per_s_win = WINDOWED_PER_SECOND * (win["instructions"] + step_cost.RECOGNISER_PER_STEP) \
        + HOPS_PER_SECOND * FRONTEND_PER_FRAME[frontend]
    out = {"invoke_instructions": win["instructions"], "unknown_ops": win["unknown_ops"],
           "per_second_windowed": per_s_win, "per_second": per_s_win, "schedule": "windowed every 40 ms"}
    if step is not None:
        st = step_cost.analyse(step, "step", "step")
        hop = step_cost.per_hop(st, every=1)
        out.update(step_invoke_instructions=st["instructions"], per_second=HOPS_PER_SECOND * hop["total_per_hop"],
                   schedule="step model every 10 ms")
    out["ms_per_second"] = [out["per_second"] * c / step_cost.CLOCK_HZ * 1e3 for c in step_cost.CPI]
    out["duty_pct"] = [m / 10.0 for m in out["ms_per_second"]]
    return out


def _frontend_of(model: str) -> str:
    from kws_tf import models

    return models.get(model).frontend


def sweep_rows(sweep_dir: pathlib.Path) -> list[dict]:
    table = json.loads((sweep_dir / "table.json").read_text())
    rows = []
    for g in table["rows"]:
        row = dict(g)
        row["source"] = str(sweep_dir)
        done = sorted((j for j in table["per_job"]
                       if (j["model"], j["C"], j["tag"]) == (g["model"], g["C"], g["tag"]) and j["status"] == "done"
                       and (sweep_dir / j["job"] / "export" / "model_int8.tflite").is_file()),
                      key=lambda j: j["seed"])
        if done:  # the lowest seed's export: the graph (hence the cost) is the same for every seed
            exp = sweep_dir / done[0]["job"] / "export"
            step = exp / "model_step_int8.tflite"
            row["board"] = board_cost((exp / "model_int8.tflite").read_bytes(),
                                      step.read_bytes() if step.is_file() else None, _frontend_of(g["model"]))
            row["board_from"] = str(exp)
        rows.append(row)
    return rows


def structure_row(spec: str, seed: int = 0) -> dict:
    """An untrained model's sizes and costs (int8 via the project's converter, random calibration)."""
    from kws_tf import model as model_lib, models, tflite_tools, tflm

    name, _, c = spec.partition(":")
    net = models.build_model(name, int(c))
    shape = tuple(net.input.shape[1:])
    rng = np.random.default_rng(seed)
    if models.get(name).frontend == "waveform":  # PCM in [-1, 1): speech-like level, not full scale
        calib = (0.1 * rng.standard_normal((64, *shape))).clip(-1, 1).astype(np.float32)
    else:  # normalised features
        calib = rng.standard_normal((64, *shape)).astype(np.float32)
    model_bytes = tflite_tools.convert_int8(tflite_tools.deploy_model(net), calib)
    arena = tflm.min_arena_bytes(model_bytes)
    return {
        "model": name, "C": int(c), "tag": "untrained", "source": "--structure",
        "params": {"mean": model_lib.count_params(net), "std": None, "n": 1},
        "macs": {"mean": model_lib.count_macs(net), "std": None, "n": 1},
        "int8_bytes": {"mean": len(model_bytes), "std": None, "n": 1},
        "arena_bytes": {"mean": arena, "std": None, "n": 1},
        "invoke_ms": {"mean": tflm.invoke_time_ms(model_bytes, arena_size=arena, repeats=10), "std": None, "n": 1},
        "board": board_cost(model_bytes, None, models.get(name).frontend),
    }


def _ms(stat, scale=1.0, fmt="{:,.0f}") -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    s = fmt.format(stat["mean"] * scale)
    if stat.get("std") is not None:
        s += " ± " + fmt.format(stat["std"] * scale)
    return s


def _k(x) -> str:
    return "—" if x is None else (f"{x / 1e6:,.2f} M" if abs(x) >= 1e6 else f"{x / 1e3:,.1f} k")


def markdown(rows: list[dict]) -> str:
    head = ["model", "C", "tag", "seeds", "params", "MACs / window", "int8 bytes", "arena (host)", "host invoke ms",
            "val acc float %", "val acc int8 %", "board est. / Invoke", "board est. / s audio", "schedule",
            "est. duty %"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        b = r.get("board") or {}
        n = r.get("n", 0)
        out.append("| " + " | ".join([
            r["model"], str(r["C"]), r.get("tag") or "—", str(n),
            _ms(r.get("params")), _ms(r.get("macs")), _ms(r.get("int8_bytes")), _ms(r.get("arena_bytes")),
            _ms(r.get("invoke_ms"), fmt="{:.2f}"),
            _ms(r.get("val_accuracy"), 100, "{:.2f}"), _ms(r.get("int8_accuracy"), 100, "{:.2f}"),
            _k(b.get("invoke_instructions")), _k(b.get("per_second")), b.get("schedule", "—"),
            "—" if not b else f"{b['duty_pct'][0]:.0f}–{b['duty_pct'][1]:.0f}",
        ]) + " |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in rows:
        acc, b = r.get("int8_accuracy") or r.get("val_accuracy"), r.get("board")
        if not b or not acc or acc.get("mean") is None:
            continue
        label = f"{r['model']} C={r['C']}" + (f" {r['tag']}" if r.get("tag") else "")
        ax.errorbar(b["per_second"], 100 * acc["mean"], yerr=100 * (acc.get("std") or 0), fmt="o", capsize=3,
                    label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ESTIMATED Cortex-M4 instructions per second of audio (device schedule)")
    ax.set_ylabel("validation-speaker accuracy, int8 (%)")
    ax.set_title("Accuracy (mean ± std over seeds) vs estimated board cost")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweeps", nargs="*", help="sweep output folders (python -m kws_tf.sweep --out)")
    ap.add_argument("--structure", nargs="*", default=[], help="MODEL:C rows built untrained (no accuracy)")
    ap.add_argument("--out", default="runs/sweeps/family_table", help="output folder")
    args = ap.parse_args(argv)
    rows = []
    for s in args.sweeps:
        d = pathlib.Path(s)
        if not (d / "table.json").is_file():
            print(f"error: {d} has no table.json (run python -m kws_tf.sweep --gather_only --out={d} first)",
                  file=sys.stderr)
            return 1
        rows += sweep_rows(d)
    for spec in args.structure:
        print(f"structure: {spec}", flush=True)
        rows.append(structure_row(spec))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from kws_tf.fsutil import atomic_write_json

    atomic_write_json(out / "family_table.json", rows)
    text = markdown(rows)
    (out / "family_table.md").write_text(text)
    plot(rows, out / "family_table.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
