"""BC-ResNet (Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting",
Interspeech 2021) as published, on kws_tf's pipeline.

Input `(1, T, F)` = 101 frames x 40 log-mel bands, reshaped (a RESHAPE op, no transpose:
same memory order) into a one-channel image `(T, F, 1)` = (time, frequency); a paper kernel
written "frequency x time" appears here as "time x frequency".

`build_bcresnet(channels=8)` -- BC-ResNet-tau with base width `channels` = 8 tau
(BC-ResNet-1: channels=8; -0.625/-1.5/-2/-3/-6/-8 are channels 5/12/16/24/48/64).
Widths as the authors' code (`bcresnet_widths`): stem 2C, stages C, int(1.5C), 2C,
int(2.5C) (2, 2, 4, 4 blocks; frequency stride 2 in the first block of stages 2 and 3;
temporal dilation 1, 2, 4, 8), head 4C. Frequency 40 -> 20 (stem) -> 10 -> 5.
Stem: 5x5 conv, frequency stride 2 -> BN -> ReLU. A BC-ResBlock:
    [transition (in != out) only: 1x1 conv -> BN -> ReLU]
    f2: frequency-depthwise conv (3 over frequency) -> SubSpectral Norm (5 sub-bands) = x2
    average over frequency -> temporal-depthwise conv (3, dilated) -> BN -> swish
    -> 1x1 conv -> channel dropout 0.1                                     = x1 (T, 1, C)
    out = ReLU(x1 broadcast over frequency + x2 [+ block input when not a transition]).
Classifier: depthwise conv 5 (time, zero-padded by 2 at each end) x 5 (all remaining
frequency bins, valid) -> 1x1 conv -> BN -> ReLU -> average over all T frames -> dense
(the paper's 1x1 conv with bias).

Trainable parameters (no conv has a bias except the classifier; BN and SSN count gamma
and beta; int() truncates 1.5C and 2.5C, which the count needs: C=5 gives 7 and 12):
    stem             25*2C + 2*2C
    block (width c)  f2 dw 3c + SSN 2*5c, f1 dw 3c + BN 2c, 1x1 c^2      = 18c + c^2
      + transition   in*c + BN 2c
    head             dw 25*c4 + 1x1 c4*4C + BN 2*4C + dense 4C*12 + 12   (c4 = int(2.5C))
  BC-ResNet-1 (C=8): 432 + 560 + 840 + 2,400 + 3,400 + 1,600 = 9,232; BC-ResNet-0.625
  (C=5): 270 + 290 + 399 + 1,210 + 1,584 + 832 = 4,585 -- the reference code's counts
  (tests/test_bcresnet.py sums these groups).

`norm="bn"` keeps the former variant: plain BatchNormalization instead of SSN (no
frequency constraint; SSN holds 5x BN's affine parameters, so tau=1 has 1,472 fewer:
7,760 on 40 log-mel; 7,660 on 32 MFCC, whose 4 remaining bins give a 5x4 head kernel).

Remaining departures from the paper / reference code:
  - front-end: kws_tf's log-mel (25 ms window, Slaney area-normalised mel filters,
    ln(mel + 1e-6), then per-band mean/std normalisation) rather than torchaudio's
    MelSpectrogram (30 ms window, HTK mel filters, log(mel + 1e-6), not normalised);
  - SpecAugment masks the normalised features with 0 (the training mean; the reference
    zeroes raw log-mel) and mask widths are drawn 0..max inclusive (configs set max =
    the reference's parameter - 1, its widths being int(uniform(0, para)));
  - TF "same" padding with stride 2 puts the odd zero at the end where PyTorch pads both
    ends alike (stem, first blocks of stages 2 and 3): the strided outputs sample the
    frequency axis one bin later;
  - noise augmentation (configs): background noise at 0-20 dB SNR in 80% of the clips
    where the reference scales a noise file by uniform(0, 0.1);
  - int8 deployment: swish is LOGISTIC + MUL in int8; `activation="relu"` replaces it if a
    target lacks LOGISTIC; SSN and the head's time padding take their deployed forms below.

Every op lands on a TFLM int8 kernel (RESHAPE, CONV_2D, DEPTHWISE_CONV_2D, ADD,
AVERAGE_POOL_2D; swish LOGISTIC and MUL). Two custom layers carry a `deployed(x)` form for
`kws_tf.deploy_graph`: `SubSpectralNorm` (kws_tf/models/subspectral_norm.py: a per-(bin,
channel) 1x1 depthwise conv between reshapes) and `TimePaddedDepthwiseConv2D` (the head's
time padding without a PAD op, which TFLM's op list here lacks: see its docstring).
Reloading `model.keras` needs `custom_objects()`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from kws_tf import labels
from kws_tf.features import NUM_FRAMES, NUM_LOGMEL
from kws_tf.models.common import image_input, l2
from kws_tf.models.subspectral_norm import SubSpectralNorm

BCRESNET_BLOCKS = (2, 2, 4, 4)  # blocks per stage
BCRESNET_STRIDE_STAGES = (1, 2)  # stages whose first block halves the frequency axis
SSN_SUB_BANDS = 5
HEAD_KERNEL_TIME = 5
NORMS = ("ssn", "bn")


def bcresnet_widths(channels: int) -> list[int]:
    """[stem, stage 1..4, head] widths for base width `channels` (= 8 tau), as the authors' code."""
    c = channels
    return [2 * c, c, int(c * 1.5), 2 * c, int(c * 2.5), 4 * c]


def stage_frequencies(num_coeffs: int) -> list[int]:
    """Frequency bins in stages 1..4 ("same" padding: each stride-2 step rounds up)."""
    f = math.ceil(num_coeffs / 2)  # the stem's stride
    out = []
    for stage in range(len(BCRESNET_BLOCKS)):
        if stage in BCRESNET_STRIDE_STAGES:
            f = math.ceil(f / 2)
        out.append(f)
    return out


@keras.utils.register_keras_serializable(package="kws_tf")
class TimePaddedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Depthwise conv, "valid" over frequency, zero-padded by `time_padding` frames at both
    ends of time: the reference classifier's `Conv2d(c, c, (5, 5), groups=c, padding=(0, 2))`.

    Deployed form (`deployed(x)`) without a PAD op (not in `kws_tf.tflite_tools.MICRO_OPS`):
    when the kernel spans every remaining frequency bin (one output column) and the padding
    is "same" over time, the conv is a sum over bins of per-bin temporal convs:
        RESHAPE (T, F, C) -> (T, 1, F*C)
        DEPTHWISE_CONV_2D (kt x 1, "same") with weights F * w[k, f, c]
        RESHAPE back to (T, F, C), AVERAGE_POOL_2D (1 x F)  (the mean of F partial sums x F).
    The same MACs as the trained conv; all three op kinds are TFLM int8 kernels.
    """

    def __init__(self, kernel_size, time_padding: int = 0, **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(kernel_size, **kwargs)
        self.time_padding = int(time_padding)

    def call(self, inputs):
        p = self.time_padding
        if p:
            inputs = tf.pad(inputs, [[0, 0], [p, p], [0, 0], [0, 0]])
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        if shape[1] is not None:
            shape[1] += 2 * self.time_padding
        return super().compute_output_shape(shape)

    def get_config(self):
        return {**super().get_config(), "time_padding": self.time_padding}

    def deployed(self, x):
        _, t, f, c = x.shape
        kt, kf = self.kernel_size
        plain = (self.depth_multiplier == 1 and tuple(self.strides) == (1, 1)
                 and tuple(self.dilation_rate) == (1, 1) and kt % 2 == 1 and 2 * self.time_padding == kt - 1)
        if kf != f or not plain:
            raise ValueError(f"{self.name}: only a stride-1 kernel spanning all {f} frequency bins with "
                             f"'same' time padding has a deployed form (kernel {self.kernel_size}, "
                             f"time padding {self.time_padding})")
        weights = self.get_weights()
        kernel = np.asarray(weights[0], np.float64)  # (kt, F, C, 1)
        per_bin = (kernel[:, :, :, 0] * f).reshape(kt, 1, f * c, 1).astype(np.float32)
        new = [per_bin]
        if self.use_bias:  # the mean over bins of a per-bin copy of the bias is the bias
            new.append(np.tile(np.asarray(weights[1], np.float32), f))
        y = keras.layers.Reshape((t, 1, f * c), name=f"{self.name}_to_bins")(x)
        dw = keras.layers.DepthwiseConv2D((kt, 1), padding="same", use_bias=self.use_bias,
                                          activation=self.activation, name=f"{self.name}_per_bin")
        if keras.activations.serialize(self.activation) not in ("linear", None):
            raise ValueError(f"{self.name}: a deployed form needs a linear activation")
        y = dw(y)
        dw.set_weights(new)
        y = keras.layers.Reshape((t, f, c), name=f"{self.name}_from_bins")(y)
        return keras.layers.AveragePooling2D((1, f), name=f"{self.name}_sum_bins")(y)


def custom_objects() -> dict:
    return {"SubSpectralNorm": SubSpectralNorm, "TimePaddedDepthwiseConv2D": TimePaddedDepthwiseConv2D}


def build_bcresnet(
    channels: int = 8,
    num_frames: int = NUM_FRAMES,
    num_coeffs: int = NUM_LOGMEL,  # the paper's 40 log-mel bands (kws_tf.frontends "logmel")
    num_classes: int = labels.NUM_CLASSES,
    weight_decay: float = 0.0,
    seed: int = 0,
    activation: str = "swish",
    dropout: float = 0.1,
    norm: str = "ssn",
    name: str | None = None,
    **unused,  # sigma, lam: SparkNet's gate settings, which the training code passes to every model
) -> keras.Model:
    """BC-ResNet with base width `channels` (8 tau); outputs logits `[batch, num_classes]`."""
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if activation not in ("swish", "relu"):
        raise ValueError(f"activation must be 'swish' or 'relu', got {activation!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    freqs = stage_frequencies(num_coeffs)
    if norm == "ssn" and any(f % SSN_SUB_BANDS for f in freqs):
        raise ValueError(
            f"BC-ResNet with SubSpectral Norm needs a frequency axis divisible by {SSN_SUB_BANDS} in every "
            f"stage: {num_coeffs} input bins give {', '.join(map(str, freqs))} (the paper: 40 log-mel bands "
            f"-> 20, 10, 5, 5); use num_coeffs=40 or norm='bn'")
    reg = l2(weight_decay)
    conv = dict(use_bias=False, kernel_regularizer=reg)
    dwconv = dict(use_bias=False, depthwise_regularizer=reg)
    bn = dict(momentum=0.9, epsilon=1e-5, beta_regularizer=reg, gamma_regularizer=reg)
    widths = bcresnet_widths(channels)

    def freq_norm(y, p):
        if norm == "ssn":
            return SubSpectralNorm(SSN_SUB_BANDS, gamma_regularizer=reg, beta_regularizer=reg, name=f"{p}_freq_ssn")(y)
        return keras.layers.BatchNormalization(name=f"{p}_freq_bn", **bn)(y)

    inputs, x = image_input(num_frames, num_coeffs, name="logmel")
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
            # f2: frequency-depthwise conv (3 over frequency = the image width) + SubSpectral Norm
            y = keras.layers.DepthwiseConv2D((1, 3), strides=(1, stride), padding="same",
                                             name=f"{p}_freq_dw", **dwconv)(y)
            x2 = freq_norm(y, p)
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

    # classifier: 5 (time, padded by 2 at both ends) x all remaining bins (5 on 40 log-mel)
    f = x.shape[2]
    x = TimePaddedDepthwiseConv2D((HEAD_KERNEL_TIME, f), time_padding=HEAD_KERNEL_TIME // 2,
                                  name="head_dw", **dwconv)(x)
    x = keras.layers.Conv2D(widths[-1], 1, name="head_pointwise", **conv)(x)
    x = keras.layers.BatchNormalization(name="head_bn", **bn)(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.AveragePooling2D((x.shape[1], 1), name="time_avg")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=reg, name="classifier")(x)
    return keras.Model(inputs, logits, name=name or f"bcresnet_c{channels}")
