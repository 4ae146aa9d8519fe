"""Training for the stream (issue 9): two words in one window (augment.neighbour_mix) and label
smoothing (losses.classification_loss), checked on generated audio."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def _burst(start_s, end_s, hz, n=SR):
    t = np.arange(n) / SR
    return np.where((t >= start_s) & (t < end_s), 0.3 * np.sin(2 * np.pi * hz * t), 0.0).astype(np.float32)


def _mix(wave, cfg, seed=(5, 6)):
    import tensorflow as tf

    from kws_tf import augment

    return augment.neighbour_mix(tf.constant(wave), tf.constant(seed, tf.int64), cfg).numpy()


def test_neighbour_enters_only_at_the_edge_the_offset_allows_and_the_middle_word_is_kept():
    from kws_tf import augment

    # Clip 0: a short word in the middle; clip 1 (clip 0's neighbour: the batch rolled by one row)
    # a word over 0.2-0.8 s, of which a 700 ms offset leaves 100 ms at one edge of clip 0's window.
    words = np.stack([_burst(0.4, 0.6, 440.0), _burst(0.2, 0.8, 1000.0)])
    cfg = augment.AugmentConfig(neighbour_prob=1.0, neighbour_offset_ms_min=700.0, neighbour_offset_ms_max=700.0,
                                neighbour_gain_db_min=0.0, neighbour_gain_db_max=0.0)
    for seed in range(6):
        y = _mix(words, cfg, (seed, 1))
        for row, other in ((0, 1), (1, 0)):
            added = y[row] - words[row]
            n = int(0.7 * SR)
            gain = np.sqrt(np.mean(words[row] ** 2) / np.mean(words[other] ** 2))
            late = np.concatenate([np.zeros(n, np.float32), words[other][:-n]]) * gain
            early = np.concatenate([words[other][n:], np.zeros(n, np.float32)]) * gain
            # exactly the neighbour, shifted by 700 ms one way or the other, at the clip's RMS (0 dB)
            assert min(np.max(np.abs(added - late)), np.max(np.abs(added - early))) < 1e-5
            # so nothing lands in the middle 0.3-0.7 s; the long word's edge reaches clip 0's window,
            # the short word (0.4-0.6 s) moved by 700 ms falls wholly outside clip 1's
            assert np.max(np.abs(added[int(0.3 * SR):int(0.7 * SR)])) == 0.0
            assert (np.max(np.abs(added)) > 0.0) == (row == 0)


def test_neighbour_off_is_identity_and_probability_is_respected():
    from kws_tf import augment

    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((200, SR))).astype(np.float32)
    np.testing.assert_array_equal(_mix(wave, augment.AugmentConfig()), wave)
    y = _mix(wave, augment.AugmentConfig(neighbour_prob=0.3))
    changed = np.any(y != wave, axis=1).mean()
    assert 0.15 < changed < 0.45
    np.testing.assert_array_equal(_mix(wave[:1], augment.AugmentConfig(neighbour_prob=1.0)), wave[:1])  # no neighbour


def test_training_batches_keep_their_labels_with_neighbours():
    from kws_tf import augment, data, features

    rng = np.random.default_rng(1)
    n = 24
    pcm = (3000 * rng.standard_normal((n, SR))).astype(np.int16)
    labels = (np.arange(n) % 12).astype(np.int32)
    audio = data.AudioSet(pcm, labels, [f"c{i}.wav" for i in range(n)])
    norm = features.Normalization(tuple([0.0] * features.NUM_MFCC), tuple([1.0] * features.NUM_MFCC))
    cfg = augment.AugmentConfig(neighbour_prob=1.0)
    ds = data.train_dataset(audio, norm, cfg, [], batch_size=8, seed=0, first_epoch=0, last_epoch=1)
    seen = []
    for _, y in ds:
        seen.extend(y.numpy().tolist())
    assert sorted(seen) == sorted(labels.tolist())


def test_label_smoothing_loss_is_the_smoothed_cross_entropy_and_zero_is_plain():
    import tensorflow as tf

    from kws_tf import losses

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(16, 12)).astype(np.float32)
    y = rng.integers(0, 12, 16)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    plain = -logp[np.arange(16), y].mean()
    e = 0.1
    target = np.full((16, 12), e / 12) + (1 - e) * np.eye(12)[y]
    smoothed = -(target * logp).sum(-1).mean()
    assert float(losses.classification_loss(0.0)(tf.constant(y), tf.constant(logits))) == pytest.approx(plain, 1e-5)
    assert float(losses.classification_loss(e)(tf.constant(y), tf.constant(logits))) == pytest.approx(smoothed, 1e-5)
    with pytest.raises(ValueError):
        losses.classification_loss(1.0)


def test_config_refuses_inverted_neighbour_ranges():
    from kws_tf import config as config_lib

    cfg = config_lib.load_config(None, 32)
    cfg["augment"].update(neighbour_prob=0.5, neighbour_offset_ms_min=900.0, neighbour_offset_ms_max=500.0)
    with pytest.raises(config_lib.ConfigError, match="neighbour_offset_ms_min"):
        config_lib.validate(cfg, "test")
    cfg = config_lib.load_config(None, 32)
    cfg["label_smoothing"] = 1.5
    with pytest.raises(config_lib.ConfigError, match="label_smoothing"):
        config_lib.validate(cfg, "test")
