"""SparkNet structure: parameter and MAC counts of SPEC.md, layer table, CLI."""

import subprocess
import sys

import numpy as np
import pytest

from kws_tf import model as model_lib
from kws_tf.models import sparknet


@pytest.mark.parametrize("channels, params, macs", [(32, 11_500, 1.07e6), (16, 4_636, 0.40e6), (8, 2_356, None), (4, 1_504, None)])
def test_params_and_macs_match_spec(channels, params, macs):
    net = sparknet.build_sparknet(channels)
    assert model_lib.count_params(net) == params
    if macs is not None:
        assert model_lib.count_macs(net) == pytest.approx(macs, rel=0.01)


def test_layer_table_sums_and_io_shapes():
    net = sparknet.build_sparknet(16)
    rows = model_lib.layer_table(net)
    assert sum(r["params"] for r in rows) == model_lib.count_params(net)
    assert net.input.shape[1:] == (1, 101, 32)
    assert net.output.shape[1:] == (12,)
    dw = {r["name"]: r for r in rows}["b4_depthwise"]
    assert dw["macs"] == 16 * 29 * 101


def test_model_cli_prints_table():
    out = subprocess.run([sys.executable, "-m", "kws_tf.model", "--C=16"], capture_output=True, text=True, check=True)
    assert "4,636" in out.stdout and "b4_depthwise" in out.stdout


def test_model_cli_rejects_bad_c():
    out = subprocess.run([sys.executable, "-m", "kws_tf.model", "--C=0"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "error:" in out.stderr and "Traceback" not in out.stderr


def test_inference_is_deterministic():
    net = sparknet.build_sparknet(8)
    x = np.random.default_rng(0).normal(size=(4, 1, 101, 32)).astype(np.float32)
    a = net(x, training=False).numpy()
    b = net(x, training=False).numpy()
    np.testing.assert_array_equal(a, b)
