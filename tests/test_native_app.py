"""The device's whole app loop (`micro_app/src/kws_app.h`) on the host, through
`kws_tf.native_app.NativeApp`, with Python stand-ins for the model: detections and their
times, counters, BENCH and SELFTEST lines, the per-frame step-model mode, runner errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kws_tf import features, labels as labels_lib, native_app

from test_micro_core import INPUT_SCALE, INPUT_ZERO_POINT, native, normalization  # noqa: F401 (fixtures)


def _loud_runner(window: np.ndarray) -> np.ndarray:
    """'yes' while the newest frame is louder (c0) than the oldest, else silence; softmax-style int8.

    The tests' audio is silence around a tone shorter than the window, so this
    is 'yes' exactly while the tone is arriving.
    """
    out = np.full(labels_lib.NUM_CLASSES, -128, np.int8)
    out[0 if window[-1, 0] > window[0, 0] else labels_lib.LABELS.index(labels_lib.SILENCE)] = 127
    return out


def _tone_between_silences() -> np.ndarray:
    """1 s of silence, a 0.6 s 700 Hz tone at half scale, 1 s of silence (int16)."""
    sr = features.SAMPLE_RATE
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 700 * np.arange(int(0.6 * sr)) / sr)).astype(np.int16)
    return np.concatenate([np.zeros(sr, np.int16), tone, np.zeros(sr, np.int16)])


def _one_detection(app, audio) -> list:
    """Feeds `audio` in 512-sample blocks; asserts exactly one `KWS yes` line and returns the KWS lines."""
    lines = []
    for start in range(0, audio.size, 512):
        lines += app.process(audio[start:start + 512])
    kws = [line for line in lines if line.startswith("KWS ")]
    assert len(kws) == 1 and re.fullmatch(r"KWS yes score=\d+ t=\d+", kws[0]), lines
    return kws


def test_native_app_loop(native, normalization):
    app = native_app.NativeApp(normalization, INPUT_SCALE, INPUT_ZERO_POINT, _loud_runner, arena_bytes=18000)
    audio = _tone_between_silences()
    kws = _one_detection(app, audio)
    t_ms = int(kws[0].split("t=")[1])
    assert 1000 < t_ms < 1700
    counters = app.counters
    frames = 1 + (audio.size - 200) // 160
    assert counters["frames"] == frames
    assert counters["inferences"] == 1 + (frames - features.NUM_FRAMES) // app.config.inference_every_frames
    bench = app.report_bench()
    assert re.fullmatch(r"BENCH mfcc_us=\d+/\d+/\d+ invoke_us=\d+/\d+/\d+ frames=\d+ invokes=\d+ "
                        r"arena=18000 overruns=0 dropped=0 hop_us=\d+/\d+/\d+ "
                        r"duty_pct=\d+\.\d/\d+\.\d/\d+\.\d mode=window", bench), bench
    assert app.self_test(audio, ["yes"])
    assert app.lines[-1] == "SELFTEST PASS expected=yes detected=yes"
    assert not app.self_test(audio, ["no"])
    assert app.lines[-1] == "SELFTEST FAIL expected=no detected=yes"


class _LoudStepModel:
    """A stateful stand-in for a step model: 'yes' while any of the 30 frames ending
    `delay` frames before the newest is louder (c0) than the first frame since reset."""

    def __init__(self, delay: int):
        self.delay = delay
        self.frames: list[np.ndarray] = []
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.frames = []

    def step(self, frame: np.ndarray) -> np.ndarray:
        assert frame.shape == (features.NUM_MFCC,) and frame.dtype == np.int8
        self.frames.append(frame.copy())
        n = len(self.frames)
        recent = self.frames[max(0, n - self.delay - 30):max(0, n - self.delay)]
        loud = any(f[0] > self.frames[0][0] for f in recent)
        out = np.full(labels_lib.NUM_CLASSES, -128, np.int8)
        out[0 if loud else labels_lib.LABELS.index(labels_lib.SILENCE)] = 127
        return out


def test_native_app_frame_mode(native, normalization):
    delay = 35
    model = _LoudStepModel(delay)
    app = native_app.NativeApp(normalization, INPUT_SCALE, INPUT_ZERO_POINT, model.step, reset_fn=model.reset,
                               model_input="frame", step_delay_frames=delay, arena_bytes=9000)
    assert model.resets == 1 and app.frame_mode and app.config.step_delay_frames == delay
    audio = _tone_between_silences()
    kws = _one_detection(app, audio)
    assert 1000 + 10 * delay < int(kws[0].split("t=")[1]) < 1100 + 10 * delay
    frames = 1 + (audio.size - 200) // 160
    c = app.counters
    assert c["frames"] == c["inferences"] == len(model.frames) == frames
    assert c["recognitions"] == frames - (features.NUM_FRAMES + delay) + 1
    # The model saw the front-end's frames, one per hop.
    fe = native.NativeFrontend(normalization, INPUT_SCALE, INPUT_ZERO_POINT)
    q, _ = fe.feed(audio)
    np.testing.assert_array_equal(np.stack(model.frames), q)
    assert re.fullmatch(r"BENCH .* hop_us=\d+/\d+/\d+ duty_pct=[\d.]+/[\d.]+/[\d.]+ mode=frame",
                        app.report_bench())
    app.reset()
    assert model.resets == 2 and model.frames == [] and app.counters["frames"] == 0
    assert app.self_test(audio, ["yes"])
    assert app.lines[-1] == "SELFTEST PASS expected=yes detected=yes"
    with pytest.raises(ValueError, match="model_input"):
        native_app.NativeApp(normalization, INPUT_SCALE, INPUT_ZERO_POINT, model.step, model_input="stream")


def test_native_app_propagates_runner_errors(native, normalization):
    def broken(window):
        raise KeyError("boom")

    app = native_app.NativeApp(normalization, INPUT_SCALE, INPUT_ZERO_POINT, broken)
    with pytest.raises(KeyError):
        app.process(np.zeros(20000, np.int16))
