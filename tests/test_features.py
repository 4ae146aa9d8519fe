"""The MFCC front-end: shape, librosa agreement, frame-by-frame == clip, TF == NumPy."""

import numpy as np
import pytest

from kws_tf import features


def _test_audio(seed=0, n=features.CLIP_SAMPLES):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / features.SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
    return (chirp + rng.normal(0, 0.02, n)).astype(np.float32)


def test_shape_is_101_frames_by_32_coefficients_for_one_second():
    x = features.mfcc_np(_test_audio())
    assert x.shape == (101, 32) == (features.NUM_FRAMES, features.NUM_MFCC)
    assert x.dtype == np.float32


def test_mel_matrix_and_window_equal_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=32)  # Slaney scale and norm
    np.testing.assert_allclose(features.mel_matrix().T, ref, rtol=1e-5, atol=1e-9)
    import scipy.signal

    np.testing.assert_allclose(features.hann_window(), scipy.signal.get_window("hann", 400), atol=1e-12)


def test_dct_is_orthonormal_dct_ii():
    import scipy.fft

    d = features.dct_matrix()
    np.testing.assert_allclose(d.T @ d, np.eye(32), atol=1e-12)
    v = np.random.default_rng(0).normal(size=32)
    np.testing.assert_allclose(v @ d, scipy.fft.dct(v, type=2, norm="ortho"), atol=1e-12)


def test_agrees_with_librosa_configured_to_the_same_definition():
    """librosa with our definition: centred frames, 400-sample Hann in a 512 FFT, zero
    padding, power spectrum, Slaney mel, ln(mel + 1e-6), orthonormal DCT-II.
    Tolerance: 2e-3 absolute on coefficients of magnitude up to ~300 (float32 vs float64)."""
    librosa = pytest.importorskip("librosa")
    audio = _test_audio(1)
    mel = librosa.feature.melspectrogram(y=audio.astype(np.float64), sr=16000, n_fft=512, hop_length=160,
                                         win_length=400, window="hann", center=True, pad_mode="constant",
                                         power=2.0, n_mels=32)
    ref = librosa.feature.mfcc(S=np.log(mel + features.LOG_OFFSET), n_mfcc=32, dct_type=2, norm="ortho")
    ours = features.mfcc_np(audio)
    assert ref.shape == (32, 101)
    np.testing.assert_allclose(ours, ref.T, atol=2e-3, rtol=1e-5)


def test_frame_by_frame_equals_clip():
    audio = _test_audio(2)
    clip = features.mfcc_np(audio)
    padded = np.pad(audio, (200, 200))
    frames = np.stack([features.mfcc_frame_np(padded[t * 160:t * 160 + 400]) for t in range(101)])
    np.testing.assert_allclose(frames, clip, atol=1e-5)


def test_each_frame_depends_only_on_its_own_window():
    audio = _test_audio(3)
    changed = audio.copy()
    changed[8000:8100] += 0.5  # touches frames whose window covers samples 8000..8099
    a, b = features.mfcc_np(audio), features.mfcc_np(changed)
    differs = np.flatnonzero(np.abs(a - b).max(axis=1) > 0)
    lo, hi = (8000 - 200 + 160) // 160, (8099 + 200) // 160
    assert differs.min() >= lo - 1 and differs.max() <= hi


def test_tf_graph_version_equals_numpy_reference():
    tf = pytest.importorskip("tensorflow")
    audio = np.stack([_test_audio(4), _test_audio(5)])
    ours = features.mfcc_tf(tf.constant(audio)).numpy()
    ref = np.stack([features.mfcc_np(a) for a in audio])
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_int16_input_is_scaled_to_unit_range():
    pcm = (np.clip(_test_audio(6), -1, 1) * 32767).astype(np.int16)
    np.testing.assert_allclose(features.mfcc_np(pcm), features.mfcc_np(pcm / 32768.0), atol=1e-5)


def test_normalization_and_quantization():
    feats = np.stack([features.mfcc_np(_test_audio(s)) for s in range(4)])
    norm = features.Normalization.from_features(feats)
    z = norm.apply_np(feats)
    np.testing.assert_allclose(z.reshape(-1, 32).mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(z.reshape(-1, 32).std(axis=0), 1, atol=1e-2)
    q = features.quantize_np(z, scale=0.05, zero_point=3)
    assert q.dtype == np.int8
    back = features.dequantize_np(q, 0.05, 3)
    inside = np.abs(z) < 6  # values inside the int8 range round-trip within half a step
    assert np.all(np.abs(back - z)[inside] <= 0.025 + 1e-6)
    assert features.Normalization.from_dict(norm.to_dict()) == norm


def test_fix_length_pads_and_crops():
    assert features.fix_length(np.ones(100)).shape == (16000,)
    assert features.fix_length(np.arange(20000)).shape == (16000,)
    assert features.fix_length(np.arange(20000))[0] == 2000
