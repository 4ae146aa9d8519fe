"""The device's portable C++ core (micro_app/src) against the Python definition.

Builds the host library through `kws_tf.native` (cmake, -j2), runs the
GoogleTest suite through ctest, and checks that the streaming C++ front-end
reproduces `features.mfcc_np` -> `Normalization.apply_np` -> `quantize_np`:
int8 features within +-1 LSB on >= 99.9% of values (float32 on the device vs a
float64 reference), raw MFCCs within FLOAT_ATOL + FLOAT_RTOL * |x|.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from kws_tf import codegen, features, labels as labels_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Raw MFCC tolerance: float32 FFT / mel / log / DCT on the device vs float64 in
# numpy. Measured worst case: 4.2e-5 (generated signals), 2.3e-5 (60 real clips).
FLOAT_ATOL = 2e-4
FLOAT_RTOL = 1e-5
# Parity requirement for the int8 features.
MIN_EXACT_OR_ONE_LSB = 0.999

# A realistic int8 input quantisation: +-4 standard deviations -> +-127, with
# a nonzero zero point so that its handling is exercised.
INPUT_SCALE = 4.0 / 127.0
INPUT_ZERO_POINT = -3


@pytest.fixture(scope="module")
def native():
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed (Debian: apt-get install cmake g++)")
    from kws_tf import native as native_lib

    native_lib.load_library()
    return native_lib


def _rng(seed):
    return np.random.default_rng(seed)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _speechlike(seed: int, seconds: float = 1.0) -> np.ndarray:
    """Noise shaped by a moving resonance and a syllable-rate envelope."""
    rng = _rng(seed)
    n = int(seconds * features.SAMPLE_RATE)
    t = np.arange(n) / features.SAMPLE_RATE
    f0 = 110 + 60 * rng.random()
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.random() * 6) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * (2 + 3 * rng.random()) * t + rng.random() * 6), 0, None) ** 2
    noise = rng.standard_normal(n) * 0.2
    return _to_int16(0.3 * env * (voiced * 0.3 + noise) * (0.2 + rng.random()))


def _signals() -> dict[str, np.ndarray]:
    """Generated int16 test audio covering the front-end's numeric corners."""
    rng = _rng(0)
    sr = features.SAMPLE_RATE
    t = np.arange(sr) / sr
    sig = {
        "silence": np.zeros(sr, np.int16),
        "one_lsb_dither": rng.integers(-1, 2, sr).astype(np.int16),
        "noise_quiet": _to_int16(rng.standard_normal(sr) * 0.001),
        "noise_mid": _to_int16(rng.standard_normal(sr) * 0.05),
        "noise_loud": _to_int16(rng.standard_normal(sr) * 0.3),
        "chirp": _to_int16(0.5 * np.sin(2 * np.pi * (50 * t + (7900 - 50) / 2 * t**2))),
        "tone_440": _to_int16(0.8 * np.sin(2 * np.pi * 440 * t)),
        "tone_1000": _to_int16(0.9 * np.sin(2 * np.pi * 1000 * t)),
        "tone_3999": _to_int16(0.5 * np.sin(2 * np.pi * 3999 * t)),
        "clipped": _to_int16(np.clip(4.0 * np.sin(2 * np.pi * 300 * t), -1.0, 1.0)),
        "full_scale_square": np.where(np.sin(2 * np.pi * 50 * t) >= 0, 32767, -32768).astype(np.int16),
        "dc_offset": (np.full(sr, 5000) + _to_int16(rng.standard_normal(sr) * 0.01)).astype(np.int16),
        "short_clip": _speechlike(99, 0.37),
    }
    for i in range(4):
        sig[f"speechlike_{i}"] = _speechlike(10 + i)
    return sig


@pytest.fixture(scope="module")
def normalization():
    """Per-coefficient statistics of speech-like audio: a realistic non-identity normalisation."""
    clips = [features.mfcc_np(_speechlike(100 + i)) for i in range(8)]
    clips.append(features.mfcc_np(_to_int16(_rng(5).standard_normal(16000) * 0.02)))
    return features.Normalization.from_features(np.concatenate(clips))


def _reference(audio, norm, scale=INPUT_SCALE, zp=INPUT_ZERO_POINT):
    mfcc = features.mfcc_np(audio)
    return features.quantize_np(norm.apply_np(mfcc), scale, zp), mfcc


def _compare(name, got_q, got_m, ref_q, ref_m):
    assert got_q.shape == ref_q.shape, name
    diff = np.abs(got_q.astype(np.int32) - ref_q.astype(np.int32))
    within = float(np.mean(diff <= 1))
    assert within >= MIN_EXACT_OR_ONE_LSB, f"{name}: only {within:.5f} of int8 values within 1 LSB"
    err = np.abs(got_m - ref_m)
    bad = err > FLOAT_ATOL + FLOAT_RTOL * np.abs(ref_m)
    assert not bad.any(), f"{name}: float MFCC off by up to {err.max():.3g}"
    return diff, err


# ----------------------------------------------------------------------- build + ctest

def test_ctest_suite_passes(native):
    build_dir = native.build(targets=("all",))
    if not (build_dir / "kws_core_tests").exists():
        pytest.skip("GoogleTest not found at configure time (Debian: libgtest-dev); C++ tests not built")
    proc = subprocess.run(["ctest", "--output-on-failure", "-j2"], cwd=build_dir,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert re.search(r"100% tests passed", proc.stdout), proc.stdout[-2000:]


def test_core_dimensions_match_features(native):
    assert native.core_dims()[:8] == (
        features.SAMPLE_RATE, features.WINDOW_SAMPLES, features.HOP_SAMPLES, features.FFT_SIZE,
        features.NUM_FFT_BINS, features.NUM_MEL, features.NUM_MFCC, features.NUM_FRAMES)
    assert native.core_dims()[8] >= labels_lib.NUM_CLASSES


# ----------------------------------------------------------------------- front-end parity

def test_frontend_parity_on_generated_audio(native, normalization):
    fe = native.NativeFrontend(normalization, INPUT_SCALE, INPUT_ZERO_POINT)
    diffs, errs = [], []
    for name, audio in _signals().items():
        got_q, got_m = fe.features_for_clip(audio)
        ref_q, ref_m = _reference(audio, normalization)
        d, e = _compare(name, got_q, got_m, ref_q, ref_m)
        diffs.append(d.ravel())
        errs.append(e.ravel())
    diffs = np.concatenate(diffs)
    # Not just "within tolerance": almost every value is bit-identical.
    assert np.mean(diffs == 0) > 0.99, np.mean(diffs == 0)
    assert np.concatenate(errs).max() < FLOAT_ATOL


def test_frontend_parity_identity_and_default_quantisation(native):
    """The host-test header's settings (identity, 0.05, 0), where c0 clamps a lot."""
    norm = features.Normalization.identity()
    fe = native.NativeFrontend(norm, codegen.DEFAULT_INPUT_SCALE, codegen.DEFAULT_INPUT_ZERO_POINT)
    for name in ("speechlike_0", "tone_1000", "silence"):
        audio = _signals()[name]
        got_q, got_m = fe.features_for_clip(audio)
        ref_q, ref_m = _reference(audio, norm, codegen.DEFAULT_INPUT_SCALE, codegen.DEFAULT_INPUT_ZERO_POINT)
        _compare(name, got_q, got_m, ref_q, ref_m)


def test_chunk_sizes_give_identical_frames(native, normalization):
    audio = np.concatenate([_signals()["speechlike_1"], _signals()["chirp"][:7000]])
    fe = native.NativeFrontend(normalization, INPUT_SCALE, INPUT_ZERO_POINT)
    outputs = []
    for chunk in (1, 160, 512, 333):
        fe.reset()
        qs, ms = [], []
        for start in range(0, audio.size, chunk):
            q, m = fe.feed(audio[start:start + chunk])
            qs.append(q)
            ms.append(m)
        outputs.append((np.concatenate(qs), np.concatenate(ms)))
    for q, m in outputs[1:]:
        np.testing.assert_array_equal(q, outputs[0][0])
        np.testing.assert_array_equal(m, outputs[0][1])
    assert outputs[0][0].shape == (1 + (audio.size - features.WINDOW_SAMPLES // 2) // features.HOP_SAMPLES,
                                   features.NUM_MFCC)


def test_streaming_frames_equal_clip_frames(native, normalization):
    """A long stream: frame t of the stream == frame t of the clip reference (centred framing)."""
    audio = np.concatenate([_speechlike(40 + i) for i in range(3)])
    fe = native.NativeFrontend(normalization, INPUT_SCALE, INPUT_ZERO_POINT)
    got_q, got_m = fe.features_for_clip(audio)
    ref_q, ref_m = _reference(audio, normalization)
    _compare("stream", got_q, got_m, ref_q, ref_m)
    assert got_q.shape[0] == features.num_frames(audio.size)


def test_frontend_rejects_bad_parameters(native, normalization):
    with pytest.raises(ValueError):
        native.NativeFrontend(normalization, INPUT_SCALE, 300)


def _read_wav(path: pathlib.Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == features.SAMPLE_RATE
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def test_frontend_parity_on_real_clips(native, real_data):
    root = real_data / "sc_v2_test_dev"
    if not root.is_dir():
        pytest.skip(f"{root} does not exist")
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        clips += sorted(folder.glob("*.wav"))[:5]  # deterministic: first 5 of each class
    clips = clips[:60]
    assert len(clips) >= 50, f"expected >= 50 clips under {root}, found {len(clips)}"
    audio = [_read_wav(p) for p in clips]
    norm = features.Normalization.from_features(np.concatenate([features.mfcc_np(a) for a in audio[::3]]))
    fe = native.NativeFrontend(norm, INPUT_SCALE, INPUT_ZERO_POINT)
    total = exact = 0
    for path, pcm in zip(clips, audio):
        got_q, got_m = fe.features_for_clip(pcm)
        ref_q, ref_m = _reference(pcm, norm)
        d, _ = _compare(path.name, got_q, got_m, ref_q, ref_m)
        total += d.size
        exact += int(np.sum(d == 0))
    assert exact / total > 0.99


# ----------------------------------------------------------------------- recogniser + app

def test_recognizer_one_detection_per_occurrence(native):
    defaults = native.recognizer_defaults()
    assert defaults["num_classes"] == labels_lib.NUM_CLASSES
    assert defaults["silence_index"] == labels_lib.LABELS.index(labels_lib.SILENCE)
    assert defaults["unknown_index"] == labels_lib.LABELS.index(labels_lib.UNKNOWN)
    rec = native.NativeRecognizer()
    silence = labels_lib.LABELS.index(labels_lib.SILENCE)
    events = [(0, 1000, 1700), (3, 3000, 3600), (3, 5000, 5600)]  # yes, down, down
    found = []
    for t in range(0, 7000, 40):
        s = np.zeros(labels_lib.NUM_CLASSES, np.uint8)
        s[silence] = 240
        for label, start, end in events:
            if start <= t < end:
                s[:] = 0
                s[label] = 245
        r = rec.process(s, t)
        if r.is_new_command:
            found.append((r.label, t))
    assert [label for label, _ in found] == [0, 3, 3]
    # A stricter threshold than any score: nothing.
    strict = native.NativeRecognizer(detection_threshold=250)
    s = np.zeros(labels_lib.NUM_CLASSES, np.uint8)
    s[0] = 245
    assert not any(strict.process(s, t).is_new_command for t in range(0, 2000, 40))
    with pytest.raises(ValueError):
        native.NativeRecognizer(no_such_option=1)


def test_scores_from_output(native):
    # Softmax convention (1/256, -128): q + 128 -> round(p * 255).
    q = np.array([127, -128, 0], np.int8)
    np.testing.assert_array_equal(native.scores_from_output(q, 1 / 256, -128, False), [254, 0, 128])
    # Logits: softmax over the dequantised values.
    logits = np.array([20, 0, 0, 0], np.int8)
    s = native.scores_from_output(logits, 0.5, 0, True)
    p = np.exp([10.0, 0, 0, 0]) / np.exp([10.0, 0, 0, 0]).sum()
    np.testing.assert_allclose(s, np.round(p * 255), atol=1)


# ----------------------------------------------------------------------- codegen

def _parse_float_array(text: str, name: str) -> np.ndarray:
    m = re.search(r"constexpr float " + name + r"\[[^\]]*\] = \{(.*?)\};", text, re.S)
    assert m, name
    return np.array([np.float32(v.strip().rstrip("f")) for v in m.group(1).split(",") if v.strip()],
                    np.float32)


def test_codegen_header_is_deterministic_and_exact(normalization):
    args = dict(normalization=normalization, input_scale=INPUT_SCALE, input_zero_point=INPUT_ZERO_POINT,
                ops=("CONV_2D", "MEAN"), arena_bytes=18432, model_name="test",
                output_scale=0.125, output_zero_point=3)
    text = codegen.render_frontend_header(**args)
    assert text == codegen.render_frontend_header(**args)
    tables = codegen.frontend_tables(normalization)
    for name, want in (("kHannWindow", tables.window), ("kMelWeights", tables.mel_weights),
                       ("kDct", tables.dct), ("kNormMean", normalization.mean_f32()),
                       ("kNormInvStd", normalization.inv_std_f32())):
        got = _parse_float_array(text, name)
        np.testing.assert_array_equal(got.view(np.uint32), np.asarray(want, np.float32).view(np.uint32),
                                      err_msg=name)
    # The sparse mel tables rebuild the dense matrix (float32).
    dense = np.zeros((features.NUM_FFT_BINS, features.NUM_MEL), np.float32)
    for m in range(features.NUM_MEL):
        lo, n, off = int(tables.mel_start[m]), int(tables.mel_length[m]), int(tables.mel_offset[m])
        dense[lo:lo + n, m] = tables.mel_weights[off:off + n]
    np.testing.assert_array_equal(dense, features.mel_matrix().astype(np.float32))
    inv = re.search(r"constexpr float kInputInvScale = (\S+)f;", text).group(1)
    assert np.float32(inv) == np.float32(1.0 / np.float32(INPUT_SCALE))
    assert 'kOpNames[kNumOps > 0 ? kNumOps : 1] = {\n    "CONV_2D", "MEAN",' in text
    assert "constexpr int kArenaBytes = 18432;" in text
    assert "constexpr bool kHasOutputQuantization = true;" in text
    assert '"yes", "no", "up", "down",' in text


def test_codegen_step_model_constants(normalization):
    base = dict(normalization=normalization, input_scale=INPUT_SCALE, input_zero_point=INPUT_ZERO_POINT)
    none = codegen.render_frontend_header(**base)
    for line in ("constexpr bool kHasStepModel = false;", "constexpr int kStepDelayFrames = 0;",
                 "constexpr int kStepNumStates = 0;", "constexpr int kStepArenaBytes = 0;"):
        assert line in none
    step = {"delay_frames": 35, "num_states": 9, "arena_bytes": 7520}
    text = codegen.render_frontend_header(**base, step_model=step)
    for line in ("constexpr bool kHasStepModel = true;", "constexpr int kStepDelayFrames = 35;",
                 "constexpr int kStepNumStates = 9;", "constexpr int kStepArenaBytes = 7520;",
                 "c.step_delay_frames = kStepDelayFrames;"):
        assert line in text
    for bad in ({"delay_frames": 35, "num_states": 9}, {**step, "delay_frames": -1}, {**step, "num_states": 0},
                {**step, "arena_bytes": 1.5}):
        with pytest.raises(ValueError, match="step_model"):
            codegen.render_frontend_header(**base, step_model=bad)


def test_codegen_float_literals_round_trip():
    values = np.concatenate([_rng(3).standard_normal(2000).astype(np.float32) * 10.0 ** _rng(4).integers(-30, 30, 2000),
                             np.float32([0.0, -0.0, 1.0, 1e-45, 3.4e38, 0.1])]).astype(np.float32)
    for v in values:
        lit = codegen.f32_literal(v)
        assert lit.endswith("f") and re.fullmatch(r"-?[0-9.e+-]+f", lit), lit
        assert np.float32(lit[:-1]) == v or (np.isnan(v) and np.isnan(np.float32(lit[:-1])))
    with pytest.raises(ValueError):
        codegen.f32_literal(float("inf"))


def test_codegen_model_data_round_trip():
    blob = bytes(range(256)) * 3 + b"\x01"
    header, source = codegen.render_model_data(blob, name="g_model")
    # Header-only (every Arduino builder compiles it); the source is an empty placeholder.
    assert "alignas(16) const unsigned char g_model[]" in header
    assert f"const unsigned int g_model_len = {len(blob)};" in header
    assert "{" not in source and "model_data.h" in source
    body = header.split("g_model[] = {", 1)[1].split("}", 1)[0]
    assert bytes(int(v, 16) for v in body.replace("\n", "").split(",") if v.strip()) == blob
    assert codegen.render_model_data(blob) == codegen.render_model_data(blob)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_codegen_step_model_data_lives_beside_the_windowed(tmp_path):
    """render_model_data(bytes, name="g_step_model") (what export calls) gives model_step_data.h/.cc
    with their own include guard: the sketch includes both headers and gets both arrays (the
    placeholder .cc files link in beside them, defining nothing)."""
    for name, base, blob in (("g_model", "model_data", b"\x01\x02"), ("g_step_model", "model_step_data", b"S\x03")):
        header, source = codegen.render_model_data(blob, name=name)
        assert f"KWS_{base.upper()}_H_" in header and f"{base}.h" in source
        (tmp_path / f"{base}.h").write_text(header)
        (tmp_path / f"{base}.cc").write_text(source)
    (tmp_path / "main.cc").write_text('#include "model_data.h"\n#include "model_step_data.h"\n'
                                      "int main() { return g_model[0] + g_step_model[0] == 1 + 'S' ? 0 : 1; }\n")
    exe = tmp_path / "both"
    subprocess.run(["g++", "-std=gnu++14", "-Wall", "-Werror", "-I", str(tmp_path), *(str(tmp_path / f) for f in (
        "main.cc", "model_data.cc", "model_step_data.cc")), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_codegen_cli_writes_header(tmp_path, normalization):
    norm_path = tmp_path / "norm.json"
    norm_path.write_text(json.dumps(normalization.to_dict()))
    out = tmp_path / "gen"
    cmd = [sys.executable, "-m", "kws_tf.codegen", f"--out_dir={out}", f"--normalization={norm_path}"]
    first = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.returncode == 0, first.stdout
    text = (out / "kws_settings.h").read_text()
    assert text == codegen.render_frontend_header(normalization, codegen.DEFAULT_INPUT_SCALE,
                                                  codegen.DEFAULT_INPUT_ZERO_POINT,
                                                  model_name="host-test defaults (no model)")
    second = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "unchanged" in second.stdout


def test_generated_header_compiles_with_the_core(tmp_path, normalization):
    """A header with a real model's fields (ops, output quantisation) compiles next to the core."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    (tmp_path / "kws_settings.h").write_text(codegen.render_frontend_header(
        normalization, INPUT_SCALE, INPUT_ZERO_POINT, ops=("CONV_2D", "TANH"), arena_bytes=1,
        output_scale=0.1, output_zero_point=-5))
    src = tmp_path / "use.cc"
    src.write_text('#include "kws_app.h"\n#include "kws_settings.h"\n'
                   "int main() { kws::FrontendTables t = kws::SettingsFrontendTables();\n"
                   "  kws::AppConfig c = kws::SettingsAppConfig();\n"
                   "  return t.num_mfcc == 32 && c.output.zero_point == -5 ? 0 : 1; }\n")
    proc = subprocess.run([cxx, "-std=c++14", "-Wall", "-Werror", "-fsyntax-only", f"-I{ROOT / 'micro_app' / 'src'}",
                           f"-I{tmp_path}", str(src)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout


# ----------------------------------------------------------------------- board build

def test_cross_compile_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    proc = subprocess.run([str(ROOT / "micro_app" / "cross_compile.sh"), str(tmp_path / "arm")],
                          env={**os.environ, "PYTHON": sys.executable},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "cross-compile OK" in proc.stdout
    ram = int(re.search(r"RAM g_footprint_app\s+(\d+)", proc.stdout).group(1))
    # Budget: 64 KB of buffers with the ~18 KB TFLM arena and the audio ring.
    assert ram < 24 * 1024, proc.stdout
