"""The per-frame step model: fully int8, board ops only, the same network as the windowed model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from kws_tf import features, labels


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def exported(trained_model_dir, tmp_path_factory):
    from kws_tf import export

    out = tmp_path_factory.mktemp("step_export") / "c8"
    report = export.export_model(trained_model_dir, out, log=_quiet)
    return out, report


def _word(label: int, seed: int, seconds: float = 1.0) -> np.ndarray:
    from synth import class_clip

    return (class_clip(label, np.random.default_rng(seed), seconds) * 32767).astype(np.int16)


def _models(out):
    return (out / "model_int8.tflite").read_bytes(), (out / "model_step_int8.tflite").read_bytes()


def _frames_of(pcm: np.ndarray, out) -> np.ndarray:
    """int8 device frames of a long int16 signal, with the export's normalisation and input quantisation."""
    from kws_tf import export

    ex = export.load_export(out)
    return features.quantize_np(ex.normalization.apply_np(features.mfcc_np(pcm)), ex.input_scale, ex.input_zero_point)


def _step_gates(windowed: bytes, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gates [hops, 32], scores [hops, 12]) of the windowed model's gate-probe step model over `frames`."""
    from kws_tf import step_graph, tflm

    probe = step_graph.derive_step_model(windowed, expose_gate=True)
    runner = tflm.StepRunner(probe.model_bytes)
    gates, scores = [], []
    for f in frames:
        s, g = runner.step_all(f)
        scores.append(s)
        gates.append(g.reshape(-1))
    return np.stack(gates), np.stack(scores)


def _window_gates(windowed: bytes, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from kws_tf import step_graph, tflm

    r = tflm.TflmRunner(step_graph.gate_probe_model(windowed))
    r.interp.set_input(window.reshape(1, 1, features.NUM_FRAMES, features.NUM_MFCC), 0)
    r.interp.invoke()
    return (np.asarray(r.interp.get_output(1)).reshape(features.NUM_FRAMES, -1),
            np.asarray(r.interp.get_output(0)).reshape(-1))


def _assert_gates_equal_where_defined(windowed: bytes, frames: np.ndarray, delay: int, starts) -> int:
    gates, _ = _step_gates(windowed, frames)
    T = features.NUM_FRAMES
    compared = 0
    for start in starts:
        wg, _ = _window_gates(windowed, frames[start:start + T])
        for t in range(delay, T - delay):
            np.testing.assert_array_equal(gates[start + t + delay], wg[t], err_msg=f"window {start}, frame {t}")
            compared += 1
    return compared


# --------------------------------------------------------------------------- structure

def test_step_model_is_fully_int8_with_board_ops_only(exported):
    from kws_tf import step_graph, tflite_tools

    out, report = exported
    _, step = _models(out)
    info = tflite_tools.inspect_model(step)
    assert tflite_tools.int8_problems(info, multi_io=True) == []
    assert {t.dtype for t in info.tensors} <= {"INT8", "INT32"}
    assert set(info.ops) <= set(tflite_tools.MICRO_OPS)
    assert {"CONCATENATION", "GATHER"} <= set(info.ops) and "SPLIT_V" not in info.ops
    # no op the gate costs in the default (secant) export
    assert not {"TANH", "MINIMUM", "LOGISTIC"} & set(info.ops)
    # the default per-frame classifier: the average (and its 100-frame state) covers the 12 classes
    # (the mean as a 'valid' depthwise convolution with weights 1/101, so it gets its own output scale)
    assert report["ops"][-3:] == ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE"]
    assert max(s["frames"] for s in report["step_model"]["states"]) == 100
    assert [s["channels"] for s in report["step_model"]["states"] if s["frames"] == 100] == [labels.NUM_CLASSES]
    assert tuple(info.input.shape) == (1, 1, 1, features.NUM_MFCC)
    assert int(np.prod(info.output.shape)) == labels.NUM_CLASSES
    # SparkNet's look-ahead: sum of (k - 1) / 2 over the four time kernels (11, 15, 19, 29)
    meta = step_graph.read_step_info(step)
    assert meta["delay_frames"] == report["step_model"]["delay_frames"] == 5 + 7 + 9 + 14
    assert report["step_model"]["delay_ms"] == 350
    assert len(info.inputs) == len(info.outputs) == 1 + report["step_model"]["num_states"]
    assert report["step_model"]["checks"]["tflm_equals_reference"] is True
    assert report["step_model"]["checks"]["gate_frames_equal"] > 0


def test_micro_ops_are_all_in_the_boards_library():
    from kws_tf import tflite_tools

    missing = [m for m in tflite_tools.MICRO_OPS.values() if m not in tflite_tools.BOARD_LIBRARY_RESOLVER_METHODS]
    assert missing == []


def test_state_round_trips_byte_for_byte(exported):
    """Every state output has its input's shape and quantisation, and the input history
    state holds exactly the last frames fed (no requantisation on the way round)."""
    from kws_tf import tflite_tools, tflm

    out, _ = exported
    _, step = _models(out)
    info = tflite_tools.inspect_model(step)
    for i, o in zip(info.inputs[1:], info.outputs[1:]):
        a, b = info.tensors[i], info.tensors[o]
        assert (a.shape, a.dtype, a.scales, a.zero_points) == (b.shape, b.dtype, b.scales, b.zero_points)
    runner = tflm.StepRunner(step)
    rng = np.random.default_rng(3)
    frames = rng.integers(-128, 128, size=(25, features.NUM_MFCC)).astype(np.int8)
    for f in frames:
        runner.step(f)
    hist = [s for s in runner.state if s.shape[-1] == features.NUM_MFCC and s.shape[2] == 10][0]
    np.testing.assert_array_equal(hist.reshape(10, -1), frames[-10:])
    runner.reset()
    assert all(np.all(s == zp) for s, zp in zip(runner.state, runner._zero_points))


# --------------------------------------------------------------------------- same network

def test_gates_equal_the_windowed_models_over_generated_audio(exported):
    out, report = exported
    windowed, _ = _models(out)
    rng = np.random.default_rng(0)
    parts = [_word(0, 1), np.zeros(3000, np.int16), (rng.normal(0, 3000, 12000)).astype(np.int16),
             _word(5, 2, 1.3), np.zeros(8000, np.int16), _word(9, 3, 1.0)]
    pcm = np.concatenate([np.asarray(p, np.int16) for p in parts])
    frames = _frames_of(pcm, out)
    delay = report["step_model"]["delay_frames"]
    compared = _assert_gates_equal_where_defined(windowed, frames, delay, range(0, len(frames) - 101, 17))
    assert compared >= 31 * 5


def test_gates_equal_the_windowed_models_over_real_speech(exported, real_data):
    from kws_tf.audio_io import read_wav

    out, report = exported
    windowed, _ = _models(out)
    clips = [read_wav(p) for p in sorted((real_data / "sc_v2_test_dev" / "yes").glob("*.wav"))[:2]]
    clips += [read_wav(real_data / "micro_speech_testdata" / "no_1000ms.wav")]
    frames = _frames_of(np.concatenate(clips).astype(np.int16), out)
    delay = report["step_model"]["delay_frames"]
    assert _assert_gates_equal_where_defined(windowed, frames, delay, range(0, len(frames) - 101, 25)) >= 31 * 3


def test_scores_differ_from_the_windowed_only_by_what_the_edges_explain(exported):
    """At the aligned hop the step scores equal the windowed scores up to the effect of the
    edge gate frames (zero padding in the window, real context in the stream): a bound from
    the classifier's weights and the difference of the two averaged gates."""
    from kws_tf import tflite_tools

    out, report = exported
    windowed, _ = _models(out)
    info = tflite_tools.inspect_model(windowed)
    cls_op = [io for io in info.op_io if io[0] == "CONV_2D"][-1]  # the classifier, before or after the average
    w = info.tensors[cls_op[1][1]]
    pooled = info.tensors[cls_op[1][0]]  # its input: the averaged gate, or the gate frames
    cls_out = info.tensors[cls_op[2][0]]
    out_t = info.output
    w_int8 = np.frombuffer(_tensor_bytes(windowed, w.index), np.int8).reshape(w.shape[0], -1).astype(np.float64)
    w_float = np.abs(w_int8 * np.asarray(w.scales)[:, None])  # [classes, 32]
    pcm = np.concatenate([_word(1, 4, 1.2), np.zeros(4000, np.int16), _word(7, 5, 1.5)]).astype(np.int16)
    frames = _frames_of(pcm, out)
    delay = report["step_model"]["delay_frames"]
    gates, scores = _step_gates(windowed, frames)
    T = features.NUM_FRAMES
    checked = 0
    for start in range(0, len(frames) - T - delay, 23):
        wg, wscore = _window_gates(windowed, frames[start:start + T])
        hop = start + T - 1 + delay
        sg = gates[start + delay:start + delay + T]
        dsum = np.abs(sg.astype(np.int64) - wg.astype(np.int64)).sum(axis=0)  # per channel, int8 steps
        dpool = (dsum / T + 1.0) * pooled.scales[0]  # +1: each average rounds once
        # + each side's rounding: of the classifier's output (per frame, when it runs before the
        # average) and of the model output
        bound = (w_float @ dpool) / out_t.scales[0] + cls_out.scales[0] / out_t.scales[0] + 1.0
        diff = np.abs(scores[hop].astype(np.int64) - wscore.astype(np.int64))
        assert np.all(diff <= np.ceil(bound)), (start, diff, bound)
        checked += 1
    assert checked >= 3


def _tensor_bytes(model_bytes: bytes, index: int) -> bytes:
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    return bytes(np.asarray(m.buffers[m.subgraphs[0].tensors[index].buffer].data, np.uint8))


# --------------------------------------------------------------------------- refusals

def test_export_refuses_a_step_graph_with_ops_the_board_lacks(trained_model_dir, tmp_path):
    from kws_tf import export, tflite_tools

    ops = {k: v for k, v in tflite_tools.MICRO_OPS.items() if k != "GATHER"}
    with pytest.raises(export.ExportError, match="step model cannot run on the device.*GATHER"):
        export.export_model(trained_model_dir, tmp_path / "x", micro_ops=ops, log=_quiet)
    assert not (tmp_path / "x").exists()


def test_unstreamable_graphs_are_refused_with_the_op_named(exported):
    from tensorflow.lite.python import schema_py_generated as schema

    import flatbuffers

    from kws_tf import step_graph

    out, _ = exported
    windowed, _ = _models(out)
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(windowed, 0))
    dw = [op for op in m.subgraphs[0].operators
          if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.DEPTHWISE_CONV_2D][0]
    dw.builtinOptions = copy.deepcopy(dw.builtinOptions)
    dw.builtinOptions.strideW = 2
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(step_graph.StepGraphError, match="DEPTHWISE_CONV_2D with strides"):
        step_graph.derive_step_model(bytes(b.Output()))


# --------------------------------------------------------------------------- consumers

def test_evaluate_runs_the_step_model_clip_by_clip(exported, synth_folder, tmp_path):
    from kws_tf import evaluate

    out, report = exported
    res = evaluate.run_evaluation(str(out / "model_step_int8.tflite"), data_dir=str(synth_folder), split="validation",
                                  out=str(tmp_path), log=_quiet)
    ev = res["eval"]
    assert ev["clips"] == report["step_model"]["eval"]["clips"]
    assert ev["accuracy"] == pytest.approx(report["step_model"]["eval"]["int8_accuracy"])
    assert (tmp_path / "eval_tflm_step_silence.json").is_file()
    with pytest.raises(evaluate.EvalError, match="--runtime=tflm"):
        evaluate.load_predictor(str(out / "model_step_int8.tflite"), runtime="tflite")


def test_tanh_gate_and_trained_classifier_order_stream_too(trained_model_dir, tmp_path):
    from kws_tf import export, tflite_tools

    report = export.export_model(trained_model_dir, tmp_path / "t", gate="tanh", classifier="after_average",
                                 log=_quiet)
    # the trained order: the classifier runs once, on the averaged gate
    assert report["ops"][-3:] == ["AVERAGE_POOL_2D", "CONV_2D", "RESHAPE"]
    assert "TANH" in report["ops"] and "TANH" in report["step_model"]["ops"]
    step = (tmp_path / "t" / "model_step_int8.tflite").read_bytes()
    assert tflite_tools.int8_problems(tflite_tools.inspect_model(step), multi_io=True) == []
    assert report["step_model"]["checks"]["gate_frames_equal"] > 0


# --------------------------------------------------------------------------- the interior average

@pytest.fixture(scope="module")
def interior_export(synth_folder, tmp_path_factory):
    from conftest import quick_run_config

    from kws_tf import export
    from kws_tf.train import run_training

    root = tmp_path_factory.mktemp("interior")
    cfg = quick_run_config(synth_folder, epochs=4, time_average="interior")
    run_training(cfg, root / "c8", verbose="quiet", log=_quiet)
    report = export.export_model(root / "c8", root / "export", min_agreement=0.0, max_accuracy_drop=100.0,
                                 log=_quiet)
    return root / "export", report


def test_interior_average_has_the_papers_parameters():
    from kws_tf import model as model_lib
    from kws_tf.models import sparknet

    full, interior = sparknet.build_sparknet(32), sparknet.build_sparknet(32, time_average="interior")
    assert model_lib.count_params(interior) == model_lib.count_params(full) == 11_500
    assert interior.get_layer("interior").output.shape[2] == 101 - 2 * sparknet.RECEPTIVE_HALF_WIDTH == 31
    with pytest.raises(ValueError, match="time_average"):
        sparknet.build_sparknet(8, time_average="centre")


def test_interior_step_model_equals_the_windowed_model_with_no_delay(interior_export):
    """Every averaged gate frame is interior: the step scores at hop n are the windowed scores
    of the window ending at frame n, bit for bit, and nothing waits for look-ahead."""
    from kws_tf import tflm

    out, report = interior_export
    windowed, step = _models(out)
    assert report["step_model"]["delay_frames"] == 0
    assert report["step_model"]["identical_to_windowed"] is True
    assert report["step_model"]["checks"]["windows_with_equal_scores"] > 0
    rng = np.random.default_rng(1)
    pcm = np.concatenate([_word(2, 6), (rng.normal(0, 2000, 9000)).astype(np.int16), _word(8, 7), _word(3, 8)])
    frames = _frames_of(pcm, out)
    runner = tflm.StepRunner(step)
    scores = np.stack([runner.step(f) for f in frames])
    win = tflm.TflmRunner(windowed)
    for start in range(0, len(frames) - 101 + 1, 9):
        np.testing.assert_array_equal(scores[start + 100], win.invoke(frames[start:start + 101]).reshape(-1))
    # and the clip-level accuracy of both is the same number
    assert report["step_model"]["eval"]["agreement_with_windowed_int8"] == 1.0
