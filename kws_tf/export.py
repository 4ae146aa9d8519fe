"""Export a trained model_dir for the microcontroller.

    python -m kws_tf.export --int8 --model_dir=DIR [--out=export/NAME] [--qat_epochs=N]
        [--gate=secant|tanh] [--step_model] [--calibration_samples=N] [--eval_split=validation] [--overwrite]

The output folder (default `export/<model_dir basename>`) gets:

  model_int8.tflite   fully int8 (int8 input/output and activations, int32 biases only,
                      no QUANTIZE/DEQUANTIZE, per-channel weights), calibrated on the
                      run's training clips with the device's normalisation (QAT-fine-
                      tuned weights when --qat_epochs > 0)
  model_step_int8.tflite  the per-frame step model derived from it (kws_tf.step_graph):
                      newest frame + state in, scores of the window ending
                      `delay_frames` ago + next state out; same weights and quantisation
  model_step_data.h/.cc   the step model as a C array (g_step_model)
  model_float.tflite  the same deploy graph in float32
  model_data.h/.cc    the int8 flatbuffer as an aligned C array (kws_tf.codegen)
  kws_settings.h      front-end constants, normalisation, input/output quantisation,
                      labels, window frames, the ops to register, arena bytes
  normalization.json  the per-coefficient statistics (a copy of the model_dir's)
  export_report.json  sizes, ops, arena, host invoke time, accuracies, agreement

Before anything is written the export checks, and stops with a one-line error
otherwise: the flatbuffer is fully int8; its ops are all in `tflite_tools.MICRO_OPS`
(the list the device registers); the real TFLM interpreter loads and runs it and its
outputs equal the TFLite reference kernels' bit for bit on every calibration clip;
int8 is not significantly less accurate than float: on the evaluation clips, the drop in
accuracy is refused only when its exact one-sided 95 % lower bound (a paired, McNemar-style
binomial bound on the clips where exactly one of float and int8 is right;
`export_checks.accuracy_check`) is above --max_accuracy_drop points, with a warning when
the evaluation set is too small to tell (an opt-in --min_agreement adds the older top-1
agreement check); the step model passes the
checks of `kws_tf.export_step` (TFLM == reference on every hop, per-frame gates equal to
the windowed model's wherever the window's padding does not reach). Files are written into a
temporary folder that is renamed into place at the end, so a failed export leaves
nothing half-written. An existing, non-empty output folder needs --overwrite, which
replaces only what export writes (the files above and selftest_data.*): a folder that
holds anything else (a user's notes, an eval/ folder) is refused and left as it was.
Re-exporting the same model_dir gives byte-identical model and
C++ files (export_report.json differs only in timings).

Python API: `export_model(model_dir, out_dir=None, ...) -> report dict`;
`load_export(folder) -> Exported` and `Exported.prepare(pcm)` / `run_tflm` for
consumers that want the int8 model and its input quantisation.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import sys
import time
import zlib

import numpy as np

from kws_tf import features, labels
from kws_tf.export_checks import (_accuracy, _gate_thresholds, _int8_scores, _predict_keras,  # noqa: F401
                                  accuracy_check, check_line, verify_int8)
from kws_tf.export_io import (Exported, ExportError, TrainedModel, _check_out_dir, _first_line,  # noqa: F401
                              _publish, _read_json, calibration_indices, device_features, load_export,
                              load_trained, run_tflm)
from kws_tf.export_step import STEP_ARTIFACTS, build_step_model

DEFAULT_CALIBRATION_SAMPLES = 400
DEFAULT_MIN_AGREEMENT = 0.0  # the opt-in top-1 agreement check: off
DEFAULT_MAX_ACCURACY_DROP = 0.5  # percentage points: the tolerance of the accuracy test (export_checks)
EVAL_SPLITS = ("validation", "test", "train")
ARTIFACTS = ("model_int8.tflite", "model_float.tflite", "model_data.h", "model_data.cc", "kws_settings.h",
             "normalization.json") + STEP_ARTIFACTS
# What export owns in its output folder (fnmatch patterns; selftest_data.* is written by
# kws_tf.selftest_data for --selftest_clips): --overwrite replaces these, and refuses a folder
# that holds anything else.
OWNED_FILES = ARTIFACTS + ("export_report.json", "selftest_data.*")
DEFAULT_GATE = "secant"
DEFAULT_CLASSIFIER = "per_frame"


def _gate_form(model_bytes: bytes, gate: str) -> bytes:
    """The int8 flatbuffer with the gate in its device form (`kws_tf.int8_gate` for "secant")."""
    if gate != "secant":
        return model_bytes
    from kws_tf import int8_gate

    try:
        return int8_gate.saturate_gate(model_bytes)
    except int8_gate.GateRewriteError as e:
        raise ExportError(f"secant gate: {e}") from None


def _is_sparknet(net) -> bool:
    """Has SparkNet's gate: the model whose step graph must exist."""
    return any(type(layer).__name__ == "RelaxedBernoulliGate" for layer in net.layers)


def _step_scores(step_obj, audio, norm, in_q, out_q) -> np.ndarray:
    from kws_tf import step_clips

    raw = step_clips.step_scores(step_obj.model_bytes, audio, norm, in_q[0], in_q[1], step_obj.delay_frames,
                                 context="silence")
    return features.dequantize_np(raw, *out_q)


def _check_fixed_input_quant(fe, in_q, what: str) -> None:
    """A front-end with a fixed int8 input (the waveform's int16 -> int8) must have got exactly it."""
    if fe.fixed_input_quant is None:
        return
    want = (float(fe.fixed_input_quant[0]), int(fe.fixed_input_quant[1]))
    if (float(in_q[0]), int(in_q[1])) != want:
        raise ExportError(f"{what}: input quantisation {in_q} is not the {fe.name} front-end's fixed {want}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- export

def export_model(
    model_dir,
    out_dir=None,
    data_dir: str | None = None,
    int8: bool = True,
    qat_epochs: int = 0,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    overwrite: bool = False,
    eval_split: str = "validation",
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    qat_lr: float | None = None,
    qat_batch_size: int | None = None,
    per_channel_dense: bool = True,
    timing_repeats: int = 50,
    micro_ops: dict | None = None,
    gate: str = DEFAULT_GATE,
    classifier: str = DEFAULT_CLASSIFIER,
    step_model: bool = True,
    operating_point: dict | None = None,
    log=print,
) -> dict:
    """Export `model_dir` into `out_dir` (default `export/<basename>`); returns the report dict.

    `data_dir` overrides the folder of a folder-sourced run (the data moved).
    `micro_ops` (default `tflite_tools.MICRO_OPS`) is the op list the device registers.
    `gate`: "secant" (default; free in int8, see `kws_tf.gates.secant_gate`) or "tanh" (the
    paper's inference gate, TANH + ADD + MINIMUM in int8); SparkNet only.
    `classifier`: "after_average" (the trained order) or "per_frame" (the linear layer on every
    gate frame, then the average: the same float function, a 12-channel average; see
    `tflite_tools.deploy_model`).
    `step_model`: also write the per-frame step model (`kws_tf.step_graph`); a model whose
    graph cannot stream gets none, with the reason in the report.
    Raises ExportError (one line) for anything the user must fix.
    """
    from kws_tf import tflite_tools, tflm

    if not int8:
        raise ExportError("only the int8 export exists (pass --int8)")
    if eval_split not in EVAL_SPLITS:
        raise ExportError(f"unknown eval split {eval_split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if calibration_samples < 1:
        raise ExportError("--calibration_samples must be at least 1")
    if qat_epochs < 0:
        raise ExportError("--qat_epochs must be >= 0")
    if not 0.0 <= min_agreement <= 1.0:
        raise ExportError("--min_agreement must be a fraction in [0, 1]")
    if not max_accuracy_drop >= 0.0:
        raise ExportError("--max_accuracy_drop must be >= 0 (points)")
    if gate not in tflite_tools.GATES:
        raise ExportError(f"unknown gate {gate!r}; choose one of {', '.join(tflite_tools.GATES)}")
    if classifier not in tflite_tools.CLASSIFIERS:
        raise ExportError(f"unknown classifier order {classifier!r}; choose one of "
                          f"{', '.join(tflite_tools.CLASSIFIERS)}")
    micro_ops = tflite_tools.MICRO_OPS if micro_ops is None else micro_ops
    model_dir = pathlib.Path(model_dir)
    out = pathlib.Path(out_dir) if out_dir else pathlib.Path("export") / model_dir.resolve().name
    _check_out_dir(out, overwrite, OWNED_FILES)
    t_start = time.perf_counter()
    steps = (7 if qat_epochs else 6) + (1 if step_model else 0)

    def step(i, msg):
        log(f"[{i}/{steps}] {msg}")

    # 1. model
    step(1, f"loading {model_dir}")
    trained = load_trained(model_dir)
    net, run_config, norm = trained.net, trained.run_config, trained.normalization
    from kws_tf import frontends

    fe = frontends.get(norm.frontend)  # load_trained checked it is the model's (models.get(...).frontend)
    if tuple(net.input_shape[1:]) != fe.input_shape:
        raise ExportError(f"{net.name} takes input {tuple(net.input_shape[1:])}, but its front-end "
                          f"{frontends.shape_summary(fe)} gives {fe.input_shape}")
    no_stream = (None if fe.streams else
                 f"the {fe.name} front-end does not stream (the step model and the streaming twin are mfcc-only)")

    # 2. data and features
    from kws_tf import data as data_lib
    from kws_tf import model as model_lib
    from kws_tf.train import _load_data

    source = dict(run_config["data"])
    if data_dir:
        if source.get("kind") != "folder":
            source = {"kind": "folder", "validation_percent": 10.0, "test_percent": 10.0, "max_per_class": None,
                      "noise_dir": None}
        source["path"] = str(data_dir)
    where = source.get("path", source.get("tfds_data_dir") or "tfds")
    step(2, f"loading the run's data ({source.get('kind')}: {where})")
    try:
        dataset = _load_data({**run_config, "data": source}, lambda m: log(f"      {m}"))
    except data_lib.DataError as e:
        raise ExportError(f"cannot load the run's data: {e}") from None
    eval_set = getattr(dataset, eval_split)
    if eval_set is None or len(eval_set) == 0:
        raise ExportError(f"the data has no {eval_split} clips to evaluate on (choose another --eval_split)")
    cal_idx = calibration_indices(len(dataset.train), calibration_samples, int(run_config.get("seed", 0)))
    log(f"      features: {len(cal_idx)} calibration clips (train), {len(eval_set)} evaluation clips ({eval_split})")
    x_cal = device_features(dataset.train.audio[cal_idx], norm)
    x_rep = fe.calibration_inputs(x_cal)  # what the converter calibrates on (fixed input quantisation)
    x_eval, y_eval = device_features(eval_set.audio, norm), np.asarray(eval_set.labels)

    # 3. deploy graph + float flatbuffer
    step(3, "deploy graph and float flatbuffer")
    if not _is_sparknet(net):
        gate = "none"
    try:
        deploy = tflite_tools.deploy_model(net, classifier=classifier)
    except tflite_tools.ConversionError as e:
        raise ExportError(str(e)) from None
    float_scores = _predict_keras(net, x_eval)
    float_pred = float_scores.argmax(-1)
    deploy_diff = float(np.max(np.abs(_predict_keras(deploy, x_eval[:64]) - float_scores[:64])))
    if not deploy_diff <= 1e-3 * (1.0 + float(np.max(np.abs(float_scores[:64])))):
        raise ExportError(f"the deploy graph differs from the trained model by {deploy_diff:g} (a bug in deploy_model)")
    gate_report = {"gate": gate, "classifier": classifier}
    if gate == "secant":
        # The paper's gate is what was trained; the secant gate approximates it (see gates.py).
        deploy = tflite_tools.deploy_model(net, gate="secant", classifier=classifier)
        secant_pred = _predict_keras(deploy, x_eval).argmax(-1)
        gate_report.update({"tanh_float_accuracy": _accuracy(float_pred, y_eval),
                            "secant_float_accuracy": _accuracy(secant_pred, y_eval),
                            "secant_float_agreement": float(np.mean(secant_pred == float_pred))})
        log(f"      secant gate: float accuracy {100 * gate_report['secant_float_accuracy']:.2f}% "
            f"(tanh gate {100 * gate_report['tanh_float_accuracy']:.2f}%, top-1 agreement "
            f"{100 * gate_report['secant_float_agreement']:.2f}%)")
    try:
        float_bytes = tflite_tools.convert_float(deploy)
    except tflite_tools.ConversionError as e:
        raise ExportError(str(e)) from None
    probe = x_cal[: min(16, len(x_cal))]
    float_tfl = tflite_tools.run_tflite(float_bytes, probe, reference=False).reshape(len(probe), -1)
    float_tfl_diff = float(np.max(np.abs(float_tfl - _predict_keras(deploy, probe))))
    if not float_tfl_diff <= 1e-3 * (1.0 + float(np.max(np.abs(float_tfl)))):
        raise ExportError(f"model_float.tflite differs from the Keras model by {float_tfl_diff:g}")

    # 4. PTQ int8
    step(4, f"int8 conversion (post-training, calibrated on {len(x_cal)} clips) and checks")
    try:
        ptq_bytes = _gate_form(tflite_tools.convert_int8(deploy, x_rep, per_channel_dense=per_channel_dense), gate)
    except tflite_tools.ConversionError as e:
        raise ExportError(str(e)) from None
    info, in_q, out_q = verify_int8(ptq_bytes, x_cal, micro_ops, per_channel_dense, "PTQ int8 model")
    _check_fixed_input_quant(fe, in_q, "PTQ int8 model")
    ptq_pred = _int8_scores(ptq_bytes, x_eval, in_q, out_q).argmax(-1)
    ptq_stats = {"agreement": float(np.mean(ptq_pred == float_pred)), "int8_accuracy": _accuracy(ptq_pred, y_eval)}
    log(f"      float accuracy {100 * _accuracy(float_pred, y_eval):.2f}%, "
        f"PTQ int8 {100 * ptq_stats['int8_accuracy']:.2f}%, "
        f"top-1 agreement {100 * ptq_stats['agreement']:.2f}% ({len(y_eval)} {eval_split} clips)")
    ptq_check = accuracy_check(float_pred, ptq_pred, y_eval, max_accuracy_drop)
    log(f"      PTQ {check_line(ptq_check)}")
    if ptq_check["warning"]:
        log(f"      warning: {ptq_check['warning']}")

    chosen, chosen_bytes, chosen_pred, qat_report = "ptq", ptq_bytes, ptq_pred, None
    if qat_epochs:
        step(5, f"quantisation-aware fine-tuning ({qat_epochs} epoch(s))")
        from kws_tf import qat as qat_lib

        with tflm.quiet_stderr():  # tf.data notes ("NodeDef mentions attribute ...") on fd 2
            qmodel = qat_lib.quantize_model(deploy)
            qat_lib.init_ranges(qmodel, deploy, x_cal)
            qat_init_pred = _predict_keras(qmodel, x_eval).argmax(-1)
            history = qat_lib.fine_tune(qmodel, dataset, norm, run_config, qat_epochs, lr=qat_lr,
                                        batch_size=qat_batch_size, log=lambda m: log(f"    {m}"))
            qat_fq_pred = _predict_keras(qmodel, x_eval).argmax(-1)
            deploy_qat = tflite_tools.deploy_model(net, gate="secant" if gate == "secant" else "tanh",
                                                   classifier=classifier)
            qat_lib.copy_back(qmodel, deploy_qat)
            qat_float_pred = _predict_keras(deploy_qat, x_eval).argmax(-1)
        try:
            qat_bytes = _gate_form(tflite_tools.convert_int8(deploy_qat, x_rep, per_channel_dense=per_channel_dense),
                                   gate)
        except tflite_tools.ConversionError as e:
            raise ExportError(f"QAT model: {e}") from None
        info, in_q, out_q = verify_int8(qat_bytes, x_cal, micro_ops, per_channel_dense, "QAT int8 model")
        _check_fixed_input_quant(fe, in_q, "QAT int8 model")
        qat_pred = _int8_scores(qat_bytes, x_eval, in_q, out_q).argmax(-1)
        qat_report = {
            "epochs": qat_epochs,
            "lr": float(qat_lr or qat_lib.DEFAULT_LR),
            "optimizer": "adam",
            "history": history,
            "fake_quant_accuracy_before": _accuracy(qat_init_pred, y_eval),
            "fake_quant_accuracy_after": _accuracy(qat_fq_pred, y_eval),
            "float_accuracy": _accuracy(qat_float_pred, y_eval),
            "int8_accuracy": _accuracy(qat_pred, y_eval),
            "agreement_with_own_float": float(np.mean(qat_pred == qat_float_pred)),
            "agreement_with_trained_float": float(np.mean(qat_pred == float_pred)),
            "int8_bytes": len(qat_bytes),
        }
        log(f"      QAT float {100 * qat_report['float_accuracy']:.2f}%, "
            f"QAT int8 {100 * qat_report['int8_accuracy']:.2f}% "
            f"(PTQ int8 {100 * ptq_stats['int8_accuracy']:.2f}%)")
        chosen, chosen_bytes, chosen_pred = "qat", qat_bytes, qat_pred
        # Accuracy: QAT int8 vs the trained float model; the opt-in agreement check measures the
        # fidelity of the conversion (QAT int8 vs the float weights it was converted from).
        qat_check = accuracy_check(float_pred, qat_pred, y_eval, max_accuracy_drop)
        log(f"      QAT {check_line(qat_check)}")
        if qat_check["warning"] and not ptq_check["warning"]:
            log(f"      warning: {qat_check['warning']}")
        check = _gate_thresholds("QAT int8 model", float_pred, qat_pred, y_eval, min_agreement, max_accuracy_drop,
                                 agreement_pred=qat_float_pred, qat_epochs=qat_epochs, ptq_check=ptq_check)
    else:
        check = _gate_thresholds("PTQ int8 model", float_pred, ptq_pred, y_eval, min_agreement, max_accuracy_drop)

    # TFLM arena and timing
    step(steps - (2 if step_model else 1), "TFLM arena (binary search) and host invoke time")
    try:
        arena_min = tflm.min_arena_bytes(chosen_bytes)
        arena_device = tflm.device_arena_bytes(arena_min)
        invoke_ms = tflm.invoke_time_ms(chosen_bytes, arena_size=arena_min, repeats=timing_repeats,
                                        x=features.quantize_np(x_cal[:1], *in_q))
    except tflm.TflmError as e:
        raise ExportError(str(e)) from None
    log(f"      int8 {len(chosen_bytes):,} B, float {len(float_bytes):,} B, arena {arena_min:,} B on this host "
        f"(kArenaBytes {arena_device:,}), invoke median {invoke_ms:.3f} ms")

    step_bytes, step_report = None, None
    if step_model:
        step(steps - 1, "per-frame step model (derive, TFLM == reference, gate proof, arena)")
        try:
            if no_stream:
                raise ExportError(f"no step model: {no_stream}")
            step_obj, step_report = build_step_model(chosen_bytes, x_cal, in_q, micro_ops, timing_repeats)
        except ExportError as e:
            if _is_sparknet(net) and not no_stream:
                raise
            step_report = {"skipped": str(e)}
            log(f"      {e} (the windowed model is exported alone)")
        else:
            step_bytes = step_obj.model_bytes
            step_pred = _step_scores(step_obj, eval_set.audio, norm, in_q, out_q).argmax(-1)
            step_report["eval"] = {
                "context": "silence", "clips": int(len(y_eval)), "split": eval_split,
                "int8_accuracy": _accuracy(step_pred, y_eval),
                "windowed_int8_accuracy": _accuracy(chosen_pred, y_eval),
                "agreement_with_windowed_int8": float(np.mean(step_pred == chosen_pred)),
            }
            log(f"      step model: {len(step_obj.ops)} ops, delay {step_obj.delay_frames} frames "
                f"({10 * step_obj.delay_frames} ms), state {step_obj.state_bytes:,} B, "
                f"{step_report['checks']['gate_frames_equal']} gate frames equal to the windowed model's, "
                f"arena {step_report['arena_bytes_min_host']:,} B, step {step_report['tflm_step_ms_median_host']:.3f} ms "
                f"on this host; accuracy {100 * step_report['eval']['int8_accuracy']:.2f}% (clips in silence; "
                f"windowed {100 * step_report['eval']['windowed_int8_accuracy']:.2f}%)")

    # Recogniser operating point for a false-alarm target on validation streams (issue 9;
    # kws_tf.operating_point.export_step; `operating_point`: its options, flags below).
    from kws_tf import operating_point as op_lib

    recognizer_report = op_lib.export_step(
        step_bytes if step_bytes is not None else chosen_bytes, norm, labels.LABELS,
        step_report["delay_frames"] if step_bytes is not None else None, {**run_config, "data": source},
        operating_point if not no_stream else {**(operating_point or {}), "enabled": False},
        log=lambda m: log(f"      {m}"))
    if no_stream:  # the operating point is calibrated on the streaming twin, which runs micro_app's MFCC
        recognizer_report["note"] = f"operating point not calibrated: {no_stream}"
        log(f"      {recognizer_report['note']}")

    # C++ and files
    step(steps, f"writing {out}")
    from kws_tf import codegen, codegen_input

    step_info = tflite_tools.inspect_model(step_bytes) if step_bytes else None
    used = set(info.ops) | set(step_info.ops if step_info else ())
    ops = tuple(op for op in micro_ops if op in used)
    model_name = f"{trained.model_dir.resolve().name} ({net.name}, {chosen.upper()} int8, {gate} gate)"
    if fe.mel_bands is None:  # no C++ front-end computes it (the waveform: the device feeds its PCM)
        settings_h = codegen_input.render_header(
            norm, input_scale=in_q[0], input_zero_point=in_q[1], labels=labels.LABELS, ops=ops,
            arena_bytes=arena_device, model_name=model_name, output_scale=out_q[0], output_zero_point=out_q[1],
            output_is_logits=True)
        log(f"      kws_settings.h describes the {fe.name} model input (the device feeds its int16 PCM as int8); "
            "micro_app has no such front-end, so the header stops its build with #error")
    else:
        if not fe.dct:
            log("      kws_settings.h: the log-mel front-end; build micro_app with -DKWS_FRONTEND_LOGMEL")
        settings_h = codegen.render_frontend_header(
            norm, input_scale=in_q[0], input_zero_point=in_q[1], labels=labels.LABELS, ops=ops,
            arena_bytes=arena_device, model_name=model_name, output_scale=out_q[0], output_zero_point=out_q[1],
            output_is_logits=True,
            step_model=None if step_bytes is None else {
                "delay_frames": step_report["delay_frames"], "num_states": step_report["num_states"],
                "arena_bytes": step_report["arena_bytes_settings"]},
            recognizer=recognizer_report["settings"], recognizer_note=op_lib.header_note(recognizer_report))
    data_h, data_cc = codegen.render_model_data(chosen_bytes, name="g_model")
    files = {
        "model_int8.tflite": chosen_bytes,
        "model_float.tflite": float_bytes,
        "model_data.h": data_h.encode(),
        "model_data.cc": data_cc.encode(),
        "kws_settings.h": settings_h.encode(),
        "normalization.json": (json.dumps(norm.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
    }
    if step_bytes is not None:
        step_h, step_cc = codegen.render_model_data(step_bytes, name="g_step_model")
        files.update({"model_step_int8.tflite": step_bytes, "model_step_data.h": step_h.encode(),
                      "model_step_data.cc": step_cc.encode()})
    report = {
        "model": net.name,
        "model_dir": str(trained.model_dir.resolve()),
        "gate": gate_report,
        "step_model": step_report,
        "weights": trained.weights_file.name,
        "exported": chosen,
        "params": model_lib.count_params(net),
        "macs": model_lib.count_macs(net),
        "int8_bytes": len(chosen_bytes),
        # zlib level 9 of the int8 flatbuffer: what a compressed-weights format could save for a pruned
        # model (TFLM's kernels are dense: sparsity changes neither arena nor MACs, kws_tf.pruning)
        "int8_zlib_bytes": len(zlib.compress(chosen_bytes, 9)),
        "ptq_int8_bytes": len(ptq_bytes),
        "float_bytes": len(float_bytes),
        "ops": info.ops,
        "op_set": info.op_set,
        "registered_ops": list(ops),
        "num_tensors": len(info.tensors),
        "input": {"shape": list(info.input.shape), "scale": in_q[0], "zero_point": in_q[1]},
        "output": {"shape": list(info.output.shape), "scale": out_q[0], "zero_point": out_q[1], "is_logits": True},
        "window_frames": features.NUM_FRAMES,
        "frontend": {"name": fe.name, "input_shape": list(fe.input_shape), "normalized": fe.normalized,
                     "streams": fe.streams, "fixed_input_quantization": fe.fixed_input_quant is not None},
        "arena_bytes_min_host": arena_min,
        "arena_bytes_settings": arena_device,
        "tflm_invoke_ms_median_host": invoke_ms,
        "timing_repeats": timing_repeats,
        "calibration": {"clips": len(x_cal), "split": "train", "seed": int(run_config.get("seed", 0)),
                        "tflm_equals_reference_kernels": True},
        "eval": {
            "split": eval_split,
            "clips": int(len(y_eval)),
            "data_source": dataset.source,
            "float_accuracy": _accuracy(float_pred, y_eval),
            "ptq_int8_accuracy": ptq_stats["int8_accuracy"],
            "ptq_agreement": ptq_stats["agreement"],
            "qat_int8_accuracy": qat_report["int8_accuracy"] if qat_report else None,
            "qat_float_accuracy": qat_report["float_accuracy"] if qat_report else None,
            "qat_agreement": qat_report["agreement_with_own_float"] if qat_report else None,
            "exported_agreement": check["agreement"],
            "exported_accuracy_drop_points": check["accuracy_drop_points"],
        },
        "accuracy_check": {k: v for k, v in check.items() if k != "max_accuracy_drop_points"},
        "thresholds": {"min_agreement": min_agreement, "max_accuracy_drop_points": max_accuracy_drop,
                       "confidence": check["confidence"]},
        "qat": qat_report,
        "float_checks": {"deploy_vs_trained_max_abs": deploy_diff, "float_tflite_vs_keras_max_abs": float_tfl_diff},
        "per_channel_dense": per_channel_dense,
        "labels": list(labels.LABELS),
        "normalization": norm.to_dict(),
        "sha256": {name: _sha256(blob) for name, blob in files.items()},
        "versions": _versions(),
        "export_seconds": None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
        report["recognizer"] = recognizer_report
        report["export_seconds"] = time.perf_counter() - t_start
        (tmp / "export_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _check_out_dir(out, overwrite, OWNED_FILES)  # another process may have created it meanwhile
        _publish(tmp, out, OWNED_FILES)
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"done: {out} ({chosen.upper()} int8, accuracy drop {check['accuracy_drop_points']:+.2f} points, "
        f"{report['export_seconds']:.1f} s)")
    return report


def _versions() -> dict:
    out = {}
    for mod in ("tensorflow", "tf_keras", "tflite_micro", "ai_edge_litert", "tensorflow_model_optimization"):
        try:
            from importlib import metadata

            out[mod] = metadata.version(mod.replace("_", "-") if mod != "tflite_micro" else "tflite-micro")
        except Exception:
            out[mod] = None
    return out


if __name__ == "__main__":
    from absl import app

    from kws_tf import cli_env

    cli_env.start()  # before TensorFlow is imported: its start-up lines off stderr unless --tf_logs
    from kws_tf.export_cli import define_flags, main

    define_flags()
    app.run(main)
