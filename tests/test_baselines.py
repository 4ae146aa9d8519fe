"""Baselines (kws_tf/models/dscnn.py, bcresnet.py): sizes, the --model/--C config path, one training epoch,
full-int8 conversion run in the real TFLite Micro interpreter."""

import json
import types

import numpy as np
import pytest

from conftest import quick_run_config

# DS-CNN, MLPerf Tiny reference structure (kws_ref_model.tflite), 64 filters, trainable
# parameters (BN: scale + offset; the moving statistics are not trainable):
#   conv1 10x4x1x64 + 64 bias           = 2,624    BN 128
#   4 x [dw 3x3x64 + 64 bias = 640, BN 128, pw 64x64 + 64 bias = 4,160, BN 128] = 4 x 5,056 = 20,224
#   dense 64x12 + 12                    = 780
#   total 2,624 + 128 + 20,224 + 780    = 23,756  (+ 9 x 128 = 1,152 BN moving stats = 24,908 weights)
# No layer's weights depend on the input size, so this is also the reference's count on
# its 49x10 input. (With BN folded, as deployed: 22,604.)
# MACs on our 101x32 image: the stride-2 "same" conv gives 51x16 = 816 positions:
#   conv1 816*64*40 = 2,088,960; dw 4*816*64*9 = 1,880,064; pw 4*816*64*64 = 13,369,344; dense 768
#   = 17,339,136 (the reference's 49x10 input: 25x5 = 125 positions, 2,656,768).
DSCNN_PARAMS, DSCNN_MACS = 23_756, 17_339_136

# BC-ResNet-1 as published (stem 16, stages 8/12/16/20 with 2/2/4/4 blocks, head 32, SubSpectral
# Norm with 5 sub-bands, 5x5 head kernel on the 5 bins left of 40 log-mel bands): the reference
# code's 9,232 (group by group in tests/test_bcresnet.py). Its former variant (norm="bn" on 32
# MFCC: 1,472 fewer for BN instead of SSN, 100 fewer for the 5x4 head kernel) has 7,660.
BCRESNET1_PARAMS, BCRESNET1_BN_MFCC_PARAMS = 9_232, 7_660

def _sizes(name, channels):
    from kws_tf import model as model_lib, models

    net = models.build_model(name, channels, sigma=0.5, lam=1.0, weight_decay=1e-3, seed=0)
    return net, model_lib.count_params(net), model_lib.count_macs(net)


def test_param_and_mac_counts():
    net, p, m = _sizes("dscnn", 64)
    print(f"\nDS-CNN C=64: {p:,} trainable parameters, {m:,} MACs per 1 s window")
    assert (p, m) == (DSCNN_PARAMS, DSCNN_MACS)
    assert net.input.shape[1:] == (1, 101, 32) and net.output.shape[1:] == (12,)
    assert net.losses, "weight decay must add L2 penalties"

    net, p, m = _sizes("bcresnet", 8)
    print(f"BC-ResNet-1 (C=8): {p:,} trainable parameters (the paper's), {m:,} MACs per 1 s window")
    assert p == BCRESNET1_PARAMS
    assert 2_000_000 < m < 3_000_000  # convolutions only; the paper's 3.6 M counts more than convs
    assert net.input.shape[1:] == (1, 101, 40) and net.output.shape[1:] == (12,)
    from kws_tf import model as model_lib
    from kws_tf.models import bcresnet

    old = bcresnet.build_bcresnet(8, num_coeffs=32, norm="bn")
    assert model_lib.count_params(old) == BCRESNET1_BN_MFCC_PARAMS
    # the unused gate settings are accepted; wider tau scales
    assert _sizes("bcresnet", 16)[1] > 2 * p


def test_config_and_flags_path():
    from kws_tf import config as config_lib
    from kws_tf.train_config import resolve_config

    for model, c in (("dscnn", 64), ("bcresnet", 8)):
        flags = types.SimpleNamespace(
            config=None, C=c, model=model, epochs=3, batch_size=None, lr=None, momentum=None, weight_decay=None,
            sigma=None, lam=None, ce_weight=None, background_prob=0.5, seed=1, data_dir="/tmp/x",
            validation_percent=20.0, test_percent=0.0, max_per_class=None, noise_dir=None, tfds_data_dir=None)
        cfg = resolve_config(flags)
        assert (cfg["model"], cfg["channels"], cfg["epochs"]) == (model, c, 3)
        assert cfg["augment"]["background_prob"] == 0.5 and cfg["ce_weight"] == 1.0
    with pytest.raises(config_lib.ConfigError, match="no shipped config for dscnn with C=7"):
        config_lib.load_config(channels=7, model="dscnn")


def test_dscnn_trains_one_epoch(synth_folder, tmp_path):
    import tf_keras as keras

    from kws_tf import config as config_lib
    from kws_tf.train import run_training

    recipe = config_lib.load_config(channels=64, model="dscnn")
    cfg = quick_run_config(synth_folder, epochs=1, batch_size=32)
    cfg.update(model="dscnn", channels=64, ce_weight=recipe["ce_weight"], optimizer=recipe["optimizer"])
    report = run_training(cfg, tmp_path / "dscnn", verbose="quiet", log=lambda m: None)
    assert report["params"] == DSCNN_PARAMS and report["macs"] == DSCNN_MACS
    assert report["gate_open_fraction"] is None and 0.0 <= report["val_accuracy"] <= 1.0
    saved = json.loads((tmp_path / "dscnn" / "run_config.json").read_text())
    assert saved["model"] == "dscnn"
    net = keras.models.load_model(tmp_path / "dscnn" / "model.keras")  # no custom objects needed
    assert net.name == "dscnn_c64"


@pytest.mark.parametrize("name,channels", [("dscnn", 64), ("bcresnet", 8)])
def test_full_int8_runs_in_tflm(name, channels):
    """The export's own path: deploy graph, full-int8 conversion, its checks, and TFLM
    output equal to the TFLite reference kernels bit for bit (what export requires)."""
    from kws_tf import models
    from kws_tf import tflite_tools, tflm

    net = models.build_model(name, channels)
    rep = np.random.default_rng(0).standard_normal((8, *net.input.shape[1:])).astype(np.float32)
    data = tflite_tools.convert_int8(tflite_tools.deploy_model(net), rep)
    info = tflite_tools.inspect_model(data)
    print(f"\n{name}: {len(data):,} bytes, ops {sorted(info.op_set)}")
    assert tflite_tools.int8_problems(info) == []
    assert tflite_tools.micro_problems(info) == []
    assert "FULLY_CONNECTED" not in info.ops  # the classifier becomes a 1x1 CONV_2D
    scale, zp = tflite_tools.quant_params(info.tensors[info.inputs[0]])
    x = np.clip(np.round(rep / scale + zp), -128, 127).astype(np.int8)
    out = tflm.run_tflm(data, x)
    assert out.dtype == np.int8 and out.shape == (8, 12)
    np.testing.assert_array_equal(out, tflite_tools.run_tflite(data, x))


def test_dscnn_trains_exports_and_evaluates_through_the_clis(synth_folder, tmp_path):
    """The registered MFCC baseline through the same commands as SparkNet (BC-ResNet and the sinc
    model: tests/test_frontends.py): one epoch, a TFLM-checked int8 export, evaluate in TFLM."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    cfg = json.loads((root / "configs" / "dscnn_c64.json").read_text())
    cfg.update(channels=8, epochs=1, batch_size=32)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    run, exp = tmp_path / "run", tmp_path / "export"

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", *args], cwd=root, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    cli("kws_tf.train", "--model=dscnn", f"--config={tmp_path / 'cfg.json'}", f"--data_dir={synth_folder}",
        f"--model_dir={run}", "--verbose=epoch")
    log = cli("kws_tf.export", "--int8", f"--model_dir={run}", f"--out={exp}", "--max_accuracy_drop=100",
              "--timing_repeats=2", "--calibration_samples=64", "--nooperating_point")
    report = json.loads((exp / "export_report.json").read_text())
    assert report["calibration"]["tflm_equals_reference_kernels"] and report["frontend"]["name"] == "mfcc"
    # A 2-D convolution over time and frequency has no per-frame step graph: said, not faked.
    assert "skipped" in report["step_model"] and not (exp / "model_step_int8.tflite").exists()
    assert "windowed model is exported alone" in log
    cli("kws_tf.evaluate", f"--model={exp}", "--runtime=tflm", f"--data_dir={synth_folder}", "--split=validation",
        f"--out={tmp_path / 'eval'}")
    result = json.loads((tmp_path / "eval" / "eval_tflm.json").read_text())
    assert result["accuracy"] == pytest.approx(report["eval"]["ptq_int8_accuracy"])
