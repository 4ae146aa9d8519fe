"""SubSpectral Normalisation (Chang et al., Interspeech 2021), as BC-ResNet uses it.

A BatchNorm over `C * S` channels after splitting the frequency axis of an NHWC map
`(time, freq, C)` into `S` contiguous sub-bands of `freq / S` bins: one affine pair
(gamma, beta) and one pair of running statistics per (sub-band, channel). This is the
reference's `SubSpectralNorm(C, 5)` (a `BatchNorm2d(C * 5)` on the view
`(b, C * 5, freq / 5, time)`): the same statistics, the same momentum (PyTorch's 0.1 =
Keras' 0.9) and epsilon (1e-5), and, as PyTorch does, the running variance is updated
with the unbiased batch variance (the normalisation itself uses the biased one).

Deployed form (`deployed(x)`, used by `kws_tf.deploy_graph`): at inference SSN is an affine
map per (frequency bin, channel), y = x * a[f, c] + b[f, c]. It becomes
    RESHAPE (T, F, C) -> (T, 1, F*C)    (same memory order: no data movement)
    DEPTHWISE_CONV_2D 1x1 with bias over the F*C channels
    RESHAPE back to (T, F, C).
Why this form rather than MUL + ADD with constant tensors: the converter quantises a
depthwise kernel per output channel, so each (f, c) scale is one int8 weight with its own
scale, i.e. exact (+-127 times that scale), and the shift goes into the int32 bias at the
accumulator's fine scale; the whole map is rounded once, at the output. MUL and ADD with
constants quantise each constant tensor per tensor (one scale for all F*C factors, so
small factors lose most of their bits) and round twice (after the MUL, after the ADD).
RESHAPE and DEPTHWISE_CONV_2D are in `kws_tf.tflite_tools.MICRO_OPS`; MUL/ADD would be too,
so the choice is only about int8 accuracy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

SSN_MOMENTUM = 0.9  # Keras convention: moving = momentum * moving + (1 - momentum) * batch (PyTorch 0.1)
SSN_EPSILON = 1e-5


@keras.utils.register_keras_serializable(package="kws_tf")
class SubSpectralNorm(keras.layers.Layer):
    """BatchNorm per (frequency sub-band, channel) on NHWC maps `(time, freq, C)`."""

    def __init__(self, sub_bands: int = 5, momentum: float = SSN_MOMENTUM, epsilon: float = SSN_EPSILON,
                 gamma_regularizer=None, beta_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if int(sub_bands) < 1:
            raise ValueError(f"sub_bands must be positive, got {sub_bands}")
        self.sub_bands = int(sub_bands)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.supports_masking = False

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 4:
            raise ValueError(f"{self.name}: SubSpectralNorm wants NHWC maps (batch, time, freq, C), got {shape}")
        freq, channels = shape[2], shape[3]
        if freq is None or channels is None:
            raise ValueError(f"{self.name}: the frequency and channel axes must be known, got {shape}")
        if freq % self.sub_bands:
            raise ValueError(f"{self.name}: the frequency axis ({freq} bins) does not divide into "
                             f"{self.sub_bands} sub-bands")
        stat_shape = (self.sub_bands, channels)
        stat = dict(shape=stat_shape, trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN, experimental_autocast=False)
        self.gamma = self.add_weight(name="gamma", shape=stat_shape, initializer="ones",
                                     regularizer=self.gamma_regularizer, experimental_autocast=False)
        self.beta = self.add_weight(name="beta", shape=stat_shape, initializer="zeros",
                                    regularizer=self.beta_regularizer, experimental_autocast=False)
        self.moving_mean = self.add_weight(name="moving_mean", initializer="zeros", **stat)
        self.moving_variance = self.add_weight(name="moving_variance", initializer="ones", **stat)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={2: freq, 3: channels})
        super().build(input_shape)

    def _bands(self, x):
        _, t, f, c = x.shape
        return tf.reshape(x, [-1, t, self.sub_bands, f // self.sub_bands, c])

    def _normalise(self, bands, mean, variance):
        scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)  # (S, C)
        shift = self.beta - mean * scale
        return bands * scale[:, None, :] + shift[:, None, :]

    def _train(self, x):
        bands = self._bands(x)
        mean, variance = tf.nn.moments(bands, axes=[0, 1, 3])  # per (sub-band, channel)
        n = tf.cast(tf.shape(bands)[0] * bands.shape[1] * bands.shape[3], x.dtype)
        unbiased = variance * n / tf.maximum(n - 1.0, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + unbiased * (1.0 - m))
        return tf.reshape(self._normalise(bands, mean, variance), [-1, *x.shape[1:]])

    def _infer(self, x):
        y = self._normalise(self._bands(x), self.moving_mean, self.moving_variance)
        return tf.reshape(y, [-1, *x.shape[1:]])

    def call(self, x, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        if not self.trainable:  # as BatchNormalization: a frozen layer runs in inference mode
            training = False
        if isinstance(training, (bool, int)):
            return self._train(x) if training else self._infer(x)
        return tf.cond(tf.cast(training, tf.bool), lambda: self._train(x), lambda: self._infer(x))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Inference form per (frequency bin, channel): y = x * scale + shift, each `[F, C]` float64."""
        gamma, beta, mean, var = (np.asarray(w.numpy(), np.float64)
                                  for w in (self.gamma, self.beta, self.moving_mean, self.moving_variance))
        scale = gamma / np.sqrt(var + self.epsilon)
        shift = beta - mean * scale
        per_band = self.input_spec.axes[2] // self.sub_bands
        return np.repeat(scale, per_band, axis=0), np.repeat(shift, per_band, axis=0)

    def deployed(self, x):
        """The inference function in plain layers on `x`: RESHAPE, 1x1 DEPTHWISE_CONV_2D, RESHAPE."""
        _, t, f, c = x.shape
        scale, shift = self.affine()
        flat = keras.layers.Reshape((t, 1, f * c), name=f"{self.name}_to_bins")(x)
        dw = keras.layers.DepthwiseConv2D(1, use_bias=True, name=f"{self.name}_affine")
        y = dw(flat)
        dw.set_weights([scale.reshape(1, 1, f * c, 1).astype(np.float32), shift.reshape(f * c).astype(np.float32)])
        return keras.layers.Reshape((t, f, c), name=f"{self.name}_from_bins")(y)

    def get_config(self):
        config = super().get_config()
        config.update(
            sub_bands=self.sub_bands, momentum=self.momentum, epsilon=self.epsilon,
            gamma_regularizer=keras.regularizers.serialize(self.gamma_regularizer),
            beta_regularizer=keras.regularizers.serialize(self.beta_regularizer),
        )
        return config
