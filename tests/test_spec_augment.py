"""SpecAugment-style masks (augment.spec_augment): what they claim, on generated features."""

from __future__ import annotations

import numpy as np
import pytest


def _cfg(**kw):
    from kws_tf import augment

    base = dict(spec_prob=1.0, spec_time_masks=2, spec_time_mask_frames=10, spec_freq_masks=2,
                spec_freq_mask_coeffs=4)
    base.update(kw)
    return augment.AugmentConfig(**base)


def _run(x, seed, cfg):
    import tensorflow as tf

    from kws_tf import augment

    return augment.spec_augment(tf.constant(x), tf.constant(seed, tf.int64), cfg).numpy()


def test_masks_are_bands_of_the_stated_widths_and_zero_elsewhere_untouched():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 101, 32)).astype(np.float32) + 5.0  # no natural zeros
    y = _run(x, [3, 4], _cfg())
    zero = y == 0
    kept = ~zero
    np.testing.assert_array_equal(y[kept], x[kept])  # what is not masked is untouched
    for row in zero:
        frames = np.flatnonzero(row.all(axis=1))  # whole frames masked: time bands
        coeffs = np.flatnonzero(row.all(axis=0))  # whole coefficients masked: frequency bands
        assert len(frames) <= 2 * 10 and len(coeffs) <= 2 * 4
        # every zero lies in a masked frame or a masked coefficient
        assert np.array_equal(row, row.all(axis=1)[:, None] | row.all(axis=0)[None, :])
    assert zero.any(axis=(1, 2)).mean() > 0.5  # masks of width 0 are possible, but most clips get some


def test_deterministic_per_seed_and_off_by_default():
    from kws_tf import augment

    x = np.random.default_rng(1).normal(size=(8, 101, 32)).astype(np.float32) + 5.0
    a, b, c = _run(x, [1, 2], _cfg()), _run(x, [1, 2], _cfg()), _run(x, [1, 3], _cfg())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(_run(x, [1, 2], augment.AugmentConfig()), x)  # the paper's recipe: no masks
    np.testing.assert_array_equal(_run(x, [1, 2], _cfg(spec_prob=0.0)), x)


@pytest.mark.parametrize("key, value", [("spec_prob", 1.5), ("spec_time_masks", -1), ("spec_freq_mask_coeffs", 40)])
def test_config_schema_bounds(key, value):
    from kws_tf import config as config_lib

    cfg = config_lib.load_config(channels=32)
    cfg["augment"][key] = value
    assert any(f"augment.{key}" in p for p in config_lib.problems(cfg))


@pytest.mark.parametrize("channels", [32, 16])
def test_shipped_specaug_config_is_valid_and_differs_only_in_the_masks(channels):
    import json
    import pathlib

    from kws_tf import config as config_lib

    root = pathlib.Path(__file__).resolve().parent.parent / "configs"
    spec = config_lib.load_config(root / f"sparknet_c{channels}_specaug.json")
    paper = config_lib.load_config(channels=channels)
    assert config_lib.problems(spec) == []
    diff = {k for k in spec["augment"] if spec["augment"].get(k) != paper["augment"].get(k)}
    assert diff == {"spec_prob", "spec_time_masks", "spec_time_mask_frames", "spec_freq_masks",
                    "spec_freq_mask_coeffs"}
    assert {k: v for k, v in spec.items() if k != "augment"} == {k: v for k, v in paper.items() if k != "augment"}
    json.loads((root / f"sparknet_c{channels}_specaug.json").read_text())
