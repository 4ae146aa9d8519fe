"""Figures of the evaluation: accuracy vs SNR, MFCC beside its gate mask, open-gate fraction per class.

All functions write a PNG (matplotlib's Agg backend, no display needed) and return nothing.
The confusion matrix lives in `kws_tf.metrics.plot_confusion`.
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def snr_label(level) -> str:
    """'clean' for None / 'clean', else '<n> dB'."""
    if level is None or (isinstance(level, str) and level == "clean"):
        return "clean"
    return f"{float(level):g} dB"


def plot_snr_curve(curves: dict, path, title: str = "accuracy vs SNR") -> None:
    """Accuracy per noise level, one line per entry of `curves`.

    `curves`: name -> list of `{"snr_db": float | None, "accuracy": float}` (None = clean),
    in the order to draw them (clean first, then decreasing SNR, reads left to right as
    'more noise').
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ticks: list[str] = []
    for name, rows in curves.items():
        labels = [snr_label(r["snr_db"]) for r in rows]
        if len(labels) > len(ticks):
            ticks = labels
        acc = [np.nan if r["accuracy"] is None else 100.0 * r["accuracy"] for r in rows]
        ax.plot(range(len(rows)), acc, marker="o", label=name)
        for x, a in enumerate(acc):
            if np.isfinite(a):
                ax.annotate(f"{a:.1f}", (x, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel("signal-to-noise ratio of the mixed background noise")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 109)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gate_clip(mfcc: np.ndarray, gate: np.ndarray, path, title: str = "") -> None:
    """MFCC `[T, 32]` (normalised, as the model sees it) beside the inference gate mask `[T, 32]`.

    Time runs left to right, MFCC coefficient bottom to top, in both panels.
    """
    plt = _pyplot()
    mfcc = np.asarray(mfcc, np.float32).reshape(-1, np.shape(mfcc)[-1])
    gate = np.asarray(gate, np.float32).reshape(-1, np.shape(gate)[-1])
    frames = mfcc.shape[0]
    extent = (0, frames * 10, -0.5, mfcc.shape[1] - 0.5)  # 10 ms hop
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    lim = float(np.percentile(np.abs(mfcc), 99)) or 1.0
    im0 = axes[0].imshow(mfcc.T, origin="lower", aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim,
                         extent=extent, interpolation="nearest")
    axes[0].set_title("normalised MFCC (model input)")
    axes[0].set_xlabel("time (ms)")
    axes[0].set_ylabel("MFCC coefficient")
    fig.colorbar(im0, ax=axes[0], fraction=0.046, label="std units")
    im1 = axes[1].imshow(gate.T, origin="lower", aspect="auto", cmap="gray_r", vmin=0, vmax=1,
                         extent=extent, interpolation="nearest")
    axes[1].set_title(f"inference gate g = clip(mu + 0.5, 0, 1); open {float((gate > 0).mean()):.1%}")
    axes[1].set_xlabel("time (ms)")
    fig.colorbar(im1, ax=axes[1], fraction=0.046, label="gate value")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_open_fraction(per_class: dict, path, title: str = "open-gate fraction per class") -> None:
    """Bar chart of `per_class`: class name -> fraction in [0, 1] (None: no clips, drawn empty)."""
    plt = _pyplot()
    names = list(per_class)
    values = [np.nan if per_class[n] is None else float(per_class[n]) for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    bars = ax.bar(range(len(names)), [0 if np.isnan(v) else 100 * v for v in values], color="tab:blue")
    for b, v in zip(bars, values):
        ax.annotate("n/a" if np.isnan(v) else f"{100 * v:.1f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("open gates (% of the 32 x T mask)")
    top = np.nanmax(values) if np.any(np.isfinite(values)) else 1.0
    ax.set_ylim(0, max(5.0, 100 * top * 1.2))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DET_YLABEL = "miss rate (%)  = 100 - hit rate"


def _det_axes(ax) -> None:
    """False alarms per hour on a symlog x axis (0 stays visible), miss rate 0..100 % on y."""
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.set_xlabel("false alarms per hour")
    ax.grid(True, which="both", alpha=0.3)


def det_compare(models: dict, path, title: str = "", plain_temperature: float | None = 1.0) -> None:
    """Several models' DET curves side by side, one panel per SNR: for each model the frontier over
    every swept setting (solid) and, when `plain_temperature` is given and the sweep has other
    temperatures, the frontier at that score temperature alone (dashed, what the device did before
    the temperature was calibrated). `models`: {name: curve JSON of benchmarks/streaming.py}."""
    from kws_tf import operating_point

    plt = _pyplot()
    snrs = []
    for curve in models.values():
        snrs += [s for s in curve["snr"] if s not in snrs]
    fig, axes = plt.subplots(1, len(snrs), figsize=(5.6 * len(snrs), 4.6), squeeze=False, sharey=True)
    for ax, snr in zip(axes[0], snrs):
        for name, curve in models.items():
            c = curve["snr"].get(snr)
            if c is None:
                continue
            temps = {p.get("score_temperature", 1.0) for p in c["points"]}
            subsets = [(None, "-", name)]
            if plain_temperature is not None and len(temps) > 1 and plain_temperature in temps:
                subsets.append((plain_temperature, "--", f"{name}, T={plain_temperature:g} only"))
            color = None
            for temp, style, label in subsets:
                pts = [p for p in c["points"] if temp is None or p.get("score_temperature", 1.0) == temp]
                pts = operating_point.frontier(pts)
                x = [p["false_alarms_per_hour"] for p in pts]
                y = [100 * (1 - (p["hit_rate"] or 0.0)) for p in pts]
                line, = ax.step(x, y, where="post", linestyle=style, color=color, label=label)
                color = line.get_color()
        _det_axes(ax)
        ax.set_title(f"{snr} dB SNR" if snr != "clean" else "no added noise")
    axes[0][0].set_ylabel(DET_YLABEL)
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def det_curves(curves: dict, path, title: str = "") -> None:
    """DET-style plot of a recogniser sweep (`kws_tf.operating_point`): false alarms per hour (x,
    symlog) against miss rate (y), one curve per SNR (the sweep's frontier), the chosen operating
    point circled. `curves`: {"<dB>": {"operating_point": point, "points": [point]}}, a point
    holding "hit_rate" and "false_alarms_per_hour"."""
    from kws_tf import operating_point

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for snr, c in curves.items():
        pts = operating_point.frontier(c["points"])
        x = [p["false_alarms_per_hour"] for p in pts]
        y = [100 * (1 - (p["hit_rate"] or 0.0)) for p in pts]
        line, = ax.step(x, y, where="post", marker=".", label=f"{snr} dB" if snr != "clean" else "clean")
        op = c.get("operating_point")
        if op:
            ax.plot([op["false_alarms_per_hour"]], [100 * (1 - (op["hit_rate"] or 0.0))], "o", mfc="none",
                    ms=11, color=line.get_color())
    _det_axes(ax)
    ax.set_ylabel(DET_YLABEL)
    ax.legend(title="SNR (o: operating point)")
    ax.set_title(title or "keyword spotting: misses vs false alarms")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
