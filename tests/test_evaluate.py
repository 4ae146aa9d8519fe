"""Evaluation: the runtimes agree as export promises, the SNR sweep, gate pictures, bad input."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from kws_tf import evaluate, features, labels
from kws_tf.audio_io import write_wav
from kws_tf.evaluate import EvalError


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def exported(trained_model_dir, synth_folder, tmp_path_factory):
    """The fixture model exported (float + int8) with the exporter's Python API."""
    try:
        from kws_tf import export
    except ImportError as e:
        pytest.skip(f"kws_tf.export is not available yet ({e}); the tflite/tflm evaluation tests need it")
    out = tmp_path_factory.mktemp("export")
    _export_with_api(export, trained_model_dir, synth_folder, out)
    for name in ("model_int8.tflite", "model_float.tflite"):
        assert (out / name).is_file(), name
    return out


def _export_with_api(export, model_dir, data_dir, out):
    export.export_model(str(model_dir), out_dir=str(out), data_dir=str(data_dir), int8=True, overwrite=True,
                        timing_repeats=3, log=_quiet)


@pytest.fixture(scope="module")
def clips(synth_folder):
    """All clips of the generated folder (train + validation + test): ~290 clips, 12 classes."""
    return evaluate.load_eval_data(str(synth_folder), "all", log=_quiet)


def test_keras_evaluation_writes_report_and_confusion(trained_model_dir, synth_folder, tmp_path):
    res = evaluate.run_evaluation(str(trained_model_dir), data_dir=str(synth_folder), split="all",
                                  out=str(tmp_path), log=_quiet)
    report = json.loads((tmp_path / "eval_keras.json").read_text())
    assert (tmp_path / "confusion_keras.png").stat().st_size > 10_000
    assert report["runtime"] == "keras" and report["split"] == "all"
    assert report["accuracy"] == res["eval"]["accuracy"] > 0.8
    assert set(report["per_class"]) == set(labels.LABELS)
    assert np.asarray(report["confusion"]).sum() == report["clips"] == len(report["predictions"]) > 250
    assert report["normalization_source"].endswith("normalization.json")


def test_default_data_is_the_models_own_source(trained_model_dir, tmp_path):
    # No --data_dir: the model_dir's run_config names the generated folder; default split = test.
    res = evaluate.run_evaluation(str(trained_model_dir), out=str(tmp_path), log=_quiet)
    assert res["eval"]["split"] == "test" and res["eval"]["data_source"].startswith("folder:")
    assert res["eval"]["clips"] > 0
    # A run without model.keras yet (still training): its best weights + run_config.
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(trained_model_dir, partial, ignore=shutil.ignore_patterns("model.keras", "tensorboard", "checkpoints"))
    res2 = evaluate.run_evaluation(str(partial), out=str(tmp_path / "p"), log=_quiet)
    assert res2["eval"]["model"].endswith("best.weights.h5")
    assert res2["eval"]["predictions"] == res["eval"]["predictions"]


def test_runtimes_agree(trained_model_dir, exported, clips, tmp_path):
    keras_p = evaluate.load_predictor(str(trained_model_dir))
    float_p = evaluate.load_predictor(str(exported / "model_float.tflite"))
    int8_p = evaluate.load_predictor(str(exported / "model_int8.tflite"), "tflite")
    tflm_p = evaluate.load_predictor(str(exported / "model_int8.tflite"), "tflm")
    assert (float_p.precision, int8_p.precision, tflm_p.tag) == ("float", "int8", "tflm")
    # The export folder carries the training normalisation.
    for p in (float_p, int8_p, tflm_p):
        np.testing.assert_allclose(p.normalization.mean, keras_p.normalization.mean, rtol=1e-6)
    # Keras sees the training front-end (TF graph), the flatbuffers the device's (NumPy reference).
    assert (keras_p.frontend, float_p.frontend, tflm_p.frontend) == ("tf", "device", "device")
    x = int8_p.features(clips.clips)
    y = clips.clips.labels
    k, f = keras_p.predict(keras_p.features(clips.clips)), float_p.predict(x)
    raw_int8, raw_tflm = int8_p.raw(x), tflm_p.raw(x)
    assert raw_int8.dtype == np.int8
    q = np.argmax(raw_int8, axis=-1)
    assert (k == y).mean() > 0.8
    assert (f == k).mean() >= 0.99  # float flatbuffer = the Keras model (BN folded)
    assert (q == f).mean() >= 0.9  # int8 top-1 agrees with float
    np.testing.assert_array_equal(raw_tflm, raw_int8)  # TFLM == TFLite reference kernels, bit for bit
    # The CLI-level function writes one report per runtime, with the same predictions.
    for model, runtime, tag in ((exported / "model_int8.tflite", "tflm", "tflm"),
                                (exported / "model_int8.tflite", "tflite", "tflite_int8"),
                                (exported / "model_float.tflite", None, "tflite_float")):
        res = evaluate.run_evaluation(str(model), runtime, data_dir=clips.source.split(":", 1)[1], split="all",
                                      out=str(tmp_path), log=_quiet)
        report = json.loads((tmp_path / f"eval_{tag}.json").read_text())
        assert report["predictions"] == res["eval"]["predictions"]
        expected = q if tag in ("tflm", "tflite_int8") else f
        assert report["predictions"] == [int(v) for v in expected]
        assert (tmp_path / f"confusion_{tag}.png").is_file()


def _babble(path: pathlib.Path, seconds: int = 8, seed: int = 1):
    """A strong noise source: overlapping 'words' of random classes (the synthetic vocabulary's tones)."""
    from synth import class_clip

    rng = np.random.default_rng(seed)
    n = seconds * features.SAMPLE_RATE
    out = np.zeros(n)
    for _ in range(4 * seconds):
        clip = class_clip(int(rng.integers(0, 10)), rng)
        start = int(rng.integers(0, n - len(clip)))
        out[start:start + len(clip)] += clip
    path.mkdir(parents=True, exist_ok=True)
    write_wav(path / "babble.wav", 0.9 * out / np.abs(out).max())
    return path


def test_snr_sweep_lowers_accuracy(trained_model_dir, synth_folder, tmp_path):
    noise_dir = _babble(tmp_path / "noise")
    res = evaluate.run_evaluation(str(trained_model_dir), data_dir=str(synth_folder), split="all",
                                  out=str(tmp_path / "out"), snr=True, snr_levels="clean,10,0",
                                  noise_dir=str(noise_dir), log=_quiet)
    rows = res["snr"]["levels"]
    assert [r["snr_db"] for r in rows] == [None, 10.0, 0.0]
    assert rows[0]["accuracy"] == res["eval"]["accuracy"] > 0.8
    assert rows[2]["accuracy"] < rows[0]["accuracy"] - 0.1
    saved = json.loads((tmp_path / "out" / "snr_keras.json").read_text())
    assert saved["noise"] == str(noise_dir)
    assert [r["accuracy"] for r in saved["levels"]] == [r["accuracy"] for r in rows]
    assert (tmp_path / "out" / "snr_keras.png").stat().st_size > 10_000


def test_noise_segments_are_seeded(clips):
    subset = clips.clips.subset(np.arange(6))
    a = evaluate.noisy_clips(subset, clips.noise, 5.0, seed=3)
    b = evaluate.noisy_clips(subset, clips.noise, 5.0, seed=3)
    c = evaluate.noisy_clips(subset, clips.noise, 5.0, seed=4)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)
    assert evaluate.noisy_clips(subset, clips.noise, None) is subset
    with pytest.raises(EvalError, match="noise"):
        evaluate.noisy_clips(subset, [], 5.0)
    assert evaluate.parse_snr_levels("clean, 20,0dB") == [None, 20.0, 0.0]
    with pytest.raises(EvalError, match="snr_levels"):
        evaluate.parse_snr_levels("clean,loud")


def test_gate_pictures_and_open_fraction(trained_model_dir, synth_folder, tmp_path):
    res = evaluate.run_evaluation(str(trained_model_dir), data_dir=str(synth_folder), split="all",
                                  out=str(tmp_path), gates=labels.NUM_CLASSES, log=_quiet)
    g = json.loads((tmp_path / "gates_keras.json").read_text())
    assert g["open_fraction"] == res["gates"]["open_fraction"]
    assert sorted(p["label"] for p in g["pictures"]) == sorted(labels.LABELS)  # one per class
    for p in g["pictures"]:
        assert pathlib.Path(p["path"]).stat().st_size > 10_000
    fractions = g["per_class_open_fraction"]
    assert set(fractions) == set(labels.LABELS)
    assert all(0.0 <= v <= 1.0 for v in fractions.values())
    assert 0.0 < g["open_fraction"] < 1.0
    assert (tmp_path / "gate_open_fraction_keras.png").stat().st_size > 10_000
    assert evaluate.choose_gate_clips(np.array([0, 0, 1, 1, 2]), 4) == [0, 2, 4, 1]


# --------------------------------------------------------------------------- bad input

def test_wav_conversions_and_unusable_files(trained_model_dir, tmp_path):
    import soundfile as sf
    from synth import class_clip

    pred = evaluate.load_predictor(str(trained_model_dir))
    clip = class_clip(labels.LABELS.index("yes"), np.random.default_rng(0))
    good = tmp_path / "yes.wav"
    write_wav(good, clip)
    # 8 kHz stereo float: resampled and downmixed, with a warning.
    odd = tmp_path / "odd.wav"
    sf.write(str(odd), np.stack([clip[::2], clip[::2]], axis=1).astype(np.float32), 8000, subtype="FLOAT")
    warnings = []
    rows = evaluate.classify_wavs(pred, [good, odd], log=warnings.append)
    assert rows[0]["label"] == "yes" and len(rows[0]["scores"]) == labels.NUM_CLASSES
    assert any("resampled to 16000 Hz" in w and "downmixed" in w for w in warnings)
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16))
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    for bad, pattern in ((empty, "empty"), (truncated, "not a readable audio file"), (text, "not a readable")):
        with pytest.raises(EvalError, match=pattern):
            evaluate.classify_wavs(pred, [bad], log=_quiet)


def _wrong_shape_model_dir(tmp_path, trained_model_dir) -> pathlib.Path:
    import shutil

    import tf_keras as keras

    d = tmp_path / "wrong_shape"
    d.mkdir()
    inp = keras.Input(shape=(1, 49, 10))
    out = keras.layers.Dense(labels.NUM_CLASSES)(keras.layers.GlobalAveragePooling2D()(inp))
    keras.Model(inp, out).save(str(d / "model.keras"))
    shutil.copy(trained_model_dir / "normalization.json", d / "normalization.json")
    return d


def test_bad_models_and_folders_raise_one_line_errors(trained_model_dir, synth_folder, tmp_path):
    wrong = _wrong_shape_model_dir(tmp_path, trained_model_dir)
    with pytest.raises(EvalError, match=r"input shape \(1, 49, 10\) does not match the front-end settings \(1, 101, 32\)"):
        evaluate.load_predictor(str(wrong))
    no_labels = tmp_path / "no_labels"
    (no_labels / labels.BACKGROUND_NOISE_DIR).mkdir(parents=True)
    with pytest.raises(EvalError, match="no word sub-folders"):
        evaluate.load_eval_data(str(no_labels), log=_quiet)
    with pytest.raises(EvalError, match="does not exist"):
        evaluate.load_eval_data(str(tmp_path / "missing"), log=_quiet)
    with pytest.raises(EvalError, match="does not exist"):
        evaluate.load_predictor(str(tmp_path / "missing.tflite"))
    with pytest.raises(EvalError, match="runtime=tflite or --runtime=tflm"):
        evaluate.load_predictor(str(_copy(trained_model_dir / "model.keras", tmp_path / "m.tflite")), "keras")
    with pytest.raises(EvalError, match="not a TFLite flatbuffer"):
        evaluate.load_predictor(str(tmp_path / "m.tflite"), "tflite", normalization=str(trained_model_dir / "normalization.json"))
    with pytest.raises(EvalError, match="no normalisation found"):
        evaluate.find_normalization(tmp_path / "m.tflite")
    with pytest.raises(EvalError, match="gates must be"):
        evaluate.run_evaluation(str(trained_model_dir), data_dir=str(synth_folder), gates=-1, log=_quiet)


def _copy(src, dst):
    dst.write_bytes(pathlib.Path(src).read_bytes())
    return dst


def test_tflite_specific_errors(exported, tmp_path, synth_folder):
    lone = _copy(exported / "model_int8.tflite", tmp_path / "lone.tflite")
    with pytest.raises(EvalError, match="no normalisation found .*--normalization"):
        evaluate.load_predictor(str(lone))
    with pytest.raises(EvalError, match="float model"):
        evaluate.load_predictor(str(exported / "model_float.tflite"), "tflm")
    with pytest.raises(EvalError, match="gate pictures need the keras runtime"):
        evaluate.run_evaluation(str(exported / "model_int8.tflite"), data_dir=str(synth_folder), gates=2, log=_quiet)


def _cli_flags(argv):
    from absl import flags

    fv = flags.FlagValues()
    evaluate.define_flags(fv)
    fv(["evaluate", *argv])
    return fv


def test_cli_in_process(trained_model_dir, synth_folder, tmp_path, capsys):
    rc = evaluate.run_cli(_cli_flags([f"--model={trained_model_dir}", f"--data_dir={synth_folder}",
                                      "--split=validation", f"--out={tmp_path}"]))
    assert rc == 0 and (tmp_path / "eval_keras.json").is_file()
    capsys.readouterr()
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16))
    no_labels = tmp_path / "no_labels"
    no_labels.mkdir()
    (no_labels / "readme.txt").write_text("no word folders here")
    for argv, pattern in (([f"--model={trained_model_dir}", f"--wav={empty}"], "empty audio file"),
                          ([], "--model is required"),
                          ([f"--model={trained_model_dir}", f"--data_dir={no_labels}"], "no word sub-folders"),
                          ([f"--model={trained_model_dir}", f"--data_dir={tmp_path / 'nothing'}"], "does not exist")):
        assert evaluate.run_cli(_cli_flags(argv)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and pattern in err[0], err


def test_cli_errors_are_one_line_without_traceback(trained_model_dir, synth_folder, tmp_path):
    # One real process (TF import is slow): a model whose input does not fit the front-end.
    wrong = _wrong_shape_model_dir(tmp_path, trained_model_dir)
    proc = subprocess.run([sys.executable, "-m", "kws_tf.evaluate", f"--model={wrong}", f"--data_dir={synth_folder}"],
                          capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parent.parent,
                          timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "does not match the front-end settings (1, 101, 32)" in last, proc.stderr[-500:]


def test_real_clips_and_real_noise(trained_model_dir, exported, real_data, tmp_path):
    """Real Speech Commands clips and background noise: the machinery runs, TFLM == TFLite int8 on them.

    The fixture model learned synthetic tones, so its accuracy here means nothing."""
    ed = evaluate.load_eval_data(str(real_data / "sc_v2_test_dev"), "all", noise_dir=str(real_data / "background_noise"),
                                 log=_quiet, max_per_class=4)
    assert len(ed.clips) == 4 * labels.NUM_CLASSES and len(ed.noise) == 6
    int8_p = evaluate.load_predictor(str(exported / "model_int8.tflite"), "tflite")
    tflm_p = evaluate.load_predictor(str(exported / "model_int8.tflite"), "tflm")
    for level in (None, 0.0):
        x = int8_p.features(evaluate.noisy_clips(ed.clips, ed.noise, level))
        np.testing.assert_array_equal(tflm_p.raw(x), int8_p.raw(x))
    rows = evaluate.snr_sweep(tflm_p, ed.clips, ed.noise, [None, 10.0], log=_quiet)
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["clips"] == len(ed.clips) for r in rows)
