"""Parameter and MAC accounting for any registered model (kws_tf.models).

Run `python -m kws_tf.model --model=sparknet --C=32` for the per-layer table.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the CLI: TensorFlow's start-up lines off stderr (kws_tf.cli_env) before importing it
    from kws_tf import cli_env

    cli_env.start()

import tensorflow as tf
import tf_keras as keras
from absl import app, flags

from kws_tf import labels, models


# --------------------------------------------------------------------------- accounting

def _layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for one input window (convolutions and dense only)."""
    if hasattr(layer, "conv_macs"):  # a custom layer that computes a convolution (SincConv)
        return int(layer.conv_macs())
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, c = layer.output.shape
        kh, kw = layer.kernel_size
        return int(h * w * c * kh * kw)
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, cout = layer.output.shape
        cin = layer.input.shape[-1]
        kh, kw = layer.kernel_size
        return int(h * w * cout * cin * kh * kw)
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1] * layer.units)
    return 0


def layer_table(model: keras.Model) -> list[dict]:
    """Per-layer rows: name, type, output shape, trainable parameters, MACs per window."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        params = int(sum(int(tf.size(w)) for w in layer.trainable_weights))
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output": tuple(layer.output.shape[1:]),
            "params": params,
            "macs": _layer_macs(layer),
        })
    return rows


def count_params(model: keras.Model) -> int:
    return int(sum(int(tf.size(w)) for w in model.trainable_weights))


def count_macs(model: keras.Model) -> int:
    """MACs of the convolutions and the linear layer per 1 s window (BN folded, as deployed)."""
    return sum(row["macs"] for row in layer_table(model))


def format_table(rows: list[dict]) -> str:
    lines = [f"{'layer':<20} {'type':<24} {'output':<16} {'params':>8} {'MACs':>10}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(f"{r['name']:<20} {r['type']:<24} {str(r['output']):<16} {r['params']:>8,} {r['macs']:>10,}")
    lines.append("-" * len(lines[0]))
    total_p = sum(r["params"] for r in rows)
    total_m = sum(r["macs"] for r in rows)
    lines.append(f"{'total':<62} {total_p:>8,} {total_m:>10,}")
    return "\n".join(lines)


def define_flags():
    # Flags are defined only when this module is the program, so library imports
    # of kws_tf.model never clash with another CLI's flags.
    flags.DEFINE_integer("C", 32, "Width: SparkNet channels C, BC-ResNet base width 8·tau, DS-CNN filters.")
    flags.DEFINE_string("model", "sparknet", "Registered model (kws_tf.models).")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    try:
        model = models.build_model(FLAGS.model, FLAGS.C)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"{model.name}: input {tuple(model.input.shape[1:])}, {labels.NUM_CLASSES} classes")
    print(format_table(layer_table(model)))
    print(f"trainable parameters: {count_params(model):,}   MACs per 1 s window: {count_macs(model):,}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
