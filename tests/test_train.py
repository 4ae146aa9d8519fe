"""Training: learns a learnable set, resume == uninterrupted, tfds end to end, CLI errors, real clips."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import quick_run_config
from kws_tf import labels
from kws_tf.train import RunError, run_training


def test_learnable_set_reaches_accuracy_far_above_chance(trained_model_dir):
    report = json.loads((trained_model_dir / "report.json").read_text())
    chance = 1.0 / labels.NUM_CLASSES
    assert report["val_accuracy"] > 0.5 > 4 * chance
    assert report["params"] == 2_356
    assert 0.0 < report["gate_open_fraction"] < 1.0
    assert len(report["confusion"]) == labels.NUM_CLASSES
    assert set(report["per_class"]) == set(labels.LABELS)
    assert np.asarray(report["confusion"]).sum() == report[report["confusion_split"]]["clips"]
    for name in ("best.weights.h5", "model.keras", "normalization.json", "history.csv", "confusion_matrix.png",
                 "checkpoints/state.json"):
        assert (trained_model_dir / name).exists(), name


def _checkpoint_values(model_dir):
    import tensorflow as tf

    state = json.loads((model_dir / "checkpoints" / "state.json").read_text())
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / state["checkpoint"]))
    names = sorted(k for k in reader.get_variable_to_shape_map() if "model/" in k or "optimizer/" in k)
    return {k: reader.get_tensor(k) for k in names}


def test_resume_ends_with_the_same_weights(tmp_path, synth_folder):
    cfg = quick_run_config(synth_folder, channels=4, epochs=3, batch_size=32, seed=5)
    quiet = dict(verbose="quiet", log=lambda m: None)
    run_training(cfg, tmp_path / "straight", **quiet)
    assert run_training(cfg, tmp_path / "split", stop_after_epochs=1, **quiet) is None
    assert json.loads((tmp_path / "split" / "checkpoints" / "state.json").read_text())["epoch"] == 1
    run_training(cfg, tmp_path / "split", resume=True, **quiet)
    a, b = _checkpoint_values(tmp_path / "straight"), _checkpoint_values(tmp_path / "split")
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ra = json.loads((tmp_path / "straight" / "report.json").read_text())
    rb = json.loads((tmp_path / "split" / "report.json").read_text())
    assert ra["val_accuracy"] == rb["val_accuracy"]


def test_model_dir_conflicts_are_refused(tmp_path, synth_folder, trained_model_dir):
    cfg = quick_run_config(synth_folder)
    with pytest.raises(RunError, match="already holds a run"):
        run_training(cfg, trained_model_dir, log=lambda m: None)
    other = quick_run_config(synth_folder, channels=16)
    with pytest.raises(RunError, match="incompatible run .*channels"):
        run_training(other, trained_model_dir, resume=True, log=lambda m: None)
    with pytest.raises(RunError, match="holds no run"):
        run_training(cfg, tmp_path / "empty", resume=True, log=lambda m: None)


def test_tfds_pipeline_end_to_end_through_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = quick_run_config(tmp_path, channels=4, epochs=1, batch_size=16)
    cfg["data"] = {"kind": "tfds", "tfds_data_dir": None, "noise_dir": None}
    with tfds.testing.mock_data(num_examples=32):
        report = run_training(cfg, tmp_path / "run", verbose="quiet", log=lambda m: None)
    assert report["data_source"] == "tfds:speech_commands"
    assert report["test"]["clips"] == 32 and report["validation"]["clips"] == 32
    assert (tmp_path / "run" / "model.keras").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kws_tf.train", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["--data_dir={tmp}/missing"], "does not exist"),
    (["--C=12"], "no shipped config"),
    (["--config={tmp}/nope.json"], "does not exist"),
])
def test_cli_bad_input_gives_one_line_error(tmp_path, args, message):
    out = _cli(*[a.format(tmp=tmp_path) for a in args], f"--model_dir={tmp_path}/run")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last


def test_cli_trains_and_resumes_a_finished_run(tmp_path, synth_folder):
    args = [f"--data_dir={synth_folder}", f"--model_dir={tmp_path}/run", "--C=4", "--epochs=1", "--batch_size=64",
            "--verbose=quiet"]
    out = _cli(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done: val_accuracy" in out.stdout
    again = _cli(*args)
    assert again.returncode != 0 and "already holds a run" in again.stderr
    resumed = _cli(*args, "--resume")
    assert resumed.returncode == 0 and "done:" in resumed.stdout


def test_trains_briefly_on_real_clips(real_data, tmp_path):
    cfg = quick_run_config(real_data / "sc_v2_test_dev", channels=8, epochs=2, batch_size=64,
                           **{"data.max_per_class": 40, "data.validation_percent": 20.0, "data.test_percent": 0.0,
                              "data.noise_dir": str(real_data / "background_noise"),
                              "augment.background_prob": 0.5})
    report = run_training(cfg, tmp_path / "real", verbose="quiet", log=lambda m: None)
    assert report["train_clips"] > 300
    assert report["validation"]["clips"] > 50
    assert report["val_accuracy"] is not None and report["test_accuracy"] is None
