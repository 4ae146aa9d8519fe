"""Reading wav files into 16 kHz mono int16, with the conversions a user's files need.

`read_wav` is the one reader of every command (train, evaluate, simulate, benchmarks), so
its rules hold everywhere:
- a truncated wav (its data chunk declares more bytes than the file holds) is refused,
  never silently shortened or zero-padded;
- audio with NaN or Inf samples (float wavs) is refused, never sanitised into a guess;
- other sample rates are resampled and multi-channel audio downmixed (counted in ReadStats).
Each refusal is an AudioError with one line naming the file; data sets skip and count them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct

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
            parts.append(f"{self.skipped} unusable and skipped (e.g. {self.skipped_examples[0]})")
        return ", ".join(parts)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM (saturating)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def wav_truncation(path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its data chunk declares more bytes than the file holds),
    or None (also for files that are not RIFF/WAVE). libsndfile silently reads what is there."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, length = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    if length != 0xFFFFFFFF and pos + 8 + length > size:
                        return f"data chunk declares {length} bytes, the file holds {size - pos - 8}"
                    return None
                pos += 8 + length + (length & 1)
    except (OSError, TypeError):
        return None
    return None


def read_wav(path, stats: ReadStats | None = None, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """Read any wav soundfile understands as mono int16 at `sample_rate`.

    Other sample rates are resampled (polyphase), multi-channel audio is averaged to
    mono; both are counted in `stats`. Raises AudioError for unreadable, empty or
    truncated files and for audio with NaN/Inf samples (see the module docstring).
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio file")
    truncated = wav_truncation(path)
    if truncated:
        raise AudioError(f"{path}: truncated wav ({truncated})")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise AudioError(f"{path}: {bad} of {data.size} samples are NaN or Inf; not usable as audio")
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
