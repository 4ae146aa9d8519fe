"""Sinc-convolution KWS on the raw waveform (Mittermaier et al., ICASSP 2020), for TFLM int8.

Input `(1, 16000, 1)`: 1 s of PCM as float in [-1, 1) (the "waveform" front-end), height 1,
time as the width, one channel -- the same 2-D form as SparkNet's `(1, T, F)`.

`build_sincnet(channels=162)`:
  SincConv 40 band-pass filters x 101 taps, stride 8 (`kws_tf.models.sinc_conv`)
    -> BN -> ReLU -> average pool 2 -> dropout 0.1                       (1, 1000, 40)
  5 GDSConv blocks, `channels` wide, kernels 25, 9, 9, 9, 9, the first with stride 2,
  pointwise groups 1, 2, 3, 2, 3; each: depthwise (1, k) -> grouped 1x1 -> BN -> ReLU
    -> average pool 2 -> dropout 0.1                                     (1, 15, C)
  average over time -> dense 12.
The paper's sizes (40 filters, 101 taps, stride 8, 5 blocks of 160 channels with kernels 25/9
and groups up to 3; ~62 k parameters) with C = 162, the nearest width that groups of 2 and 3
divide (as hannah's reproduction of the paper); 60,788 trainable parameters. `channels`
scales the blocks only; the filterbank stays 40 bands (its width is a frequency resolution,
not a capacity). Any C >= 3 works: a grouped 1x1 splits channels into near-equal parts.

Departures from the paper, all for the Feb-2023 TFLM library on the board (MICRO_OPS):
  - log-compression log(|x| + 1) after the filterbank is replaced by BN -> ReLU -> average
    pooling: a half-wave rectified, smoothed energy envelope. The converter does emit an int8
    LOG, but TFLM's LOG kernel takes float32 only (checked: even the 2026 `tflite_micro` build
    fails the invoke with "INT8 != FLOAT32"), and ABS, which has an int8 kernel, is not in
    MICRO_OPS; TANH/LOGISTIC as a compressor would cost ~800 instructions per element on
    80,000 elements. The converter folds this BN and ReLU into the filterbank's CONV_2D (bias
    + fused activation; the flatbuffer has no MUL/ADD/RELU, tested) and the pooling is
    AVERAGE_POOL_2D: the envelope costs nothing beyond the convolution. The dynamic range is
    the int8 input's anyway (the PCM arrives as 8 bits), so a log stage could not recover
    quiet detail the input has already lost.
  - the blocks run conv -> BN -> ReLU (the paper: conv -> ReLU -> BN), so every BN folds into
    its convolution and every ReLU fuses (kws_tf.deploy_graph); with the paper's order each BN
    would remain as MUL + ADD over the whole map.
  - a grouped pointwise convolution is written as g channel slices (STRIDED_SLICE), g ordinary
    1x1 convolutions and a CONCATENATION, not as one grouped CONV_2D (a filter with fewer input
    channels than its input): we could not confirm that the board's Feb-2023 library (CMSIS-NN
    CONV_2D) accepts that, and every op here certainly has an int8 kernel there.
  - BN momentum 0.9, L2 weight decay on all weights (as the other models here), dropout as
    plain (not spatial) dropout.

What this model means for the device (`python -m kws_tf.model --model=sincnet --C=162`; the
int8 export of a 1-epoch run: `python -m kws_tf.export --int8`; tests/test_sinc.py):
  - no MFCC front-end runs on the device: the model input is the PCM itself, 16,000 int8
    samples = a 16,000-byte input tensor per inference (MFCC: 101 x 32 = 3,232 bytes), and
    the ~30 k instructions per MFCC frame of the portable core disappear;
  - MACs per 1 s window: 17.96 M, of which the filterbank 8.08 M (45 %), the 1x1 convolutions
    8.69 M, the depthwise ones 1.18 M (DS-CNN on our MFCC: 17.3 M, MLPerf's DS-CNN 2.66 M,
    SparkNet C=32 1.07 M). Run every 40 ms on a sliding 1 s window: 25 x 17.96 M = 449 M MACs
    per second of audio. As a stream (each layer computing only its new outputs, state kept
    between hops) about 18 M MACs per second of audio -- but no step (streaming) form of this
    model exists, and the strides/pools (8 x 2 x 2 x 2 ...) make its hop 64..1024 samples;
  - time, estimated from ../shared/ON_CHIP.md's Cortex-M4 unit costs (CMSIS-NN 1x1 conv ~3.4,
    depthwise ~13 instructions per MAC; the 1x101 filterbank assumed at the 1x1 rate):
    ~72 M instructions per inference, ~1.4-1.7 s at 64 MHz -- the Nano 33 BLE cannot run
    even one inference per second of audio with it (not measured on a board or emulator);
  - flash: 95,968 bytes of int8 flatbuffer (60,788 weights + per-channel quantisation);
  - arena: the filterbank's output (2,000 x 40 = 80,000 bytes) and the first block's 1x1
    output (500 x 162 = 81,000 bytes) each live next to their neighbours: 162,000 bytes of
    tensor arena on the host (`kws_tf.tflm.min_arena_bytes`), against 21,192 for SparkNet
    C=32 -- it fits the board's 256 KB RAM next to the sketch's ~42 KB, but only just.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from kws_tf import features, labels
from kws_tf.models.common import l2
from kws_tf.models.sinc_conv import SincConv

SINC_FILTERS = 40
SINC_KERNEL = 101
SINC_STRIDE = 8
BLOCK_KERNELS = (25, 9, 9, 9, 9)
BLOCK_STRIDES = (2, 1, 1, 1, 1)
BLOCK_GROUPS = (1, 2, 3, 2, 3)
POOL = 2
DROPOUT = 0.1
DEFAULT_CHANNELS = 162


@keras.utils.register_keras_serializable(package="kws_tf")
class ChannelSlice(keras.layers.Layer):
    """Channels [start, stop) of a channels-last map: one group of a grouped convolution."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got {start}, {stop}")
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape((*input_shape[:-1], self.stop - self.start))

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def split_sizes(n: int, groups: int) -> list[int]:
    """`n` channels in `groups` near-equal parts, larger parts first."""
    return [n // groups + (1 if g < n % groups else 0) for g in range(groups)]


def _grouped_pointwise(x, channels: int, groups: int, prefix: str, reg, bn: dict):
    """1x1 convolution in `groups` groups, each + BN + ReLU, concatenated."""
    if groups == 1:
        parts = [(x, channels, prefix)]
    else:
        parts, start = [], 0
        for g, (cin, cout) in enumerate(zip(split_sizes(x.shape[-1], groups), split_sizes(channels, groups))):
            parts.append((ChannelSlice(start, start + cin, name=f"{prefix}_g{g}_in")(x), cout, f"{prefix}_g{g}"))
            start += cin
    outs = []
    for xin, cout, name in parts:
        y = keras.layers.Conv2D(cout, 1, use_bias=False, kernel_regularizer=reg, name=f"{name}_pointwise")(xin)
        y = keras.layers.BatchNormalization(name=f"{name}_bn", **bn)(y)
        outs.append(keras.layers.ReLU(name=f"{name}_relu")(y))
    return outs[0] if len(outs) == 1 else keras.layers.Concatenate(name=f"{prefix}_concat")(outs)


def build_sincnet(
    channels: int = DEFAULT_CHANNELS,
    num_samples: int = features.CLIP_SAMPLES,
    num_classes: int = labels.NUM_CLASSES,
    weight_decay: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    sinc_filters: int = SINC_FILTERS,
    **unused,  # sigma, lam, time_average: SparkNet's settings, which the training code passes to every model
) -> keras.Model:
    """The sinc-convolution GDSConv network with `channels`-wide blocks; logits `[batch, num_classes]`."""
    if channels < max(BLOCK_GROUPS):
        raise ValueError(f"channels must be at least {max(BLOCK_GROUPS)} (the largest group count), got {channels}")
    reg = l2(weight_decay)
    bn = dict(momentum=0.9, epsilon=1e-3, beta_regularizer=reg, gamma_regularizer=reg)

    inputs = keras.Input(shape=(1, num_samples, 1), name="waveform")
    x = SincConv(sinc_filters, SINC_KERNEL, SINC_STRIDE, sample_rate=features.SAMPLE_RATE, name="sinc")(inputs)
    x = keras.layers.BatchNormalization(name="sinc_bn", **bn)(x)
    x = keras.layers.ReLU(name="sinc_relu")(x)
    x = keras.layers.AveragePooling2D((1, POOL), name="sinc_pool")(x)
    x = keras.layers.Dropout(DROPOUT, seed=seed, name="sinc_dropout")(x)
    for i, (k, s, g) in enumerate(zip(BLOCK_KERNELS, BLOCK_STRIDES, BLOCK_GROUPS), start=1):
        x = keras.layers.DepthwiseConv2D((1, k), strides=(1, s), padding="same", use_bias=False,
                                         depthwise_regularizer=reg, name=f"b{i}_depthwise")(x)
        x = _grouped_pointwise(x, channels, g, f"b{i}", reg, bn)
        x = keras.layers.AveragePooling2D((1, POOL), name=f"b{i}_pool")(x)
        x = keras.layers.Dropout(DROPOUT, seed=seed + i, name=f"b{i}_dropout")(x)
    x = keras.layers.AveragePooling2D((1, x.shape[2]), name="avg_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=reg, name="classifier")(x)
    return keras.Model(inputs, logits, name=name or f"sincnet_c{channels}")


def custom_objects() -> dict:
    return {"SincConv": SincConv, "ChannelSlice": ChannelSlice}
