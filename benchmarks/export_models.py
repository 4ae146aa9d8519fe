"""Export SparkNet model_dirs (PTQ and QAT) and compare them with the anchor models in TFLM.

    python benchmarks/export_models.py runs/real_c4 runs/real_c8 runs/real_c16 runs/real_c32 \
        [--qat_epochs 10] [--export_root runs/export_bench] [--out runs/export_models]

For every model_dir: `kws_tf.export.export_model` twice (post-training quantisation, and
QAT fine-tuning for --qat_epochs), each verified as the CLI verifies it (fully int8,
registered ops only, TFLM == TFLite reference kernels bit for bit), but with the
agreement/accuracy gates off so every model gets a row; the table shows agreement and
whether the export's default check would pass (`export_checks.accuracy_check`: refused only
when the int8 accuracy drop is significantly, at 95 %, above 0.5 points).

Then, in one process and one interleaved timing loop, the exported int8 flatbuffers and
the two anchors in ../shared/anchors ($KWS_ANCHORS) (MLPerf Tiny DS-CNN, TFLM micro_speech) run in
the same `tflite_micro` interpreter: flatbuffer bytes, minimum arena (binary search),
median host invoke time, and ratios to each anchor. Accuracies are on the run's
validation split (for runs from benchmarks/train_real_subset.py: the validation
speakers of the real subset, which comes from the official Speech Commands TEST set,
so these are NOT Speech Commands test accuracies).

Writes `<out>.md` (the table) and `<out>.json` (everything) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_ANCHORS = pathlib.Path(os.environ.get("KWS_ANCHORS", pathlib.Path(__file__).resolve().parents[2] / "shared" / "anchors"))
ANCHORS = {
    "MLPerf Tiny DS-CNN": "mlperf_tiny_kws_dscnn_int8.tflite",
    "TFLM micro_speech": "tflm_micro_speech_int8.tflite",
}


def export_one(model_dir: pathlib.Path, export_root: pathlib.Path, qat_epochs: int, calibration_samples: int,
               data_dir: str | None) -> dict:
    from kws_tf import export

    name = model_dir.resolve().name
    row = {"model_dir": str(model_dir), "name": name}
    for kind, epochs in (("ptq", 0), ("qat", qat_epochs)):
        if kind == "qat" and epochs <= 0:
            continue
        out = export_root / f"{name}_{kind}"
        print(f"== {name}: {kind.upper()} export -> {out}", flush=True)
        t0 = time.perf_counter()
        report = export.export_model(model_dir, out, data_dir=data_dir, qat_epochs=epochs,
                                     calibration_samples=calibration_samples, overwrite=True, min_agreement=0.0,
                                     max_accuracy_drop=100.0, log=lambda m: print(f"   {m}", flush=True))
        row[kind] = {"folder": str(out), "report": report, "wall_s": time.perf_counter() - t0}
    return row


def measure(models: dict, rounds: int, repeats: int) -> dict:
    """{name: bytes} -> {name: {bytes, arena, invoke_ms_median, invoke_ms_all}} in one interleaved loop."""
    import numpy as np

    from kws_tf import tflm

    runners, out = {}, {}
    rng = np.random.default_rng(0)
    for name, blob in models.items():
        arena = tflm.min_arena_bytes(blob)
        runner = tflm.TflmRunner(blob, arena_size=arena)
        x = rng.integers(-128, 128, size=runner.input_shape).astype(runner.input_dtype)
        runners[name] = (runner, x)
        out[name] = {"bytes": len(blob), "arena_bytes": arena, "invoke_ms_all": []}
    for _ in range(rounds):
        for name, (runner, x) in runners.items():
            out[name]["invoke_ms_all"] += [t * 1e3 for t in runner.time_invoke(repeats=repeats, warmup=3, x=x)]
    for name in out:
        out[name]["invoke_ms_median"] = statistics.median(out[name]["invoke_ms_all"])
        del out[name]["invoke_ms_all"]
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _gate(report: dict | None) -> str:
    """Would the export's default check pass this export's int8 model?"""
    if report is None:
        return "–"
    from kws_tf.export import DEFAULT_MAX_ACCURACY_DROP

    return "pass" if report["accuracy_check"]["drop_lower_points"] <= DEFAULT_MAX_ACCURACY_DROP else "FAIL"


def render_table(rows: list, timing: dict, anchors: dict) -> str:
    anchor_names = [a for a in anchors if a in timing]
    head = ["model", "params", "MACs", "int8 bytes", "arena B", "invoke ms", "float %", "PTQ int8 %", "QAT int8 %",
            "agree PTQ / QAT %", "gates PTQ / QAT"]
    for a in anchor_names:
        short = "DS-CNN" if "DS-CNN" in a else "micro_speech"
        head.append(f"÷ {short} (bytes / arena / time)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def ratios(t):
        cells = []
        for a in anchor_names:
            ref = timing[a]
            cells.append(f"{t['bytes'] / ref['bytes']:.2f} / {t['arena_bytes'] / ref['arena_bytes']:.2f} / "
                         f"{t['invoke_ms_median'] / ref['invoke_ms_median']:.2f}")
        return cells

    for row in rows:
        for kind in ("ptq", "qat"):
            if kind not in row:
                continue
            rep = row[kind]["report"]
            ev = rep["eval"]
            t = timing[f"{row['name']} {kind.upper()}"]
            qat_acc = ev["qat_int8_accuracy"]
            agree = f"{_pct(ev['ptq_agreement'])} / {_pct(ev['qat_agreement'])}"
            gates = f"{_gate(row['ptq']['report'])} / {_gate(row['qat']['report'] if 'qat' in row else None)}"
            cells = [f"{row['name']} ({kind.upper()})", f"{rep['params']:,}", f"{rep['macs']:,}", f"{t['bytes']:,}",
                     f"{t['arena_bytes']:,}", f"{t['invoke_ms_median']:.3f}", _pct(ev["float_accuracy"]),
                     _pct(ev["ptq_int8_accuracy"]), _pct(qat_acc), agree, gates] + ratios(t)
            lines.append("| " + " | ".join(cells) + " |")
    for a in anchor_names:
        t = timing[a]
        cells = [a, "", "", f"{t['bytes']:,}", f"{t['arena_bytes']:,}", f"{t['invoke_ms_median']:.3f}",
                 "", "", "", "", ""] + ratios(t)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dirs", nargs="+", help="finished kws_tf.train model_dirs")
    p.add_argument("--qat_epochs", type=int, default=10, help="QAT fine-tuning epochs (0: PTQ only)")
    p.add_argument("--calibration_samples", type=int, default=400)
    p.add_argument("--data_dir", default=None, help="override the runs' data folder")
    p.add_argument("--export_root", default=str(ROOT / "runs" / "export_bench"))
    p.add_argument("--anchors", default=str(DEFAULT_ANCHORS), help="folder with the anchor .tflite files")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--repeats", type=int, default=40, help="invokes per model per round")
    p.add_argument("--out", default=str(ROOT / "runs" / "export_models"), help="writes <out>.md and <out>.json")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from kws_tf import export
    from kws_tf.tflite_tools import quiet_fds

    with quiet_fds():  # TF's C++ start-up chatter
        import tensorflow as tf
        import tf_keras  # noqa: F401

        tf.config.list_logical_devices()

    rows = []
    for md in args.model_dirs:
        try:
            rows.append(export_one(pathlib.Path(md), pathlib.Path(args.export_root), args.qat_epochs,
                                   args.calibration_samples, args.data_dir))
        except export.ExportError as e:
            sys.exit(f"error: {md}: {e}")

    models = {}
    for row in rows:
        for kind in ("ptq", "qat"):
            if kind in row:
                path = pathlib.Path(row[kind]["folder"]) / "model_int8.tflite"
                models[f"{row['name']} {kind.upper()}"] = path.read_bytes()
    anchors = {}
    for name, file in ANCHORS.items():
        path = pathlib.Path(args.anchors) / file
        if path.is_file():
            anchors[name] = path.read_bytes()
        else:
            print(f"warning: anchor {path} not found; left out", file=sys.stderr)
    print("== TFLM: arena search and interleaved invoke timing", flush=True)
    timing = measure({**models, **anchors}, args.rounds, args.repeats)
    table = render_table(rows, timing, anchors)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    notes = (f"\nHost: {machine}. TFLM `tflite_micro` Python interpreter (reference kernels), one process, "
             f"{args.rounds} interleaved rounds x {args.repeats} invokes; arena = minimum by binary search on this "
             "64-bit host. Accuracies on each run's validation split; gates = the export's default checks "
             "(>= 99 % top-1 agreement with float, <= 0.5 points lost); QAT = "
             f"{args.qat_epochs} epochs. Ratios are SparkNet / anchor.\n")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out + ".md").write_text(table + "\n" + notes)
    slim = []
    for row in rows:
        item = {"name": row["name"], "model_dir": row["model_dir"]}
        for kind in ("ptq", "qat"):
            if kind in row:
                rep = row[kind]["report"]
                item[kind] = {"folder": row[kind]["folder"], "export_wall_s": row[kind]["wall_s"],
                              **{k: rep[k] for k in ("params", "macs", "int8_bytes", "float_bytes", "op_set",
                                                     "arena_bytes_min_host", "tflm_invoke_ms_median_host", "eval",
                                                     "qat")}}
        slim.append(item)
    result = {"machine": machine, "qat_epochs": args.qat_epochs, "rounds": args.rounds, "repeats": args.repeats,
              "timing": timing, "models": slim, "anchors": {n: ANCHORS[n] for n in anchors}}
    pathlib.Path(args.out + ".json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(table)
    print(notes)
    print(f"wrote {args.out}.md and {args.out}.json")


if __name__ == "__main__":
    main()
