"""Waveform augmentation for training batches, with stateless (seeded) random ops.

Every draw is a function of the batch seed, so augmentation differs per example
and per epoch yet is reproducible (and identical after `--resume`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kws_tf import features


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """SPEC.md's recipe: time shift and white noise; background mixing is an optional extra."""

    shift_ms: float = 100.0
    shift_prob: float = 0.8
    white_noise_db_min: float = -90.0
    white_noise_db_max: float = -46.0
    white_noise_prob: float = 0.8
    background_prob: float = 0.0
    background_snr_db_min: float = 0.0
    background_snr_db_max: float = 20.0
    # SpecAugment-style masking of the normalised MFCC (Park et al., 2019), off in the paper's
    # recipe: with probability spec_prob per clip, spec_time_masks bands of up to
    # spec_time_mask_frames frames and spec_freq_masks bands of up to spec_freq_mask_coeffs
    # coefficients are set to 0 (the training mean after normalisation).
    spec_prob: float = 0.0
    spec_time_masks: int = 0
    spec_time_mask_frames: int = 0
    spec_freq_masks: int = 0
    spec_freq_mask_coeffs: int = 0
    # Two words in one window, as a stream gives them (issue 9): with probability neighbour_prob
    # another clip of the batch is added, shifted by neighbour_offset_ms_min..max (either side) so
    # that only its edge reaches into the window, at neighbour_gain_db_min..max relative to the
    # clip's RMS. The label stays the clip's own: the word in the middle decides. 0 = off (paper).
    neighbour_prob: float = 0.0
    neighbour_offset_ms_min: float = 500.0
    neighbour_offset_ms_max: float = 900.0
    neighbour_gain_db_min: float = -6.0
    neighbour_gain_db_max: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown augmentation keys: {sorted(unknown)}")
        return cls(**d)


def noise_pool(noise: list) -> np.ndarray:
    """Concatenated background noise as float32 (at least one clip long, else empty)."""
    if not noise:
        return np.zeros((0,), np.float32)
    pool = np.concatenate([np.asarray(n).reshape(-1) for n in noise]).astype(np.float32) * features.PCM_SCALE
    return pool if pool.shape[0] >= features.CLIP_SAMPLES else np.zeros((0,), np.float32)


def _time_shift(wave, seeds, cfg: AugmentConfig):
    batch, length = tf.shape(wave)[0], wave.shape[-1]
    max_shift = int(round(cfg.shift_ms * features.SAMPLE_RATE / 1000.0))
    if max_shift <= 0 or cfg.shift_prob <= 0:
        return wave
    shift = tf.random.stateless_uniform([batch], seeds[0], -max_shift, max_shift + 1, dtype=tf.int32)
    apply = tf.random.stateless_uniform([batch], seeds[1]) < cfg.shift_prob
    shift = tf.where(apply, shift, 0)
    padded = tf.pad(wave, [[0, 0], [max_shift, max_shift]])
    idx = max_shift - shift[:, None] + tf.range(length)[None, :]
    return tf.gather(padded, idx, batch_dims=1)


def _white_noise(wave, seeds, cfg: AugmentConfig):
    if cfg.white_noise_prob <= 0:
        return wave
    batch = tf.shape(wave)[0]
    db = tf.random.stateless_uniform([batch], seeds[2], cfg.white_noise_db_min, cfg.white_noise_db_max)
    amp = tf.pow(10.0, db / 20.0)
    apply = tf.random.stateless_uniform([batch], seeds[3]) < cfg.white_noise_prob
    amp = tf.where(apply, amp, 0.0)
    return wave + amp[:, None] * tf.random.stateless_normal(tf.shape(wave), seeds[4])


def mix_at_snr(wave, noise, snr_db):
    """wave + noise scaled so that rms(wave)/rms(scaled noise) = 10^(snr/20), per row."""
    eps = 1e-5
    rms_s = tf.sqrt(tf.reduce_mean(tf.square(wave), axis=-1) + eps * eps)
    rms_n = tf.sqrt(tf.reduce_mean(tf.square(noise), axis=-1) + eps * eps)
    gain = rms_s / (rms_n * tf.pow(10.0, snr_db / 20.0))
    return wave + gain[:, None] * noise


def _background(wave, seeds, cfg: AugmentConfig, pool: np.ndarray):
    if cfg.background_prob <= 0 or pool.shape[0] == 0:
        return wave
    batch, length = tf.shape(wave)[0], wave.shape[-1]
    pool_t = tf.constant(pool)
    start = tf.random.stateless_uniform([batch], seeds[5], 0, pool.shape[0] - length + 1, dtype=tf.int32)
    segment = tf.gather(pool_t, start[:, None] + tf.range(length)[None, :])
    snr = tf.random.stateless_uniform([batch], seeds[6], cfg.background_snr_db_min, cfg.background_snr_db_max)
    apply = tf.random.stateless_uniform([batch], seeds[7]) < cfg.background_prob
    return tf.where(apply[:, None], mix_at_snr(wave, segment, snr), wave)


def _band_masks(seed, batch, count: int, max_width: int, length: int):
    """`[batch, length]` float mask (1 keep, 0 masked) with `count` bands of width 0..max_width."""
    keep = tf.ones([batch, length])
    if count <= 0 or max_width <= 0:
        return keep
    seeds = tf.random.experimental.stateless_split(seed, num=2 * count)
    pos = tf.range(length)[None, :]
    for i in range(count):
        width = tf.random.stateless_uniform([batch, 1], seeds[2 * i], 0, max_width + 1, dtype=tf.int32)
        start = tf.cast(tf.random.stateless_uniform([batch, 1], seeds[2 * i + 1]) *
                        tf.cast(length - width + 1, tf.float32), tf.int32)
        keep = keep * tf.cast((pos < start) | (pos >= start + width), tf.float32)
    return keep


def spec_augment(x, seed, cfg: AugmentConfig):
    """Time and frequency masks on normalised MFCC `[B, T, F]` (zeros = the training mean)."""
    if cfg.spec_prob <= 0 or (cfg.spec_time_masks <= 0 and cfg.spec_freq_masks <= 0):
        return x
    batch, frames, coeffs = tf.shape(x)[0], x.shape[1], x.shape[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64) + 7919, num=3)
    t_keep = _band_masks(seeds[0], batch, cfg.spec_time_masks, cfg.spec_time_mask_frames, frames)
    f_keep = _band_masks(seeds[1], batch, cfg.spec_freq_masks, cfg.spec_freq_mask_coeffs, coeffs)
    apply = tf.random.stateless_uniform([batch], seeds[2]) < cfg.spec_prob
    masked = x * t_keep[:, :, None] * f_keep[:, None, :]
    return tf.where(apply[:, None, None], masked, x)


def _shift_rows(wave, shift):
    """Each row delayed by `shift[i]` samples (negative: advanced), zeros shifted in."""
    length = wave.shape[-1]
    padded = tf.pad(wave, [[0, 0], [length, length]])
    idx = length - shift[:, None] + tf.range(length)[None, :]
    return tf.gather(padded, idx, batch_dims=1)


def neighbour_mix(wave, seed, cfg: AugmentConfig):
    """Add the next clip of the batch (rolled by one row) at the window's edge (see AugmentConfig)."""
    if cfg.neighbour_prob <= 0:
        return wave
    batch = tf.shape(wave)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64) + 104729, num=4)
    lo = int(round(cfg.neighbour_offset_ms_min * features.SAMPLE_RATE / 1000.0))
    hi = int(round(cfg.neighbour_offset_ms_max * features.SAMPLE_RATE / 1000.0))
    offset = tf.random.stateless_uniform([batch], seeds[0], lo, hi + 1, dtype=tf.int32)
    side = tf.where(tf.random.stateless_uniform([batch], seeds[1]) < 0.5, -1, 1)
    other = _shift_rows(tf.roll(wave, 1, axis=0), offset * side)
    gain_db = tf.random.stateless_uniform([batch], seeds[2], cfg.neighbour_gain_db_min, cfg.neighbour_gain_db_max)
    # Relative to the whole clips' RMS, so a quiet neighbour stays quieter than the word it joins.
    rms = lambda x: tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1) + 1e-10)  # noqa: E731
    gain = tf.pow(10.0, gain_db / 20.0) * rms(wave) / rms(tf.roll(wave, 1, axis=0))
    apply = (tf.random.stateless_uniform([batch], seeds[3]) < cfg.neighbour_prob) & (batch > 1)
    return tf.where(apply[:, None], wave + gain[:, None] * other, wave)


def augment_batch(wave, seed, cfg: AugmentConfig, pool: np.ndarray):
    """Augment float waveforms `[B, samples]` with the batch seed `[2]` (int64)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
    wave = neighbour_mix(wave, seed, cfg)
    wave = _time_shift(wave, seeds, cfg)
    wave = _background(wave, seeds, cfg, pool)
    wave = _white_noise(wave, seeds, cfg)
    return tf.clip_by_value(wave, -1.0, 1.0)
