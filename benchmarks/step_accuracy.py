"""Windowed vs per-frame step model: clip accuracy of the same int8 network, run both ways.

    KWS_REAL_DATA=../shared/data python benchmarks/step_accuracy.py export/real_c32_secant export/real_c32_tanh \
        --contexts silence neighbours zeros --json runs/step_accuracy.json

For each export folder: the windowed int8 model in TFLM on each clip alone (zero-padded at
every layer), and the step model in TFLM with each clip streamed in its context
(`kws_tf.step_clips`: digital silence, the ends of neighbouring clips, or zero-point
feature frames) and read at the hop whose window is the clip. Clips: the split the
export's run validated on (its own data source), unless --data_dir is given.
Prints a Markdown table; --json writes every figure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def measure(folder: pathlib.Path, contexts, data_dir, split, log) -> dict:
    from kws_tf import evaluate

    report = json.loads((folder / "export_report.json").read_text())
    windowed = evaluate.load_predictor(str(folder / "model_int8.tflite"), runtime="tflm")
    ed = evaluate.load_eval_data(data_dir, split, windowed.model_dir, log=lambda m: None)
    y = np.asarray(ed.clips.labels)
    t0 = time.perf_counter()
    w_pred = windowed.predict(windowed.features(ed.clips))
    rows = {"windowed": {"accuracy": float(np.mean(w_pred == y)), "seconds": time.perf_counter() - t0}}
    log(f"{folder.name}: windowed {100 * rows['windowed']['accuracy']:.2f}% ({len(y)} {ed.split} clips)")
    step_path = folder / "model_step_int8.tflite"
    for ctx in contexts if step_path.is_file() else ():
        step = evaluate.load_predictor(str(step_path), runtime="tflm", step_context=ctx)
        t0 = time.perf_counter()
        pred = step.predict(step.features(ed.clips))
        acc = float(np.mean(pred == y))
        rows[f"step_{ctx}"] = {"accuracy": acc, "agreement_with_windowed": float(np.mean(pred == w_pred)),
                               "wilson95": _wilson(int(np.sum(pred == y)), len(y)),
                               "seconds": time.perf_counter() - t0}
        log(f"  step ({ctx}): {100 * acc:.2f}%, agrees with windowed on {100 * np.mean(pred == w_pred):.2f}%")
    sm = report.get("step_model") or {}
    return {"export": str(folder), "model": report.get("model"), "gate": (report.get("gate") or {}).get("gate"),
            "time_average": "interior" if sm.get("identical_to_windowed") else "full",
            "delay_frames": sm.get("delay_frames"), "clips": int(len(y)), "split": ed.split,
            "data_source": ed.source, "results": rows}


def markdown(rows: list, contexts) -> str:
    head = ["export", "gate", "average", "delay", "windowed int8"] + [f"step int8 ({c})" for c in contexts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        res = r["results"]
        cells = [pathlib.Path(r["export"]).name, str(r["gate"]), r["time_average"],
                 f"{r['delay_frames']} frames" if r["delay_frames"] is not None else "—",
                 f"{100 * res['windowed']['accuracy']:.2f} %"]
        for c in contexts:
            s = res.get(f"step_{c}")
            cells.append(f"{100 * s['accuracy']:.2f} % (agree {100 * s['agreement_with_windowed']:.1f} %)" if s else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="+", help="export folders (with model_int8.tflite and model_step_int8.tflite)")
    p.add_argument("--contexts", nargs="+", default=["silence", "neighbours", "zeros"])
    p.add_argument("--data_dir", default=None, help="Speech Commands-layout folder (default: each run's own data)")
    p.add_argument("--split", default="validation")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for folder in args.exports:
        folder = pathlib.Path(folder)
        if not (folder / "export_report.json").is_file():
            print(f"error: {folder} is not an export folder (no export_report.json)", file=sys.stderr)
            return 1
        rows.append(measure(folder, args.contexts, args.data_dir, args.split, lambda m: print(m, flush=True)))
    print(markdown(rows, args.contexts))
    if args.json:
        from kws_tf.fsutil import atomic_write_json

        atomic_write_json(pathlib.Path(args.json), {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
