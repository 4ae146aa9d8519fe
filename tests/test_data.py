"""Data sources and pipeline: folder layout, splits, odd wavs, tfds via mock_data, augmentation."""

import numpy as np
import pytest

from kws_tf import augment, data, features, labels
from kws_tf.audio_io import write_wav
from synth import class_clip, make_speech_commands_folder


def test_folder_source_maps_words_to_the_twelve_classes(synth_folder):
    ds = data.load_folder(str(synth_folder), log=lambda m: None)
    total = len(ds.train) + len(ds.validation) + (len(ds.test) if ds.test else 0)
    assert total == 24 * 12  # 10 keywords + "bed" (unknown) + _silence_
    assert ds.train.audio.shape[1:] == (features.CLIP_SAMPLES,) and ds.train.audio.dtype == np.int16
    counts = ds.train.class_counts()
    assert counts["_unknown_"] > 0 and counts["yes"] > 0
    assert len(ds.noise) == 1


def test_silence_is_cut_from_background_noise_without_a_silence_folder(tmp_path):
    root = make_speech_commands_folder(tmp_path / "sc", clips_per_class=2, speakers=2, words=["yes", "bed"])
    ds = data.load_folder(str(root), validation_percent=0, test_percent=0, log=lambda m: None)
    assert ds.train.class_counts()["_silence_"] == 5  # the 5 s noise recording, in 1 s clips
    assert ds.train.class_counts()["_unknown_"] == 2


def test_split_without_lists_is_by_speaker(synth_folder):
    ds = data.load_folder(str(synth_folder), validation_percent=30, test_percent=30, log=lambda m: None)
    speakers = {s: {data.speaker_of(n) for n in getattr(ds, s).names if "_nohash_" in n}
                for s in ("train", "validation", "test")}
    assert speakers["train"] and speakers["validation"]
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]


def test_speaker_of_handles_unknown_word_prefix():
    assert data.speaker_of("_unknown_/bed_0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert data.speaker_of("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"


def test_lists_define_the_splits(tmp_path):
    root = make_speech_commands_folder(tmp_path / "sc", clips_per_class=2, speakers=2, words=["yes", "no"],
                                       background=False)
    yes = sorted(p.name for p in (root / "yes").glob("*.wav"))
    (root / "validation_list.txt").write_text(f"yes/{yes[0]}\n")
    (root / "testing_list.txt").write_text(f"yes/{yes[1]}\n")
    ds = data.load_folder(str(root), log=lambda m: None)
    assert ds.validation.names == [f"yes/{yes[0]}"]
    assert ds.test.names == [f"yes/{yes[1]}"]
    assert sorted(ds.train.names) == sorted(f"no/{p.name}" for p in (root / "no").glob("*.wav"))


def test_other_rates_stereo_and_corrupt_files(tmp_path):
    root = tmp_path / "odd"
    (root / "yes").mkdir(parents=True)
    rng = np.random.default_rng(0)
    clip = class_clip(0, rng)
    import soundfile as sf

    sf.write(root / "yes" / "a_nohash_0.wav", clip[::2].astype(np.float32), 8000, subtype="PCM_16")
    sf.write(root / "yes" / "b_nohash_0.wav", np.stack([clip, clip], axis=1).astype(np.float32), 16000, subtype="PCM_16")
    (root / "yes" / "c_nohash_0.wav").write_bytes(b"RIFF not really a wav")
    messages = []
    ds = data.load_folder(str(root), validation_percent=0, test_percent=0, log=messages.append)
    assert len(ds.train) == 2
    warning = [m for m in messages if m.startswith("warning") and "resampled" in m][0]
    assert "1 resampled" in warning and "1 downmixed" in warning and "1 unusable and skipped" in warning
    # the 8 kHz copy, resampled, is close to the original
    a = ds.train.audio[ds.train.names.index("yes/a_nohash_0.wav")].astype(np.float64) / 32768
    assert np.corrcoef(a[1000:15000], clip[1000:15000])[0, 1] > 0.9


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no word sub-folders"),
    (lambda p: (p / "yes").mkdir(parents=True), "no .wav files"),
])
def test_bad_folders_raise_one_line_errors(tmp_path, setup, message):
    root = tmp_path / "bad"
    setup(root)
    with pytest.raises(data.DataError, match=message) as e:
        data.load_folder(str(root), log=lambda m: None)
    assert "\n" not in str(e.value)


def test_no_usable_wav(tmp_path):
    root = tmp_path / "bad"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "x.wav").write_bytes(b"junk")
    with pytest.raises(data.DataError, match="no usable wav"):
        data.load_folder(str(root), log=lambda m: None)


def test_tfds_source_through_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        ds = data.load_tfds(log=lambda m: None)
    assert len(ds.train) == len(ds.validation) == len(ds.test) == 24
    assert ds.train.audio.shape == (24, features.CLIP_SAMPLES)
    assert set(np.unique(ds.train.labels)) <= set(range(labels.NUM_CLASSES))
    assert ds.source == "tfds:speech_commands"


def _first_batch(audio_set, seed, epoch, aug=augment.AugmentConfig()):
    norm = features.Normalization.identity()
    ds = data.train_dataset(audio_set, norm, aug, [], batch_size=8, seed=seed, first_epoch=epoch, last_epoch=epoch + 1)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def test_training_batches_are_seeded_per_epoch(synth_folder):
    train = data.load_folder(str(synth_folder), log=lambda m: None).train
    a0, ya = _first_batch(train, seed=1, epoch=0)
    b0, yb = _first_batch(train, seed=1, epoch=0)
    c1, _ = _first_batch(train, seed=1, epoch=1)
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(ya, yb)
    assert a0.shape == (8, 1, 101, 32)
    assert not np.array_equal(a0, c1)


def test_augmentation_shifts_and_adds_noise_per_example():
    import tensorflow as tf

    wave = np.zeros((64, 16000), np.float32)
    wave[:, 8000] = 1.0  # an impulse shows the shift
    cfg = augment.AugmentConfig(shift_prob=1.0, white_noise_prob=0.0)
    out = augment.augment_batch(tf.constant(wave), tf.constant([0, 1], tf.int64), cfg, np.zeros(0, np.float32)).numpy()
    shifts = np.argmax(out, axis=1) - 8000
    assert np.abs(shifts).max() <= 1600 and len(set(shifts)) > 20
    cfg = augment.AugmentConfig(shift_prob=0.0, white_noise_prob=1.0)
    out = augment.augment_batch(tf.constant(np.zeros((64, 16000), np.float32)), tf.constant([0, 2], tf.int64), cfg,
                                np.zeros(0, np.float32)).numpy()
    level_db = 20 * np.log10(out.std(axis=1))
    assert level_db.min() >= -91 and level_db.max() <= -45 and level_db.std() > 5


def test_background_mixing_hits_the_snr():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    sig = rng.normal(0, 0.1, (4, 16000)).astype(np.float32)
    noise = rng.normal(0, 0.3, (4, 16000)).astype(np.float32)
    mixed = augment.mix_at_snr(tf.constant(sig), tf.constant(noise), tf.constant([0.0, 5.0, 10.0, 20.0])).numpy()
    snr = 20 * np.log10(sig.std(axis=1) / (mixed - sig).std(axis=1))
    np.testing.assert_allclose(snr, [0, 5, 10, 20], atol=0.05)
