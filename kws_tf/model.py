"""SparkNet in Keras (tf_keras), with parameter and MAC accounting.

The network is written in 2-D form: input `(1, T, 32)` (height 1, time as width,
the 32 MFCC coefficients as channels) and kernels `(1, k)`. It computes exactly
the 1-D network of SPEC.md, but tfmot's QAT accepts it and the flatbuffer needs
no EXPAND_DIMS/RESHAPE around every convolution.

Run `python -m kws_tf.model --C=32` for the per-layer table.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the CLI: TensorFlow's start-up lines off stderr (kws_tf.cli_env) before importing it
    from kws_tf import cli_env

    cli_env.start()

import tensorflow as tf
import tf_keras as keras
from absl import app, flags

from kws_tf import features, labels
from kws_tf.gates import RelaxedBernoulliGate

BLOCK_KERNELS = (11, 15, 19, 29)
SUPPORTED_C = (4, 8, 16, 32)
TIME_AVERAGES = ("full", "interior")
# Half-width of a gate frame's receptive field, in frames: sum of (k - 1) / 2 (5 + 7 + 9 + 14).
RECEPTIVE_HALF_WIDTH = sum((k - 1) // 2 for k in BLOCK_KERNELS)


def _l2(weight_decay: float):
    # PyTorch's SGD weight_decay adds wd·w to every gradient; an L2 penalty of
    # (wd/2)·Σw² has exactly that gradient.
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def build_sparknet(
    channels: int = 32,
    num_frames: int = features.NUM_FRAMES,
    num_coeffs: int = features.NUM_MFCC,
    num_classes: int = labels.NUM_CLASSES,
    sigma: float = 0.5,
    lam: float = 1.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    time_average: str = "full",
) -> keras.Model:
    """SparkNet with C = `channels`; outputs logits `[batch, num_classes]`.

    `time_average`: "full" averages the gate over all frames (the paper). "interior" averages
    only the frames whose receptive field lies inside the window (frames 35..65 of 101): no
    zero padding reaches them, so the per-frame step model computes exactly the windowed
    model, and with no look-ahead (the window's last 350 ms are those frames' context).
    """
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if time_average not in TIME_AVERAGES:
        raise ValueError(f"time_average must be one of {TIME_AVERAGES}, got {time_average!r}")
    if time_average == "interior" and num_frames <= 2 * RECEPTIVE_HALF_WIDTH:
        raise ValueError(f"time_average='interior' needs more than {2 * RECEPTIVE_HALF_WIDTH} frames")
    reg = _l2(weight_decay)
    conv = dict(padding="same", use_bias=False, kernel_regularizer=reg)
    bn = dict(momentum=0.9, epsilon=1e-5, beta_regularizer=reg, gamma_regularizer=reg)

    inputs = keras.Input(shape=(1, num_frames, num_coeffs), name="mfcc")
    x = keras.layers.DepthwiseConv2D((1, BLOCK_KERNELS[0]), padding="same", use_bias=False,
                                     depthwise_regularizer=reg, name="b1_depthwise")(inputs)
    x = keras.layers.Conv2D(channels, 1, name="b1_pointwise", **conv)(x)
    x = keras.layers.BatchNormalization(name="b1_bn", **bn)(x)
    x = keras.layers.ReLU(name="b1_relu")(x)

    for i, k in enumerate(BLOCK_KERNELS[1:], start=2):
        main = keras.layers.DepthwiseConv2D((1, k), padding="same", use_bias=False,
                                            depthwise_regularizer=reg, name=f"b{i}_depthwise")(x)
        main = keras.layers.Conv2D(channels, 1, name=f"b{i}_pointwise", **conv)(main)
        main = keras.layers.BatchNormalization(name=f"b{i}_bn", **bn)(main)
        res = keras.layers.Conv2D(channels, 1, name=f"b{i}_residual", **conv)(x)
        res = keras.layers.BatchNormalization(name=f"b{i}_residual_bn", **bn)(res)
        x = keras.layers.Add(name=f"b{i}_add")([main, res])
        x = keras.layers.ReLU(name=f"b{i}_relu")(x)

    mu = keras.layers.Conv2D(num_coeffs, 1, padding="same", use_bias=True, kernel_regularizer=reg,
                             bias_regularizer=reg, name="head_conv")(x)
    mu = keras.layers.BatchNormalization(name="head_bn", **bn)(mu)
    mu = keras.layers.Activation("tanh", name="mu")(mu)
    gate = RelaxedBernoulliGate(sigma=sigma, lam=lam, seed=seed, name="gate")(mu)
    if time_average == "interior":
        gate = keras.layers.Cropping2D(((0, 0), (RECEPTIVE_HALF_WIDTH, RECEPTIVE_HALF_WIDTH)), name="interior")(gate)
    pooled = keras.layers.GlobalAveragePooling2D(name="time_mean")(gate)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=reg,
                                name="classifier")(pooled)
    return keras.Model(inputs, logits, name=name or f"sparknet_c{channels}")


def gate_model(model: keras.Model) -> keras.Model:
    """A model mapping the same input to the inference gate mask `[batch, 1, T, 32]`."""
    return keras.Model(model.input, model.get_layer("gate").output)


from kws_tf.baselines import build_bcresnet, build_dscnn  # noqa: E402  (imports nothing from here at load time)

MODEL_BUILDERS = {"sparknet": build_sparknet, "dscnn": build_dscnn, "bcresnet": build_bcresnet}


def build_model(name: str, channels: int, **kwargs) -> keras.Model:
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[name](channels=channels, **kwargs)


def custom_objects() -> dict:
    return {"RelaxedBernoulliGate": RelaxedBernoulliGate}


# --------------------------------------------------------------------------- accounting

def _layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for one input window (convolutions and dense only)."""
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
    flags.DEFINE_integer("C", 32, "SparkNet channels C.")
    flags.DEFINE_string("model", "sparknet", "Model family.")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    try:
        model = build_model(FLAGS.model, FLAGS.C)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"{model.name}: input {tuple(model.input.shape[1:])}, {labels.NUM_CLASSES} classes")
    print(format_table(layer_table(model)))
    print(f"trainable parameters: {count_params(model):,}   MACs per 1 s window: {count_macs(model):,}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
