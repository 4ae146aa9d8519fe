"""ctypes bridge to the device's portable C++ core (`micro_app/src`).

The same front-end, recogniser and app loop that run on the board run here,
compiled for the host as the shared library `kws_core`. Every front-end
constant is passed in from `kws_tf.features` (through `codegen.frontend_tables`,
the function that also writes the board's header), so this works with any
model's normalisation and quantisation without generating anything.

    fe = NativeFrontend(norm, input_scale, input_zero_point)
    q, mfcc = fe.features_for_clip(audio)      # == features.mfcc_np framing
    rec = NativeRecognizer(detection_threshold=200)

The whole device loop on top of these is `kws_tf.native_app.NativeApp`.

The library is built on first use with CMake into `micro_app/build-host/`
(`build()`); set `KWS_CORE_LIB` to use an already built library instead.
"""

from __future__ import annotations

import collections
import ctypes
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

from kws_tf import codegen, features

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICRO_APP = ROOT / "micro_app"
BUILD_DIR = MICRO_APP / "build-host"
LIB_NAME = "libkws_core.dylib" if sys.platform == "darwin" else "libkws_core.so"

Recognition = collections.namedtuple("Recognition", "found label score is_new_command")

# kws_c_api.h KWS_C_API_VERSION this module is written for.
C_API_VERSION = 3
# kws_c_api.h KWS_MODEL_INPUT_* (kws::ModelInput).
MODEL_INPUTS = {"window": 0, "frame": 1}

_i32 = ctypes.c_int32
_u32 = ctypes.c_uint32
_f32p = ctypes.POINTER(ctypes.c_float)
_u16p = ctypes.POINTER(ctypes.c_uint16)
_i8p = ctypes.POINTER(ctypes.c_int8)
_u8p = ctypes.POINTER(ctypes.c_uint8)
_i16p = ctypes.POINTER(ctypes.c_int16)
_i32p = ctypes.POINTER(ctypes.c_int32)


class _FrontendParams(ctypes.Structure):
    _fields_ = [
        ("sample_rate", _i32), ("window_samples", _i32), ("hop_samples", _i32),
        ("fft_size", _i32), ("num_mel", _i32), ("num_mfcc", _i32),
        ("window", _f32p), ("mel_start", _u16p), ("mel_length", _u16p), ("mel_offset", _u16p),
        ("mel_weights", _f32p), ("mel_weight_count", _i32), ("dct", _f32p),
        ("norm_mean", _f32p), ("norm_inv_std", _f32p),
        ("log_offset", ctypes.c_float), ("pcm_scale", ctypes.c_float),
        ("input_scale", ctypes.c_float), ("input_zero_point", _i32),
    ]


class _RecognizerConfig(ctypes.Structure):
    _fields_ = [(name, _i32) for name in (
        "average_window_ms", "detection_threshold", "suppression_ms", "minimum_count",
        "num_classes", "silence_index", "unknown_index")]


class _Recognition(ctypes.Structure):
    _fields_ = [(name, _i32) for name in ("found", "label", "score", "is_new_command")]


class _AppConfig(ctypes.Structure):
    _fields_ = [
        ("inference_every_frames", _i32), ("wait_for_full_window", _i32),
        ("bench_window", _i32), ("bench_report_every", _i32), ("selftest_tail_ms", _i32),
        ("model_input", _i32), ("step_delay_frames", _i32),
        ("output_scale", ctypes.c_float), ("output_zero_point", _i32),
        ("output_is_logits", _i32), ("output_temperature", ctypes.c_float), ("arena_bytes", _u32),
        ("recognizer", _RecognizerConfig),
    ]


_RUN_FN = ctypes.CFUNCTYPE(_i32, ctypes.c_void_p, _i8p, _i8p)
_RESET_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_REPORT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)

RECOGNIZER_FIELDS = tuple(name for name, _ in _RecognizerConfig._fields_)
APP_FIELDS = ("inference_every_frames", "wait_for_full_window", "bench_window",
              "bench_report_every", "selftest_tail_ms", "model_input", "step_delay_frames")
COUNTERS = ("frames", "inferences", "audio_ms", "invoke_errors", "recognitions")


# ------------------------------------------------------------------ building

def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}")


def build(targets: tuple[str, ...] = ("kws_core",), jobs: int = 2,
          build_dir: pathlib.Path = BUILD_DIR) -> pathlib.Path:
    """Configures (once) and builds `targets` of micro_app/CMakeLists.txt; returns build_dir.

    Incremental: a no-op build takes well under a second. A file lock keeps
    concurrent test processes from building the same tree at once.
    """
    missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (g++)")
    if missing:
        raise RuntimeError("building the kws_core library needs " + " and ".join(missing)
                           + " (Debian: apt-get install cmake g++)")
    build_dir = pathlib.Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build_dir / "CMakeCache.txt").exists():
            _run(["cmake", "-S", str(MICRO_APP), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                  f"-DPython3_EXECUTABLE={sys.executable}"])
        cmd = ["cmake", "--build", str(build_dir), f"-j{jobs}"]
        for target in targets:
            cmd += ["--target", target]
        _run(cmd)
    return build_dir


_LIB = None


def load_library() -> ctypes.CDLL:
    """The kws_core shared library (built if needed), with argument types declared."""
    global _LIB
    if _LIB is not None:
        return _LIB
    path = os.environ.get("KWS_CORE_LIB") or str(build() / LIB_NAME)
    lib = ctypes.CDLL(path)
    sig = {
        "kws_core_dims": (_i32, [_i32p, _i32]),
        "kws_c_api_version": (_i32, []),
        "kws_frontend_create": (ctypes.c_void_p, [ctypes.POINTER(_FrontendParams)]),
        "kws_frontend_destroy": (None, [ctypes.c_void_p]),
        "kws_frontend_reset": (None, [ctypes.c_void_p]),
        "kws_frontend_frames_for": (_i32, [ctypes.c_void_p, _i32]),
        "kws_frontend_feed": (_i32, [ctypes.c_void_p, _i16p, _i32, _i8p, _f32p, _i32]),
        "kws_recognizer_default_config": (None, [ctypes.POINTER(_RecognizerConfig)]),
        "kws_recognizer_create": (ctypes.c_void_p, [ctypes.POINTER(_RecognizerConfig)]),
        "kws_recognizer_destroy": (None, [ctypes.c_void_p]),
        "kws_recognizer_reset": (None, [ctypes.c_void_p]),
        "kws_recognizer_process": (_i32, [ctypes.c_void_p, _u8p, _u32, ctypes.POINTER(_Recognition)]),
        "kws_recognizer_replay": (_i32, [ctypes.c_void_p, _u8p, ctypes.POINTER(_u32), _i32, _i32p, _i32p,
                                         ctypes.POINTER(_u32), _i32]),
        "kws_scores_from_output": (None, [_i8p, _i32, ctypes.c_float, _i32, _i32, ctypes.c_float, _u8p]),
        "kws_app_default_config": (None, [ctypes.POINTER(_AppConfig)]),
        "kws_app_create": (ctypes.c_void_p, [ctypes.POINTER(_FrontendParams), ctypes.POINTER(_AppConfig),
                                             ctypes.POINTER(ctypes.c_char_p), _RUN_FN, _RESET_FN,
                                             _REPORT_FN, ctypes.c_void_p]),
        "kws_app_destroy": (None, [ctypes.c_void_p]),
        "kws_app_reset": (None, [ctypes.c_void_p]),
        "kws_app_process": (None, [ctypes.c_void_p, _i16p, _i32]),
        "kws_app_report_bench": (None, [ctypes.c_void_p]),
        "kws_app_self_test": (_i32, [ctypes.c_void_p, _i16p, _i32, _i32p, _i32]),
        "kws_app_counters": (_i32, [ctypes.c_void_p, ctypes.POINTER(_u32), _i32]),
        "kws_app_last": (None, [ctypes.c_void_p, ctypes.POINTER(_Recognition), _u8p]),
    }
    lib.kws_c_api_version.restype = _i32
    lib.kws_c_api_version.argtypes = []
    version = lib.kws_c_api_version()
    if version != C_API_VERSION:
        raise RuntimeError(f"{path} has C API version {version}, kws_tf.native needs {C_API_VERSION}: "
                           "rebuild it (delete micro_app/build-host, or unset KWS_CORE_LIB)")
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    got = core_dims(lib)
    want = (features.SAMPLE_RATE, features.WINDOW_SAMPLES, features.HOP_SAMPLES, features.FFT_SIZE,
            features.NUM_FFT_BINS, features.NUM_MEL, features.NUM_MFCC, features.NUM_FRAMES)
    if tuple(got[: len(want)]) != want:
        raise RuntimeError(f"{path} was built for dimensions {got}, features.py has {want}")
    _LIB = lib
    return lib


def core_dims(lib: ctypes.CDLL | None = None) -> tuple[int, ...]:
    """(sample rate, window, hop, fft, bins, mel, mfcc, frames, max classes) of the C++ core."""
    lib = lib or load_library()
    out = (_i32 * 16)()
    n = lib.kws_core_dims(out, 16)
    return tuple(out[:n])


def _ptr(array: np.ndarray, ctype):
    return array.ctypes.data_as(ctypes.POINTER(ctype))


def _int16(samples) -> np.ndarray:
    pcm = np.asarray(samples)
    if pcm.ndim != 1:
        raise ValueError("expected 1-D int16 PCM")
    if pcm.dtype != np.int16:
        if not np.issubdtype(pcm.dtype, np.integer):
            raise ValueError("expected int16 PCM, got " + str(pcm.dtype))
        pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    return np.ascontiguousarray(pcm)


class _Params:
    """A `_FrontendParams` plus the numpy arrays it points into (kept alive)."""

    def __init__(self, normalization: features.Normalization, input_scale: float, input_zero_point: int):
        t = codegen.frontend_tables(normalization)
        self._arrays = [np.ascontiguousarray(a) for a in (
            t.window, t.mel_start, t.mel_length, t.mel_offset, t.mel_weights, t.dct,
            t.norm_mean, t.norm_inv_std)]
        w, ms, ml, mo, mw, dct, mean, inv = self._arrays
        self.struct = _FrontendParams(
            features.SAMPLE_RATE, features.WINDOW_SAMPLES, features.HOP_SAMPLES, features.FFT_SIZE,
            features.NUM_MEL, features.NUM_MFCC,
            _ptr(w, ctypes.c_float), _ptr(ms, ctypes.c_uint16), _ptr(ml, ctypes.c_uint16),
            _ptr(mo, ctypes.c_uint16), _ptr(mw, ctypes.c_float), mw.size, _ptr(dct, ctypes.c_float),
            _ptr(mean, ctypes.c_float), _ptr(inv, ctypes.c_float),
            float(t.log_offset), float(t.pcm_scale), float(np.float32(input_scale)), int(input_zero_point))


# ------------------------------------------------------------------ front-end

class NativeFrontend:
    """The device's streaming MFCC front-end (int8 features + raw float MFCCs)."""

    def __init__(self, normalization: features.Normalization, input_scale: float, input_zero_point: int):
        self._lib = load_library()
        params = _Params(normalization, input_scale, input_zero_point)
        self._handle = self._lib.kws_frontend_create(ctypes.byref(params.struct))
        if not self._handle:
            raise ValueError("the C++ core rejected these front-end parameters")

    def reset(self) -> None:
        """History back to WINDOW/2 zeros: the next samples start a clip."""
        self._lib.kws_frontend_reset(self._handle)

    def feed(self, samples) -> tuple[np.ndarray, np.ndarray]:
        """int16 samples (any count) -> (int8 `[n, 32]`, float32 `[n, 32]`) frames completed."""
        pcm = _int16(samples)
        count = self._lib.kws_frontend_frames_for(self._handle, pcm.size)
        q = np.zeros((max(count, 1), features.NUM_MFCC), np.int8)
        mfcc = np.zeros((max(count, 1), features.NUM_MFCC), np.float32)
        got = self._lib.kws_frontend_feed(self._handle, _ptr(pcm, ctypes.c_int16), pcm.size,
                                          _ptr(q, ctypes.c_int8), _ptr(mfcc, ctypes.c_float), q.shape[0])
        if got != count:
            raise RuntimeError(f"front-end produced {got} frames, expected {count}")
        return q[:count], mfcc[:count]

    def features_for_clip(self, samples) -> tuple[np.ndarray, np.ndarray]:
        """A whole clip from a reset, flushed with WINDOW/2 zeros: the frames of `features.mfcc_np`."""
        self.reset()
        q1, m1 = self.feed(samples)
        q2, m2 = self.feed(np.zeros(features.WINDOW_SAMPLES // 2, np.int16))
        return np.concatenate([q1, q2]), np.concatenate([m1, m2])

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.kws_frontend_destroy(self._handle)
            self._handle = None

    __del__ = close


# ------------------------------------------------------------------ recogniser

def recognizer_defaults() -> dict:
    """The C++ RecognizerConfig defaults (the device's), as a dict."""
    cfg = _RecognizerConfig()
    load_library().kws_recognizer_default_config(ctypes.byref(cfg))
    return {name: getattr(cfg, name) for name in RECOGNIZER_FIELDS}


def _recognizer_struct(overrides: dict | None) -> _RecognizerConfig:
    values = recognizer_defaults()
    for key, value in (overrides or {}).items():
        if key not in values:
            raise ValueError(f"unknown recogniser option {key!r}; known: {sorted(values)}")
        values[key] = int(value)
    return _RecognizerConfig(**values)


class NativeRecognizer:
    """The device's command recogniser: scores (0..255 per class) + time -> Recognition."""

    def __init__(self, **config):
        self._lib = load_library()
        self.config = _recognizer_struct(config)
        self._handle = self._lib.kws_recognizer_create(ctypes.byref(self.config))
        if not self._handle:
            raise ValueError(f"the C++ core rejected recogniser config {config}")

    def reset(self) -> None:
        self._lib.kws_recognizer_reset(self._handle)

    def process(self, scores, time_ms: int) -> Recognition:
        s = np.ascontiguousarray(scores, np.uint8)
        if s.shape != (self.config.num_classes,):
            raise ValueError(f"expected {self.config.num_classes} scores, got shape {s.shape}")
        out = _Recognition()
        self._lib.kws_recognizer_process(self._handle, _ptr(s, ctypes.c_uint8), int(time_ms) & 0xFFFFFFFF,
                                         ctypes.byref(out))
        return Recognition(bool(out.found), out.label, out.score, bool(out.is_new_command))

    def replay(self, scores, times_ms) -> list[tuple[int, int, int]]:
        """Feed every row of `scores` [N, num_classes] at `times_ms` [N] in one C call (after whatever
        was fed before); returns the new commands as (label, score, time_ms)."""
        s = np.ascontiguousarray(scores, np.uint8)
        t = np.ascontiguousarray(times_ms, np.uint32)
        if s.ndim != 2 or s.shape[1] != self.config.num_classes or t.shape != (s.shape[0],):
            raise ValueError(f"expected scores [N, {self.config.num_classes}] and times [N], got {s.shape}, {t.shape}")
        cap = max(1, s.shape[0])  # at most one new command per result
        labels, sc, tm = np.zeros(cap, np.int32), np.zeros(cap, np.int32), np.zeros(cap, np.uint32)
        n = self._lib.kws_recognizer_replay(self._handle, _ptr(s, ctypes.c_uint8), _ptr(t, _u32), s.shape[0],
                                            _ptr(labels, ctypes.c_int32), _ptr(sc, ctypes.c_int32), _ptr(tm, _u32), cap)
        if n < 0:
            raise ValueError("the C++ core rejected the replay arguments")
        return list(zip(labels[:n].tolist(), sc[:n].tolist(), tm[:n].tolist()))

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.kws_recognizer_destroy(self._handle)
            self._handle = None

    __del__ = close


def scores_from_output(output, scale: float, zero_point: int, is_logits: bool,
                       temperature: float = 1.0) -> np.ndarray:
    """int8 model output -> uint8 scores, with the device's arithmetic (`temperature`: logits only,
    softmax(logits / T)). A 2-D `output` [N, classes] gives [N, classes] scores, row by row."""
    out = np.ascontiguousarray(output, np.int8)
    if out.ndim == 2:
        return np.stack([scores_from_output(row, scale, zero_point, is_logits, temperature) for row in out]) \
            if out.shape[0] else np.zeros(out.shape, np.uint8)
    scores = np.zeros(out.size, np.uint8)
    load_library().kws_scores_from_output(_ptr(out, ctypes.c_int8), out.size, float(scale), int(zero_point),
                                          int(bool(is_logits)), float(temperature), _ptr(scores, ctypes.c_uint8))
    return scores
