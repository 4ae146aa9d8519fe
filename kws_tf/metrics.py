"""Accuracy, per-class accuracy and the confusion matrix, as JSON-ready values and a PNG."""

from __future__ import annotations

import numpy as np

from kws_tf import labels


def confusion_matrix(y_true, y_pred, num_classes: int = labels.NUM_CLASSES) -> np.ndarray:
    """`[true, predicted]` counts."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def summarize(y_true, y_pred, class_names=labels.LABELS) -> dict:
    """accuracy, per-class accuracy (None for a class with no clips), confusion matrix."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    per_class = {}
    for i, name in enumerate(class_names):
        n = int(cm[i].sum())
        per_class[name] = float(cm[i, i] / n) if n else None
    return {
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else None,
        "clips": int(y_true.size),
        "per_class": per_class,
        "confusion": cm.tolist(),
        "labels": list(class_names),
    }


def plot_confusion(cm, class_names, path, title: str = "confusion matrix") -> None:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
