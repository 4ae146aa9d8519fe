"""Train SparkNet on the real-audio subset and report accuracy, time, throughput and memory.

    python benchmarks/train_real_subset.py [--channels 16 32] [--epochs 100] [--out runs]

Data: `$KWS_REAL_DATA/sc_v2_test_dev` (3,168 clips of the official Speech Commands v0.02
*test* set), split by speaker into train (80 %) and validation (20 %) speakers, with
background-noise mixing from `$KWS_REAL_DATA/background_noise`. Because the clips come
from the official test split, these figures are NOT Speech Commands test accuracy.

Each C runs `python -m kws_tf.train` in its own process (so peak memory is per run) and
writes the usual model_dir to `<out>/real_c<C>`; an existing finished run is reused.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def train_one(channels: int, data: pathlib.Path, out: pathlib.Path, epochs: int, seed: int) -> dict:
    model_dir = out / f"real_c{channels}"
    report_path = model_dir / "report.json"
    cmd = [sys.executable, "-m", "kws_tf.train", f"--C={channels}", f"--data_dir={data / 'sc_v2_test_dev'}",
           f"--noise_dir={data / 'background_noise'}", "--validation_percent=20", "--test_percent=0",
           "--background_prob=0.5", f"--epochs={epochs}", f"--seed={seed}", f"--model_dir={model_dir}",
           "--verbose=quiet"]
    if (model_dir / "run_config.json").exists():
        cmd.append("--resume")
    t0 = time.perf_counter()
    if not report_path.exists() or json.loads(report_path.read_text()).get("epochs") != epochs:
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    report = json.loads(report_path.read_text())
    with open(model_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    # The first epoch includes tracing and warm-up; the median of the rest is the steady rate.
    rates = [float(r["samples_per_sec"]) for r in rows[1:]] or [float(rows[0]["samples_per_sec"])]
    epoch_s = [float(r["epoch_seconds"]) for r in rows]
    return {
        "C": channels,
        "params": report["params"],
        "macs": report["macs"],
        "train_clips": report["train_clips"],
        "val_clips": report["validation"]["clips"],
        "val_accuracy": report["val_accuracy"],
        "best_epoch": report["best_epoch"],
        "epochs": epochs,
        "gate_open_fraction": report["gate_open_fraction"],
        "train_wall_s": sum(epoch_s),
        "wall_s_this_invocation": wall,
        "samples_per_sec_median": statistics.median(rates),
        "peak_rss_mb": report["peak_rss_mb"],
        "model_dir": str(model_dir),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs"))
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    data = os.environ.get("KWS_REAL_DATA")
    if not data or not (pathlib.Path(data) / "sc_v2_test_dev").is_dir():
        sys.exit("error: set KWS_REAL_DATA to the shared real-audio folder (with sc_v2_test_dev/)")
    results = [train_one(c, pathlib.Path(data), pathlib.Path(args.out), args.epochs, args.seed) for c in args.channels]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print("| C | params | MACs | train / val clips | val accuracy | best epoch / epochs | train time | samples/s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['C']} | {r['params']:,} | {r['macs']:,} | {r['train_clips']} / {r['val_clips']} | "
              f"{100 * r['val_accuracy']:.2f} % | {r['best_epoch']} / {r['epochs']} | {r['train_wall_s'] / 60:.1f} min | "
              f"{r['samples_per_sec_median']:.0f} | {r['peak_rss_mb']:.0f} MB |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
