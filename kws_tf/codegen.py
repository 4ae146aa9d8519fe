"""C++ text generated from the Python constants, so nothing is typed twice.

`render_frontend_header` writes ``kws_settings.h``: every number the device's
front-end, quantisation and label handling need, taken from `kws_tf.features`
and `kws_tf.labels`. `render_model_data` writes the flatbuffer as a C array.
The functions are pure and deterministic (same input -> byte-identical text),
so generated files only change when a constant does.

Floats are written with 9 significant digits, which round-trips every float32
exactly: the C++ sees bit-identical tables to `features.*` cast to float32.

`frontend_tables()` is the one place that turns `features` into the flat
tables the C++ core consumes; the generated header and the ctypes bridge
(`kws_tf.native`) both use it, so the board and the host twin cannot disagree.

CLI (CMake runs it to give the host tests their header)::

    python -m kws_tf.codegen --out_dir=DIR [--normalization=norm.json]
        [--input_scale=0.05] [--input_zero_point=0]
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib

import numpy as np

from kws_tf import features, labels as labels_lib
from kws_tf.codegen_data import (MODEL_DATA_HEADERS, _array_body, render_model_data,  # noqa: F401
                                 render_pcm_data, write_if_changed)

# Host-test defaults for the int8 input quantisation when no model exists yet:
# 0.05 covers +-6.4 standard deviations of normalised features, a plausible
# range for a calibrated model. Only used by the CLI / host tests.
DEFAULT_INPUT_SCALE = 0.05
DEFAULT_INPUT_ZERO_POINT = 0

# TFLM's int8 softmax output convention, used when no output quantisation is
# given (matches kws::OutputQuantization's defaults).
DEFAULT_OUTPUT_SCALE = 1.0 / 256.0
DEFAULT_OUTPUT_ZERO_POINT = -128


@dataclasses.dataclass(frozen=True)
class FrontendTables:
    """The flat float32 / uint16 tables of the front-end, as the C++ reads them."""

    window: np.ndarray  # [WINDOW_SAMPLES] float32
    mel_start: np.ndarray  # [NUM_MEL] uint16, first FFT bin of each band
    mel_length: np.ndarray  # [NUM_MEL] uint16
    mel_offset: np.ndarray  # [NUM_MEL] uint16, start of the band in mel_weights
    mel_weights: np.ndarray  # [sum(mel_length)] float32
    dct: np.ndarray  # [NUM_MEL * NUM_MFCC] float32, row-major [mel][mfcc]
    norm_mean: np.ndarray  # [NUM_MFCC] float32
    norm_inv_std: np.ndarray  # [NUM_MFCC] float32
    log_offset: np.float32
    pcm_scale: np.float32


def sparse_mel(matrix: np.ndarray | None = None):
    """Mel matrix `[bins, mel]` -> (start, length, offset, weights) for the device.

    Each band keeps only its nonzero bin range (`features.mel_band_ranges`);
    the weights of all bands are concatenated in band order.
    """
    matrix = features.mel_matrix() if matrix is None else np.asarray(matrix)
    ranges = features.mel_band_ranges(matrix)
    start, length, offset, weights = [], [], [], []
    pos = 0
    for band, (lo, hi) in enumerate(ranges):
        start.append(lo)
        length.append(hi - lo)
        offset.append(pos)
        weights.append(matrix[lo:hi, band])
        pos += hi - lo
    if pos > np.iinfo(np.uint16).max:
        raise ValueError("mel weights do not fit uint16 offsets")
    return (
        np.asarray(start, np.uint16),
        np.asarray(length, np.uint16),
        np.asarray(offset, np.uint16),
        np.concatenate(weights).astype(np.float32),
    )


def frontend_tables(normalization: features.Normalization) -> FrontendTables:
    """The tables of the normalisation's front-end (MFCC; log-mel: 40 bands and an empty DCT)."""
    fe = _device_frontend(normalization)
    start, length, offset, weights = sparse_mel(features.mel_matrix(fe.mel_bands))
    dct = features.dct_matrix() if fe.dct else np.zeros((0,), np.float32)
    return FrontendTables(
        window=np.asarray(features.hann_window(), np.float32),
        mel_start=start,
        mel_length=length,
        mel_offset=offset,
        mel_weights=weights,
        dct=np.ascontiguousarray(dct, np.float32).reshape(-1),
        norm_mean=normalization.mean_f32(),
        norm_inv_std=normalization.inv_std_f32(),
        log_offset=np.float32(features.LOG_OFFSET),
        pcm_scale=np.float32(features.PCM_SCALE),
    )


def _device_frontend(normalization: features.Normalization):
    """The front-end of these statistics if micro_app's C++ front-end computes it (`FrontEnd.mel_bands`)."""
    from kws_tf import frontends

    fe = frontends.get(normalization.frontend)
    if fe.mel_bands is None:
        raise ValueError(f"micro_app's front-end computes MFCC or log-mel; these are {fe.name} statistics")
    return fe


def input_inv_scale(scale: float) -> np.float32:
    """float32(1 / float32(scale)): exactly what `features.quantize_np` multiplies by."""
    return np.float32(1.0 / np.float32(scale))


# ------------------------------------------------------------------ formatting

def f32_literal(value) -> str:
    """A C++ float literal that parses back to exactly float32(value)."""
    x = np.float32(value)
    if not np.isfinite(x):
        raise ValueError(f"cannot write non-finite float {value!r}")
    text = "%.9g" % float(x)
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def _float_array(name: str, values, size_expr: str, per_line: int = 6) -> str:
    items = [f32_literal(v) for v in np.asarray(values, np.float32).reshape(-1)]
    return f"constexpr float {name}[{size_expr}] = {{\n{_array_body(items, per_line)}\n}};\n"


def _int_array(ctype: str, name: str, values, size_expr: str, per_line: int = 12) -> str:
    items = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return f"constexpr {ctype} {name}[{size_expr}] = {{\n{_array_body(items, per_line)}\n}};\n"


def _c_string(text: str) -> str:
    if not all(32 <= ord(ch) < 127 for ch in text):
        raise ValueError(f"only printable ASCII can go into the header: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_array(name: str, values, size_expr: str) -> str:
    items = [_c_string(v) for v in values] or ['""']
    return f"constexpr const char* {name}[{size_expr}] = {{\n{_array_body(items, 4)}\n}};\n"


def tables_hash(tables: FrontendTables, input_scale: float, input_zero_point: int) -> int:
    """CRC-32 over every front-end number, in a fixed order.

    The board can print it at boot and the host twin compute it, to prove both
    run the same front-end without comparing 2,000 numbers by hand.
    """
    crc = 0
    for arr in (tables.window, tables.mel_start, tables.mel_length, tables.mel_offset,
                tables.mel_weights, tables.dct, tables.norm_mean, tables.norm_inv_std):
        crc = zlib.crc32(np.ascontiguousarray(arr).tobytes(), crc)
    scalars = np.asarray([tables.log_offset, tables.pcm_scale, np.float32(input_scale)], np.float32)
    crc = zlib.crc32(scalars.tobytes(), crc)
    crc = zlib.crc32(np.asarray([input_zero_point], np.int32).tobytes(), crc)
    return crc


# ------------------------------------------------------------------ renderers

# Helpers tying the data above to the portable core's structs. They compile
# only when the core's headers were included first, so the header itself stays
# usable without the core (and the core never needs the header).
_GLUE = """
// ---- glue for the portable core (micro_app/src). Include mfcc_frontend.h
// and/or kws_app.h BEFORE this header to get these helpers. static: like the
// arrays they point at, they are private to each including file.
#ifdef KWS_MFCC_FRONTEND_H_
static_assert(kSampleRate == dims::kSampleRate && kWindowSamples == dims::kWindowSamples &&
                  kHopSamples == dims::kHopSamples && kFftSize == dims::kFftSize &&
                  kNumMel == dims::kNumMel && kNumMfcc == dims::kNumMfcc &&
                  kNumFrames == dims::kNumFrames,
              "kws_settings.h was generated for other dimensions than the core");
static_assert(kFrontEndDct == dims::kFrontEndDct,
              "kws_settings.h is for another front-end than the core was built for (-DKWS_FRONTEND_LOGMEL)");
static inline FrontendTables SettingsFrontendTables() {
  FrontendTables t;
  t.sample_rate = kSampleRate;
  t.window_samples = kWindowSamples;
  t.hop_samples = kHopSamples;
  t.fft_size = kFftSize;
  t.num_mel = kNumMel;
  t.num_mfcc = kNumMfcc;
  t.window = kHannWindow;
  t.mel_start = kMelStart;
  t.mel_length = kMelLength;
  t.mel_offset = kMelOffset;
  t.mel_weights = kMelWeights;
  t.mel_weight_count = kMelWeightCount;
  t.dct = kDct;
  t.norm_mean = kNormMean;
  t.norm_inv_std = kNormInvStd;
  t.log_offset = kLogOffset;
  t.pcm_scale = kPcmScale;
  t.input_inv_scale = kInputInvScale;
  t.input_zero_point = kInputZeroPoint;
  return t;
}
#endif  // KWS_MFCC_FRONTEND_H_
#ifdef KWS_KWS_APP_H_
static_assert(kNumClasses <= dims::kMaxClasses, "too many classes for the core");
// App defaults plus this model's labels and output quantisation.
static inline AppConfig SettingsAppConfig() {
  AppConfig c;
  c.labels = kLabels;
  c.output.scale = kOutputScale;
  c.output.zero_point = kOutputZeroPoint;
  c.output.is_logits = kOutputIsLogits;
  c.recognizer.num_classes = kNumClasses;
  c.recognizer.silence_index = kSilenceIndex;
  c.recognizer.unknown_index = kUnknownIndex;
  c.step_delay_frames = kStepDelayFrames;  // used when model_input = ModelInput::kFrame
  // Recogniser: the export's operating point (KWS_* macros above), else the core's
  // defaults; -DKWS_DETECTION_THRESHOLD=... etc. at build time override either.
#ifdef KWS_DETECTION_THRESHOLD
  c.recognizer.detection_threshold = KWS_DETECTION_THRESHOLD;
#endif
#ifdef KWS_AVERAGE_WINDOW_MS
  c.recognizer.average_window_ms = KWS_AVERAGE_WINDOW_MS;
#endif
#ifdef KWS_SUPPRESSION_MS
  c.recognizer.suppression_ms = KWS_SUPPRESSION_MS;
#endif
#ifdef KWS_MINIMUM_COUNT
  c.recognizer.minimum_count = KWS_MINIMUM_COUNT;
#endif
#ifdef KWS_SCORE_TEMPERATURE
  c.output.temperature = KWS_SCORE_TEMPERATURE;
#endif
  return c;
}
#endif  // KWS_KWS_APP_H_
"""


def _all_ops_macro() -> str:
    """KWS_ALL_MICRO_OPS(X): every op the exporter may emit, as (name, resolver method).

    The sketch's board_ops.h expands it to register the model's ops; generated here
    from `tflite_tools.MICRO_OPS` so the C++ never keeps a second copy of the list.
    """
    from kws_tf.tflite_tools import MICRO_OPS

    items = list(MICRO_OPS.items())
    lines = ["\n// ---- every op kws_tf.tflite_tools.MICRO_OPS knows: (name, MicroMutableOpResolver method)\n",
             "#define KWS_ALL_MICRO_OPS(X) \\\n"]
    for i, (name, method) in enumerate(items):
        lines.append(f'  X("{name}", {method})' + (" \\\n" if i < len(items) - 1 else "\n"))
    return "".join(lines)


def render_frontend_header(
    normalization: features.Normalization,
    input_scale: float,
    input_zero_point: int,
    labels=labels_lib.LABELS,
    ops: tuple[str, ...] = (),
    arena_bytes: int = 0,
    model_name: str = "model",
    output_scale: float | None = None,
    output_zero_point: int | None = None,
    output_is_logits: bool = True,
    step_model: dict | None = None,
    recognizer: dict | None = None,
    recognizer_note: str = "",
) -> str:
    """Text of `kws_settings.h` (namespace `kws`).

    `recognizer`: the recogniser operating point the export chose (`kws_tf.operating_point`),
    {"detection_threshold", "average_window_ms", "suppression_ms", "minimum_count",
    "score_temperature"} (any subset); written as `KWS_DETECTION_THRESHOLD` ... macros (each
    `#ifndef`, so a build's `-D` wins) that `SettingsAppConfig()` applies. None: the core's
    defaults stay.

    `step_model`: the per-frame step model exported next to the windowed one
    (`model_step_data.h`, `g_step_model`), as {"delay_frames": int, "num_states": int,
    "arena_bytes": int}; the header then says `kHasStepModel = true` with
    `kStepDelayFrames`, `kStepNumStates`, `kStepArenaBytes`. None: no step model
    (false and zeros). `ops` must cover both models' ops (the sketch registers them
    once for whichever model it runs).

    `output_scale` / `output_zero_point` describe the model's int8 output; when
    `output_scale` is None the header says so (`kHasOutputQuantization = false`)
    and carries TFLM's softmax convention (1/256, -128) as a placeholder.
    `output_is_logits`: whether the device must apply a softmax to the output.
    """
    try:
        fe = _device_frontend(normalization)
    except ValueError as e:
        raise ValueError(f"{e}: a {normalization.frontend} model gets kws_tf.codegen_input.render_header") from None
    if not input_scale > 0:
        raise ValueError("input_scale must be positive")
    if not -128 <= int(input_zero_point) <= 127:
        raise ValueError("input_zero_point must fit int8")
    labels = tuple(labels)
    tables = frontend_tables(normalization)
    has_output = output_scale is not None
    out_scale = output_scale if has_output else DEFAULT_OUTPUT_SCALE
    out_zp = output_zero_point if output_zero_point is not None else (
        0 if has_output else DEFAULT_OUTPUT_ZERO_POINT)
    out_logits = bool(output_is_logits) if has_output else False
    silence = labels.index(labels_lib.SILENCE) if labels_lib.SILENCE in labels else -1
    unknown = labels.index(labels_lib.UNKNOWN) if labels_lib.UNKNOWN in labels else -1
    ops = tuple(ops)
    crc = tables_hash(tables, input_scale, input_zero_point)
    step = _step_model_constants(step_model)

    parts = [
        "// Generated by kws_tf.codegen from kws_tf/features.py and kws_tf/labels.py.\n"
        "// Do not edit: regenerate (python -m kws_tf.codegen, or kws_tf.export).\n"
        "//\n"
        "// The arrays are constexpr at namespace scope (internal linkage, C++14):\n"
        "// include this header from ONE .cc/.ino only, or each includer gets a copy.\n"
        f"// Model: {model_name}\n"
        f"// Ops: {', '.join(ops) if ops else '(none listed)'}\n",
        "#ifndef KWS_SETTINGS_H_\n#define KWS_SETTINGS_H_\n\n#include <stdint.h>\n\nnamespace kws {\n\n",
        "// ---- framing (features.py)\n",
        f"constexpr int kSampleRate = {features.SAMPLE_RATE};\n",
        f"constexpr int kWindowSamples = {features.WINDOW_SAMPLES};\n",
        f"constexpr int kHopSamples = {features.HOP_SAMPLES};\n",
        f"constexpr int kFftSize = {features.FFT_SIZE};\n",
        f"constexpr int kNumFftBins = {features.NUM_FFT_BINS};\n",
        f"// Front-end: {fe.name}; the core must be built for it (kws_dims.h{'' if fe.dct else ', -DKWS_FRONTEND_LOGMEL'}).\n",
        f"constexpr bool kFrontEndDct = {'true' if fe.dct else 'false'};\n",
        f"constexpr int kNumMel = {fe.mel_bands};\n",
        f"constexpr int kNumMfcc = {fe.dim};  // features per frame\n",
        f"constexpr int kNumFrames = {features.NUM_FRAMES};\n",
        f"constexpr float kLogOffset = {f32_literal(tables.log_offset)};\n",
        f"constexpr float kPcmScale = {f32_literal(tables.pcm_scale)};\n",
        "// CRC-32 of every front-end number below (codegen.tables_hash).\n",
        f"constexpr uint32_t kFrontendHash = 0x{crc:08x}u;\n\n",
        "// ---- periodic Hann window\n",
        _float_array("kHannWindow", tables.window, "kWindowSamples"),
        "\n// ---- Slaney mel filterbank, sparse: band m uses FFT bins\n"
        "// [kMelStart[m], kMelStart[m] + kMelLength[m]) with weights from kMelOffset[m].\n",
        _int_array("uint16_t", "kMelStart", tables.mel_start, "kNumMel"),
        _int_array("uint16_t", "kMelLength", tables.mel_length, "kNumMel"),
        _int_array("uint16_t", "kMelOffset", tables.mel_offset, "kNumMel"),
        f"constexpr int kMelWeightCount = {tables.mel_weights.size};\n",
        _float_array("kMelWeights", tables.mel_weights, "kMelWeightCount"),
        "static_assert(kMelOffset[kNumMel - 1] + kMelLength[kNumMel - 1] == kMelWeightCount,\n"
        "              \"mel weights are contiguous\");\n",
        ("\n// ---- orthonormal DCT-II, row-major [kNumMel][kNumMfcc]: mfcc = log_mel @ kDct\n"
         + _float_array("kDct", tables.dct, "kNumMel * kNumMfcc")) if fe.dct else
        "\n// ---- no DCT: the features are the log-mel bands\nconstexpr const float* kDct = nullptr;\n",
        "\n// ---- per-coefficient normalisation: (x - kNormMean[c]) * kNormInvStd[c]\n",
        _float_array("kNormMean", tables.norm_mean, "kNumMfcc"),
        _float_array("kNormInvStd", tables.norm_inv_std, "kNumMfcc"),
        "\n// ---- int8 model input: q = clamp(floor(x * kInputInvScale + 0.5) + kInputZeroPoint)\n",
        f"constexpr float kInputScale = {f32_literal(input_scale)};\n",
        f"constexpr float kInputInvScale = {f32_literal(input_inv_scale(input_scale))};\n",
        f"constexpr int32_t kInputZeroPoint = {int(input_zero_point)};\n",
        "\n// ---- int8 model output\n",
        f"constexpr bool kHasOutputQuantization = {'true' if has_output else 'false'};\n",
        f"constexpr float kOutputScale = {f32_literal(out_scale)};\n",
        f"constexpr int32_t kOutputZeroPoint = {int(out_zp)};\n",
        f"constexpr bool kOutputIsLogits = {'true' if out_logits else 'false'};\n",
        "\n// ---- classes, in model output order (labels.py)\n",
        f"constexpr int kNumClasses = {len(labels)};\n",
        _string_array("kLabels", labels, "kNumClasses"),
        f"constexpr int kSilenceIndex = {silence};\n",
        f"constexpr int kUnknownIndex = {unknown};\n",
        "\n// ---- model\n",
        f"constexpr const char* kModelName = {_c_string(model_name)};\n",
        f"constexpr int kNumOps = {len(ops)};\n",
        _string_array("kOpNames", ops, "kNumOps > 0 ? kNumOps : 1"),
        "// Arena bytes (tflm.device_arena_bytes): the minimum MEASURED on the exporting host\n"
        "// (64-bit, the pip TFLM), rounded up to 16. The board's 32-bit Feb-2023 library is\n"
        "// ESTIMATED to need no more; the sketch reserves this + KWS_ARENA_EXTRA_BYTES and\n"
        "// checks the bytes really used at boot (board_options.h, micro_app/README.md).\n"
        f"constexpr int kArenaBytes = {int(arena_bytes)};\n",
        "\n// ---- per-frame step model (model_step_data.h: g_step_model): one int8 frame in,\n"
        "// state tensors 1..S in and out; its scores describe the window ending\n"
        "// kStepDelayFrames frames before the newest frame.\n",
        f"constexpr bool kHasStepModel = {'true' if step['has'] else 'false'};\n",
        f"constexpr int kStepDelayFrames = {step['delay_frames']};\n",
        f"constexpr int kStepNumStates = {step['num_states']};\n",
        f"constexpr int kStepArenaBytes = {step['arena_bytes']};\n",
        _recognizer_macros(recognizer, recognizer_note),
        _all_ops_macro(),
        _GLUE,
        "\n}  // namespace kws\n\n#endif  // KWS_SETTINGS_H_\n",
    ]
    return "".join(parts)


RECOGNIZER_MACROS = {"detection_threshold": "KWS_DETECTION_THRESHOLD", "average_window_ms": "KWS_AVERAGE_WINDOW_MS",
                     "suppression_ms": "KWS_SUPPRESSION_MS", "minimum_count": "KWS_MINIMUM_COUNT",
                     "score_temperature": "KWS_SCORE_TEMPERATURE"}
FLOAT_SETTINGS = ("score_temperature",)  # the others are non-negative integers


def _recognizer_macros(recognizer: dict | None, note: str = "") -> str:
    """The recogniser settings block of kws_settings.h (see render_frontend_header)."""
    head = ("\n// ---- recogniser operating point (kws_tf.operating_point via kws_tf.export);\n"
            "// a build's -DKWS_DETECTION_THRESHOLD=... (etc.) overrides these.\n")
    if not recognizer:
        return head + "// (none chosen at export: the core's RecognizerConfig defaults apply)\n" \
            "constexpr bool kHasRecognizerSettings = false;\n"
    out = [head]
    for line in str(note).splitlines():
        out.append(f"// {line}\n")
    unknown = sorted(set(recognizer) - set(RECOGNIZER_MACROS))
    if unknown:
        raise ValueError(f"unknown recogniser settings {unknown}; known: {sorted(RECOGNIZER_MACROS)}")
    for key, macro in RECOGNIZER_MACROS.items():
        if key not in recognizer:
            continue
        value = recognizer[key]
        if key in FLOAT_SETTINGS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
                raise ValueError(f"recognizer[{key!r}] must be a positive number, got {value!r}")
            out.append(f"#ifndef {macro}\n#define {macro} {f32_literal(value)}\n#endif\n")
            continue
        if isinstance(value, bool) or int(value) != value or int(value) < 0:
            raise ValueError(f"recognizer[{key!r}] must be a non-negative integer, got {value!r}")
        if key == "detection_threshold" and int(value) > 255:
            raise ValueError(f"detection_threshold must be 0..255, got {value}")
        out.append(f"#ifndef {macro}\n#define {macro} {int(value)}\n#endif\n")
    out.append("constexpr bool kHasRecognizerSettings = true;\n")
    return "".join(out)


def _step_model_constants(step_model: dict | None) -> dict:
    """{has, delay_frames, num_states, arena_bytes} for the header; checks the values."""
    if step_model is None:
        return {"has": False, "delay_frames": 0, "num_states": 0, "arena_bytes": 0}
    missing = [k for k in ("delay_frames", "num_states", "arena_bytes") if k not in step_model]
    if missing:
        raise ValueError(f"step_model lacks {missing}")
    out = {"has": True}
    for key in ("delay_frames", "num_states", "arena_bytes"):
        value = step_model[key]
        if isinstance(value, bool) or int(value) != value or int(value) < 0:
            raise ValueError(f"step_model[{key!r}] must be a non-negative integer, got {value!r}")
        out[key] = int(value)
    if out["num_states"] < 1 or out["arena_bytes"] < 1:
        raise ValueError(f"step_model needs num_states >= 1 and arena_bytes >= 1, got {step_model}")
    return out


# The sketch's model files, by array name (micro_app.ino includes these headers).
def load_normalization(path: str | None) -> features.Normalization:
    """`{"mean": [32], "std": [32]}` json (MFCC statistics), or identity when path is empty."""
    if not path:
        return features.Normalization.identity()
    with open(path, encoding="utf-8") as f:
        return features.Normalization.from_dict(json.load(f))


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    text = render_frontend_header(
        load_normalization(FLAGS.normalization),
        input_scale=FLAGS.input_scale,
        input_zero_point=FLAGS.input_zero_point,
        model_name="host-test defaults (no model)",
    )
    path = os.path.join(FLAGS.out_dir, "kws_settings.h")
    changed = write_if_changed(path, text)
    print(f"{'wrote' if changed else 'unchanged'} {path}")


def _define_flags():
    from absl import flags

    flags.DEFINE_string("out_dir", None, "Folder to write kws_settings.h into (created if missing).")
    flags.DEFINE_string("normalization", "",
                        'JSON file {"mean": [32 floats], "std": [32 floats]}; identity if empty.')
    flags.DEFINE_float("input_scale", DEFAULT_INPUT_SCALE,
                       "int8 input scale (host-test default 0.05; export uses the model's).")
    flags.DEFINE_integer("input_zero_point", DEFAULT_INPUT_ZERO_POINT, "int8 input zero point.")
    flags.mark_flag_as_required("out_dir")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
