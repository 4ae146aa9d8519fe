"""Distillation from finished runs (kws_tf.distill, kws_tf.losses) and extra training folders.

The loss against a NumPy computation; the config schema; a real short student run whose teacher is
the session's trained model, and the teacher's scores in the student's real training batches;
teachers of other data refused (in process and through the CLI); `--extra_train_dir` clips."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import quick_run_config
from kws_tf import config as config_lib, data, labels
from kws_tf.audio_io import read_wav
from synth import make_speech_commands_folder

ROOT = pathlib.Path(__file__).resolve().parent.parent
K = labels.NUM_CLASSES


def _quiet():
    return dict(verbose="quiet", log=lambda m: None)


def _cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kws_tf.train", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def _one_error_line(out, *fragments):
    assert out.returncode == 1, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == errors[0]
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


# --------------------------------------------------------------------------- the loss

def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _packed_batch(seed=0, batch=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, batch)
    teacher = np.exp(_log_softmax(rng.normal(0, 2, (batch, K)) / 2.0))
    logits = rng.normal(0, 3, (batch, K))
    packed = np.concatenate([y[:, None].astype(np.float64), teacher], axis=1)
    return y, teacher, logits, packed


def _hand_loss(y, teacher, logits, alpha, temperature):
    ce = -_log_softmax(logits)[np.arange(len(y)), y].mean()
    kl = (teacher * (np.log(teacher) - _log_softmax(logits / temperature))).sum(axis=-1).mean()
    return alpha * ce + (1 - alpha) * temperature ** 2 * kl, ce, kl


@pytest.mark.parametrize("alpha, temperature", [(0.5, 2.0), (0.3, 4.0), (1.0, 3.0), (0.0, 2.5)])
def test_distillation_loss_matches_a_numpy_computation(alpha, temperature):
    import tensorflow as tf

    from kws_tf import losses

    y, teacher, logits, packed = _packed_batch()
    loss = losses.distillation_loss(alpha, temperature)
    got = float(loss(tf.constant(packed, tf.float32), tf.constant(logits, tf.float32)))
    want, ce, kl = _hand_loss(y, teacher, logits, alpha, temperature)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    # the extremes: alpha 1 is plain cross-entropy, alpha 0 the pure T^2-scaled KL term
    if alpha == 1.0:
        plain = losses.classification_loss()(tf.constant(y), tf.constant(logits, tf.float32))
        assert got == pytest.approx(float(plain), rel=1e-5) and got == pytest.approx(ce, rel=1e-4)
    if alpha == 0.0:
        assert got == pytest.approx(temperature ** 2 * kl, rel=1e-4)
        assert kl > 0.01  # the batch's student and teacher disagree: the term is not trivially 0


def test_distillation_loss_is_zero_kl_when_the_student_is_the_teacher():
    import tensorflow as tf

    from kws_tf import losses

    y, _, logits, _ = _packed_batch(seed=3)
    temperature = 2.0
    teacher = np.exp(_log_softmax(logits / temperature))
    packed = np.concatenate([y[:, None].astype(np.float64), teacher], axis=1)
    got = float(losses.distillation_loss(0.0, temperature)(tf.constant(packed, tf.float32),
                                                            tf.constant(logits, tf.float32)))
    assert abs(got) < 1e-4


def test_distillation_loss_refuses_bad_parameters():
    from kws_tf import losses

    with pytest.raises(ValueError, match="alpha"):
        losses.distillation_loss(1.5, 2.0)
    with pytest.raises(ValueError, match="temperature"):
        losses.distillation_loss(0.5, 0.0)


def test_packed_accuracy_reads_the_label_column():
    import tensorflow as tf

    from kws_tf import losses

    y, teacher, logits, packed = _packed_batch(seed=1, batch=8)
    pred = np.argmax(logits, axis=-1)
    y = pred.copy()
    y[:3] = (pred[:3] + 1) % K  # 5 of 8 right by the labels
    packed[:, 0] = y
    # the teacher's scores point elsewhere: an accuracy that read them would not give 5/8
    packed[:, 1:] = np.eye(K)[(pred + 2) % K]
    metric = losses.packed_accuracy()
    metric.update_state(tf.constant(packed, tf.float32), tf.constant(logits, tf.float32))
    assert metric.name == "accuracy"
    assert float(metric.result()) == pytest.approx(5 / 8)


# --------------------------------------------------------------------------- config schema

def _cfg_with_distill(synth_dir, block):
    cfg = quick_run_config(synth_dir)
    cfg["distill"] = block
    return cfg


def test_config_accepts_a_distill_block_and_an_absent_one(tmp_path):
    good = {"teachers": [str(tmp_path / "t")], "alpha": 0.5, "temperature": 2.0}
    assert config_lib.problems(_cfg_with_distill(tmp_path, good), extra_keys=("seed", "data")) == []
    cfg = quick_run_config(tmp_path)
    assert "distill" not in cfg
    assert config_lib.problems(cfg, extra_keys=("seed", "data")) == []


@pytest.mark.parametrize("change, key", [
    ({"teachers": []}, "distill.teachers"),
    ({"teachers": "runs/teacher"}, "distill.teachers"),
    ({"teachers": ["runs/a", ""]}, "distill.teachers"),
    ({"alpha": 2}, "distill.alpha"),
    ({"alpha": -0.1}, "distill.alpha"),
    ({"temperature": 0}, "distill.temperature"),
    ({"temperature": "hot"}, "distill.temperature"),
])
def test_config_refuses_bad_distill_blocks_naming_the_key(tmp_path, change, key):
    block = {"teachers": [str(tmp_path / "t")], "alpha": 0.5, "temperature": 2.0, **change}
    found = config_lib.problems(_cfg_with_distill(tmp_path, block), extra_keys=("seed", "data"))
    assert len(found) == 1 and found[0].startswith(key), found
    with pytest.raises(config_lib.ConfigError, match=key.replace(".", r"\.")):
        config_lib.validate(_cfg_with_distill(tmp_path, block), "test", extra_keys=("seed", "data"))


def test_config_refuses_a_distill_block_without_teachers(tmp_path):
    found = config_lib.problems(_cfg_with_distill(tmp_path, {"alpha": 0.5, "temperature": 2.0}),
                                extra_keys=("seed", "data"))
    assert any("distill.teachers" in p for p in found), found


# --------------------------------------------------------------------------- real runs

@pytest.fixture(scope="module")
def extra_folder(tmp_path_factory):
    # `bed` and `_unknown_` are unknown words; the noise folder is no class and gives no clips here
    return make_speech_commands_folder(tmp_path_factory.mktemp("extra") / "mined", clips_per_class=3, speakers=3,
                                       seed=11, words=["yes", "bed", labels.UNKNOWN, labels.SILENCE])


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory, synth_folder, extra_folder):
    """A finished run on OTHER training clips (the synth folder plus an extra folder, through
    run_config data.extra_train): another normalisation than the synth folder's alone."""
    from kws_tf.train import run_training

    model_dir = tmp_path_factory.mktemp("other") / "teacher"
    cfg = quick_run_config(synth_folder, epochs=1, batch_size=32)
    cfg["data"]["extra_train"] = [str(extra_folder)]
    run_training(cfg, model_dir, **_quiet())
    return model_dir


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, synth_folder, trained_model_dir):
    from kws_tf.train import run_training

    model_dir = tmp_path_factory.mktemp("student") / "s"
    cfg = quick_run_config(synth_folder, epochs=2, distill={"teachers": [str(trained_model_dir)], "alpha": 0.3,
                                                             "temperature": 3.0})
    assert cfg["distill"]["teachers"] == [str(trained_model_dir)]
    report = run_training(cfg, model_dir, **_quiet())
    assert report is not None
    return model_dir


def test_student_run_finishes_and_reports_its_teacher(student_dir, trained_model_dir):
    report = json.loads((student_dir / "report.json").read_text())
    assert report["distill"] == {"teachers": [str(trained_model_dir)], "alpha": 0.3, "temperature": 3.0}
    assert report["epochs"] == 2 and report["val_accuracy"] is not None
    run_config = json.loads((student_dir / "run_config.json").read_text())
    assert run_config["distill"]["teachers"] == [str(trained_model_dir)]
    history = (student_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 and "val_accuracy" in history[0]
    # the student is a usable run: it loads for export, and could teach in turn
    from kws_tf.export_io import load_trained

    assert load_trained(student_dir).net is not None


def test_training_batches_carry_the_teachers_scores(synth_folder, trained_model_dir, student_dir):
    import tensorflow as tf

    from kws_tf import augment, distill
    from kws_tf.export_io import load_trained

    cfg = json.loads((student_dir / "run_config.json").read_text())
    ds = data.load_folder(synth_folder, 10.0, 10.0, log=lambda m: None)
    norm = data.compute_normalization(ds.train, seed=cfg["seed"])
    teachers = distill.load_teachers(cfg["distill"], norm, student_dir=student_dir)
    assert len(teachers.nets) == 1 and teachers.temperature == 3.0
    aug = augment.AugmentConfig.from_dict(cfg["augment"])
    args = (ds.train, norm, aug, ds.noise, 16, cfg["seed"], 0, 1)
    packed_ds = data.train_dataset(*args, targets=teachers.pack)
    plain_ds = data.train_dataset(*args)
    (x, packed), (x_plain, y_plain) = next(iter(packed_ds)), next(iter(plain_ds))
    packed = packed.numpy()
    assert packed.shape == (16, 1 + K)
    np.testing.assert_array_equal(x.numpy(), x_plain.numpy())  # the batch the teacher scored is the student's
    np.testing.assert_array_equal(packed[:, 0], y_plain.numpy().astype(np.float32))
    np.testing.assert_allclose(packed[:, 1:].sum(axis=1), 1.0, atol=1e-5)
    # the scores are the teacher's own softened scores of that batch
    net = load_trained(trained_model_dir).net
    want = tf.nn.softmax(net(x, training=False) / 3.0).numpy()
    np.testing.assert_allclose(packed[:, 1:], want, atol=1e-5)
    # a trained teacher at T=3 leans to the right class most of the time, but not with one-hot certainty
    assert np.mean(np.argmax(packed[:, 1:], axis=1) == packed[:, 0]) >= 0.5
    assert packed[:, 1:].max() < 1.0 - 1e-3
    # validation batches are packed the same way
    vx, vpacked = next(iter(data.eval_dataset(ds.validation, norm, 256, targets=teachers.pack)))
    assert vpacked.shape == (len(ds.validation), 1 + K)
    np.testing.assert_array_equal(vpacked.numpy()[:, 0], ds.validation.labels.astype(np.float32))


def test_teachers_of_different_features_are_refused(synth_folder, trained_model_dir, other_teacher, tmp_path):
    from kws_tf import distill
    from kws_tf.train import run_training

    ds = data.load_folder(synth_folder, 10.0, 10.0, log=lambda m: None)
    both = {"teachers": [str(trained_model_dir), str(other_teacher)], "alpha": 0.5, "temperature": 2.0}
    norm = distill.teacher_normalization(both)  # the first teacher's: what the student takes
    with pytest.raises(distill.DistillError, match="other features"):
        distill.load_teachers(both, norm)
    with pytest.raises(distill.DistillError, match="does not exist"):
        distill.load_teachers({"teachers": [str(tmp_path / "nope")], "alpha": 0.5, "temperature": 2.0}, norm)
    with pytest.raises(distill.DistillError, match="is the run being trained"):
        distill.load_teachers({"teachers": [str(other_teacher)], "alpha": 0.5, "temperature": 2.0}, norm,
                              student_dir=other_teacher)
    cfg = quick_run_config(synth_folder, epochs=1, distill=both)
    with pytest.raises(distill.DistillError):
        run_training(cfg, tmp_path / "student", dataset=ds, **_quiet())
    assert not (tmp_path / "student").exists() or not any((tmp_path / "student").iterdir())


def test_student_with_extra_clips_takes_its_teachers_normalisation(synth_folder, extra_folder, trained_model_dir,
                                                                    tmp_path):
    """A student trained on more clips (hard negatives) than its teacher, and with another seed, scores
    what the teacher scores: the teacher's normalisation, not one of its own."""
    from kws_tf.train import run_training

    cfg = quick_run_config(synth_folder, epochs=1, seed=3, distill={"teachers": [str(trained_model_dir)],
                                                                     "alpha": 0.5, "temperature": 2.0})
    cfg["data"]["extra_train"] = [str(extra_folder)]
    assert run_training(cfg, tmp_path / "student", **_quiet()) is not None
    assert json.loads((tmp_path / "student" / "normalization.json").read_text()) == \
        json.loads((trained_model_dir / "normalization.json").read_text())
    # without a teacher the same data gives another normalisation (so the teacher's was really taken)
    cfg.pop("distill")
    assert run_training(cfg, tmp_path / "alone", **_quiet()) is not None
    assert json.loads((tmp_path / "alone" / "normalization.json").read_text()) != \
        json.loads((trained_model_dir / "normalization.json").read_text())


def test_cli_refuses_teachers_of_different_features(synth_folder, trained_model_dir, other_teacher, tmp_path):
    out = _cli(f"--data_dir={synth_folder}", f"--model_dir={tmp_path}/student", "--C=8", "--epochs=1",
               "--verbose=quiet", f"--teacher_dirs={trained_model_dir},{other_teacher}")
    _one_error_line(out, str(other_teacher), "other features")
    assert not (tmp_path / "student").exists() or not any((tmp_path / "student").iterdir())


def test_cli_refuses_distill_options_without_teachers(synth_folder, tmp_path):
    out = _cli(f"--data_dir={synth_folder}", f"--model_dir={tmp_path}/student", "--C=8", "--epochs=1",
               "--verbose=quiet", "--distill_alpha=0.3")
    _one_error_line(out, "--teacher_dirs")
    assert not (tmp_path / "student").exists()


# --------------------------------------------------------------------------- --extra_train_dir

def test_load_extra_train_takes_every_clip_with_its_folder_label(extra_folder):
    extra = data.load_extra_train(extra_folder, log=lambda m: None)
    files = sorted(p for p in extra_folder.rglob("*.wav") if p.parent.name != labels.BACKGROUND_NOISE_DIR)
    assert len(files) == 12 and len(extra) == len(files)
    by_name = dict(zip(extra.names, range(len(extra))))
    assert set(by_name) == {f"{p.parent.name}/{p.name}" for p in files}
    for p in files:
        i = by_name[f"{p.parent.name}/{p.name}"]
        assert extra.labels[i] == labels.label_index(p.parent.name)
        np.testing.assert_array_equal(extra.audio[i], read_wav(p))
    counts = {labels.LABELS[k]: int(n) for k, n in zip(*np.unique(extra.labels, return_counts=True))}
    assert counts == {"yes": 3, labels.UNKNOWN: 6, labels.SILENCE: 3}


def test_load_extra_train_refuses_a_missing_folder(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_extra_train(tmp_path / "nope", log=lambda m: None)


def test_with_extra_train_appends_to_training_only(synth_folder, extra_folder):
    ds = data.load_folder(synth_folder, 10.0, 10.0, log=lambda m: None)
    extra = data.load_extra_train(extra_folder, log=lambda m: None)
    both = data.with_extra_train(ds, extra)
    n = len(ds.train)
    assert len(both.train) == n + len(extra)
    np.testing.assert_array_equal(both.train.audio[:n], ds.train.audio)
    np.testing.assert_array_equal(both.train.audio[n:], extra.audio)
    np.testing.assert_array_equal(both.train.labels, np.concatenate([ds.train.labels, extra.labels]))
    assert list(both.train.names) == list(ds.train.names) + list(extra.names)
    assert both.validation is ds.validation and both.test is ds.test and len(ds.train) == n


def test_run_config_extra_train_reaches_training(synth_folder, extra_folder, other_teacher):
    plain = data.load_folder(synth_folder, 10.0, 10.0, log=lambda m: None)
    report = json.loads((other_teacher / "report.json").read_text())
    assert report["extra_train"] == [str(extra_folder)]
    assert report["train_clips"] == len(plain.train) + 12
    assert json.loads((other_teacher / "run_config.json").read_text())["data"]["extra_train"] == [str(extra_folder)]
