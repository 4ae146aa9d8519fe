"""MLPerf Tiny's KWS reference DS-CNN on kws_tf's front-end.

Input `(1, T, F)` reshaped (a RESHAPE op, no transpose: same memory order) into a one-channel
image `(T, F, 1)` = (time, frequency); a paper kernel written "frequency x time" appears
here as "time x frequency".

`build_dscnn(channels=64)` -- the MLPerf Tiny KWS reference DS-CNN (Zhang et al. 2017,
"Hello Edge", small DS-CNN; structure read from MLPerf Tiny's `kws_ref_model.tflite`):
conv 10x4 stride 2 ("same", with bias) -> BN -> ReLU -> dropout 0.2, then 4 depthwise-
separable blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU), dropout 0.4,
average pool over the whole map, dense 12. `channels` is the filter count (64 in the
reference). Departures from the reference:
  - input: our 101 frames x 32 MFCC (25 ms window, 10 ms hop, 32 mel bands) instead of
    MLPerf's 49 frames x 10 MFCC (40 ms window, 20 ms hop). The parameters are the
    same (no layer's weights depend on the map size), but the map after the stride-2
    conv is 51 x 16 instead of 25 x 5, so the MACs are 6.5x the reference's
    (~17.3 M instead of ~2.7 M per 1 s window);
  - BN momentum 0.9 (Keras default 0.99) because our runs are short; weight decay as
    an L2 penalty on all kernels, biases and BN parameters (the reference: kernels
    only) with the config's strength; SGD with the project's schedule (the reference:
    Adam).

The graph uses only Keras layers that the converter maps to TFLM int8 kernels
(RESHAPE, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, FULLY_CONNECTED); no MEAN (the average is AveragePooling2D), no
custom layers, so `model.keras` reloads without custom objects.
"""

from __future__ import annotations

import tf_keras as keras

from kws_tf import features, labels
from kws_tf.models.common import image_input, l2

DSCNN_BLOCKS = 4


def build_dscnn(
    channels: int = 64,
    num_frames: int = features.NUM_FRAMES,
    num_coeffs: int = features.NUM_MFCC,
    num_classes: int = labels.NUM_CLASSES,
    weight_decay: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    **unused,  # sigma, lam: SparkNet's gate settings, which the training code passes to every model
) -> keras.Model:
    """MLPerf Tiny's DS-CNN with `channels` filters; outputs logits `[batch, num_classes]`."""
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    reg = l2(weight_decay)
    bn = dict(momentum=0.9, epsilon=1e-3, beta_regularizer=reg, gamma_regularizer=reg)
    inputs, x = image_input(num_frames, num_coeffs)
    x = keras.layers.Conv2D(channels, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg,
                            bias_regularizer=reg, name="conv1")(x)
    x = keras.layers.BatchNormalization(name="conv1_bn", **bn)(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.Dropout(0.2, seed=seed, name="conv1_dropout")(x)
    for i in range(1, DSCNN_BLOCKS + 1):
        x = keras.layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg, bias_regularizer=reg,
                                         name=f"ds{i}_depthwise")(x)
        x = keras.layers.BatchNormalization(name=f"ds{i}_dw_bn", **bn)(x)
        x = keras.layers.ReLU(name=f"ds{i}_dw_relu")(x)
        x = keras.layers.Conv2D(channels, 1, padding="same", kernel_regularizer=reg, bias_regularizer=reg,
                                name=f"ds{i}_pointwise")(x)
        x = keras.layers.BatchNormalization(name=f"ds{i}_pw_bn", **bn)(x)
        x = keras.layers.ReLU(name=f"ds{i}_pw_relu")(x)
    x = keras.layers.Dropout(0.4, seed=seed + 1, name="final_dropout")(x)
    h, w = x.shape[1], x.shape[2]
    x = keras.layers.AveragePooling2D((h, w), name="avg_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=reg, name="classifier")(x)
    return keras.Model(inputs, logits, name=name or f"dscnn_c{channels}")
