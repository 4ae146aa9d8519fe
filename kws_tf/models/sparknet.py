"""SparkNet (Interspeech 2024): a learned, nearly binary mask over the MFCCs plus one linear layer.

The network is written in 2-D form: input `(1, T, 32)` (height 1, time as width,
the 32 MFCC coefficients as channels) and kernels `(1, k)`. It computes exactly
the 1-D network of SPEC.md, but tfmot's QAT accepts it and the flatbuffer needs
no EXPAND_DIMS/RESHAPE around every convolution.
"""

from __future__ import annotations

import tf_keras as keras

from kws_tf import features, labels
from kws_tf.gates import RelaxedBernoulliGate
from kws_tf.models.common import l2

BLOCK_KERNELS = (11, 15, 19, 29)
SUPPORTED_C = (4, 8, 16, 32)
TIME_AVERAGES = ("full", "interior")
# Half-width of a gate frame's receptive field, in frames: sum of (k - 1) / 2 (5 + 7 + 9 + 14).
RECEPTIVE_HALF_WIDTH = sum((k - 1) // 2 for k in BLOCK_KERNELS)


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
    reg = l2(weight_decay)
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


def custom_objects() -> dict:
    return {"RelaxedBernoulliGate": RelaxedBernoulliGate}
