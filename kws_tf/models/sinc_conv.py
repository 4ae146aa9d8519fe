"""SincConv: a band-pass filterbank with learnable cut-offs, convolved with the raw waveform.

SincNet (Ravanelli & Bengio 2018): each of `filters` kernels is an ideal band-pass
filter between a learnable low cut-off f1 and high cut-off f2, truncated to
`kernel_size` taps and tapered by a Hamming window:

    h[n] = w[n] * (2 f2 sinc(2 f2 n) - 2 f1 sinc(2 f1 n)),   n = -(K-1)/2 .. (K-1)/2,

frequencies in cycles per sample, sinc(x) = sin(pi x) / (pi x). The kernel is symmetric
(linear phase) and has unit gain in the middle of its pass band. (SincNet instead scales
each kernel to a peak value of 1, a gain of fs / (2 (f2 - f1)): the BatchNormalization
that follows makes the scale irrelevant to the function, and unit gain keeps the deployed
int8 kernel and its output on the input's scale.)

Only two numbers per filter are learned: f1 = min_low_hz + |low| and
f2 = clip(f1 + min_band_hz + |band|, min_low_hz, sample_rate / 2), with `low` and `band`
stored in cycles per sample (Hz / sample_rate) so that their gradients are of the order of
the other weights' under the project's SGD (in Hz they would be ~1/16000 of that). They
start mel-spaced between 30 Hz and the Nyquist frequency, as in SincNet.

Input `(1, T, 1)` (height 1, time as width, one channel), output `(1, T', filters)`: the
2-D form of a 1-D convolution, as the project's other models. For the converter,
`deployed(x)` is an ordinary Conv2D with the current kernel fixed (`kws_tf.deploy_graph`
swaps it in), so the flatbuffer has a plain CONV_2D.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

MIN_INIT_HZ = 30.0  # lowest initial cut-off (SincNet)


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_cutoffs_hz(filters: int, sample_rate: float, min_low_hz: float, min_band_hz: float):
    """SincNet's initial (low, high) cut-offs in Hz: adjacent bands on a mel scale."""
    top = sample_rate / 2.0 - (min_low_hz + min_band_hz)
    edges = mel_to_hz(np.linspace(hz_to_mel(MIN_INIT_HZ), hz_to_mel(top), filters + 1))
    return edges[:-1], edges[1:]


@keras.utils.register_keras_serializable(package="kws_tf")
class SincConv(keras.layers.Layer):
    """`filters` learnable band-pass filters of `kernel_size` (odd) taps, applied with `stride`."""

    def __init__(self, filters: int, kernel_size: int, stride: int = 1, sample_rate: int = 16000,
                 min_low_hz: float = 50.0, min_band_hz: float = 50.0, padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters must be positive, got {filters}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3 (a symmetric kernel), got {kernel_size}")
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}")
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if not (0.0 <= min_low_hz and 0.0 < min_band_hz and min_low_hz + min_band_hz < sample_rate / 2.0):
            raise ValueError("need 0 <= min_low_hz, 0 < min_band_hz and min_low_hz + min_band_hz < sample_rate / 2")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.sample_rate = int(sample_rate)
        self.min_low_hz = float(min_low_hz)
        self.min_band_hz = float(min_band_hz)
        self.padding = padding
        half = (self.kernel_size - 1) // 2
        self._n = np.arange(-half, half + 1, dtype=np.float64)  # tap offsets, samples
        self._window = np.hamming(self.kernel_size)  # w[centre] = 1

    def build(self, input_shape):
        if input_shape[-1] != 1 or input_shape[1] != 1:
            raise ValueError(f"SincConv expects input (batch, 1, time, 1), got {tuple(input_shape)}")
        # As SincNet: the mel edges are the offsets above min_low_hz / min_band_hz (the first
        # filter starts at min_low_hz + 30 Hz).
        edge_low, edge_high = mel_cutoffs_hz(self.filters, self.sample_rate, self.min_low_hz, self.min_band_hz)
        low, band = self._params_from_hz(self.min_low_hz + edge_low,
                                         self.min_low_hz + edge_high + self.min_band_hz)
        self.low = self.add_weight(name="low", shape=(self.filters,),
                                   initializer=keras.initializers.Constant(low), trainable=True)
        self.band = self.add_weight(name="band", shape=(self.filters,),
                                    initializer=keras.initializers.Constant(band), trainable=True)
        super().build(input_shape)

    # ------------------------------------------------------------------ cut-offs

    def _params_from_hz(self, low_hz, high_hz):
        low_hz, high_hz = np.asarray(low_hz, np.float64), np.asarray(high_hz, np.float64)
        low = (low_hz - self.min_low_hz) / self.sample_rate
        band = (high_hz - low_hz - self.min_band_hz) / self.sample_rate
        return low.astype(np.float32), band.astype(np.float32)

    def _cutoffs(self):
        """(f1, f2) in cycles per sample, as tensors."""
        nyquist = 0.5
        f1 = self.min_low_hz / self.sample_rate + tf.abs(self.low)
        f2 = tf.clip_by_value(f1 + self.min_band_hz / self.sample_rate + tf.abs(self.band),
                              self.min_low_hz / self.sample_rate, nyquist)
        return f1, f2

    def cutoffs_hz(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (low, high) cut-offs in Hz, one per filter."""
        f1, f2 = self._cutoffs()
        return f1.numpy() * self.sample_rate, f2.numpy() * self.sample_rate

    def set_cutoffs_hz(self, low_hz, high_hz) -> None:
        """Set the filters' cut-offs (Hz); needs low >= min_low_hz and high - low >= min_band_hz."""
        low_hz, high_hz = np.asarray(low_hz, np.float64), np.asarray(high_hz, np.float64)
        if low_hz.shape != (self.filters,) or high_hz.shape != (self.filters,):
            raise ValueError(f"need {self.filters} low and high cut-offs")
        if np.any(low_hz < self.min_low_hz) or np.any(high_hz - low_hz < self.min_band_hz) \
                or np.any(high_hz > self.sample_rate / 2.0):
            raise ValueError("cut-offs outside min_low_hz / min_band_hz / Nyquist")
        low, band = self._params_from_hz(low_hz, high_hz)
        self.low.assign(low)
        self.band.assign(band)

    # ------------------------------------------------------------------ kernel

    def kernel(self):
        """The current Conv2D kernel `(1, kernel_size, 1, filters)`."""
        f1, f2 = self._cutoffs()
        n = tf.constant(self._n, tf.float32)[:, None]  # [K, 1]

        def lowpass(f):  # 2 f sinc(2 f n): ideal low-pass with cut-off f, gain 1
            x = 2.0 * f[None, :] * n  # [K, F]
            return 2.0 * f[None, :] * _sinc(x)

        taps = (lowpass(f2) - lowpass(f1)) * tf.constant(self._window, tf.float32)[:, None]
        return tf.reshape(taps, (1, self.kernel_size, 1, self.filters))

    def call(self, x):
        return tf.nn.conv2d(x, self.kernel(), strides=(1, 1, self.stride, 1), padding=self.padding.upper())

    def conv_macs(self) -> int:
        """Multiply-accumulates per input window (what `kws_tf.model.count_macs` counts)."""
        return int(np.prod(self.output.shape[1:3])) * self.filters * self.kernel_size

    def deployed(self, x):
        """The same filtering as an ordinary Conv2D with the current kernel fixed, applied to `x`."""
        conv = keras.layers.Conv2D(self.filters, (1, self.kernel_size), strides=(1, self.stride),
                                   padding=self.padding, use_bias=False, name=self.name)
        y = conv(x)
        conv.set_weights([self.kernel().numpy()])
        return y

    def compute_output_shape(self, input_shape):
        t = input_shape[2]
        if t is not None:
            t = -(-t // self.stride) if self.padding == "same" else (t - self.kernel_size) // self.stride + 1
        return tf.TensorShape((input_shape[0], 1, t, self.filters))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "stride": self.stride, "sample_rate": self.sample_rate, "min_low_hz": self.min_low_hz,
                "min_band_hz": self.min_band_hz, "padding": self.padding}


def _sinc(x):
    """sin(pi x) / (pi x), 1 at x = 0, with a finite gradient there."""
    safe = tf.where(tf.equal(x, 0.0), tf.ones_like(x), x)
    return tf.where(tf.equal(x, 0.0), tf.ones_like(x), tf.sin(np.pi * safe) / (np.pi * safe))
