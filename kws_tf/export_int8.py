"""Export's int8 stage: post-training quantisation, the optional quantisation-aware branch, and
the accuracy gate that decides whether the chosen int8 model may be written.

Both branches convert the same deploy graph with the same calibration inputs and pass the same
checks (`export_checks.verify_int8`, the front-end's fixed input quantisation); QAT, when asked
for, is the one exported, and is judged against the trained float model (its own float weights
only for the opt-in agreement check). Each function logs what `export_model` always logged, in
the same order, and raises ExportError (one line) for what the user must fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_tf.export_checks import _accuracy, _gate_thresholds, _int8_scores, _predict_keras, accuracy_check, \
    check_line, verify_int8
from kws_tf.export_io import ExportError


def _gate_form(model_bytes: bytes, gate: str) -> bytes:
    """The int8 flatbuffer with the gate in its device form (`kws_tf.int8_gate` for "secant")."""
    if gate != "secant":
        return model_bytes
    from kws_tf import int8_gate

    try:
        return int8_gate.saturate_gate(model_bytes)
    except int8_gate.GateRewriteError as e:
        raise ExportError(f"secant gate: {e}") from None


def _check_fixed_input_quant(fe, in_q, what: str) -> None:
    """A front-end with a fixed int8 input (the waveform's int16 -> int8) must have got exactly it."""
    if fe.fixed_input_quant is None:
        return
    want = (float(fe.fixed_input_quant[0]), int(fe.fixed_input_quant[1]))
    if (float(in_q[0]), int(in_q[1])) != want:
        raise ExportError(f"{what}: input quantisation {in_q} is not the {fe.name} front-end's fixed {want}")


@dataclass(frozen=True)
class Int8Inputs:
    """What both conversions and their checks need (one object, so the two branches cannot differ)."""

    deploy: object  # the float deploy graph (Keras) that is converted
    x_rep: np.ndarray  # what the converter calibrates on (`fe.calibration_inputs` of x_cal)
    x_cal: np.ndarray  # device features of the calibration clips (TFLM == reference check)
    x_eval: np.ndarray
    y_eval: np.ndarray
    float_pred: np.ndarray  # the trained float model's top-1 on x_eval
    fe: object  # the front-end (`kws_tf.frontends`)
    gate: str  # "secant", "tanh" or "none"
    micro_ops: dict
    per_channel_dense: bool
    max_accuracy_drop: float
    min_agreement: float


@dataclass(frozen=True)
class Int8Model:
    """One converted, checked int8 flatbuffer and its predictions on the evaluation clips."""

    name: str  # "ptq" or "qat"
    model_bytes: bytes
    pred: np.ndarray
    info: object  # tflite_tools.ModelInfo
    in_q: tuple
    out_q: tuple


@dataclass(frozen=True)
class PtqResult:
    model: Int8Model
    stats: dict  # {"agreement", "int8_accuracy"} against the float model
    check: dict  # export_checks.accuracy_check


@dataclass(frozen=True)
class QatResult:
    model: Int8Model
    report: dict  # the report's "qat" entry
    float_pred: np.ndarray  # top-1 of the QAT float weights (the conversion's own reference)
    epochs: int


@dataclass(frozen=True)
class Int8Result:
    """The int8 model export writes, with what the report says of both branches."""

    chosen: Int8Model
    ptq_bytes: bytes
    ptq_stats: dict
    qat_report: dict | None
    check: dict  # export_checks._gate_thresholds of the chosen model


def _convert_and_verify(q: Int8Inputs, deploy, name: str, what: str, error_prefix: str, gate_form) -> Int8Model:
    from kws_tf import tflite_tools

    try:
        model_bytes = gate_form(tflite_tools.convert_int8(deploy, q.x_rep, per_channel_dense=q.per_channel_dense),
                                q.gate)
    except tflite_tools.ConversionError as e:
        raise ExportError(f"{error_prefix}{e}") from None
    info, in_q, out_q = verify_int8(model_bytes, q.x_cal, q.micro_ops, q.per_channel_dense, what)
    _check_fixed_input_quant(q.fe, in_q, what)
    pred = _int8_scores(model_bytes, q.x_eval, in_q, out_q).argmax(-1)
    return Int8Model(name, model_bytes, pred, info, in_q, out_q)


def post_training(q: Int8Inputs, eval_split: str, gate_form=_gate_form, log=print) -> PtqResult:
    """Convert the deploy graph to int8 (post-training), check it and measure it against float.

    `gate_form`: `_gate_form` unless a caller (a test) substitutes it.
    """
    model = _convert_and_verify(q, q.deploy, "ptq", "PTQ int8 model", "", gate_form)
    y_eval, float_pred = q.y_eval, q.float_pred
    stats = {"agreement": float(np.mean(model.pred == float_pred)), "int8_accuracy": _accuracy(model.pred, y_eval)}
    log(f"      float accuracy {100 * _accuracy(float_pred, y_eval):.2f}%, "
        f"PTQ int8 {100 * stats['int8_accuracy']:.2f}%, "
        f"top-1 agreement {100 * stats['agreement']:.2f}% ({len(y_eval)} {eval_split} clips)")
    check = accuracy_check(float_pred, model.pred, y_eval, q.max_accuracy_drop)
    log(f"      PTQ {check_line(check)}")
    if check["warning"]:
        log(f"      warning: {check['warning']}")
    return PtqResult(model, stats, check)


def quantisation_aware(q: Int8Inputs, ptq: PtqResult, *, net, classifier: str, dataset, norm, run_config: dict,
                       epochs: int, lr: float | None, batch_size: int | None, gate_form=_gate_form,
                       log=print) -> QatResult:
    """Fine-tune the deploy graph with fake quantisation (`kws_tf.qat`), convert and check it."""
    from kws_tf import qat as qat_lib
    from kws_tf import tflite_tools, tflm

    x_eval, y_eval, float_pred = q.x_eval, q.y_eval, q.float_pred
    with tflm.quiet_stderr():  # tf.data notes ("NodeDef mentions attribute ...") on fd 2
        qmodel = qat_lib.quantize_model(q.deploy)
        qat_lib.init_ranges(qmodel, q.deploy, q.x_cal)
        qat_init_pred = _predict_keras(qmodel, x_eval).argmax(-1)
        history = qat_lib.fine_tune(qmodel, dataset, norm, run_config, epochs, lr=lr,
                                    batch_size=batch_size, log=lambda m: log(f"    {m}"))
        qat_fq_pred = _predict_keras(qmodel, x_eval).argmax(-1)
        deploy_qat = tflite_tools.deploy_model(net, gate="secant" if q.gate == "secant" else "tanh",
                                               classifier=classifier)
        qat_lib.copy_back(qmodel, deploy_qat)
        qat_float_pred = _predict_keras(deploy_qat, x_eval).argmax(-1)
    model = _convert_and_verify(q, deploy_qat, "qat", "QAT int8 model", "QAT model: ", gate_form)
    report = {
        "epochs": epochs,
        "lr": float(lr or qat_lib.DEFAULT_LR),
        "optimizer": "adam",
        "history": history,
        "fake_quant_accuracy_before": _accuracy(qat_init_pred, y_eval),
        "fake_quant_accuracy_after": _accuracy(qat_fq_pred, y_eval),
        "float_accuracy": _accuracy(qat_float_pred, y_eval),
        "int8_accuracy": _accuracy(model.pred, y_eval),
        "agreement_with_own_float": float(np.mean(model.pred == qat_float_pred)),
        "agreement_with_trained_float": float(np.mean(model.pred == float_pred)),
        "int8_bytes": len(model.model_bytes),
    }
    log(f"      QAT float {100 * report['float_accuracy']:.2f}%, "
        f"QAT int8 {100 * report['int8_accuracy']:.2f}% "
        f"(PTQ int8 {100 * ptq.stats['int8_accuracy']:.2f}%)")
    # Accuracy: QAT int8 vs the trained float model; the opt-in agreement check measures the
    # fidelity of the conversion (QAT int8 vs the float weights it was converted from).
    qat_check = accuracy_check(float_pred, model.pred, y_eval, q.max_accuracy_drop)
    log(f"      QAT {check_line(qat_check)}")
    if qat_check["warning"] and not ptq.check["warning"]:
        log(f"      warning: {qat_check['warning']}")
    return QatResult(model, report, qat_float_pred, epochs)


def accept(q: Int8Inputs, ptq: PtqResult, qat: QatResult | None) -> Int8Result:
    """Choose QAT when it ran, else PTQ, and apply the accuracy gate (ExportError when refused)."""
    if qat is not None:
        check = _gate_thresholds("QAT int8 model", q.float_pred, qat.model.pred, q.y_eval, q.min_agreement,
                                 q.max_accuracy_drop, agreement_pred=qat.float_pred, qat_epochs=qat.epochs,
                                 ptq_check=ptq.check)
        return Int8Result(qat.model, ptq.model.model_bytes, ptq.stats, qat.report, check)
    check = _gate_thresholds("PTQ int8 model", q.float_pred, ptq.model.pred, q.y_eval, q.min_agreement,
                             q.max_accuracy_drop)
    return Int8Result(ptq.model, ptq.model.model_bytes, ptq.stats, None, check)
