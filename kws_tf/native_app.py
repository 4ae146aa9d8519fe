"""The device's whole app loop (`micro_app/src/kws_app.h`) through the ctypes bridge of
`kws_tf.native`, with a Python model runner:

    app = NativeApp(norm, scale, zp, run_fn)   # windowed model
    app = NativeApp(norm, scale, zp, step_fn, model_input="frame", step_delay_frames=35,
                    reset_fn=runner.reset)     # ... a per-frame step model
"""

from __future__ import annotations

import ctypes

import numpy as np

from kws_tf import codegen, features, labels as labels_lib
from kws_tf.native import (APP_FIELDS, COUNTERS, MODEL_INPUTS, _RESET_FN, _REPORT_FN, _RUN_FN, Recognition, _AppConfig,
                           _int16, _Params, _ptr, _Recognition, _recognizer_struct, _u32, load_library)


def model_input_code(value) -> int:
    """'window' / 'frame' (or 0 / 1) -> the C API's KWS_MODEL_INPUT_* value."""
    if isinstance(value, str):
        if value not in MODEL_INPUTS:
            raise ValueError(f"model_input must be one of {sorted(MODEL_INPUTS)}, got {value!r}")
        return MODEL_INPUTS[value]
    if int(value) not in MODEL_INPUTS.values():
        raise ValueError(f"model_input must be one of {sorted(MODEL_INPUTS)}, got {value!r}")
    return int(value)


class NativeApp:
    """The device's whole loop (kws_app.h) with a Python model runner.

    `model_input="window"` (default): `run_fn(window)` gets the int8
    `(NUM_FRAMES, NUM_MFCC)` window every `inference_every_frames` frames.
    `model_input="frame"`: `run_fn(frame)` gets the newest int8 frame
    (`NUM_MFCC` values) on every 10 ms hop (a stateful step model);
    `step_delay_frames` is the model's look-ahead (scores before
    `NUM_FRAMES + step_delay_frames` frames are warm-up and skip the
    recogniser) and `reset_fn()` is called whenever the app resets (creation,
    `reset`, `self_test`), to put the model's state back to its start.
    Either way `run_fn` returns the int8 model output (`num_classes` values).
    Report lines (`KWS ...`, `BENCH ...`, `SELFTEST ...`, `ERROR ...`) collect
    in `lines`; timestamps in them are audio time since the last reset, BENCH
    timings are host timings.
    """

    def __init__(self, normalization: features.Normalization, input_scale: float, input_zero_point: int,
                 run_fn, *, labels=labels_lib.LABELS, output_scale: float = codegen.DEFAULT_OUTPUT_SCALE,
                 output_zero_point: int = codegen.DEFAULT_OUTPUT_ZERO_POINT, output_is_logits: bool = False,
                 output_temperature: float | None = None, arena_bytes: int = 0, recognizer: dict | None = None, reset_fn=None,
                 **app_config):
        self._lib = load_library()
        self.lines: list[str] = []
        self._error: BaseException | None = None
        self._run_fn = run_fn
        self._reset_fn = reset_fn
        labels = tuple(labels)
        cfg = _AppConfig()
        self._lib.kws_app_default_config(ctypes.byref(cfg))
        for key, value in app_config.items():
            if key not in APP_FIELDS:
                raise ValueError(f"unknown app option {key!r}; known: {APP_FIELDS}")
            setattr(cfg, key, model_input_code(value) if key == "model_input" else int(value))
        rec = dict(recognizer or {})
        rec.setdefault("num_classes", len(labels))
        rec.setdefault("silence_index", labels.index(labels_lib.SILENCE) if labels_lib.SILENCE in labels else -1)
        rec.setdefault("unknown_index", labels.index(labels_lib.UNKNOWN) if labels_lib.UNKNOWN in labels else -1)
        cfg.recognizer = _recognizer_struct(rec)
        cfg.output_scale = float(np.float32(output_scale))
        cfg.output_zero_point = int(output_zero_point)
        cfg.output_is_logits = int(bool(output_is_logits))
        if output_temperature is not None:  # else the core's default (kws::OutputQuantization)
            cfg.output_temperature = float(np.float32(output_temperature))
        cfg.arena_bytes = int(arena_bytes)
        self.config = cfg
        self.labels = labels
        self._num_classes = len(labels)
        self.frame_mode = cfg.model_input == MODEL_INPUTS["frame"]
        self._input_shape = ((features.NUM_MFCC,) if self.frame_mode
                             else (features.NUM_FRAMES, features.NUM_MFCC))
        params = _Params(normalization, input_scale, input_zero_point)
        label_array = (ctypes.c_char_p * len(labels))(*[s.encode("ascii") for s in labels])
        self._run_cb = _RUN_FN(self._on_run)  # kept referenced: C holds the pointers
        self._reset_cb = _RESET_FN(self._on_reset)
        self._report_cb = _REPORT_FN(self._on_report)
        self._handle = self._lib.kws_app_create(ctypes.byref(params.struct), ctypes.byref(cfg), label_array,
                                                self._run_cb, self._reset_cb, self._report_cb, None)
        self._check()
        if not self._handle:
            raise ValueError("the C++ core rejected this app configuration")

    def _on_reset(self, _user) -> None:
        try:
            if self._reset_fn is not None:
                self._reset_fn()
        except BaseException as e:  # re-raised in Python once the C call returns
            self._error = self._error or e

    def _on_run(self, _user, input_ptr, output_ptr) -> int:
        try:
            size = int(np.prod(self._input_shape))
            data = np.ctypeslib.as_array(input_ptr, shape=(size,))
            out = np.asarray(self._run_fn(data.reshape(self._input_shape).copy()))
            out = out.reshape(-1)
            if out.size != self._num_classes:
                raise ValueError(f"run_fn returned {out.size} values, expected {self._num_classes}")
            ctypes.memmove(output_ptr, np.ascontiguousarray(out.astype(np.int8)).ctypes.data, out.size)
            return 1
        except BaseException as e:  # re-raised in Python once the C call returns
            self._error = self._error or e
            return 0

    def _on_report(self, _user, line: bytes) -> None:
        self.lines.append(line.decode("ascii", "replace"))

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def process(self, samples) -> list[str]:
        """Feeds samples (any count); returns the report lines they produced."""
        pcm = _int16(samples)
        start = len(self.lines)
        if pcm.size:
            self._lib.kws_app_process(self._handle, _ptr(pcm, ctypes.c_int16), pcm.size)
        self._check()
        return self.lines[start:]

    def reset(self) -> None:
        self._lib.kws_app_reset(self._handle)
        self._check()

    def report_bench(self) -> str:
        self._lib.kws_app_report_bench(self._handle)
        return self.lines[-1]

    def self_test(self, audio, expected) -> bool:
        """Replays `audio` from a reset; `expected` labels (names or indices) in order."""
        idx = np.asarray([self.labels.index(e) if isinstance(e, str) else int(e) for e in expected], np.int32)
        pcm = _int16(audio)
        ok = self._lib.kws_app_self_test(self._handle, _ptr(pcm, ctypes.c_int16), pcm.size,
                                         _ptr(idx, ctypes.c_int32) if idx.size else None, idx.size)
        self._check()
        return bool(ok)

    @property
    def counters(self) -> dict:
        """frames, inferences (model runs, warm-up included), audio_ms, invoke_errors,
        recognitions (score vectors the recogniser got)."""
        out = (_u32 * len(COUNTERS))()
        self._lib.kws_app_counters(self._handle, out, len(COUNTERS))
        return dict(zip(COUNTERS, (int(v) for v in out)))

    def last(self) -> tuple[Recognition, np.ndarray]:
        rec = _Recognition()
        scores = np.zeros(self._num_classes, np.uint8)
        self._lib.kws_app_last(self._handle, ctypes.byref(rec), _ptr(scores, ctypes.c_uint8))
        return Recognition(bool(rec.found), rec.label, rec.score, bool(rec.is_new_command)), scores

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.kws_app_destroy(self._handle)
            self._handle = None

    __del__ = close
