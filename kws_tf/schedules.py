"""Learning-rate schedules of the recipe."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="kws_tf")
class PolyHoldDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, hold, then polynomial decay to `min_lr` (NeMo's
    PolynomialHoldDecayAnnealing, the schedule of SparkNet's released config)."""

    def __init__(self, peak: float, total_steps: int, warmup_fraction: float = 0.05,
                 hold_fraction: float = 0.4, power: float = 2.0, min_lr: float = 1e-6):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.hold_fraction = float(hold_fraction)
        self.power = float(power)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = float(max(self.total_steps, 1))
        warmup = self.warmup_fraction * total
        hold_end = warmup + self.hold_fraction * total
        warm_lr = self.peak * (step + 1.0) / max(warmup, 1.0)
        progress = tf.clip_by_value((step - hold_end) / max(total - hold_end, 1.0), 0.0, 1.0)
        decay_lr = (self.peak - self.min_lr) * tf.pow(1.0 - progress, self.power) + self.min_lr
        return tf.where(step < warmup, warm_lr, tf.where(step < hold_end, self.peak, decay_lr))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_fraction": self.warmup_fraction,
                "hold_fraction": self.hold_fraction, "power": self.power, "min_lr": self.min_lr}
