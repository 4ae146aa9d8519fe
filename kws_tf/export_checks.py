"""Export's checks of an int8 flatbuffer: fully int8, board ops only, TFLM equal to the TFLite
reference kernels bit for bit, and the accuracy thresholds against the float model."""

from __future__ import annotations

import numpy as np

from kws_tf import features
from kws_tf.export_io import ExportError


def _predict_keras(net, x: np.ndarray) -> np.ndarray:
    from kws_tf.tflm import quiet_stderr

    with quiet_stderr():  # tf.data's "NodeDef mentions attribute ..." notes on fd 2
        return np.asarray(net.predict(x, batch_size=256, verbose=0)).reshape(len(x), -1)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y)) if len(y) else float("nan")


def verify_int8(model_bytes: bytes, x_calibration: np.ndarray, micro_ops: dict, per_channel_dense: bool = True,
                what: str = "int8 model"):
    """Structural and TFLM checks; returns (ModelInfo, input quant, output quant). Raises ExportError."""
    from kws_tf import tflite_tools, tflm

    info = tflite_tools.inspect_model(model_bytes)
    problems = tflite_tools.int8_problems(info, per_channel_dense=per_channel_dense)
    if problems:
        raise ExportError(f"{what} is not fully int8: {problems[0]}"
                          + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    problems = tflite_tools.micro_problems(info, micro_ops)
    if problems:
        raise ExportError(f"{what} cannot run on the device: {problems[0]}")
    want = (1, 1, features.NUM_FRAMES, features.NUM_MFCC)
    if tuple(info.input.shape) != want:
        raise ExportError(f"{what} input shape {tuple(info.input.shape)} does not match the front-end {want}")
    in_q, out_q = tflite_tools.quant_params(info.input), tflite_tools.quant_params(info.output)
    xq = features.quantize_np(x_calibration, *in_q)
    try:
        got = tflm.TflmRunner(model_bytes).run(xq)
    except tflm.TflmError as e:
        raise ExportError(f"{what}: {e}") from None
    ref = tflite_tools.run_tflite(model_bytes, xq, reference=True)
    if got.shape != ref.shape or not np.array_equal(got, ref):
        bad = int(np.sum(np.any(got.reshape(len(xq), -1) != ref.reshape(len(xq), -1), axis=1)))
        raise ExportError(f"{what}: TFLM output differs from the TFLite reference kernels on {bad} of "
                          f"{len(xq)} calibration clips")
    return info, in_q, out_q


def _int8_scores(model_bytes: bytes, x: np.ndarray, in_q, out_q) -> np.ndarray:
    from kws_tf import tflm

    raw = tflm.TflmRunner(model_bytes).run(features.quantize_np(x, *in_q)).reshape(len(x), -1)
    return features.dequantize_np(raw, *out_q)


def _gate_thresholds(name: str, float_pred, int8_pred, y, min_agreement: float, max_drop: float) -> dict:
    agreement = float(np.mean(float_pred == int8_pred))
    fa, ia = _accuracy(float_pred, y), _accuracy(int8_pred, y)
    drop = 100.0 * (fa - ia)
    if agreement < min_agreement:
        raise ExportError(f"{name}: int8 top-1 agrees with float on {100 * agreement:.2f}% of {len(y)} evaluation "
                          f"clips, below --min_agreement={min_agreement:g} "
                          "(try --qat_epochs=10, or lower the threshold)")
    if drop > max_drop:
        raise ExportError(f"{name}: int8 accuracy {100 * ia:.2f}% is {drop:.2f} points below float "
                          f"{100 * fa:.2f}% (--max_accuracy_drop={max_drop:g}; try --qat_epochs=10)")
    return {"agreement": agreement, "float_accuracy": fa, "int8_accuracy": ia, "accuracy_drop_points": drop}


