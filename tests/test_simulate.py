"""The device twin (kws_tf.simulate) and the streaming tools (kws_tf.stream).

The twin is the board's C++ loop (front-end, window, recogniser) around the real TFLM
interpreter; these tests plant generated tone "words" (tests/synth.py) in long streams and
check what it reports, and that the int8 windows it feeds TFLM are the Python front-end's.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from kws_tf import features, labels, stream
from kws_tf.audio_io import to_int16, write_wav

from synth import class_clip

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _quiet(_msg):
    pass


def export_for_twin(model_dir, data_dir, out_dir) -> pathlib.Path:
    """`model_int8.tflite` + constants in `out_dir`, with the exporter's Python API.

    Until `kws_tf.export` lands, a minimal stand-in (deploy graph + int8 conversion from
    `kws_tf.tflite_tools`, `normalization.json` copied) keeps these tests running.
    """
    out_dir = pathlib.Path(out_dir)
    try:
        from kws_tf import export
    except ImportError:
        export = None
    if export is not None:
        # Briefly trained test models: the twin is under test here, not the export's quality gates.
        export.export_model(model_dir=str(model_dir), out_dir=str(out_dir), data_dir=str(data_dir), int8=True,
                            min_agreement=0.9, max_accuracy_drop=10.0, timing_repeats=3, log=_quiet)
        return out_dir / "model_int8.tflite"
    import shutil

    import tf_keras as keras

    from kws_tf import models, tflite_tools
    from kws_tf.audio_io import read_wav

    out_dir.mkdir(parents=True, exist_ok=True)
    net = keras.models.load_model(pathlib.Path(model_dir) / "model.keras", custom_objects=models.custom_objects(),
                                  compile=False)
    norm = features.Normalization.from_dict(json.loads((pathlib.Path(model_dir) / "normalization.json").read_text()))
    wavs = sorted(p for p in pathlib.Path(data_dir).glob("*/*.wav") if p.parent.name != labels.BACKGROUND_NOISE_DIR)
    rep = np.stack([norm.apply_np(features.mfcc_np(features.fix_length(read_wav(p))))[None] for p in wavs[::3]])
    (out_dir / "model_int8.tflite").write_bytes(tflite_tools.convert_int8(tflite_tools.deploy_model(net), rep))
    shutil.copy(pathlib.Path(model_dir) / "normalization.json", out_dir / "normalization.json")
    return out_dir / "model_int8.tflite"


@pytest.fixture(scope="module")
def exported_model(trained_model_dir, synth_folder, tmp_path_factory):
    return export_for_twin(trained_model_dir, synth_folder, tmp_path_factory.mktemp("twin_export"))


@pytest.fixture(scope="module")
def twin_model(exported_model):
    from kws_tf import simulate

    return simulate.load_exported(exported_model)


@pytest.fixture(scope="module")
def step_model(exported_model):
    """The per-frame step model the exporter writes next to the windowed one."""
    from kws_tf import simulate

    path = exported_model.parent / "model_step_int8.tflite"
    assert path.is_file(), "the exporter wrote no model_step_int8.tflite"
    return simulate.load_exported(path)


def _tone_clips(seed: int = 5, per_class: int = 3) -> dict:
    """{word: [(pcm, name)]}: tone 'words' of the 10 keywords, 'bed' (unknown) and silence."""
    rng = np.random.default_rng(seed)
    out = {}
    for label in range(labels.NUM_CLASSES):
        word = {labels.LABELS.index(labels.UNKNOWN): "bed"}.get(label, labels.LABELS[label])
        out[word] = [(to_int16(class_clip(label, rng)), f"{word}/{i}") for i in range(per_class)]
    return out


@pytest.fixture(scope="module")
def tone_stream():
    """About 70 s: every keyword 3 times, unknown words and silences, no added noise."""
    rng = np.random.default_rng(11)
    clips = _tone_clips()
    items = [(pcm, word, name) for word, v in clips.items() for pcm, name in v]
    items = [items[i] for i in rng.permutation(len(items))]
    return stream.build_stream(items, None, None, rng, gap_s=(1.0, 1.5), speech_dbfs=None)


# --------------------------------------------------------------------------- the twin

def test_twin_finds_planted_keywords_at_the_right_times(twin_model, tone_stream):
    from kws_tf import simulate

    twin = simulate.DeviceTwin(twin_model)
    dets = twin.run(tone_stream.pcm)
    assert twin.counters["invoke_errors"] == 0
    result = stream.score_detections(dets, tone_stream.events, tone_stream.duration_s, tolerance_s=1.0)
    assert result["keywords"] == 30
    assert result["hit_rate"] >= 0.8, result["matches"]
    assert result["false_alarms"] <= 1, result["matches"]
    # Reported when the word has been heard: after its onset, within 1 s of its end.
    d = result["delay_from_end_s"]
    assert -0.1 <= d["min"] and d["max"] <= 1.0
    assert 0.0 < result["delay_from_onset_s"]["median"] < 1.5
    # Timestamps are audio time at an inference: multiples of the period after the first full window.
    # Frame F is complete once 160*(F-1) + 200 samples are in; the device prints whole ms.
    half, hop = features.WINDOW_SAMPLES // 2, features.HOP_SAMPLES
    for det in dets:
        frames = round((det.time_s * features.SAMPLE_RATE - half) / hop) + 1
        assert ((frames - 1) * hop + half) * 1000 // features.SAMPLE_RATE == round(det.time_s * 1000)
        assert frames >= features.NUM_FRAMES and (frames - features.NUM_FRAMES) % twin.period_frames == 0


def test_twin_is_silent_on_noise_only_audio(twin_model):
    from kws_tf import simulate

    rng = np.random.default_rng(2)
    silence_idx = labels.LABELS.index(labels.SILENCE)
    weak = np.concatenate([class_clip(silence_idx, rng) for _ in range(20)])  # the training "silence"
    white = rng.normal(0, 0.05, 20 * features.SAMPLE_RATE)  # the training background noise level
    zeros = np.zeros(5 * features.SAMPLE_RATE)
    twin = simulate.DeviceTwin(twin_model)
    for audio in (weak, white, zeros):
        assert twin.run(to_int16(audio)) == []
        assert twin.counters["inferences"] > 100


def test_twin_features_equal_python_front_end(twin_model, tone_stream):
    """The int8 windows fed to TFLM are quantize(normalise(mfcc_np(stream))) (same C++ as the board)."""
    from kws_tf import simulate

    twin = simulate.DeviceTwin(twin_model, record_windows=True)
    pcm = tone_stream.pcm[: 25 * features.SAMPLE_RATE]
    twin.run(pcm, tail_ms=0)
    ref = features.quantize_np(twin_model.normalization.apply_np(features.mfcc_np(pcm)),
                               twin_model.input_scale, twin_model.input_zero_point)
    assert len(twin.windows) > 500
    got = np.stack(twin.windows).astype(np.int32)
    want = np.stack([ref[f - features.NUM_FRAMES:f] for f in twin.window_frames]).astype(np.int32)
    diff = np.abs(got - want)
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.999


def test_period_and_recogniser_defaults_come_from_the_core(twin_model):
    from kws_tf import native, simulate

    defaults = simulate.device_defaults()
    twin = simulate.DeviceTwin(twin_model)
    assert twin.period_frames == defaults["inference_every_frames"] >= 1
    assert twin.recognizer_config["detection_threshold"] == native.recognizer_defaults()["detection_threshold"]
    pcm = np.zeros(5 * features.SAMPLE_RATE, np.int16)
    twin.run(pcm, tail_ms=0)
    n_default = twin.counters["inferences"]
    slow = simulate.DeviceTwin(twin_model, period_frames=2 * twin.period_frames,
                               recognizer={"detection_threshold": 250})
    slow.run(pcm, tail_ms=0)
    assert slow.recognizer_config["detection_threshold"] == 250
    frames = twin.counters["frames"] - features.NUM_FRAMES
    assert n_default == 1 + frames // twin.period_frames
    assert slow.counters["inferences"] == 1 + frames // (2 * twin.period_frames)


def test_chunking_does_not_change_detections(twin_model, tone_stream):
    from kws_tf import simulate

    twin = simulate.DeviceTwin(twin_model)
    pcm = tone_stream.pcm[: 30 * features.SAMPLE_RATE]
    a = twin.run(pcm, chunk_samples=512)
    b = twin.run(pcm, chunk_samples=37)
    assert a == b and a


# --------------------------------------------------------------------------- the step model

def _reference_step_loop(model, pcm, recognizer=None):
    """The board's frame-mode loop written out in Python from the separate parts: the C++
    front-end's int8 frames -> tflm.StepRunner (one step per frame) -> the C++ output scaling
    -> the C++ recogniser, skipping the warm-up (the first NUM_FRAMES + delay - 1 frames).
    Returns ([(t_ms, label, score)], number of model runs)."""
    from kws_tf import native, tflm

    frontend = native.NativeFrontend(model.normalization, model.input_scale, model.input_zero_point)
    frames, _ = frontend.feed(pcm)
    runner = tflm.StepRunner(model.model_bytes)
    labels_ = model.labels
    rec = native.NativeRecognizer(**{"num_classes": len(labels_),
                                     "silence_index": labels_.index(labels.SILENCE),
                                     "unknown_index": labels_.index(labels.UNKNOWN), **(recognizer or {})})
    found = []
    half, hop = features.WINDOW_SAMPLES // 2, features.HOP_SAMPLES
    for n, frame in enumerate(frames, start=1):
        out = runner.step(frame)
        if n < features.NUM_FRAMES + model.step_delay_frames:
            continue  # warm-up: the window the scores describe is not complete yet
        scores = native.scores_from_output(out, model.output_scale, model.output_zero_point, model.output_is_logits)
        t_ms = ((n - 1) * hop + half) * 1000 // features.SAMPLE_RATE  # audio time of frame n
        r = rec.process(scores, t_ms)
        if r.is_new_command:
            found.append((t_ms, labels_[r.label], r.score))
    return found, len(frames)


def test_step_model_loads_as_a_frame_model(step_model, twin_model, tmp_path):
    from kws_tf import simulate, step_graph

    assert step_model.kind == "frame" and step_model.is_step and twin_model.kind == "window"
    report = json.loads((step_model.path.parent / "export_report.json").read_text())
    assert step_model.step_delay_frames == report["step_model"]["delay_frames"] >= 0
    assert step_model.num_states == report["step_model"]["num_states"] >= 1
    # Without export_report.json the delay comes from the model's own metadata, or the twin refuses.
    lonely = tmp_path / "model_step_int8.tflite"
    lonely.write_bytes(step_model.model_bytes)
    (tmp_path / "normalization.json").write_text((step_model.path.parent / "normalization.json").read_text())
    info = step_graph.read_step_info(step_model.model_bytes)
    if info is not None:
        assert simulate.load_exported(lonely).step_delay_frames == info["delay_frames"] == step_model.step_delay_frames
    else:
        with pytest.raises(simulate.SimulateError, match="look-ahead is unknown"):
            simulate.load_exported(lonely)
    # Same front-end constants and output quantisation as the windowed model: same header for both.
    assert (step_model.input_scale, step_model.input_zero_point) == (twin_model.input_scale,
                                                                     twin_model.input_zero_point)
    assert (step_model.output_scale, step_model.output_zero_point, step_model.output_is_logits) == (
        twin_model.output_scale, twin_model.output_zero_point, twin_model.output_is_logits)


def test_step_twin_equals_the_python_reference_loop(step_model, tone_stream):
    """The C++ app in frame mode (kws_tf.native, as the board runs it) reports exactly what the
    parts assembled by hand report: same detections, same times, same scores."""
    from kws_tf import simulate

    pcm = tone_stream.pcm[: 30 * features.SAMPLE_RATE]
    twin = simulate.DeviceTwin(step_model)
    dets = twin.run(pcm, tail_ms=0, chunk_samples=333)
    got = [(round(d.time_s * 1000), d.label, d.score) for d in dets]
    want, runs = _reference_step_loop(step_model, pcm)
    assert got == want and len(want) >= 5, (got, want)
    c = twin.counters
    assert c["inferences"] == c["frames"] == runs  # one model run per 10 ms hop
    assert c["recognitions"] == runs - (features.NUM_FRAMES + step_model.step_delay_frames) + 1
    assert c["invoke_errors"] == 0
    # A reset starts the model's state afresh: a second run gives the same.
    assert [(round(d.time_s * 1000), d.label, d.score) for d in twin.run(pcm, tail_ms=0, chunk_samples=160)] == got


def test_step_twin_finds_planted_keywords(step_model, twin_model, tone_stream):
    """The step model finds what the windowed model finds, about delay_frames x 10 ms later."""
    from kws_tf import simulate

    step = simulate.DeviceTwin(step_model)
    dets = step.run(tone_stream.pcm)
    result = stream.score_detections(dets, tone_stream.events, tone_stream.duration_s,
                                     tolerance_s=1.0 + step_model.step_delay_frames / 100)
    assert result["keywords"] == 30
    assert result["hit_rate"] >= 0.8, result["matches"]
    assert result["false_alarms"] <= 1, result["matches"]
    window = simulate.DeviceTwin(twin_model).run(tone_stream.pcm)
    w = stream.score_detections(window, tone_stream.events, tone_stream.duration_s, tolerance_s=1.0)
    lag = result["delay_from_end_s"]["median"] - w["delay_from_end_s"]["median"]
    assert 0.0 <= lag <= step_model.step_delay_frames / 100 + 0.1, (result["delay_from_end_s"], w["delay_from_end_s"])
    # Every detection is stamped at a frame after the warm-up.
    half, hop = features.WINDOW_SAMPLES // 2, features.HOP_SAMPLES
    for det in dets:
        frames = round((det.time_s * features.SAMPLE_RATE - half) / hop) + 1
        assert frames >= features.NUM_FRAMES + step_model.step_delay_frames


def test_step_twin_self_test_and_cli(step_model, twin_model, exported_model, tone_stream, tmp_path):
    """The self-test (1 s clip from a reset + tail + look-ahead) as the board runs it in frame
    mode agrees with the windowed model's; the CLI runs the step model."""
    from kws_tf import selftest_data, simulate

    twin, window = simulate.DeviceTwin(step_model), simulate.DeviceTwin(twin_model)
    checked = 0
    for word in tone_stream.keywords[:8]:
        clip = tone_stream.pcm[int(word.start_s * 16000):int(word.start_s * 16000) + 16000]
        expected = selftest_data.host_expected_label(twin.app, clip)  # the board's self-test, replayed
        assert expected == selftest_data.host_expected_label(window.app, clip)
        assert twin.app.self_test(clip, [expected] if expected else [])
        assert twin.app.lines[-1].startswith("SELFTEST PASS")
        checked += expected == word.label
    assert checked >= 2  # (this briefly trained model finds some keywords from a reset, not all)
    with pytest.raises(simulate.SimulateError, match="every frame"):
        simulate.DeviceTwin(step_model, period_frames=4)

    wav = tmp_path / "s.wav"
    write_wav(wav, tone_stream.pcm[: 12 * features.SAMPLE_RATE])
    proc = _cli(f"--model={step_model.path}", f"--wav={wav}")
    assert proc.returncode == 0, proc.stderr
    assert "step model runs (every 10 ms frame" in proc.stderr
    want = simulate.DeviceTwin(step_model).run(tone_stream.pcm[: 12 * features.SAMPLE_RATE])
    assert [ln for ln in proc.stdout.splitlines() if ln.strip()] == [d.line() for d in want]
    # An export folder means its windowed model, as before.
    assert simulate.load_exported(exported_model.parent).kind == "window"


# --------------------------------------------------------------------------- stream tools

def test_stream_ground_truth_and_snr():
    rng = np.random.default_rng(0)
    clips = _tone_clips(per_class=2)
    items = stream.plan_items(clips, rng, minutes=0.5)
    noise = [to_int16(rng.normal(0, 0.1, 8 * features.SAMPLE_RATE))]
    s = stream.build_stream(items, noise, 10.0, np.random.default_rng(1), speech_dbfs=-26.0)
    assert s.duration_s >= 25 and s.pcm.dtype == np.int16
    kws = s.keywords
    assert kws and all(e.start_s <= e.onset_s < e.end_s <= e.start_s + 1.0 for e in kws)
    # The stated SNR holds for each word: word level (known) vs the noise in a gap.
    clean = stream.build_stream(items, None, None, np.random.default_rng(1), speech_dbfs=-26.0)
    x = s.pcm.astype(np.float64) - clean.pcm.astype(np.float64)  # the noise alone
    noise_rms = np.sqrt(np.mean(x ** 2)) / 32768
    for e in kws[:5]:
        word = clean.pcm[int(e.onset_s * 16000):int(e.end_s * 16000)].astype(np.float64) / 32768
        snr = 20 * np.log10(np.sqrt(np.mean(word ** 2)) / noise_rms)
        assert abs(snr - 10.0) < 0.5
    # Energy bounds of a tone word planted at a known place.
    clip = np.zeros(16000)
    clip[4000:10000] = 0.3 * np.sin(np.arange(6000) * 0.2)
    lo, hi = stream.word_bounds(to_int16(clip))
    assert abs(lo - 0.25) < 0.03 and abs(hi - 0.625) < 0.03


def test_scoring_rules():
    ev = [stream.Event("yes", "yes", 1.0, 1.2, 1.7), stream.Event("no", "no", 4.0, 4.1, 4.6),
          stream.Event(labels.UNKNOWN, "bed", 7.0, 7.2, 7.6), stream.Event("up", "up", 10.0, 10.3, 10.8)]
    dets = [(1.9, "yes"), (2.2, "yes"), (4.9, "off"), (7.9, "go"), (20.0, "stop"), (11.1, "up")]
    r = stream.score_detections(dets, ev, duration_s=3600.0, tolerance_s=1.0)
    assert r["keywords"] == 3 and r["hits"] == 2 and r["misses"] == 1
    assert r["false_alarm_breakdown"] == {"substitution": 1, "duplicate": 1, "on_unknown": 1, "on_background": 1}
    assert r["false_alarms_per_hour"] == pytest.approx(4.0)
    assert r["delay_from_end_s"]["median"] == pytest.approx(0.25)
    assert r["delay_from_onset_s"]["median"] == pytest.approx(0.75)
    # Outside the tolerance window it is not a hit.
    assert stream.score_detections([(2.8, "yes")], ev, 60.0, tolerance_s=1.0)["hits"] == 0


# --------------------------------------------------------------------------- CLI

def _cli(*args, timeout=120):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kws_tf.simulate", *args], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def test_cli_prints_and_writes_detections_and_resamples(exported_model, tone_stream, tmp_path):
    import soundfile as sf
    from scipy.signal import resample_poly

    x = tone_stream.pcm[: 30 * features.SAMPLE_RATE].astype(np.float32) / 32768
    x44 = resample_poly(x, 441, 160)
    wav = tmp_path / "stereo44k.wav"
    sf.write(str(wav), np.stack([x44, x44], 1), 44100, subtype="PCM_16")
    out_csv = tmp_path / "det.csv"
    proc = _cli(f"--model={exported_model}", f"--wav={wav}", f"--csv={out_csv}")
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "resampled" in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines and all(__import__("re").fullmatch(r"t=\d+\.\d\ds \S+ score=\d+", ln) for ln in lines), lines
    rows = out_csv.read_text().splitlines()
    assert rows[0] == "time_s,label,score" and len(rows) == len(lines) + 1
    first = rows[1].split(",")
    assert lines[0] == f"t={float(first[0]):.2f}s {first[1]} score={first[2]}"
    # The CLI is the API: the same detections as DeviceTwin.run on the same resampled audio.
    from kws_tf import simulate

    pcm = simulate.read_stream_wav(wav, warn=lambda m: None)
    api = simulate.DeviceTwin(simulate.load_exported(exported_model)).run(pcm)
    assert [(f"{d.time_s:.2f}", d.label, str(d.score)) for d in api] == \
        [(f"{float(r.split(',')[0]):.2f}", r.split(",")[1], r.split(",")[2]) for r in rows[1:]]
    truth = [e for e in tone_stream.keywords if e.end_s < 29]
    res = stream.score_detections([(float(r.split(",")[0]), r.split(",")[1]) for r in rows[1:]], truth, 30.0)
    # A 15-epoch toy model on 44.1 kHz audio resampled twice: it must still find most planted words.
    assert res["hits"] >= 0.6 * len(truth) and res["false_alarms"] <= 1, res["matches"]


def test_cli_bad_input_is_one_line_error(exported_model, tmp_path):
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16))
    ok = tmp_path / "ok.wav"
    write_wav(ok, np.zeros(16000, np.int16))
    raw = ok.read_bytes()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(raw[: len(raw) // 2])
    no_norm = tmp_path / "lonely" / "model_int8.tflite"
    no_norm.parent.mkdir()
    no_norm.write_bytes(exported_model.read_bytes())
    cases = [
        (f"--model={exported_model}", f"--wav={empty}", "empty"),
        (f"--model={exported_model}", f"--wav={trunc}", "truncated"),
        (f"--model={exported_model}", f"--wav={tmp_path / 'missing.wav'}", "does not exist"),
        (f"--model={ok}", f"--wav={ok}", "not a TFLite flatbuffer"),
        (f"--model={no_norm}", f"--wav={ok}", "normalisation"),
        (f"--model={exported_model}", f"--wav={ok}", "--period_frames=0", "period_frames"),
    ]
    for *args, needle in cases:
        proc = _cli(*args)
        assert proc.returncode != 0, args
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], (args, proc.stderr)


def test_model_with_wrong_input_shape_is_refused(tmp_path, exported_model):
    import tensorflow as tf
    import tf_keras as keras

    from kws_tf import simulate

    inp = keras.Input(batch_size=1, shape=(1, 49, 32))
    y = keras.layers.Dense(12)(keras.layers.GlobalAveragePooling2D()(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, y))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.normal(size=(1, 1, 49, 32)).astype(np.float32)] for _ in range(4))
    bad = tmp_path / "model_int8.tflite"
    bad.write_bytes(conv.convert())
    (tmp_path / "normalization.json").write_text((exported_model.parent / "normalization.json").read_text()
                                                 if (exported_model.parent / "normalization.json").exists()
                                                 else json.dumps(features.Normalization.identity().to_dict()))
    with pytest.raises(simulate.SimulateError, match="does not match the front-end"):
        simulate.load_exported(bad)


# --------------------------------------------------------------------------- real audio

def test_twin_detects_real_keywords(real_data, tmp_path_factory):
    """A C=8 model trained for ~40 s on real "yes"/"no"/unknown/silence clips (training speakers)
    finds "yes" and "no" spoken by held-out speakers in a 45 s stream, at the right times.

    Kept cheap: a yes/no/unknown/silence subset (symlinked folder; a dozen clips of each other
    keyword, since training refuses a class without clips), 10 epochs, +-300 ms time shift (the
    recipe's +-100 ms leaves a briefly trained model unsure while the word slides through the
    window). The stream has no added noise (the clips' own recording noise only)."""
    from conftest import quick_run_config

    from kws_tf import simulate
    from kws_tf.train import run_training

    data = real_data / "sc_v2_test_dev"
    subset = tmp_path_factory.mktemp("yesno")
    for word in ("yes", "no", labels.SILENCE, labels.UNKNOWN):
        (subset / word).symlink_to(data / word, target_is_directory=True)
    # Training refuses a class without clips: the other keywords get a token dozen each.
    for word in labels.KEYWORDS:
        if not (subset / word).exists():
            (subset / word).mkdir()
            for wav in sorted((data / word).glob("*.wav"))[:12]:
                (subset / word / wav.name).symlink_to(wav)
    model_dir = tmp_path_factory.mktemp("real_twin") / "c8"
    cfg = quick_run_config(subset, channels=8, epochs=10, batch_size=32)
    cfg["data"].update(validation_percent=20.0, test_percent=0.0, max_per_class=250)
    cfg["augment"]["shift_ms"] = 300.0
    run_training(cfg, model_dir, verbose="quiet", log=_quiet)
    model = simulate.load_exported(export_for_twin(model_dir, subset, model_dir / "export"))

    clips = stream.speech_commands_clips(data, split="validation", validation_percent=20.0, max_per_word=8)
    rng = np.random.default_rng(0)
    items = [(pcm, w, src) for w in ("yes", "no") for pcm, src in clips.get(w, [])[:8]]
    items = [items[i] for i in rng.permutation(len(items))]
    s = stream.build_stream(items, None, None, rng)
    # Pinned to the settings the measurement below was made with: the export calibrates its own
    # threshold and score temperature on a stream, which a 10-epoch model makes near useless.
    dets = simulate.DeviceTwin(model, recognizer={"detection_threshold": 140}, temperature=1.0).run(s.pcm)
    res = stream.score_detections(dets, s.events, s.duration_s)
    assert res["keywords"] == len(items) == 16
    # Measured 9/16 hits and no false alarm on this stream; leave room for training noise.
    assert res["hits"] >= 4, res["matches"]
    assert res["false_alarms"] <= 3, res["matches"]
    # Hits lie in [onset - 0.1 s, end + 1 s] by definition; typically just after the word ends.
    assert 0.0 <= res["delay_from_end_s"]["median"] <= 0.8
