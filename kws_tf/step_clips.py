"""Classifying 1 s clips with a per-frame step model: each clip streamed in its context.

The windowed model sees a clip alone, zero-padded at every layer. The step model sees
a stream: each layer's frames near the window edges are computed from the audio around
the clip. To compare the two on the same clips, each clip is embedded in context and
streamed frame by frame from a reset; the scores are read at the hop whose window is
exactly the clip's 101 frames (`delay_frames` hops after its last frame):

- `silence`: digital silence around the clip. The window's MFCC frames are then exactly
  the clip's own (the clip alone is zero-padded audio too); only the per-layer padding
  of the windowed model differs from the step model's real context.
- `neighbours`: the end of another clip of the same set before it and the start of a
  third after it (as in continuous speech).
- `zeros`: no audio; the feature frames around the clip are the int8 zero point (the
  real value 0 of normalised features), what the windowed model pads its input with.

`before_s` of context must reach back beyond the network's receptive field (its delay
again), so the reset state never reaches the scores read; it is checked.
"""

from __future__ import annotations

import numpy as np

from kws_tf import features

CONTEXTS = ("silence", "neighbours", "zeros")
DEFAULT_BEFORE_S = 0.5


def _context_audio(audio: np.ndarray, i: int, context: str, n_before: int, n_after: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if context != "neighbours" or len(audio) < 3:
        return np.zeros(n_before, np.int16), np.zeros(n_after, np.int16)
    others = [j for j in range(len(audio)) if j != i]
    a, b = rng.choice(others, size=2, replace=False)
    return np.asarray(audio[a])[-n_before:], np.asarray(audio[b])[:n_after]


def read_hop(delay_frames: int, before_s: float = DEFAULT_BEFORE_S) -> int:
    """Index of the hop whose scores describe exactly the clip's 101 frames."""
    first = int(round(before_s * features.SAMPLE_RATE / features.HOP_SAMPLES))
    if first < delay_frames:
        raise ValueError(f"before_s={before_s} is shorter than the network's look-back ({delay_frames} frames)")
    return first + features.NUM_FRAMES - 1 + delay_frames


def context_features(audio: np.ndarray, normalization: features.Normalization, delay_frames: int,
                     context: str = "silence", before_s: float = DEFAULT_BEFORE_S, seed: int = 0) -> np.ndarray:
    """Normalised MFCC `[N, read_hop + 1, NUM_MFCC]` of each clip streamed in `context`.

    Frame `first + t` is the clip's frame t (`first` = before_s in hops); with `silence` those
    frames equal the clip's own MFCC exactly.
    """
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; choose one of {', '.join(CONTEXTS)}")
    hop = features.HOP_SAMPLES
    n_frames = read_hop(delay_frames, before_s) + 1
    first = n_frames - features.NUM_FRAMES - delay_frames
    n_before = first * hop
    n_after = (delay_frames + 1) * hop  # the last frame needs no samples past its own centre + 200
    rng = np.random.default_rng(seed)
    out = np.zeros((len(audio), n_frames, features.NUM_MFCC), np.float32)
    for i, pcm in enumerate(audio):
        clip = features.fix_length(np.asarray(pcm)).astype(np.int16)
        if context == "zeros":  # normalised 0 quantises to the input zero point
            out[i, first:first + features.NUM_FRAMES] = normalization.apply_np(features.mfcc_np(clip))
            continue
        before, after = _context_audio(audio, i, context, n_before, n_after, rng)
        stream = np.concatenate([before.astype(np.int16), clip, after.astype(np.int16)])
        out[i] = normalization.apply_np(features.mfcc_np(stream))[:n_frames]
    return out


def step_outputs(step_bytes: bytes, frames_int8: np.ndarray, read_at: int, progress=None) -> np.ndarray:
    """int8 step-model outputs `[N, classes]`: each stream `[N, L, NUM_MFCC]` run from a reset
    up to hop `read_at`, whose scores are returned."""
    from kws_tf import tflm

    runner = tflm.StepRunner(step_bytes)
    out = []
    for n, frames in enumerate(frames_int8):
        runner.reset()
        for f in frames[:read_at]:
            runner.step(f)
        out.append(runner.step(frames[read_at]))
        if progress and (n + 1) % 100 == 0:
            progress(n + 1, len(frames_int8))
    return np.stack(out) if out else np.zeros((0, 0), np.int8)


def step_scores(step_bytes: bytes, audio: np.ndarray, normalization: features.Normalization, input_scale: float,
                input_zero_point: int, delay_frames: int, context: str = "silence",
                before_s: float = DEFAULT_BEFORE_S, seed: int = 0, progress=None) -> np.ndarray:
    """int8 step-model outputs `[N, classes]`, one per clip, each clip streamed in `context`."""
    x = context_features(audio, normalization, delay_frames, context, before_s, seed)
    xq = features.quantize_np(x, input_scale, input_zero_point)
    return step_outputs(step_bytes, xq, read_hop(delay_frames, before_s), progress)
