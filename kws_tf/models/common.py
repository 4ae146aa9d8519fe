"""Conventions every architecture shares: weight decay as an L2 penalty, the image view of the input."""

from __future__ import annotations

import tf_keras as keras


def l2(weight_decay: float):
    # PyTorch's SGD weight_decay adds wd·w to every gradient; an L2 penalty of
    # (wd/2)·Σw² has exactly that gradient.
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def image_input(num_frames: int, num_coeffs: int, name: str = "mfcc"):
    """Input `(1, T, F)` and its `(T, F, 1)` image (a reshape: same memory order)."""
    inputs = keras.Input(shape=(1, num_frames, num_coeffs), name=name)
    x = keras.layers.Reshape((num_frames, num_coeffs, 1), name="to_image")(inputs)
    return inputs, x
