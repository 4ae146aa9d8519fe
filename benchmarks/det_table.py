"""One Markdown table from several `benchmarks/streaming.py` curves: the best hit rate within each
false-alarm budget, per model and SNR, with the plain softmax (T = 1, what the device did before the
score temperature) and over every swept temperature.

    python benchmarks/det_table.py NAME=runs/det30_X.json [NAME=runs/det30_Y.json ...]
        [--budgets 2 5 10 30 60] [--png FIGURE.png]

A budget of B false alarms per hour on a stream of M minutes is met by a point with at most
floor(B * M / 60) false alarms; a 30 min stream resolves 2/h (one false alarm).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def best_within(points: list, budget: float, temperatures=None) -> dict | None:
    """The highest-hit-rate point with false alarms/h <= budget (ties: fewer false alarms), among
    points of `temperatures` (None: all)."""
    ok = [p for p in points if p["false_alarms_per_hour"] <= budget + 1e-9
          and (temperatures is None or p.get("score_temperature", 1.0) in temperatures)]
    return max(ok, key=lambda p: (p["hit_rate"] or 0.0, -p["false_alarms_per_hour"])) if ok else None


def rows(name: str, curve: dict, budgets: list) -> list:
    out = []
    for snr, c in curve["snr"].items():
        cells = []
        for temps in ((1.0,), None):
            for b in budgets:
                p = best_within(c["points"], b, temps)
                cells.append("-" if p is None else f"{100 * p['hit_rate']:.1f}"
                             + ("" if temps else f" (T{p.get('score_temperature', 1.0):g})"))
        minutes = c["duration_s"] / 60
        out.append(f"| {name} | {snr} dB | {minutes:.0f} min, {c['keywords']} kw | " + " | ".join(cells) + " |")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("curves", nargs="+", help="NAME=PATH of a streaming.py curve JSON (--curve_prefix PATH.json)")
    ap.add_argument("--budgets", nargs="+", type=float, default=[2, 5, 10, 30, 60])
    ap.add_argument("--png", help="also draw the curves side by side, one panel per SNR (kws_tf.plots.det_compare)")
    args = ap.parse_args()
    b = [f"{x:g}" for x in args.budgets]
    print("| model | SNR | stream | " + " | ".join(f"T=1: <= {x}/h" for x in b) + " | "
          + " | ".join(f"any T: <= {x}/h" for x in b) + " |")
    print("|---|---|---|" + "---|" * (2 * len(b)))
    curves = {}
    for item in args.curves:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"error: expected NAME=PATH, got {item!r}")
        if not pathlib.Path(path).is_file():
            raise SystemExit(f"error: no curve JSON at {path}")
        curves[name] = json.loads(pathlib.Path(path).read_text())
        print("\n".join(rows(name, curves[name], args.budgets)))
    if args.png:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
        from kws_tf import plots

        plots.det_compare(curves, args.png, title="best hit rate per false-alarm budget (frontier of the sweep)")
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
