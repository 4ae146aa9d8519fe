"""Export's float stage: the deploy graph (`tflite_tools.deploy_model`) and its float flatbuffer,
each checked against the trained Keras model before any int8 conversion starts from them.

The deploy graph is what the device runs (the classifier order, the gate's inference form); a
difference from the trained model beyond float rounding is a bug in deploy_model, and is refused
here rather than blamed on quantisation later. For SparkNet's default secant gate, the report
records how close it stays to the tanh gate that was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_tf.export_checks import _accuracy, _predict_keras
from kws_tf.export_io import ExportError


def _is_sparknet(net) -> bool:
    """Has SparkNet's gate: the model whose step graph must exist."""
    return any(type(layer).__name__ == "RelaxedBernoulliGate" for layer in net.layers)


@dataclass(frozen=True)
class FloatStage:
    deploy: object  # the deploy graph (Keras) the int8 conversion starts from
    float_bytes: bytes  # model_float.tflite
    float_pred: np.ndarray  # the trained model's top-1 on the evaluation clips
    gate: str  # the gate asked for, or "none" for a model without SparkNet's gate
    gate_report: dict  # the report's "gate" entry
    deploy_diff: float  # max |deploy - trained| on the first evaluation clips
    float_tfl_diff: float  # max |float flatbuffer - deploy graph| on the first calibration clips


def float_stage(net, x_cal: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, gate: str, classifier: str,
                log=print) -> FloatStage:
    """Build and check the deploy graph and its float flatbuffer. Raises ExportError (one line)."""
    from kws_tf import tflite_tools

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
    return FloatStage(deploy, float_bytes, float_pred, gate, gate_report, deploy_diff, float_tfl_diff)
