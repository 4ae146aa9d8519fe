"""Reading wav files into 16 kHz mono int16, with the conversions a user's files need."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from kws_tf import features


class AudioError(ValueError):
    """A wav file that cannot be used (unreadable, empty, ...)."""


@dataclasses.dataclass
class ReadStats:
    """What had to be done to the files read, so callers can warn once with counts."""

    read: int = 0
    resampled: int = 0
    downmixed: int = 0
    skipped: int = 0
    skipped_examples: list = dataclasses.field(default_factory=list)

    def skip(self, path, reason: str):
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(f"{path}: {reason}")

    def summary(self) -> str:
        parts = [f"{self.read} read"]
        if self.resampled:
            parts.append(f"{self.resampled} resampled to {features.SAMPLE_RATE} Hz")
        if self.downmixed:
            parts.append(f"{self.downmixed} downmixed to mono")
        if self.skipped:
            parts.append(f"{self.skipped} unreadable and skipped (e.g. {self.skipped_examples[0]})")
        return ", ".join(parts)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM (saturating)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def read_wav(path, stats: ReadStats | None = None, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """Read any wav soundfile understands as mono int16 at `sample_rate`.

    Other sample rates are resampled (polyphase), multi-channel audio is averaged to
    mono; both are counted in `stats`. Raises AudioError for unreadable or empty files.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio file")
    if data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)
        if stats is not None:
            stats.downmixed += 1
    mono = data[:, 0]
    if sr != sample_rate:
        g = math.gcd(int(sr), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(sr) // g).astype(np.float32)
        if stats is not None:
            stats.resampled += 1
    if stats is not None:
        stats.read += 1
    return to_int16(mono)


def write_wav(path, pcm: np.ndarray, sample_rate: int = features.SAMPLE_RATE) -> None:
    """Write int16 (or float in [-1, 1]) mono audio as 16-bit PCM wav."""
    pcm = np.asarray(pcm)
    if not np.issubdtype(pcm.dtype, np.integer):
        pcm = to_int16(pcm)
    sf.write(str(path), pcm.astype(np.int16), sample_rate, subtype="PCM_16")
