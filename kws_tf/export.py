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

This module keeps the sequence of steps; each stage is a module of its own: `export_io`
(loading the run, the output folder), `export_float` (deploy graph and float flatbuffer),
`export_int8` (PTQ, the optional QAT branch, the accuracy gate; `export_checks` has the
checks), `export_step` (the per-frame step model), `kws_tf.operating_point.export_step` (the
recogniser's operating point, below) and `export_report` (the files, the report, publishing).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from kws_tf import export_int8 as int8_lib
from kws_tf import export_report as report_lib
from kws_tf import features, labels
from kws_tf.export_checks import (_accuracy, _gate_thresholds, _int8_scores, _predict_keras,  # noqa: F401
                                  accuracy_check, check_line, verify_int8)
from kws_tf.export_float import _is_sparknet, float_stage  # noqa: F401
from kws_tf.export_int8 import _check_fixed_input_quant, _gate_form  # noqa: F401
from kws_tf.export_io import (Exported, ExportError, TrainedModel, _check_out_dir, _first_line,  # noqa: F401
                              _publish, _read_json, calibration_indices, device_features, load_export,
                              load_trained, run_tflm)
from kws_tf.export_report import _sha256, _versions  # noqa: F401
from kws_tf.export_step import STEP_ARTIFACTS, build_step_model  # noqa: F401
from kws_tf.export_streaming import _step_scores, step_stage  # noqa: F401

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
    flt = float_stage(net, x_cal, x_eval, y_eval, gate, classifier, log=log)
    gate, float_pred = flt.gate, flt.float_pred

    # 4. PTQ int8 (5. QAT when asked for), then the accuracy gate
    step(4, f"int8 conversion (post-training, calibrated on {len(x_cal)} clips) and checks")
    q = int8_lib.Int8Inputs(flt.deploy, x_rep, x_cal, x_eval, y_eval, float_pred, fe, gate, micro_ops,
                            per_channel_dense, max_accuracy_drop, min_agreement)
    # `_gate_form` is looked up here, in this module, so a test can substitute it (export._gate_form)
    ptq = int8_lib.post_training(q, eval_split, gate_form=_gate_form, log=log)
    qat = None
    if qat_epochs:
        step(5, f"quantisation-aware fine-tuning ({qat_epochs} epoch(s))")
        qat = int8_lib.quantisation_aware(q, ptq, net=net, classifier=classifier, dataset=dataset, norm=norm,
                                          run_config=run_config, epochs=qat_epochs, lr=qat_lr,
                                          batch_size=qat_batch_size, gate_form=_gate_form, log=log)
    int8_result = int8_lib.accept(q, ptq, qat)
    chosen = int8_result.chosen
    chosen_bytes, in_q = chosen.model_bytes, chosen.in_q

    # TFLM arena and timing
    step(steps - (2 if step_model else 1), "TFLM arena (binary search) and host invoke time")
    try:
        arena_min = tflm.min_arena_bytes(chosen_bytes)
        arena_device = tflm.device_arena_bytes(arena_min)
        invoke_ms = tflm.invoke_time_ms(chosen_bytes, arena_size=arena_min, repeats=timing_repeats,
                                        x=features.quantize_np(x_cal[:1], *in_q))
    except tflm.TflmError as e:
        raise ExportError(str(e)) from None
    log(f"      int8 {len(chosen_bytes):,} B, float {len(flt.float_bytes):,} B, arena {arena_min:,} B on this host "
        f"(kArenaBytes {arena_device:,}), invoke median {invoke_ms:.3f} ms")

    step_bytes, step_report = None, None
    if step_model:
        step(steps - 1, "per-frame step model (derive, TFLM == reference, gate proof, arena)")
        step_bytes, step_report = step_stage(net, chosen, x_cal, eval_set.audio, y_eval, eval_split, norm, micro_ops,
                                             timing_repeats, no_stream, log=log)

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

    # kws_settings.h: front-end constants, quantisation, ops, arena, the step model and the recogniser's
    # settings above (export_report.settings_header); then the C arrays, the report, publishing
    step(steps, f"writing {out}")
    step_info = tflite_tools.inspect_model(step_bytes) if step_bytes else None
    used = set(chosen.info.ops) | set(step_info.ops if step_info else ())
    ops = tuple(op for op in micro_ops if op in used)
    model_name = f"{trained.model_dir.resolve().name} ({net.name}, {chosen.name.upper()} int8, {gate} gate)"
    settings_h = report_lib.settings_header(fe, norm, chosen, ops, arena_device, model_name, step_report if
                                            step_bytes is not None else None, recognizer_report, log=log)
    files = report_lib.render_files(chosen_bytes, flt.float_bytes, settings_h, norm, step_bytes)
    report = report_lib.build_report(
        net=net, trained=trained, fe=fe, norm=norm, flt=flt, int8=int8_result, step_report=step_report,
        recognizer_report=recognizer_report, files=files, ops=ops, arena_min=arena_min, arena_device=arena_device,
        invoke_ms=invoke_ms, timing_repeats=timing_repeats, calibration_clips=len(x_cal),
        seed=int(run_config.get("seed", 0)), eval_split=eval_split, y_eval=y_eval, data_source=dataset.source,
        min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop, per_channel_dense=per_channel_dense)
    report_lib.publish(out, files, report, overwrite, OWNED_FILES, t_start)
    log(f"done: {out} ({chosen.name.upper()} int8, accuracy drop {int8_result.check['accuracy_drop_points']:+.2f} "
        f"points, {report['export_seconds']:.1f} s)")
    return report


if __name__ == "__main__":
    from absl import app

    from kws_tf import cli_env

    cli_env.start()  # before TensorFlow is imported: its start-up lines off stderr unless --tf_logs
    from kws_tf.export_cli import define_flags, main

    define_flags()
    app.run(main)
