"""Pruning during training (kws_tf.pruning): the target sparsity is reached on the stripped weights,
the gate is untouched, resume continues the pruning exactly, pruned SparkNet and DS-CNN export
fully int8 (the export's own TFLM checks), bad prune settings are one-line errors.

Generated data (tests/synth.py), tiny models, a few epochs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

from conftest import quick_run_config
from kws_tf import config as config_lib
from kws_tf import data
from kws_tf import pruning

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUIET = dict(verbose="quiet", log=lambda m: None)


def _pruned_config(data_dir, target, model="sparknet", channels=8, epochs=3, batch_size=16, **prune):
    cfg = quick_run_config(data_dir, channels=8, epochs=epochs, batch_size=batch_size)
    cfg["data"]["max_per_class"] = 12  # 144 clips: enough to learn a little, quick to run
    if model != "sparknet":
        cfg = {**config_lib.load_config(config_lib.default_config_path(64, model)), "seed": 0, "data": cfg["data"],
               "epochs": epochs, "batch_size": batch_size}
    cfg["channels"] = channels
    cfg["prune"] = {**pruning.DEFAULTS, "target_sparsity": target, "begin_fraction": 0.2, "end_fraction": 0.6,
                    "frequency": 5, **prune}
    return cfg


def _granularity(sparsity: dict) -> float:
    """tfmot keeps round(size * (1 - s)) weights per layer: each layer is within 1/size of s."""
    return max(1.0 / v["size"] for v in sparsity["layers"].values())


@pytest.fixture(scope="module")
def pruned_sparknet(synth_folder, tmp_path_factory):
    from kws_tf.train import run_training

    cfg = _pruned_config(synth_folder, 0.75)
    model_dir = tmp_path_factory.mktemp("pruned") / "c8"
    report = run_training(cfg, model_dir, **QUIET)
    return cfg, model_dir, report


def test_schedule_lands_on_the_target_step():
    begin, end, freq = pruning.schedule_steps({"begin_fraction": 0.2, "end_fraction": 0.8, "frequency": 100}, 1000)
    assert (begin, end, freq) == (200, 800, 100)
    begin, end, freq = pruning.schedule_steps({"begin_fraction": 0.2, "end_fraction": 0.8, "frequency": 7}, 1000)
    assert begin == 200 and (end - begin) % freq == 0 and 800 - freq < end <= 800
    # a short run: the frequency shrinks to fit, so the target is still reached
    begin, end, freq = pruning.schedule_steps({"begin_fraction": 0.2, "end_fraction": 0.6, "frequency": 100}, 10)
    assert 1 <= begin < end <= 10 and (end - begin) % freq == 0


def test_wrap_leaves_gate_and_depthwise_alone():
    import tf_keras as keras

    from kws_tf import models
    from kws_tf.gates import RelaxedBernoulliGate

    net = models.build_model("sparknet", 4, sigma=0.5, lam=1.0, seed=0)
    wrapped = pruning.wrap(net, pruning.DEFAULTS, 100)
    assert wrapped.get_layer("gate") is net.get_layer("gate")
    assert isinstance(wrapped.get_layer("gate"), RelaxedBernoulliGate)
    for layer in wrapped.layers:
        is_wrapper = type(layer).__name__ == "PruneLowMagnitude"
        inner = layer.layer if is_wrapper else layer
        assert is_wrapper == (type(inner) in (keras.layers.Conv2D, keras.layers.Dense)), layer.name
    stripped = pruning.strip(wrapped)
    assert [type(a) for a in stripped.layers] == [type(b) for b in net.layers]
    assert stripped.name == net.name


def test_pruned_run_reaches_target_on_stripped_weights(pruned_sparknet):
    import tf_keras as keras

    from kws_tf import models
    from kws_tf.gates import RelaxedBernoulliGate

    cfg, model_dir, report = pruned_sparknet
    sp = report["sparsity"]
    tol = _granularity(sp)
    assert abs(sp["overall"] - 0.75) <= tol
    assert len(sp["layers"]) == 9  # 4 pointwise, 3 residual, head, classifier
    for name, layer in sp["layers"].items():
        assert abs(layer["sparsity"] - 0.75) <= 1.0 / layer["size"] + 1e-9, name
    assert report["prune"] == cfg["prune"]
    # best epoch: only once the final mask is in place
    steps = data.steps_per_epoch(report["train_clips"], cfg["batch_size"])
    assert report["best_epoch"] >= pruning.first_sparse_epoch(cfg["prune"], cfg["epochs"] * steps, steps) > 1
    # model.keras: an ordinary model, the same zeros, the gate as trained
    net = keras.models.load_model(model_dir / "model.keras", custom_objects=models.custom_objects(), compile=False)
    assert not [layer.name for layer in net.layers if "prune" in type(layer).__name__.lower()]
    assert pruning.measured_sparsity(net) == sp
    gate = net.get_layer("gate")
    assert isinstance(gate, RelaxedBernoulliGate)
    assert gate.get_config()["sigma"] == cfg["gate"]["sigma"] and gate.get_config()["lam"] == cfg["gate"]["lam"]
    assert report["gate_open_fraction"] is not None
    # the depthwise kernels are not pruned
    dw = net.get_layer("b2_depthwise").depthwise_kernel.numpy()
    assert np.count_nonzero(dw == 0) == 0


def test_pruned_sparknet_exports_int8_through_the_cli(pruned_sparknet, tmp_path):
    _, model_dir, report = pruned_sparknet
    out = tmp_path / "export"
    res = subprocess.run([sys.executable, "-m", "kws_tf.export", "--int8", f"--model_dir={model_dir}", f"--out={out}",
                          "--nostep_model", "--nooperating_point", "--timing_repeats=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0, res.stderr[-2000:]
    exp = json.loads((out / "export_report.json").read_text())
    assert exp["calibration"]["tflm_equals_reference_kernels"]
    assert 0 < exp["int8_zlib_bytes"] < exp["int8_bytes"] == (out / "model_int8.tflite").stat().st_size
    # zero float weights stay exactly zero in int8 (symmetric weights, zero point 0; BN folding scales them)
    zeros, size = pruning.int8_weight_zeros((out / "model_int8.tflite").read_bytes())
    assert zeros / size >= report["sparsity"]["zeros"] / size


def test_pruned_dscnn_exports_int8(synth_folder, tmp_path):
    from kws_tf import export
    from kws_tf.train import run_training

    cfg = _pruned_config(synth_folder, 0.5, model="dscnn", channels=4, epochs=1)
    report = run_training(cfg, tmp_path / "dscnn", **QUIET)
    sp = report["sparsity"]
    assert abs(sp["overall"] - 0.5) <= _granularity(sp)
    assert "conv1" in sp["layers"] and "ds1_depthwise" not in sp["layers"]
    exp = export.export_model(tmp_path / "dscnn", tmp_path / "out", step_model=False, timing_repeats=1,
                              operating_point={"enabled": False}, log=lambda m: None)
    assert exp["int8_zlib_bytes"] < exp["int8_bytes"]


def _checkpoint_values(model_dir):
    import tensorflow as tf

    state = json.loads((model_dir / "checkpoints" / "state.json").read_text())
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / state["checkpoint"]))
    names = sorted(k for k in reader.get_variable_to_shape_map() if "model/" in k or "optimizer/" in k)
    return {k: reader.get_tensor(k) for k in names}


def test_resume_continues_pruning_exactly(synth_folder, tmp_path):
    from kws_tf.train import run_training

    # pruning runs from 10 % to 90 % of the steps: the stop after epoch 1 falls inside the ramp
    cfg = _pruned_config(synth_folder, 0.6, channels=4, epochs=2, begin_fraction=0.1, end_fraction=0.9, frequency=2)
    ra = run_training(cfg, tmp_path / "straight", **QUIET)
    assert run_training(cfg, tmp_path / "split", stop_after_epochs=1, **QUIET) is None
    partial = _checkpoint_values(tmp_path / "split")
    steps = [v for k, v in partial.items() if "pruning_step" in k]
    per_epoch = data.steps_per_epoch(ra["train_clips"], cfg["batch_size"])
    assert steps and all(int(s) == per_epoch for s in steps)  # the pruning step is checkpointed
    masks = [v for k, v in partial.items() if "/mask/" in k]
    assert masks and 0 < sum(np.count_nonzero(m == 0) for m in masks) / sum(m.size for m in masks) < 0.6
    run_training(cfg, tmp_path / "split", resume=True, **QUIET)
    a, b = _checkpoint_values(tmp_path / "straight"), _checkpoint_values(tmp_path / "split")
    assert a.keys() == b.keys() and any("mask" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    rb = json.loads((tmp_path / "split" / "report.json").read_text())
    assert ra["sparsity"] == rb["sparsity"] and abs(ra["sparsity"]["overall"] - 0.6) <= _granularity(ra["sparsity"])


def _train_cli(*args):
    return subprocess.run([sys.executable, "-m", "kws_tf.train", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_bad_prune_settings_are_one_line_errors(synth_folder, tmp_path):
    # the CLI refuses a bad prune block before anything is written
    bad = config_lib.load_config(channels=4)
    bad["prune"] = {**pruning.DEFAULTS, "begin_fraction": 0.8, "end_fraction": 0.3}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    res = _train_cli(f"--data_dir={synth_folder}", f"--model_dir={tmp_path / 'run'}", f"--config={path}")
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "prune.begin_fraction must be < prune.end_fraction (got 0.8 >= 0.3)" in lines[0]
    assert not (tmp_path / "run").exists()
    # --target_sparsity goes through the same schema (the CLI's resolve_config, without a process)
    from kws_tf.train_config import FLAG_KEYS, resolve_config

    flag_values = types.SimpleNamespace(
        config=None, C=4, model="sparknet", data_dir=str(synth_folder), noise_dir=None, tfds_data_dir=None,
        validation_percent=10.0, test_percent=10.0, max_per_class=None, stop_after_epochs=None, seed=0,
        target_sparsity=1.0, **{name: None for name in FLAG_KEYS})
    with pytest.raises(config_lib.ConfigError) as info:
        resolve_config(flag_values)
    assert "prune.target_sparsity must be a number in [0, 1) (got 1.0)" in str(info.value)
    assert "\n" not in str(info.value)
    flag_values.target_sparsity = 0.8
    assert resolve_config(flag_values)["prune"] == {**pruning.DEFAULTS, "target_sparsity": 0.8}
    # the loader, for each rule
    for prune, fragment in (
            ({"target_sparsity": -0.5}, "prune.target_sparsity must be a number in [0, 1) (got -0.5)"),
            ({"begin_fraction": 0.8, "end_fraction": 0.3},
             "prune.begin_fraction must be < prune.end_fraction (got 0.8 >= 0.3)"),
            ({"frequency": 0}, "prune.frequency must be an integer in [1, 1e+06] (got 0)")):
        cfg = {**bad, "prune": {**pruning.DEFAULTS, **prune}}
        with pytest.raises(config_lib.ConfigError) as info:
            config_lib.validate(cfg, "config")
        assert fragment in str(info.value) and "\n" not in str(info.value)
    missing = {**bad, "prune": {"target_sparsity": 0.9}}
    with pytest.raises(config_lib.ConfigError, match="missing key prune.begin_fraction"):
        config_lib.validate(missing, "config")


def test_target_flag_fills_the_block_and_zero_means_dense():
    cfg = config_lib.load_config(channels=4)
    assert pruning.config_with_target(cfg, 0.9)["prune"] == {**pruning.DEFAULTS, "target_sparsity": 0.9}
    custom = {**cfg, "prune": {**pruning.DEFAULTS, "frequency": 7}}
    assert pruning.config_with_target(custom, 0.5)["prune"]["frequency"] == 7
    assert "prune" not in pruning.config_with_target(custom, 0.0)
    assert pruning.config_with_target(custom, None) is custom
    config_lib.validate(pruning.config_with_target(cfg, 0.9), "test")
