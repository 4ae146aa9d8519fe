"""The relaxed-Bernoulli gate of SparkNet, as a serialisable Keras layer.

Input: μ ∈ [-1, 1] (the tanh head). Output: a nearly binary mask g ∈ [0, 1].

- training: z = μ + ε, ε ~ N(0, σ²); g = clip(z + 0.5, 0, 1), and the layer adds
  the sparsity loss λ · mean Φ((μ + 0.5) / σ), the expected fraction of open gates.
- inference: g = clip(μ + 0.5, 0, 1), deterministic, no loss. The converter keeps
  only this branch (ADD, MINIMUM, RELU in the flatbuffer).

The noise is drawn with stateless ops seeded by (seed, step), where `step` is a
non-trainable counter saved with the weights, so a run resumed from a checkpoint
draws exactly the noise the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


def open_probability(mu, sigma: float):
    """Φ((μ + 0.5) / σ): probability that a noisy gate is open (z + 0.5 > 0)."""
    return 0.5 * (1.0 + tf.math.erf((mu + 0.5) / (sigma * math.sqrt(2.0))))


# The secant gate: the straight line through the two corners of the paper's inference gate.
# clip(tanh(h) + 0.5, 0, 1) is 0 for h <= -atanh(1/2) and 1 for h >= atanh(1/2); the line
# s*h + 0.5 with s = 0.5 / atanh(1/2) has the same corners, so clip(s*h + 0.5, 0, 1) opens and
# closes every gate exactly where the paper's does and differs only on partly open gates, by
# at most SECANT_MAX_ERROR (at |h| = acosh(1/sqrt(s)) ~ 0.31). In int8 it costs nothing: s and
# 0.5 fold into the head convolution and an output range of exactly [0, 1] saturates
# (kws_tf.int8_gate), where tanh costs ~810 Cortex-M4 instructions per element in TFLM.
SECANT_SLOPE = 0.5 / math.atanh(0.5)
SECANT_MAX_ERROR = math.tanh(math.acosh(1 / math.sqrt(SECANT_SLOPE))) - SECANT_SLOPE * math.acosh(
    1 / math.sqrt(SECANT_SLOPE))


def secant_gate(h):
    """clip(SECANT_SLOPE * h + 0.5, 0, 1): the int8-free stand-in for clip(tanh(h) + 0.5, 0, 1)."""
    return tf.clip_by_value(SECANT_SLOPE * h + 0.5, 0.0, 1.0)


@keras.utils.register_keras_serializable(package="kws_tf")
class RelaxedBernoulliGate(keras.layers.Layer):
    """Gaussian-relaxed Bernoulli gate with a sparsity penalty.

    Args:
      sigma: standard deviation σ of the training noise (SPEC: 0.5).
      lam: weight λ of the sparsity loss (SPEC: 1.0).
      seed: integer seed of the noise stream.
    """

    def __init__(self, sigma: float = 0.5, lam: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if lam < 0:
            raise ValueError(f"lam must be non-negative, got {lam}")
        self.sigma = float(sigma)
        self.lam = float(lam)
        self.seed = int(seed)

    def build(self, input_shape):
        self.noise_step = self.add_weight(
            name="noise_step", shape=(), dtype=tf.int64, initializer="zeros", trainable=False
        )
        super().build(input_shape)

    def _noise(self, mu):
        step = self.noise_step.assign_add(1)
        seed = tf.stack([tf.constant(self.seed, tf.int64), step])
        return tf.random.stateless_normal(tf.shape(mu), seed=seed, stddev=self.sigma, dtype=mu.dtype)

    def call(self, mu, training=None):
        if training:
            self.add_loss(self.lam * tf.reduce_mean(open_probability(mu, self.sigma)))
            z = mu + self._noise(mu)
        else:
            z = mu
        return tf.clip_by_value(z + 0.5, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"sigma": self.sigma, "lam": self.lam, "seed": self.seed})
        return config
