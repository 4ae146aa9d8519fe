"""Accuracy and int8 size of SparkNet pruned during training, over target sparsities.

    KWS_REAL_DATA=../shared/data python benchmarks/sparsity_curve.py \
        [--channels 32] [--epochs 40] [--sparsities 0 0.5 0.75 0.9 0.95] [--out runs/sparsity_curve]

For each target sparsity: `python -m kws_tf.train` on the real-audio subset (the data flags of
benchmarks/train_real_subset.py: `$KWS_REAL_DATA/sc_v2_test_dev`, 20 % of the speakers for
validation, background noise at p = 0.5), with the shipped config plus a `prune` block
(kws_tf.pruning: magnitude pruning of the Conv2D/Dense kernels, polynomial schedule; target 0
trains dense), then `python -m kws_tf.export --int8` (no step model, no operating point: they
do not depend on the sparsity). Each model_dir / export is reused when already finished.

Columns: the sparsity measured on the stripped float kernels (report.json) and on the int8
CONV_2D/FULLY_CONNECTED weight tensors of the flatbuffer; float and int8 validation accuracy;
the int8 flatbuffer's bytes, its zlib (level 9) size, a proxy for what a compressed-weights
format could save; the arena. What sparsity does NOT buy on the board: TFLM's Feb-2023
kernels are dense, so MACs, arena and Invoke() time stay those of the dense model, and the
flatbuffer stores every zero.

Writes <out>/sparsity_curve.{json,md,png}. The validation clips come from the official Speech
Commands *test* split: these are not Speech Commands test accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time


ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def int8_weight_sparsity(tflite_bytes: bytes) -> float:
    """Zeros / size of the weight tensors of the CONV_2D and FULLY_CONNECTED ops."""
    from kws_tf import pruning

    zeros, size = pruning.int8_weight_zeros(tflite_bytes)
    return zeros / size if size else 0.0


def run_config_file(out: pathlib.Path, channels: int, sparsity: float, args) -> pathlib.Path:
    """The shipped config with this run's prune block (none for a dense run)."""
    from kws_tf import config as config_lib
    from kws_tf.fsutil import atomic_write_json

    cfg = config_lib.load_config(channels=channels)
    if sparsity > 0:
        cfg["prune"] = {"target_sparsity": sparsity, "begin_fraction": args.begin_fraction,
                        "end_fraction": args.end_fraction, "frequency": args.frequency}
    config_lib.validate(cfg, f"sparsity {sparsity}")
    path = out / "configs" / f"sparknet_c{channels}_s{sparsity:g}.json"
    atomic_write_json(path, cfg)
    return path


def _run(cmd: list, check: bool = True) -> str | None:
    """Run `cmd`; its one-line error (stderr's last line) when it fails and `check` is off."""
    print("$", " ".join(map(str, cmd)), flush=True)
    res = subprocess.run(list(map(str, cmd)), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(res.stderr)
    if res.returncode == 0:
        return None
    if check:
        raise subprocess.CalledProcessError(res.returncode, cmd)
    return (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]


def one(sparsity: float, data: pathlib.Path, out: pathlib.Path, args) -> dict:
    model_dir = out / f"c{args.channels}_s{sparsity:g}"
    export_dir = out / f"c{args.channels}_s{sparsity:g}_export"
    report_path = model_dir / "report.json"
    t0 = time.perf_counter()
    if not report_path.exists():
        cmd = [sys.executable, "-m", "kws_tf.train", f"--config={run_config_file(out, args.channels, sparsity, args)}",
               f"--data_dir={data / 'sc_v2_test_dev'}", f"--noise_dir={data / 'background_noise'}",
               "--validation_percent=20", "--test_percent=0", "--background_prob=0.5", f"--epochs={args.epochs}",
               f"--seed={args.seed}", f"--model_dir={model_dir}", "--verbose=quiet"]
        if (model_dir / "run_config.json").exists():
            cmd.append("--resume")
        _run(cmd)
    train_s = time.perf_counter() - t0
    export_error = None
    if not (export_dir / "export_report.json").exists():
        # a refused export (e.g. a collapsed model failing a check) is a row with the reason, not the end
        export_error = _run([sys.executable, "-m", "kws_tf.export", "--int8", f"--model_dir={model_dir}",
                             f"--out={export_dir}", "--nostep_model", "--nooperating_point", "--timing_repeats=5",
                             "--overwrite"], check=False)
    report = json.loads(report_path.read_text())
    row = {
        "target_sparsity": sparsity,
        "measured_sparsity": report["sparsity"]["overall"],
        "prunable_weights": report["sparsity"]["size"],
        "params": report["params"],
        "nonzero_params": report["params"] - report["sparsity"]["zeros"],
        "float_val_accuracy": report["val_accuracy"],
        "best_epoch": report["best_epoch"],
        "epochs": report["epochs"],
        "gate_open_fraction": report["gate_open_fraction"],
        "val_clips": report["validation"]["clips"],
        "train_s_this_invocation": train_s,
        "model_dir": str(model_dir),
        "export_error": export_error,
    }
    if export_error:
        return {**row, **{k: None for k in ("int8_weight_sparsity", "macs", "int8_val_accuracy",
                                             "export_float_accuracy", "int8_bytes", "int8_zlib_bytes",
                                             "arena_bytes_min_host")}}
    exp = json.loads((export_dir / "export_report.json").read_text())
    int8 = (export_dir / "model_int8.tflite").read_bytes()
    ev = exp["eval"]
    return {
        **row,
        "int8_weight_sparsity": int8_weight_sparsity(int8),
        "macs": exp["macs"],
        "int8_val_accuracy": ev["qat_int8_accuracy"] if exp["exported"] == "qat" else ev["ptq_int8_accuracy"],
        "export_float_accuracy": ev["float_accuracy"],
        "int8_bytes": len(int8),
        "int8_zlib_bytes": exp.get("int8_zlib_bytes"),
        "arena_bytes_min_host": exp["arena_bytes_min_host"],
    }


def markdown(rows: list, args) -> str:
    lines = [f"SparkNet C={args.channels}, {args.epochs} epochs, pruning from {args.begin_fraction:g} to "
             f"{args.end_fraction:g} of the steps (every {args.frequency} steps), magnitude criterion, "
             f"{rows[0]['val_clips']} validation clips (real-audio subset; not Speech Commands test accuracy).", "",
             "| target | measured (float) | int8 weight zeros | non-zero params | float val acc | int8 val acc "
             "| int8 bytes | zlib bytes | arena B | MACs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["export_error"]:
            lines.append(f"| {r['target_sparsity']:.2f} | {100 * r['measured_sparsity']:.1f} % | – | "
                         f"{r['nonzero_params']:,} / {r['params']:,} | {100 * r['float_val_accuracy']:.2f} % | "
                         f"export refused: {r['export_error'].removeprefix('error: ')} | – | – | – | – |")
            continue
        lines.append(f"| {r['target_sparsity']:.2f} | {100 * r['measured_sparsity']:.1f} % | "
                     f"{100 * r['int8_weight_sparsity']:.1f} % | {r['nonzero_params']:,} / {r['params']:,} | "
                     f"{100 * r['float_val_accuracy']:.2f} % | {100 * r['int8_val_accuracy']:.2f} % | "
                     f"{r['int8_bytes']:,} | {r['int8_zlib_bytes']:,} | {r['arena_bytes_min_host']:,} | {r['macs']:,} |")
    lines += ["", "Arena, MACs and the flatbuffer's bytes do not change with sparsity: TFLM's (Feb-2023) kernels are "
              "dense. Only a compressed-weights format could cash in the zeros (zlib bytes: a proxy)."]
    return "\n".join(lines) + "\n"


def plot(rows: list, path: pathlib.Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kws_tf.fsutil import atomic_save

    x = [100 * r["measured_sparsity"] for r in rows]
    done = [r for r in rows if not r["export_error"]]
    xe = [100 * r["measured_sparsity"] for r in done]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(x, [100 * r["float_val_accuracy"] for r in rows], "o-", label="float")
    a.plot(xe, [100 * r["int8_val_accuracy"] for r in done], "s--", label="int8 (TFLM)")
    a.set_xlabel("sparsity of the Conv2D/Dense kernels (%)")
    a.set_ylabel("validation accuracy (%)")
    a.set_title(f"SparkNet C={args.channels}, {args.epochs} epochs, magnitude pruning")
    a.grid(alpha=0.3)
    a.legend()
    b.plot(xe, [r["int8_bytes"] / 1024 for r in done], "o-", label="int8 flatbuffer")
    b.plot(xe, [r["int8_zlib_bytes"] / 1024 for r in done], "s--", label="zlib-compressed")
    b.set_xlabel("sparsity of the Conv2D/Dense kernels (%)")
    b.set_ylabel("KiB")
    b.set_ylim(bottom=0)
    b.set_title("flash: stored dense, compressible")
    b.grid(alpha=0.3)
    b.legend()
    fig.tight_layout()
    atomic_save(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.5, 0.75, 0.9, 0.95])
    p.add_argument("--begin_fraction", type=float, default=0.2, help="pruning starts at this fraction of the steps")
    p.add_argument("--end_fraction", type=float, default=0.8, help="and reaches the target here")
    p.add_argument("--frequency", type=int, default=20, help="mask update every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "sparsity_curve"))
    args = p.parse_args()
    data = os.environ.get("KWS_REAL_DATA")
    if not data or not (pathlib.Path(data) / "sc_v2_test_dev").is_dir():
        sys.exit("error: set KWS_REAL_DATA to the shared real-audio folder (with sc_v2_test_dev/)")
    bad = [s for s in args.sparsities if not 0.0 <= s < 1.0]
    if bad:
        sys.exit(f"error: --sparsities must be in [0, 1) (got {', '.join(f'{s:g}' for s in bad)})")
    if args.epochs < 1:
        sys.exit(f"error: --epochs must be at least 1 (got {args.epochs})")
    out = pathlib.Path(args.out).resolve()
    rows = []
    for s in sorted(set(args.sparsities)):
        try:
            rows.append(one(s, pathlib.Path(data).resolve(), out, args))
        except subprocess.CalledProcessError as e:
            sys.exit(f"error: sparsity {s:g}: {' '.join(map(str, e.cmd[1:3]))} failed (exit {e.returncode})")
        r = rows[-1]
        print(f"sparsity {s:g}: measured {100 * r['measured_sparsity']:.1f} %, float "
              f"{100 * r['float_val_accuracy']:.2f} %, " + (f"export refused ({r['export_error']})" if r["export_error"]
              else f"int8 {100 * r['int8_val_accuracy']:.2f} %, {r['int8_bytes']:,} B ({r['int8_zlib_bytes']:,} B zlib)"),
              flush=True)
    from kws_tf.fsutil import atomic_write_bytes, atomic_write_json

    atomic_write_json(out / "sparsity_curve.json", {"settings": vars(args), "rows": rows})
    md = markdown(rows, args)
    atomic_write_bytes(out / "sparsity_curve.md", md.encode())
    plot(rows, out / "sparsity_curve.png", args)
    print("\n" + md + f"\nwritten: {out / 'sparsity_curve.json'}, .md, .png")


if __name__ == "__main__":
    main()
