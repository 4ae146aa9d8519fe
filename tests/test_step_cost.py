"""benchmarks/step_cost.py: the work it counts per op, on real flatbuffers, against hand counts.

The instruction figures are estimates (unit costs x work); only the counting is checked here.
"""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

C = 8
T = 101
F = 32  # MFCC coefficients: the first depthwise and the head run on 32 channels
KERNELS = (11, 15, 19, 29)
# Hand counts for SparkNet C=8, one output frame.
DW_FRAME = F * KERNELS[0] + C * sum(KERNELS[1:])  # 352 + 504
PW_FRAME = F * C + 3 * (C * C + C * C) + C * F  # b1, b2..b4 pointwise + residual, head
CLASSIFIER = F * 12


def _load_step_cost():
    spec = importlib.util.spec_from_file_location("step_cost", ROOT / "benchmarks" / "step_cost.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sc():
    return _load_step_cost()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Windowed and step int8 flatbuffers of SparkNet C=8 (random weights and BN stats, tanh gate)."""
    import tf_keras as keras

    from kws_tf.models import sparknet
    from kws_tf import step_graph, tflite_tools

    rng = np.random.default_rng(0)
    net = sparknet.build_sparknet(C)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, var.shape).astype(np.float32)])
    rep = rng.standard_normal((4, 1, T, F)).astype(np.float32)
    windowed = tflite_tools.convert_int8(tflite_tools.deploy_model(net), rep)
    step = step_graph.derive_step_model(windowed)
    out = tmp_path_factory.mktemp("tiny_export")
    (out / "model_int8.tflite").write_bytes(windowed)
    (out / "model_step_int8.tflite").write_bytes(step.model_bytes)
    return {"windowed": windowed, "step": step, "dir": out}


def test_step_model_work_equals_hand_counts(sc, tiny):
    res = sc.analyse(tiny["step"].model_bytes, "step", "step")
    by = res["by_op"]
    assert by["DEPTHWISE_CONV_2D"]["macs"] == DW_FRAME == 32 * 11 + 8 * (15 + 19 + 29)
    assert by["CONV_2D"]["macs"] == PW_FRAME + CLASSIFIER
    assert res["macs"] == DW_FRAME + PW_FRAME + CLASSIFIER == 2136
    # One frame per op: residual ADDs on C channels, the tanh gate (TANH, ADD 0.5, MINIMUM) on 32.
    assert by["ADD"]["count"] == 4 and by["ADD"]["elements"] == 3 * C + F
    assert by["TANH"]["elements"] == F and by["MINIMUM"]["elements"] == F
    # The average pools 101 gate frames; the concatenations build every buffer (k frames).
    assert by["AVERAGE_POOL_2D"]["elements"] == T * F
    concat = F * KERNELS[0] + C * sum(KERNELS[1:]) + T * F
    assert by["CONCATENATION"]["elements"] == concat and by["CONCATENATION"]["count"] == 5
    # GATHER copies frames: each state shift (all but the oldest frame), plus one frame for each residual branch.
    state = F * (KERNELS[0] - 1) + C * sum(k - 1 for k in KERNELS[1:]) + (T - 1) * F
    assert by["GATHER"]["elements"] == state + 3 * C and "SPLIT_V" not in by
    assert res["bytes_copied"] == by["CONCATENATION"]["elements"] + by["GATHER"]["elements"]
    # State: (k - 1) frames of every buffer, 100 gate frames.
    state = F * (KERNELS[0] - 1) + C * sum(k - 1 for k in KERNELS[1:]) + (T - 1) * F
    assert res["state_bytes"] == state == tiny["step"].state_bytes == 4000
    assert res["num_ops"] == len(tiny["step"].ops)


def test_windowed_model_work_equals_hand_counts(sc, tiny):
    res = sc.analyse(tiny["windowed"], "windowed", "windowed")
    by = res["by_op"]
    assert by["DEPTHWISE_CONV_2D"]["macs"] == T * DW_FRAME
    assert by["CONV_2D"]["macs"] == T * PW_FRAME + CLASSIFIER
    assert by["TANH"]["elements"] == T * F and by["AVERAGE_POOL_2D"]["elements"] == T * F
    assert res["channels"] == C and res["gate"] == "tanh" and res["state_bytes"] == 0


def test_instructions_follow_the_unit_cost_table(sc, tiny):
    res = sc.analyse(tiny["step"].model_bytes, "step", "step")
    u = sc.UNIT_COSTS
    expected = (res["by_op"]["DEPTHWISE_CONV_2D"]["macs"] * u["DEPTHWISE_CONV_2D"][1]
                + res["by_op"]["CONV_2D"]["macs"] * u["CONV_2D"][1]
                + res["by_op"]["TANH"]["elements"] * u["TANH"][1]
                + res["by_op"]["ADD"]["elements"] * u["ADD"][1]
                + res["by_op"]["MINIMUM"]["elements"] * u["MINIMUM"][1]
                + res["by_op"]["AVERAGE_POOL_2D"]["elements"] * u["AVERAGE_POOL_2D"][1]
                + sum(res["by_op"][op]["elements"] * u[op][1] + res["by_op"][op]["count"] * u[op][2]
                      for op in ("CONCATENATION", "GATHER"))
                # one memcpy per gathered frame: every state frame, plus one per residual branch
                + sc.GATHER_PER_ROW * ((KERNELS[0] - 1) + sum(k - 1 for k in KERNELS[1:]) + (T - 1) + 3)
                + u["RESHAPE"][2])
    for d in sc.DISPATCH_SENSITIVITY:
        assert res["instructions_at_dispatch"][str(int(d))] == pytest.approx(expected + d * res["num_ops"])
    assert res["instructions"] == pytest.approx(expected + sc.DISPATCH_PER_OP * res["num_ops"])
    # Per hop: the step model every hop, the windowed one every 4th.
    hop = sc.per_hop(res, 4)
    assert hop["runs_every_hops"] == 1
    assert hop["total_per_hop"] == pytest.approx(sc.MFCC_PER_FRAME + res["instructions"] + sc.RECOGNISER_PER_STEP
                                                 + sc.STATE_COPY_PER_BYTE * 4000)
    win = sc.analyse(tiny["windowed"], "windowed", "windowed")
    assert sc.per_hop(win, 4)["model_per_hop"] == pytest.approx(win["instructions"] / 4)
    assert sc.per_hop(win, 4)["macs_per_hop"] == pytest.approx(win["macs"] / 4)


def test_every_unit_cost_names_its_source(sc):
    for op, (unit, per, fixed, source) in sc.UNIT_COSTS.items():
        assert unit in ("mac", "out", "in", "byte", "op") and per >= 0 and fixed >= 0, op
        assert source.startswith(("ON_CHIP.md", "ASSUMED")), op


def test_cli_on_an_export_folder(sc, tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KWS_ANCHORS", raising=False)
    out = tmp_path / "cost.json"
    assert sc.main([str(tiny["dir"]), "--markdown", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ESTIMATE" in text and "| model_step_int8.tflite" not in text
    assert f"{tiny['dir'].name}/model_step_int8.tflite" in text
    doc = json.loads(out.read_text())
    kinds = sorted(m["kind"] for m in doc["models"])
    assert kinds == ["step", "windowed"]
    step = next(m for m in doc["models"] if m["kind"] == "step")
    assert step["macs"] == 2136 and step["per_hop"]["runs_every_hops"] == 1


def test_anchors_parse_with_on_chip_mac_counts(sc):
    path = os.environ.get("KWS_ANCHORS")
    if not path:
        pytest.skip("KWS_ANCHORS is not set (point it at the anchors folder to run this test)")
    models = sc.collect([], path)
    assert len(models) == 2
    for m in models:
        key = sc.measured_key(m)
        assert key is not None and m["kind"] == "anchor"
        assert m["macs"] == sc.MEASURED_ON_CHIP[key][0], m["name"]  # ON_CHIP's MAC counts
        assert m["unknown_ops"] == []
