"""Front-ends (kws_tf.frontends): log-mel is the MFCC pipeline before the DCT, the waveform is the
scaled PCM, and a model declaring either trains, exports (int8, TFLM-checked) and evaluates
through the real command lines.

The end-to-end tests run the registered models of the non-MFCC front-ends (BC-ResNet-0.625 on
log-mel, a 6-channel sinc-convolution model on the waveform) for one epoch through the real
command lines; SparkNet and DS-CNN (MFCC) go through them in test_export / test_baselines.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from kws_tf import features, frontends

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The registered non-MFCC models at their smallest widths: model -> (front-end, C, shipped config).
TEST_MODELS = {"bcresnet": ("logmel", 5, "bcresnet_c5.json"), "sincnet": ("waveform", 6, "sincnet_c162.json")}


# --------------------------------------------------------------------------- definitions

def _clips(n=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(features.CLIP_SAMPLES) / features.SAMPLE_RATE
    out = []
    for i in range(n):
        tone = 0.3 * np.sin(2 * np.pi * (300 + 400 * i) * t) + 0.05 * rng.standard_normal(t.size)
        out.append(np.clip(tone * 32768, -32768, 32767).astype(np.int16))
    return np.stack(out)


def test_registry_lists_every_frontend():
    from kws_tf import models

    assert models.FRONTENDS == frontends.NAMES == ("mfcc", "logmel", "waveform")
    for name in models.names():
        assert models.get(name).frontend in frontends.NAMES
    with pytest.raises(ValueError, match="unknown front-end"):
        frontends.get("mel")


def test_log_mel_is_the_mfcc_pipeline_before_the_dct():
    pcm = _clips(2)
    for clip in pcm:
        # With the MFCC's 32 bands, the DCT of the log-mel is the MFCC.
        np.testing.assert_allclose(features.log_mel_np(clip, features.NUM_MEL).astype(np.float64)
                                   @ features.dct_matrix(), features.mfcc_np(clip), rtol=1e-5, atol=1e-4)
        lm = frontends.get("logmel").np(clip)
        assert lm.shape == (features.NUM_FRAMES, features.NUM_LOGMEL) == frontends.get("logmel").input_shape[1:]
        np.testing.assert_array_equal(lm, features.log_mel_np(clip))
    # 40 Slaney bands = librosa's definition (the 32-band matrix is tested against it in test_features).
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=features.SAMPLE_RATE, n_fft=features.FFT_SIZE, n_mels=features.NUM_LOGMEL)
    np.testing.assert_allclose(features.mel_matrix(features.NUM_LOGMEL).T, ref, rtol=1e-5, atol=1e-9)
    assert features.mel_matrix(features.NUM_MEL) is not features.mel_matrix(features.NUM_LOGMEL)
    np.testing.assert_array_equal(features.mel_matrix(), features.mel_matrix(features.NUM_MEL))


def test_numpy_and_tf_implementations_agree_for_every_frontend():
    pcm = _clips(3)
    wave = pcm.astype(np.float32) * features.PCM_SCALE
    for name in frontends.NAMES:
        fe = frontends.get(name)
        batch = np.asarray(fe.tf(wave))
        assert batch.shape == (len(pcm),) + fe.input_shape[1:], name
        ref = np.stack([fe.np(c) for c in pcm])
        np.testing.assert_allclose(batch, ref, rtol=1e-4, atol=2e-3, err_msg=name)
    # The MFCC front-end is features.mfcc_* itself: nothing changed for SparkNet.
    np.testing.assert_array_equal(frontends.get("mfcc").np(pcm[0]), features.mfcc_np(pcm[0]))


def test_waveform_is_the_scaled_pcm_with_a_fixed_int8_input():
    fe = frontends.get("waveform")
    pcm = np.array([-32768, -256, -129, -128, 0, 127, 128, 255, 32767], np.int16)
    x = fe.np(pcm)
    assert x.shape == (features.CLIP_SAMPLES, 1) and fe.input_shape == (1, features.CLIP_SAMPLES, 1)
    np.testing.assert_array_equal(x[:len(pcm), 0], pcm.astype(np.float32) / 32768.0)
    assert not x[len(pcm):].any()  # zero-padded to 1 s
    assert not fe.normalized and not fe.spec_augment and not fe.streams
    # The device's int8 input is the int16 PCM rounded to its top 8 bits.
    q = features.quantize_np(x[:len(pcm), 0], *fe.fixed_input_quant)
    np.testing.assert_array_equal(q, np.clip(np.floor(pcm / 256.0 + 0.5), -128, 127).astype(np.int8))
    # The converter sees exactly that range: clipped calibration data plus both ends.
    cal = fe.calibration_inputs(np.full((2, 1, features.CLIP_SAMPLES, 1), 0.999, np.float32))
    assert cal.shape[0] == 3 and cal.min() == -1.0 and cal.max() == 127 / 128


def test_normalization_records_its_frontend_and_refuses_another():
    lm = np.stack([frontends.get("logmel").np(c) for c in _clips(2)])
    norm = features.Normalization.from_features(lm, frontend="logmel")
    assert norm.dim == features.NUM_LOGMEL and norm.to_dict()["frontend"] == "logmel"
    assert features.Normalization.from_dict(norm.to_dict()) == norm
    old = {"mean": [0.0] * features.NUM_MFCC, "std": [1.0] * features.NUM_MFCC}  # written before front-ends had names
    assert features.Normalization.from_dict(old).frontend == "mfcc"
    with pytest.raises(ValueError, match="logmel normalisation needs 40"):
        features.Normalization.from_dict({**old, "frontend": "logmel"})
    with pytest.raises(ValueError, match="holds logmel statistics but the model's front-end is mfcc"):
        norm.require("mfcc")
    assert features.Normalization.identity("waveform").dim == 1
    from kws_tf import codegen

    with pytest.raises(ValueError, match="micro_app's front-end computes MFCC or log-mel"):
        codegen.frontend_tables(features.Normalization.identity("waveform"))
    assert codegen.frontend_tables(norm).dct.size == 0 and codegen.frontend_tables(norm).mel_start.size == 40


def test_waveform_header_compiles_and_stops_a_micro_app_build(tmp_path):
    import shutil

    from kws_tf import codegen, codegen_input

    if shutil.which("g++") is None:
        pytest.skip("no g++")
    for norm, scale, zp in ((features.Normalization.identity("waveform"), 1 / 128, 0),):
        (tmp_path / "kws_settings.h").write_text(codegen_input.render_header(norm, scale, zp, ops=("CONV_2D",)))
        (tmp_path / "use.cc").write_text(
            '#include "kws_settings.h"\n'
            "static_assert(kws::kInputSteps * kws::kInputDim == %d, \"input size\");\n"
            "int main() { return kws::kInputZeroPoint + kws::kNumClasses; }\n" % (
                frontends.get(norm.frontend).steps * frontends.get(norm.frontend).dim))
        cmd = ["g++", "-std=c++14", "-fsyntax-only", f"-I{tmp_path}", str(tmp_path / "use.cc")]
        assert subprocess.run(cmd + ["-DKWS_ALLOW_FOREIGN_FRONTEND"], capture_output=True).returncode == 0
        err = subprocess.run(cmd, capture_output=True, text=True)
        assert err.returncode != 0 and f"this model takes {norm.frontend} input" in err.stderr
    with pytest.raises(ValueError, match="gets kws_tf.codegen_input.render_header"):
        codegen.render_frontend_header(features.Normalization.identity("waveform"), 1 / 128, 0)
    with pytest.raises(ValueError, match="gets render_frontend_header"):
        codegen_input.render_header(features.Normalization.identity("logmel"), 0.1, 0)


_DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <vector>
#include "mfcc_frontend.h"
#include "kws_settings.h"
struct Sink : kws::FrameSink {
  FILE* f;
  void OnFrame(const int8_t* q, const float* m) override {
    fwrite(q, 1, kws::dims::kNumMfcc, f);
    fwrite(m, sizeof(float), kws::dims::kNumMfcc, f);
  }
};
int main(int argc, char** argv) {
  kws::MfccFrontend fe;
  if (argc != 3 || !fe.Init(kws::SettingsFrontendTables())) return 2;
  std::vector<int16_t> pcm;
  int16_t s;
  FILE* in = fopen(argv[1], "rb");
  while (fread(&s, sizeof(s), 1, in) == 1) pcm.push_back(s);
  fclose(in);
  pcm.resize(pcm.size() + kws::dims::kWindowSamples / 2, 0);  // flush: the clip's last frames
  Sink sink;
  sink.f = fopen(argv[2], "wb");
  fe.FeedSamples(pcm.data(), static_cast<int>(pcm.size()), &sink);
  fclose(sink.f);
  return 0;
}
"""


@pytest.mark.parametrize("name", ["logmel", "mfcc"])
def test_generated_header_drives_the_cpp_frontend(name, tmp_path):
    """micro_app's front-end, built for the profile the generated header names (log-mel:
    -DKWS_FRONTEND_LOGMEL, no DCT), computes the Python front-end's features: float features
    to float32 rounding, int8 ones within one step (the MFCC parity bar of test_micro_core)."""
    import shutil

    from kws_tf import codegen

    if shutil.which("g++") is None:
        pytest.skip("no g++")
    fe = frontends.get(name)
    clips = _clips(3, seed=1)
    clips[2] = (clips[2] // 200).astype(np.int16)  # a quiet clip: the log offset matters
    norm = features.Normalization.from_features(np.stack([fe.np(c) for c in clips]), frontend=name)
    scale, zp = 4.0 / 127.0, -3
    (tmp_path / "kws_settings.h").write_text(codegen.render_frontend_header(norm, scale, zp))
    (tmp_path / "driver.cc").write_text(_DRIVER)
    src = ROOT / "micro_app" / "src"
    exe = tmp_path / "frontend"
    cmd = ["g++", "-std=c++14", "-O1", f"-I{tmp_path}", f"-I{src}", str(tmp_path / "driver.cc"),
           str(src / "mfcc_frontend.cpp"), str(src / "fft.cpp"), "-o", str(exe)]
    if not fe.dct:
        # The wrong profile is a compile error, not wrong numbers.
        wrong = subprocess.run(cmd, capture_output=True, text=True)
        assert wrong.returncode != 0 and "-DKWS_FRONTEND_LOGMEL" in wrong.stderr
        cmd.append("-DKWS_FRONTEND_LOGMEL")
    subprocess.run(cmd, check=True, capture_output=True)
    for i, clip in enumerate(clips):
        clip.astype("<i2").tofile(tmp_path / f"clip{i}.pcm")
        subprocess.run([str(exe), str(tmp_path / f"clip{i}.pcm"), str(tmp_path / "out.bin")], check=True)
        raw = np.fromfile(tmp_path / "out.bin", np.uint8).reshape(-1, fe.dim * 5)
        got_q = raw[:, :fe.dim].view(np.int8)
        got_f = raw[:, fe.dim:].copy().view("<f4")
        ref_f = fe.np(clip)
        ref_q = features.quantize_np(norm.apply_np(ref_f), scale, zp)
        assert got_f.shape == ref_f.shape == (features.NUM_FRAMES, fe.dim)
        np.testing.assert_allclose(got_f, ref_f, rtol=1e-5, atol=2e-4, err_msg=f"{name} clip {i}")
        step = np.abs(got_q.astype(int) - ref_q.astype(int))
        assert step.max() <= 1 and np.mean(step == 0) > 0.99, (name, i, np.mean(step == 0))


def test_clean_features_follow_the_normalisation(synth_folder):
    from kws_tf import data

    train = data.load_folder(str(synth_folder), 10.0, 10.0).train.subset(np.arange(8))
    norm = data.compute_normalization(train, frontend="logmel")
    x = data.clean_features(train, norm)
    assert x.shape == (8, 1, features.NUM_FRAMES, features.NUM_LOGMEL)
    np.testing.assert_allclose(x.reshape(-1, features.NUM_LOGMEL).mean(0), 0.0, atol=1e-3)
    wav_norm = data.compute_normalization(train, frontend="waveform")
    assert wav_norm == features.Normalization.identity("waveform")
    xw = data.clean_features(train, wav_norm)
    np.testing.assert_array_equal(xw[:, 0, :, 0], train.audio.astype(np.float32) * np.float32(features.PCM_SCALE))
    with pytest.raises(ValueError, match="holds logmel statistics"):
        data.clean_features(train, norm, frontend="mfcc")


# --------------------------------------------------------------------------- through the CLIs

def _cli(module: str, *args, timeout=900, ok=True):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert (proc.returncode == 0) == ok, f"{module} rc {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """Each model's shipped recipe, shortened to one epoch at its smallest width."""
    folder = tmp_path_factory.mktemp("cfg")
    out = {}
    for name, (_, channels, shipped) in TEST_MODELS.items():
        cfg = json.loads((ROOT / "configs" / shipped).read_text())
        cfg.update(channels=channels, epochs=1, batch_size=32)
        cfg["augment"].update(spec_prob=1.0, spec_time_masks=1, spec_time_mask_frames=5,
                              spec_freq_masks=1, spec_freq_mask_coeffs=4)  # exercised for logmel, skipped for waveform
        path = folder / f"{name}.json"
        path.write_text(json.dumps(cfg))
        out[name] = path
    return out


@pytest.mark.parametrize("model", list(TEST_MODELS))
def test_model_with_frontend_trains_exports_and_evaluates(model, tiny_config, synth_folder, tmp_path):
    fe = frontends.get(TEST_MODELS[model][0])
    run, exp = tmp_path / "run", tmp_path / "export"
    _cli("kws_tf.train", f"--model={model}", f"--config={tiny_config[model]}", f"--data_dir={synth_folder}",
         f"--model_dir={run}", "--verbose=epoch")
    norm = json.loads((run / "normalization.json").read_text())
    assert norm["frontend"] == fe.name and len(norm["mean"]) == fe.dim
    assert json.loads((run / "report.json").read_text())["val_accuracy"] is not None

    log = _cli("kws_tf.export", "--int8", f"--model_dir={run}", f"--out={exp}", "--max_accuracy_drop=100",
               "--timing_repeats=2", "--calibration_samples=64")
    report = json.loads((exp / "export_report.json").read_text())
    assert report["input"]["shape"] == [1, *fe.input_shape]
    assert report["frontend"]["name"] == fe.name
    assert report["calibration"]["tflm_equals_reference_kernels"]
    assert "skipped" in report["step_model"] and "does not stream" in report["step_model"]["skipped"]
    assert "no step model" in log and not (exp / "model_step_int8.tflite").exists()
    assert report["recognizer"]["note"].startswith("operating point not calibrated")
    header = (exp / "kws_settings.h").read_text()
    if fe.mel_bands is None:  # no C++ front-end: the header describes the input and stops a micro_app build
        assert f'kFrontEnd = "{fe.name}"' in header and "#error" in header
        assert f"kInputSteps = {fe.steps};" in header and f"kInputDim = {fe.dim};" in header
    else:  # micro_app's front-end, built with -DKWS_FRONTEND_LOGMEL (test_logmel_header_drives_the_cpp_frontend)
        assert "constexpr bool kFrontEndDct = false;" in header and f"kNumMfcc = {fe.dim};" in header
        assert f"kInputZeroPoint = {report['input']['zero_point']};" in header
    if fe.fixed_input_quant:
        assert (report["input"]["scale"], report["input"]["zero_point"]) == fe.fixed_input_quant
        assert "round(pcm / 256)" in header

    # The exported int8 model in TFLM, fed by the device's NumPy front-end, through evaluate's CLI.
    _cli("kws_tf.evaluate", f"--model={exp}", "--runtime=tflm", f"--data_dir={synth_folder}",
         "--split=validation", f"--out={tmp_path / 'eval'}")
    result = json.loads((tmp_path / "eval" / "eval_tflm.json").read_text())
    assert result["features"] == fe.name and result["clips"] == report["eval"]["clips"]
    # Same clips, same front-end and model as export's own int8 check: the same accuracy.
    assert result["accuracy"] == pytest.approx(report["eval"]["ptq_int8_accuracy"])

    # The device twin streams micro_app's MFCC only: it refuses in one line.
    from kws_tf import simulate

    with pytest.raises(simulate.SimulateError, match="streams micro_app's MFCC front-end only"):
        simulate.load_exported(exp)

    # A run whose statistics belong to another front-end is refused, not silently misapplied.
    if fe.name == "logmel":
        (run / "normalization.json").write_text(json.dumps(features.Normalization.identity("mfcc").to_dict()))
        out = _cli("kws_tf.export", "--int8", f"--model_dir={run}", f"--out={tmp_path / 'x'}", ok=False)
        assert "error: normalisation" in out and "holds mfcc statistics but the model's front-end is logmel" in out
