"""The front-ends a model may declare (`kws_tf.models.ModelSpec.frontend`), defined once.

A front-end turns a 1 s clip into the model input `(1, steps, dim)` (height 1, time as the
width, coefficients as channels) and says how those features are prepared for int8:

  mfcc      101 frames x 32 MFCC (kws_tf.features): per-coefficient mean/std from the
            training clips, int8 input scale from calibration, SpecAugment applies. The
            per-frame step model and the streaming twin exist for it (micro_app computes it).
            The others do not stream yet (the ctypes twin and the step model are MFCC-only):
            their exports carry no step model and the twin refuses them (see `streams`).
  logmel    101 frames x 40 log-mel energies: the MFCC pipeline stopped before the DCT
            (same framing, window, FFT, Slaney bands, `ln(mel + LOG_OFFSET)`), as BC-ResNet
            was published. Normalised and quantised like the MFCC; SpecAugment applies.
            micro_app computes it when its core is built with -DKWS_FRONTEND_LOGMEL (the
            generated kws_settings.h says kFrontEndDct = false and checks the build).
  waveform  16000 samples x 1: the PCM as float in [-1, 1) (`features.PCM_SCALE`). Not
            normalised (identity statistics, recorded as such): the scale is already fixed,
            a data-derived std would only make the int8 input scale depend on the training
            set and clip loud clips, and the model's first layer (sinc filters) is linear and
            learns its own gain. The int8 input is fixed to scale 1/128, zero point 0, so
            the device's input is its int16 PCM rounded to int8 (`round(pcm / 256)`), with
            no front-end on the device at all. SpecAugment (masks over frames and bands)
            has no meaning here and is skipped.

`np(audio)` is the NumPy reference (int16 PCM or float, one clip -> `[steps, dim]` float32,
what the device computes); `tf(audio)` the batched TF graph tf.data uses (float audio
`[B, samples]` -> `[B, steps, dim]`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from kws_tf import features

# int16 PCM -> int8 with the sign and 7 most significant bits: scale 2^8 / 2^15.
WAVEFORM_INPUT_SCALE = 1.0 / 128.0
WAVEFORM_INPUT_ZERO_POINT = 0


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    name: str
    steps: int  # time axis of the model input (frames, or samples)
    dim: int  # coefficients per step (channels of the model input)
    np_fn: Callable  # (clip) -> [steps, dim] float32
    tf_fn: Callable  # (float audio [B, samples]) -> [B, steps, dim]
    normalized: bool  # per-coefficient mean/std from the training clips; else identity
    spec_augment: bool  # SpecAugment masks (augment.spec_augment) apply to its features
    # micro_app's C++ front-end computes it, frame by frame: the per-frame step model, the
    # streaming twin (simulate/native) and the operating point calibrated on streams exist for it.
    streams: bool
    fixed_input_quant: tuple | None = None  # (scale, zero_point) of the int8 input; None: calibrated
    # micro_app's C++ front-end (mfcc_frontend.*) can compute it from a generated kws_settings.h:
    # its mel band count and whether the DCT follows (the core's build profile, kws_dims.h).
    mel_bands: int | None = None
    dct: bool = False
    summary: str = ""

    @property
    def input_shape(self) -> tuple:
        return (1, self.steps, self.dim)

    def np(self, audio: np.ndarray) -> np.ndarray:
        """NumPy reference features of one clip (int16 or float, cropped/padded to 1 s)."""
        return self.np_fn(features.fix_length(np.asarray(audio)))

    def tf(self, audio):
        """Batched TF features of float audio `[B, CLIP_SAMPLES]`."""
        return self.tf_fn(audio)

    def calibration_inputs(self, x: np.ndarray) -> np.ndarray:
        """The converter's representative inputs from normalised features `x` `[N, 1, steps, dim]`.

        For a fixed input quantisation the converter must observe exactly the range it implies:
        the inputs are clipped to it and one example holding both ends is added, so that the
        calibrated min/max (hence scale and zero point) are the fixed ones."""
        if self.fixed_input_quant is None:
            return x
        scale, zp = self.fixed_input_quant
        lo, hi = (-128 - zp) * scale, (127 - zp) * scale
        ends = np.zeros((1,) + x.shape[1:], np.float32)
        ends.reshape(-1)[:2] = (lo, hi)
        return np.concatenate([np.clip(x, lo, hi).astype(np.float32), ends])


def _waveform_np(audio: np.ndarray) -> np.ndarray:
    return features.pcm_to_float(audio)[:, None]


def _waveform_tf(audio):
    import tensorflow as tf

    return tf.convert_to_tensor(audio, tf.float32)[..., None]


_FRONTENDS = {
    fe.name: fe
    for fe in (
        FrontEnd("mfcc", features.NUM_FRAMES, features.NUM_MFCC, features.mfcc_np, features.mfcc_tf,
                 normalized=True, spec_augment=True, streams=True, mel_bands=features.NUM_MEL, dct=True,
                 summary=f"{features.NUM_FRAMES} frames x {features.NUM_MFCC} MFCC"),
        FrontEnd("logmel", features.NUM_FRAMES, features.NUM_LOGMEL, features.log_mel_np, features.log_mel_tf,
                 normalized=True, spec_augment=True, streams=False, mel_bands=features.NUM_LOGMEL, dct=False,
                 summary=f"{features.NUM_FRAMES} frames x {features.NUM_LOGMEL} log-mel bands"),
        FrontEnd("waveform", features.CLIP_SAMPLES, 1, _waveform_np, _waveform_tf,
                 normalized=False, spec_augment=False, streams=False,
                 fixed_input_quant=(WAVEFORM_INPUT_SCALE, WAVEFORM_INPUT_ZERO_POINT),
                 summary=f"{features.CLIP_SAMPLES} PCM samples in [-1, 1)"),
    )
}
NAMES = tuple(_FRONTENDS)


def get(name: str) -> FrontEnd:
    if name not in _FRONTENDS:
        raise ValueError(f"unknown front-end {name!r}; one of {', '.join(NAMES)}")
    return _FRONTENDS[name]


def of_model(model_name: str) -> FrontEnd:
    """The front-end a registered model declares."""
    from kws_tf import models

    return get(models.get(model_name).frontend)


def shape_summary(fe: FrontEnd) -> str:
    return f"{fe.name} ({fe.summary}; input {fe.input_shape})"
