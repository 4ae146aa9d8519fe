"""BC-ResNet (Kim et al., Interspeech 2021) on kws_tf's front-end.

Input `(1, T, F)` reshaped (a RESHAPE op, no transpose: same memory order) into a one-channel
image `(T, F, 1)` = (time, frequency); a paper kernel written "frequency x time" appears
here as "time x frequency".

`build_bcresnet(channels=8)` -- BC-ResNet-tau (Kim et al., Interspeech 2021, "Broadcasted
Residual Learning for Efficient Keyword Spotting") with base width `channels` = 8 tau
(BC-ResNet-1: channels=8; the paper's -0.625/-1.5/-2/-3/-6/-8 are channels 5/12/16/24/48/64).
Stage widths as in the authors' code: stem 2C, stages C, 1.5C, 2C, 2.5C (2, 2, 4, 4
blocks; frequency stride 2 in the first block of stages 2 and 3; temporal dilation
1, 2, 4, 8), head 4C. A BC-ResBlock:
    [transition only: 1x1 conv -> BN -> ReLU]
    f2: frequency-depthwise conv (3 over frequency) -> norm       = x2  (2-D features)
    average over frequency -> temporal-depthwise conv (3, dilated) -> BN -> swish
    -> 1x1 conv -> channel dropout 0.1                              = x1  (1-D features)
    out = ReLU(x1 broadcast over frequency + x2 [+ block input when not a transition]).
Classifier: depthwise conv (5 time x all remaining frequency bins, valid) -> 1x1 conv
-> BN -> ReLU -> average over time -> dense (the paper's 1x1 conv with bias).
Departures from the paper:
  - input: our 32 MFCC coefficients x 101 frames instead of 40 log-mel bands, so the
    frequency axis is 32 -> 16 -> 8 -> 4 (paper: 40 -> 20 -> 10 -> 5) and a "frequency
    average" is an average over (strided) cepstral coefficients, not mel bands;
  - SubSpectral Normalisation (5 sub-bands) is replaced by plain BatchNormalization
    (it folds into the depthwise conv for int8 and tfmot QAT accepts it; an SSN would
    need a per-(frequency, channel) affine op after the conv). SSN holds 5x the affine
    parameters of BN: -8 C_block parameters per block, 1,472 in all for tau=1;
  - the classifier's depthwise kernel is 5 x 4 (the 4 frequency bins left) instead of
    5 x 5 (-100 parameters for tau=1) and is "valid" over time as well (the paper pads
    time by 2), so the time average is over T - 4 = 97 frames;
  - TF "same" padding with stride 2 pads one more zero at the end than PyTorch's
    symmetric padding.
  BC-ResNet-1 here: 7,660 trainable parameters (paper: 9,232 = 7,660 + 1,472 + 100).
  `activation="relu"` replaces swish (LOGISTIC + MUL in int8) if a target lacks LOGISTIC.

The graph uses only Keras layers that the converter maps to TFLM int8 kernels
(RESHAPE, CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, FULLY_CONNECTED; with
swish also LOGISTIC and MUL); no MEAN (the averages are AveragePooling2D), no
custom layers, so `model.keras` reloads without custom objects.
"""

from __future__ import annotations

import tf_keras as keras

from kws_tf import features, labels
from kws_tf.models.common import image_input, l2

BCRESNET_BLOCKS = (2, 2, 4, 4)  # blocks per stage
BCRESNET_STRIDE_STAGES = (1, 2)  # stages whose first block halves the frequency axis


def bcresnet_widths(channels: int) -> list[int]:
    """[stem, stage 1..4, head] widths for base width `channels` (= 8 tau), as the authors' code."""
    c = channels
    return [2 * c, c, int(c * 1.5), 2 * c, int(c * 2.5), 4 * c]


def build_bcresnet(
    channels: int = 8,
    num_frames: int = features.NUM_FRAMES,
    num_coeffs: int = features.NUM_MFCC,
    num_classes: int = labels.NUM_CLASSES,
    weight_decay: float = 0.0,
    seed: int = 0,
    activation: str = "swish",
    dropout: float = 0.1,
    name: str | None = None,
    **unused,  # sigma, lam: SparkNet's gate settings, which the training code passes to every model
) -> keras.Model:
    """BC-ResNet with base width `channels` (8 tau); outputs logits `[batch, num_classes]`."""
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if activation not in ("swish", "relu"):
        raise ValueError(f"activation must be 'swish' or 'relu', got {activation!r}")
    reg = l2(weight_decay)
    conv = dict(use_bias=False, kernel_regularizer=reg)
    dwconv = dict(use_bias=False, depthwise_regularizer=reg)
    bn = dict(momentum=0.9, epsilon=1e-5, beta_regularizer=reg, gamma_regularizer=reg)
    widths = bcresnet_widths(channels)

    inputs, x = image_input(num_frames, num_coeffs)
    x = keras.layers.Conv2D(widths[0], 5, strides=(1, 2), padding="same", name="stem_conv", **conv)(x)
    x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)

    in_c = widths[0]
    n_block = 0
    for stage, n in enumerate(BCRESNET_BLOCKS):
        out_c = widths[stage + 1]
        dilation = 2 ** stage
        for j in range(n):
            n_block += 1
            p = f"s{stage + 1}b{j + 1}"
            transition = in_c != out_c
            stride = 2 if (j == 0 and stage in BCRESNET_STRIDE_STAGES) else 1
            shortcut = x
            y = x
            if transition:
                y = keras.layers.Conv2D(out_c, 1, name=f"{p}_transition", **conv)(y)
                y = keras.layers.BatchNormalization(name=f"{p}_transition_bn", **bn)(y)
                y = keras.layers.ReLU(name=f"{p}_transition_relu")(y)
            # f2: frequency-depthwise conv (3 over frequency = the image width) + norm (SSN in the paper)
            y = keras.layers.DepthwiseConv2D((1, 3), strides=(1, stride), padding="same",
                                             name=f"{p}_freq_dw", **dwconv)(y)
            x2 = keras.layers.BatchNormalization(name=f"{p}_freq_bn", **bn)(y)
            # frequency average -> f1: temporal-depthwise conv (dilated) + BN + swish, 1x1 conv
            f = x2.shape[2]
            y = keras.layers.AveragePooling2D((1, f), name=f"{p}_freq_avg")(x2)
            y = keras.layers.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same",
                                             name=f"{p}_time_dw", **dwconv)(y)
            y = keras.layers.BatchNormalization(name=f"{p}_time_bn", **bn)(y)
            y = keras.layers.Activation(activation, name=f"{p}_time_act")(y)
            y = keras.layers.Conv2D(out_c, 1, name=f"{p}_pointwise", **conv)(y)
            if dropout > 0:
                y = keras.layers.SpatialDropout2D(dropout, seed=seed + n_block, name=f"{p}_channel_drop")(y)
            # broadcast residual: the (T, 1, C) 1-D features are added to every frequency bin
            terms = [x2, y] if transition else [shortcut, x2, y]
            x = keras.layers.Add(name=f"{p}_add")(terms)
            x = keras.layers.ReLU(name=f"{p}_relu")(x)
            in_c = out_c

    t, f = x.shape[1], x.shape[2]
    kt = min(5, t)
    x = keras.layers.DepthwiseConv2D((kt, f), padding="valid", name="head_dw", **dwconv)(x)
    x = keras.layers.Conv2D(widths[-1], 1, name="head_pointwise", **conv)(x)
    x = keras.layers.BatchNormalization(name="head_bn", **bn)(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.AveragePooling2D((x.shape[1], 1), name="time_avg")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=reg, name="classifier")(x)
    return keras.Model(inputs, logits, name=name or f"bcresnet_c{channels}")
