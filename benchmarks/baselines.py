"""Baselines (DS-CNN, BC-ResNet-1) against SparkNet on the real-audio subset, side by side.

    KWS_REAL_DATA=../shared/data python benchmarks/baselines.py [--epochs 60] \
        [--models dscnn:64 bcresnet:8] [--sparknet runs/real_c32 runs/real_c16] [--wait]

1. Trains each baseline with `python -m kws_tf.train --model=M --C=C` on exactly the data
   split and augmentation of `benchmarks/train_real_subset.py` (`$KWS_REAL_DATA/sc_v2_test_dev`,
   80 % / 20 % of the speakers for train / validation, background noise with p = 0.5) into
   `<out>/real_<model>` (one after the other; a finished run is reused, an interrupted one
   resumed). `--wait` first waits for `<out>/train_real_subset.json` (SparkNet's runs done),
   so the baselines do not compete with them for the CPU.
2. Converts every model -- the baselines and SparkNet's `runs/real_c32`, `runs/real_c16` --
   the same way, with the building blocks `kws_tf.export` uses: BN folded
   (`tflite_tools.deploy_model`), fully int8 (`tflite_tools.convert_int8`), calibrated on
   400 normalised training clips chosen as `export.calibration_indices` chooses them.
   (Not `export.export_model` itself: its op check rejects BC-ResNet's LOGISTIC, which
   `tflite_tools.MICRO_OPS` lacks, and `tflm.min_arena_bytes` segfaults on DS-CNN's first
   4,096-byte probe.)
3. Measures, all in this one process: trainable parameters, MACs (convolutions + dense per
   1 s window), int8 flatbuffer bytes, the smallest TFLM arena (binary search; each probe in
   a child process, because TFLM segfaults on some too-small arenas instead of failing), host
   TFLM invoke time (median; the models timed in interleaved rounds in the same interpreter
   build, with the MLPerf Tiny DS-CNN anchor for scale), float (Keras) and int8 (TFLM)
   accuracy on the validation speakers, and each model's MACs relative to SparkNet C=32/16.
4. Writes `<out>/baselines_table.md` and `<out>/baselines_table.json` and prints the table.

The clips come from the official Speech Commands v0.02 *test* set: these accuracies are NOT
Speech Commands test accuracy, and the short runs are not the papers' recipes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANCHOR = pathlib.Path(os.environ.get("KWS_ANCHORS", ROOT.parent / "shared" / "anchors")) / "mlperf_tiny_kws_dscnn_int8.tflite"
N_CALIBRATION = 400  # as kws_tf.export (DEFAULT_CALIBRATION_SAMPLES; same seeded subset rule)

_PROBE = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
try:
    it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
    it.invoke()
except Exception:
    sys.exit(1)
"""


def train_baseline(model: str, channels: int, data: pathlib.Path, out: pathlib.Path, epochs: int, seed: int,
                   log_dir: pathlib.Path) -> pathlib.Path:
    model_dir = out / f"real_{model}"
    report_path = model_dir / "report.json"
    cmd = [sys.executable, "-m", "kws_tf.train", f"--model={model}", f"--C={channels}",
           f"--data_dir={data / 'sc_v2_test_dev'}", f"--noise_dir={data / 'background_noise'}",
           "--validation_percent=20", "--test_percent=0", "--background_prob=0.5", f"--epochs={epochs}",
           f"--seed={seed}", f"--model_dir={model_dir}", "--verbose=quiet"]
    if (model_dir / "run_config.json").exists():
        cmd.append("--resume")
    if not report_path.exists() or json.loads(report_path.read_text()).get("epochs") != epochs:
        print("$", " ".join(cmd), flush=True)
        with open(log_dir / f"train_real_{model}.log", "a") as logf:
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
    return model_dir


def min_arena_bytes(model_bytes: bytes, hi: int = 1 << 16, max_bytes: int = 8 << 20) -> int:
    """Smallest arena TFLM loads and invokes the model with; each probe in a child process."""
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(model_bytes)
        path = f.name

    def works(size: int) -> bool:
        return subprocess.run([sys.executable, "-c", _PROBE, path, str(size)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    try:
        while not works(hi):
            if hi >= max_bytes:
                raise RuntimeError(f"TFLM could not run the model with {max_bytes} bytes")
            hi *= 2
        lo = hi // 2 if hi > (1 << 16) else 1024
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if works(mid):
                hi = mid
            else:
                lo = mid
        return hi
    finally:
        os.unlink(path)


def load_keras(model_dir: pathlib.Path):
    import tf_keras as keras

    from kws_tf import models

    return keras.models.load_model(model_dir / "model.keras", custom_objects=models.custom_objects(), compile=False)


def measure(entries: list[dict], dataset, seed: int, rounds: int = 7, per_round: int = 10) -> None:
    """Fill each entry (label, model_dir) with sizes, int8 bytes, arena, accuracies; then time all."""
    from kws_tf import data as data_lib
    from kws_tf import features, tflite_tools
    from kws_tf.tflm import TflmRunner

    if dataset is not None:
        order = np.sort(np.random.default_rng(seed).permutation(len(dataset.train))[:N_CALIBRATION])
        calib_audio = dataset.train.subset(order)
        y_val = dataset.validation.labels
    for e in entries:
        if "spec" in e:  # --structure_only: untrained weights, calibrated on N(0, 1) features
            from kws_tf import model as model_lib, models

            name, c = e["spec"]
            net = models.build_model(name, c)
            calib = np.random.default_rng(seed).standard_normal((N_CALIBRATION // 4, 1, 101, 32)).astype(np.float32)
            model_bytes = tflite_tools.convert_int8(tflite_tools.deploy_model(net), calib)
            info = tflite_tools.inspect_model(model_bytes)
            e.update(params=model_lib.count_params(net), macs=model_lib.count_macs(net), int8_bytes=len(model_bytes),
                     ops=info.op_set, micro_problems=tflite_tools.micro_problems(info), float_accuracy=None,
                     int8_accuracy=None, epochs="untrained", best_epoch="—")
            e["_bytes"] = model_bytes
            continue
        if "model_dir" not in e:
            continue
        model_dir = pathlib.Path(e["model_dir"])
        report = json.loads((model_dir / "report.json").read_text())
        run_cfg = json.loads((model_dir / "run_config.json").read_text())
        norm = features.Normalization.from_dict(json.loads((model_dir / "normalization.json").read_text()))
        net = load_keras(model_dir)
        x_val = data_lib.clean_features(dataset.validation, norm)
        float_pred = np.argmax(net.predict(x_val, batch_size=256, verbose=0), -1)
        model_bytes = tflite_tools.convert_int8(tflite_tools.deploy_model(net), data_lib.clean_features(calib_audio, norm))
        info = tflite_tools.inspect_model(model_bytes)
        scale, zp = tflite_tools.quant_params(info.input)
        runner = TflmRunner(model_bytes, arena_size=1 << 21)
        x_q = np.clip(np.round(x_val / scale + zp), -128, 127).astype(np.int8)
        int8_pred = np.argmax(runner.run(x_q).reshape(len(x_val), -1), -1)
        e.update(
            params=report["params"], macs=report["macs"], epochs=run_cfg["epochs"], best_epoch=report.get("best_epoch"),
            batch_size=run_cfg["batch_size"], train_clips=report.get("train_clips"), val_clips=int(len(y_val)),
            report_val_accuracy=report["val_accuracy"],
            float_accuracy=float((float_pred == y_val).mean()), int8_accuracy=float((int8_pred == y_val).mean()),
            int8_bytes=len(model_bytes), ops=info.op_set, micro_problems=tflite_tools.micro_problems(info),
        )
        e["_bytes"] = model_bytes
        print(f"{e['label']}: float {e['float_accuracy']:.4f}, int8 (TFLM) {e['int8_accuracy']:.4f}, "
              f"{len(model_bytes):,} B", flush=True)
    for e in entries:
        e["arena_bytes"] = min_arena_bytes(e["_bytes"])
    # Host invoke time: interleaved rounds, so machine load hits every model alike.
    runners = {e["label"]: TflmRunner(e["_bytes"], arena_size=e["arena_bytes"] + 4096) for e in entries}
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            times[k].extend(r.time_invoke(repeats=per_round, warmup=2))
    for e in entries:
        e["invoke_ms_median"] = float(np.median(times[e["label"]]) * 1e3)
        e["invoke_ms_min"] = float(np.min(times[e["label"]]) * 1e3)
        del e["_bytes"]


def fmt_table(entries: list[dict], spark: dict) -> str:
    def pct(v):
        return f"{100 * v:.2f} %" if v is not None else "—"

    def ratio(e, key):
        s = spark.get(key)
        return f"{e['macs'] / s['macs']:.1f}×" if s and e.get("macs") else "—"

    lines = ["| model | params | MACs | int8 bytes | TFLM arena | host TFLM invoke (median) | float acc (val) | int8 acc (val, TFLM) | epochs (best) | MACs / SparkNet C=32 | MACs / SparkNet C=16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        if "params" in e:
            lines.append(
                f"| {e['label']} | {e['params']:,} | {e['macs']:,} | {e['int8_bytes']:,} | {e['arena_bytes']:,} | "
                f"{e['invoke_ms_median']:.2f} ms | {pct(e['float_accuracy'])} | {pct(e['int8_accuracy'])} | "
                f"{e['epochs']} ({e['best_epoch']}) | {ratio(e, 'c32')} | {ratio(e, 'c16')} |")
        else:
            lines.append(f"| {e['label']} | — | — | {e['int8_bytes']:,} | {e['arena_bytes']:,} | "
                         f"{e['invoke_ms_median']:.2f} ms | — | — | — | — | — |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["dscnn:64", "bcresnet:8"], help="model:C pairs")
    p.add_argument("--sparknet", nargs="*", default=None, help="SparkNet model_dirs (default <out>/real_c32 <out>/real_c16)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs"))
    p.add_argument("--wait", action="store_true", help="wait for <out>/train_real_subset.json before training")
    p.add_argument("--structure_only", action="store_true",
                   help="no training: untrained models' sizes, int8 bytes, arena, invoke time -> <out>/baselines_structure.md")
    p.add_argument("--no_anchor", action="store_true", help="leave the MLPerf Tiny DS-CNN anchor out of the timing")
    args = p.parse_args()
    data = os.environ.get("KWS_REAL_DATA")
    if not data or not (pathlib.Path(data) / "sc_v2_test_dev").is_dir():
        sys.exit("error: set KWS_REAL_DATA to the shared real-audio folder (with sc_v2_test_dev/)")
    data, out = pathlib.Path(data), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.structure_only:
        entries = [{"label": f"{m} C={c}", "key": m, "spec": (m, int(c))} for m, c in (x.split(":") for x in args.models)]
        entries += [{"label": f"SparkNet C={c}", "key": f"c{c}", "spec": ("sparknet", c)} for c in (32, 16)]
        entries.append({"label": "MLPerf Tiny DS-CNN anchor (49×10 input, int8 file)", "key": "anchor",
                        "_bytes": ANCHOR.read_bytes(), "int8_bytes": ANCHOR.stat().st_size})
        measure(entries, None, args.seed)
        spark = {e["key"]: e for e in entries if e["key"] in ("c32", "c16")}
        text = ("Untrained weights (structure only): sizes, int8 bytes, TFLM arena and host invoke time; no accuracy.\n\n"
                + fmt_table(entries, spark) + "\n")
        (out / "baselines_structure.md").write_text(text)
        (out / "baselines_structure.json").write_text(json.dumps(entries, indent=2, default=str))
        print("\n" + text)
        return
    if args.wait:
        while not (out / "train_real_subset.json").exists():
            print(f"waiting for {out / 'train_real_subset.json'} ...", flush=True)
            time.sleep(120)

    entries = []
    for spec in args.models:
        model, c = spec.split(":")
        t0 = time.perf_counter()
        model_dir = train_baseline(model, int(c), data, out, args.epochs, args.seed, out)
        print(f"{model} C={c}: {model_dir} ({time.perf_counter() - t0:.0f} s)", flush=True)
        entries.append({"label": f"{model} C={c}", "key": model, "model_dir": str(model_dir)})
    spark_dirs = args.sparknet if args.sparknet is not None else [str(out / "real_c32"), str(out / "real_c16")]
    for d in spark_dirs:
        if not (pathlib.Path(d) / "report.json").exists():
            print(f"warning: {d} has no finished run; left out", flush=True)
            continue
        c = json.loads((pathlib.Path(d) / "run_config.json").read_text())["channels"]
        entries.append({"label": f"SparkNet C={c}", "key": f"c{c}", "model_dir": str(d)})

    from kws_tf import data as data_lib

    dataset = data_lib.load_folder(str(data / "sc_v2_test_dev"), 20.0, 0.0, noise_dir=str(data / "background_noise"),
                                   log=lambda m: None)
    if not args.no_anchor and ANCHOR.exists():
        entries.append({"label": "MLPerf Tiny DS-CNN anchor (49×10 input, int8 file)", "key": "anchor",
                        "_bytes": ANCHOR.read_bytes(), "int8_bytes": ANCHOR.stat().st_size})
    measure(entries, dataset, args.seed)
    spark = {e["key"]: e for e in entries if e["key"] in ("c32", "c16")}
    for e in entries:
        for key in ("c32", "c16"):
            if key in spark and e.get("macs"):
                e[f"mac_ratio_vs_sparknet_{key}"] = e["macs"] / spark[key]["macs"]
    table = fmt_table(entries, spark)
    header = (f"Validation speakers of `$KWS_REAL_DATA/sc_v2_test_dev` (20 % of the speakers; {entries[0].get('val_clips')} "
              f"clips), same split and augmentation for every model. int8: BN folded, full int8, calibrated on "
              f"{N_CALIBRATION} training clips, run in the TFLM Python interpreter (x86-64 host, reference kernels); "
              f"arena = smallest that works on this host; invoke times from one interleaved run "
              f"({platform.machine()}, {os.cpu_count()} cores, shared machine: only ratios mean anything).")
    text = f"{header}\n\n{table}\n"
    (out / "baselines_table.md").write_text(text)
    (out / "baselines_table.json").write_text(json.dumps({"epochs_baselines": args.epochs, "entries": entries}, indent=2))
    print("\n" + text)


if __name__ == "__main__":
    main()
