"""Learning-rate schedules of the recipe."""

from __future__ import annotations

import math

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


@keras.utils.register_keras_serializable(package="kws_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps` to `peak`, then cosine decay to `min_lr` at
    `total_steps`: BC-ResNet's schedule (the reference sets the rate before each step from
    its 1-based iteration count i: peak * i / warmup while i < warmup, then
    min + (peak - min) * (1 + cos(pi * (i - warmup) / (total - warmup))) / 2)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, min_lr: float = 0.0):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        i = tf.cast(step, tf.float32) + 1.0  # Keras counts steps from 0, the reference from 1
        warmup = float(self.warmup_steps)
        warm_lr = self.peak * i / max(warmup, 1.0)
        progress = tf.clip_by_value((i - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
        cos_lr = self.min_lr + 0.5 * (self.peak - self.min_lr) * (1.0 + tf.cos(math.pi * progress))
        return tf.where(i < warmup, warm_lr, cos_lr)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "min_lr": self.min_lr}


SCHEDULES = ("poly_hold_decay", "warmup_cosine")


def from_config(schedule: dict, peak: float, total_steps: int, steps_per_epoch: int):
    """The learning-rate schedule of a config's (validated) `schedule` block."""
    name = schedule["name"]
    if name == "poly_hold_decay":
        return PolyHoldDecay(peak, total_steps, schedule["warmup_fraction"], schedule["hold_fraction"],
                             schedule["power"], schedule["min_lr"])
    if name == "warmup_cosine":
        warmup = int(round(schedule["warmup_epochs"] * steps_per_epoch))
        return WarmupCosine(peak, total_steps, warmup, schedule["min_lr"])
    raise ValueError(f"unknown schedule {name!r}; one of {', '.join(SCHEDULES)}")
