"""The MFCC front-end, defined once.

Everything the device needs to reproduce these features is an explicit constant
built here by a pure function: the periodic Hann window, the Slaney mel matrix,
the log rule, the orthonormal DCT-II matrix and the int8 input quantisation.
`kws_tf.export` writes them into the C++ settings header; the C++ front-end in
`micro_app/src` never types a number this module knows.

Framing: frame ``t`` of a clip uses samples ``[t*HOP - WINDOW/2, t*HOP + WINDOW/2)``
(zeros outside the clip). That equals librosa's ``center=True`` framing with a
400-sample window centred in a 512-point FFT frame (a circular shift changes only
the phase, not the power), yet each frame depends only on the 400 samples of its
own window, so a device can compute one frame per 10 ms hop from its newest
400 samples.

Three implementations share those constants: `mfcc_frame_np` (one frame, NumPy),
`mfcc_np` (a clip, NumPy reference) and `mfcc_tf` (a batch, TF graph for tf.data).
`log_mel_np` / `log_mel_tf` are the same pipeline stopped before the DCT (the "logmel"
front-end, 40 bands); `kws_tf.frontends` names the front-ends a model may declare.
Features are laid out time-major, ``[frames, coefficients]`` = ``[101, 32]`` for a
1 s clip, which is the model's input layout and the device's window layout.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
NUM_FFT_BINS = FFT_SIZE // 2 + 1
NUM_MEL = 32
NUM_MFCC = 32
# The log-mel front-end (kws_tf.frontends "logmel"): the same pipeline stopped before the DCT,
# with the 40 bands BC-ResNet was published with.
NUM_LOGMEL = 40
MEL_FMIN_HZ = 0.0
MEL_FMAX_HZ = SAMPLE_RATE / 2
# ln(mel_energy + LOG_OFFSET). An additive offset instead of a clip-relative clamp
# (librosa's power_to_db top_db) because the device sees one frame at a time.
LOG_OFFSET = 1e-6
# int16 PCM -> float in [-1, 1).
PCM_SCALE = 1.0 / 32768.0
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
NUM_FRAMES = 1 + CLIP_SAMPLES // HOP_SAMPLES  # 101


def num_frames(num_samples: int) -> int:
    """Frames produced for a clip of `num_samples` samples (centred framing)."""
    return 1 + num_samples // HOP_SAMPLES


@functools.lru_cache(maxsize=None)
def hann_window() -> np.ndarray:
    """Periodic Hann window of WINDOW_SAMPLES (scipy's `get_window('hann', N)`)."""
    n = np.arange(WINDOW_SAMPLES, dtype=np.float64)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WINDOW_SAMPLES)
    w.setflags(write=False)
    return w


# Slaney's mel scale: linear (f / (200/3)) below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(hz >= _SLANEY_MIN_LOG_HZ, log_part, hz / _SLANEY_F_SP)


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
    return np.where(mel >= _SLANEY_MIN_LOG_MEL, log_part, _SLANEY_F_SP * mel)


@functools.lru_cache(maxsize=None)
def mel_matrix(num_mel: int = NUM_MEL) -> np.ndarray:
    """Mel filterbank `[NUM_FFT_BINS, num_mel]`: triangular Slaney filters, area-normalised.

    Same definition as `librosa.filters.mel(sr=16000, n_fft=512, n_mels=num_mel)` (its
    defaults: `htk=False`, `norm='slaney'`), written out so the C++ can use the
    exported matrix instead of a library.
    """
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2.0, NUM_FFT_BINS)
    mel_edges = np.linspace(_hz_to_mel_slaney(MEL_FMIN_HZ), _hz_to_mel_slaney(MEL_FMAX_HZ), num_mel + 2)
    hz_edges = _mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_hz[None, :]
    weights = np.zeros((num_mel, NUM_FFT_BINS))
    for m in range(num_mel):
        lower = -ramps[m] / widths[m]
        upper = ramps[m + 2] / widths[m + 1]
        weights[m] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_edges[2 : num_mel + 2] - hz_edges[:num_mel]))[:, None]
    out = weights.T.copy()
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II `[NUM_MEL, NUM_MFCC]`: `mfcc = log_mel @ dct_matrix()`."""
    n = np.arange(NUM_MEL, dtype=np.float64)[:, None]
    k = np.arange(NUM_MFCC, dtype=np.float64)[None, :]
    d = np.cos(np.pi / NUM_MEL * (n + 0.5) * k) * np.sqrt(2.0 / NUM_MEL)
    d[:, 0] *= 1.0 / np.sqrt(2.0)
    d.setflags(write=False)
    return d


def mel_band_ranges(matrix: np.ndarray | None = None) -> list[tuple[int, int]]:
    """For each mel band, the half-open FFT-bin range `[start, end)` of its nonzero weights.

    The device multiplies only these bins (each bin feeds at most two bands).
    """
    matrix = mel_matrix() if matrix is None else matrix
    ranges = []
    for m in range(matrix.shape[1]):
        nz = np.flatnonzero(matrix[:, m])
        ranges.append((int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0))
    return ranges


def pcm_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM (or float already in [-1, 1]) -> float32 in [-1, 1)."""
    pcm = np.asarray(pcm)
    if np.issubdtype(pcm.dtype, np.integer):
        return pcm.astype(np.float32) * np.float32(PCM_SCALE)
    return pcm.astype(np.float32)


def mfcc_frame_np(window: np.ndarray) -> np.ndarray:
    """MFCC of one frame from its WINDOW_SAMPLES float samples -> `[NUM_MFCC]` float32."""
    window = np.asarray(window, dtype=np.float64)
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"a frame needs {WINDOW_SAMPLES} samples, got shape {window.shape}")
    spectrum = np.fft.rfft(window * hann_window(), n=FFT_SIZE)
    power = spectrum.real**2 + spectrum.imag**2
    log_mel = np.log(power @ mel_matrix() + LOG_OFFSET)
    return (log_mel @ dct_matrix()).astype(np.float32)


def frame_signal_np(audio: np.ndarray) -> np.ndarray:
    """Centred frames `[num_frames, WINDOW_SAMPLES]` of a 1-D float signal (zero padded)."""
    audio = np.asarray(audio, dtype=np.float64)
    half = WINDOW_SAMPLES // 2
    padded = np.pad(audio, (half, half))
    count = num_frames(audio.shape[0])
    idx = np.arange(count)[:, None] * HOP_SAMPLES + np.arange(WINDOW_SAMPLES)[None, :]
    return padded[idx]


def _log_mel_np64(audio: np.ndarray, num_mel: int) -> np.ndarray:
    frames = frame_signal_np(pcm_to_float(audio))
    spectrum = np.fft.rfft(frames * hann_window()[None, :], n=FFT_SIZE, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return np.log(power @ mel_matrix(num_mel) + LOG_OFFSET)


def mfcc_np(audio: np.ndarray) -> np.ndarray:
    """NumPy reference MFCC of a clip -> `[num_frames, NUM_MFCC]` float32.

    `audio` is int16 PCM or float in [-1, 1]. Equals stacking `mfcc_frame_np` over
    the centred frames (tested), just vectorised.
    """
    return (_log_mel_np64(audio, NUM_MEL) @ dct_matrix()).astype(np.float32)


def log_mel_np(audio: np.ndarray, num_mel: int = NUM_LOGMEL) -> np.ndarray:
    """NumPy reference log-mel energies of a clip -> `[num_frames, num_mel]` float32: the MFCC
    pipeline (same framing, window, FFT, Slaney bands and log rule) without the DCT."""
    return _log_mel_np64(audio, num_mel).astype(np.float32)


def log_mel_tf(audio, num_mel: int = NUM_LOGMEL):
    """TF-graph log-mel for tf.data: float audio `[..., samples]` -> `[..., frames, num_mel]`."""
    import tensorflow as tf

    audio = tf.convert_to_tensor(audio, tf.float32)
    half = WINDOW_SAMPLES // 2
    rank = audio.shape.rank
    paddings = [[0, 0]] * (rank - 1) + [[half, half]]
    padded = tf.pad(audio, paddings)
    frames = tf.signal.frame(padded, WINDOW_SAMPLES, HOP_SAMPLES, pad_end=False)
    frames = frames * tf.constant(hann_window(), tf.float32)
    spectrum = tf.signal.rfft(frames, fft_length=[FFT_SIZE])
    power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
    mel = tf.tensordot(power, tf.constant(mel_matrix(num_mel), tf.float32), axes=1)
    return tf.math.log(mel + LOG_OFFSET)


def mfcc_tf(audio):
    """TF-graph MFCC for tf.data: float audio `[..., samples]` -> `[..., frames, NUM_MFCC]`."""
    import tensorflow as tf

    return tf.tensordot(log_mel_tf(audio, NUM_MEL), tf.constant(dct_matrix(), tf.float32), axes=1)


def fix_length(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Crop (centre) or zero-pad (end) a 1-D signal to `length` samples."""
    audio = np.asarray(audio)
    n = audio.shape[0]
    if n > length:
        start = (n - length) // 2
        return audio[start : start + length]
    if n < length:
        return np.pad(audio, (0, length - n))
    return audio


# --------------------------------------------------------------------------- normalisation

@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-coefficient statistics fixed at training time: `(x - mean) / std`.

    Coefficient 0 spans a far wider range than the others, and the int8 input tensor
    has a single scale, so each coefficient is standardised before quantisation.
    `frontend` names the features they belong to (`kws_tf.frontends`), so that a run's
    statistics are never applied to another front-end's features; files written before
    front-ends had names hold MFCC statistics and read as "mfcc".
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    frontend: str = "mfcc"

    def __post_init__(self):
        from kws_tf import frontends

        dim = frontends.get(self.frontend).dim  # ValueError for an unknown name
        if len(self.mean) != dim or len(self.std) != dim:
            raise ValueError(f"{self.frontend} normalisation needs {dim} means and stds, "
                             f"got {len(self.mean)} and {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError("normalisation std must be positive")

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def from_features(cls, features: np.ndarray, min_std: float = 1e-3, frontend: str = "mfcc") -> "Normalization":
        """Statistics over all frames of `features` `[..., dim]` (the last axis: the coefficients)."""
        features = np.asarray(features, np.float64)
        flat = features.reshape(-1, features.shape[-1])
        mean = flat.mean(axis=0)
        std = np.maximum(flat.std(axis=0), min_std)
        return cls(tuple(float(np.float32(v)) for v in mean), tuple(float(np.float32(v)) for v in std), frontend)

    @classmethod
    def identity(cls, frontend: str = "mfcc") -> "Normalization":
        from kws_tf import frontends

        dim = frontends.get(frontend).dim
        return cls((0.0,) * dim, (1.0,) * dim, frontend)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "frontend": self.frontend}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]),
                   str(d.get("frontend", "mfcc")))

    def require(self, frontend: str, where: str = "normalisation") -> "Normalization":
        """Itself if it belongs to `frontend`; ValueError naming both otherwise."""
        if self.frontend != frontend:
            raise ValueError(f"{where} holds {self.frontend} statistics but the model's front-end is {frontend}")
        return self

    def mean_f32(self) -> np.ndarray:
        return np.asarray(self.mean, np.float32)

    def inv_std_f32(self) -> np.ndarray:
        """1/std in float32: the device multiplies rather than divides."""
        return (np.float32(1.0) / np.asarray(self.std, np.float32)).astype(np.float32)

    def apply_np(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float32)
        return ((x - self.mean_f32()) * self.inv_std_f32()).astype(np.float32)

    def apply_tf(self, features):
        import tensorflow as tf

        return (features - tf.constant(self.mean_f32())) * tf.constant(self.inv_std_f32())


def quantize_np(normalized: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 input quantisation exactly as the device does it, in float32.

    `q = clamp(floor(x / scale + 0.5) + zero_point, -128, 127)`; floor(+0.5) rather
    than NumPy's round-half-even so that C++ `floorf` gives the same integers.
    """
    x = np.asarray(normalized, np.float32)
    q = np.floor(x * np.float32(1.0 / np.float32(scale)) + np.float32(0.5)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_np(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, np.float32) - zero_point) * np.float32(scale)
