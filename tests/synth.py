"""Generated audio for tests: a learnable Speech Commands-style folder, tones, noise."""

from __future__ import annotations

import pathlib

import numpy as np

from kws_tf import features, labels
from kws_tf.audio_io import write_wav


def class_clip(label: int, rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """A 'word' of class `label`: a tone pair unique to the class, randomly placed and scaled,
    over weak noise. `_silence_` is noise only. Easy to learn, not trivial (shift, level, noise)."""
    n = int(seconds * features.SAMPLE_RATE)
    t = np.arange(n) / features.SAMPLE_RATE
    out = rng.normal(0, 0.003, n)
    if labels.LABELS[label] != labels.SILENCE:
        f1 = 200.0 * 1.35 ** label
        f2 = f1 * (1.5 if label % 2 else 2.2)
        start = int(rng.uniform(0.05, 0.35) * features.SAMPLE_RATE)
        length = int(rng.uniform(0.4, 0.55) * features.SAMPLE_RATE)
        env = np.zeros(n)
        env[start:start + length] = np.hanning(length)
        amp = rng.uniform(0.1, 0.5)
        out += amp * env * (np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * f2 * t))
    return np.clip(out, -1, 1)


def make_speech_commands_folder(root, clips_per_class: int = 12, speakers: int = 6, seed: int = 0,
                                words=None, background: bool = True) -> pathlib.Path:
    """Write a folder in the Speech Commands layout: `<word>/<speaker>_nohash_<n>.wav`."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    words = words or list(labels.KEYWORDS) + ["bed", labels.SILENCE]
    speaker_ids = [f"{rng.integers(0, 2**32):08x}" for _ in range(speakers)]
    for word in words:
        d = root / word
        d.mkdir(parents=True, exist_ok=True)
        label = labels.label_index(word)
        for i in range(clips_per_class):
            spk = speaker_ids[i % speakers]
            write_wav(d / f"{spk}_nohash_{i // speakers}.wav", class_clip(label, rng))
    if background:
        bg = root / labels.BACKGROUND_NOISE_DIR
        bg.mkdir(exist_ok=True)
        write_wav(bg / "white.wav", rng.normal(0, 0.05, 5 * features.SAMPLE_RATE))
    return root
