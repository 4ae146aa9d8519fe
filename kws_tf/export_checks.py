"""Export's checks of an int8 flatbuffer: fully int8, board ops only, TFLM equal to the TFLite
reference kernels bit for bit, and the accuracy test against the float model (`accuracy_check`)."""

from __future__ import annotations

import math

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
    want = (1,) + tuple(np.shape(x_calibration)[1:])  # the front-end's (1, steps, dim), batch 1
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


# --------------------------------------------------------------------------- the accuracy test

CONFIDENCE = 0.95  # one-sided, for both bounds on the accuracy drop
SMALL_SET_CLIPS = 200  # below this one clip is worth more than the default 0.5-point tolerance
SMALL_SET_UPPER_POINTS = 2.0  # warn when the data cannot rule out a loss this large


def _clopper_pearson(k: int, m: int, confidence: float) -> tuple[float, float]:
    """One-sided exact (Clopper-Pearson) lower and upper bounds on a binomial p from k of m."""
    from scipy.stats import beta

    alpha = 1.0 - confidence
    lo = float(beta.ppf(alpha, k, m - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1.0 - alpha, k + 1, m - k)) if k < m else 1.0
    return lo, hi


def accuracy_check(float_pred, int8_pred, y, max_drop: float, confidence: float = CONFIDENCE) -> dict:
    """The paired int8-vs-float accuracy test (exact, McNemar-style).

    Only the clips where exactly one model is right carry information: `b` where float is right
    and int8 wrong, `c` the reverse, m = b + c of n clips. The drop (float - int8 accuracy, in
    points) is 100 (b - c) / n = 100 m (2p - 1) / n with p = b / m; given m, b ~ Binomial(m, p),
    and the one-sided Clopper-Pearson bounds on p at `confidence` give bounds on the drop.
    Refused (`passed` False) only when the lower bound exceeds `max_drop`: the drop is
    significantly above the tolerance (an exact binomial test at 1 - confidence). `warning`
    says when the evaluation set is too small for the test to say anything.
    """
    float_pred, int8_pred, y = (np.asarray(a).reshape(-1) for a in (float_pred, int8_pred, y))
    n = int(len(y))
    float_right, int8_right = float_pred == y, int8_pred == y
    b = int(np.sum(float_right & ~int8_right))
    c = int(np.sum(~float_right & int8_right))
    m = b + c
    if m:
        p_lo, p_hi = _clopper_pearson(b, m, confidence)
        lo, hi = 100.0 * m * (2 * p_lo - 1) / n, 100.0 * m * (2 * p_hi - 1) / n
    else:
        lo = hi = 0.0
    drop = 100.0 * (b - c) / n if n else float("nan")
    warning = None
    if n < SMALL_SET_CLIPS:
        warning = (f"only {n} evaluation clips (one clip is {100.0 / max(n, 1):.2f} accuracy points): too few to "
                   "tell whether int8 is as accurate as float; evaluate on more clips")
    elif hi > SMALL_SET_UPPER_POINTS:
        warning = (f"the {n} evaluation clips cannot rule out an int8 loss of up to {hi:.2f} points "
                   f"({100 * confidence:g} % bound; {b} clips only float gets right, {c} only int8): too few "
                   "to tell whether int8 is as accurate as float; evaluate on more clips")
    return {"clips": n, "float_only_right": b, "int8_only_right": c,
            "float_accuracy": _accuracy(float_pred, y), "int8_accuracy": _accuracy(int8_pred, y),
            "agreement": float(np.mean(float_pred == int8_pred)) if n else float("nan"),
            "accuracy_drop_points": drop, "drop_lower_points": lo, "drop_upper_points": hi,
            "confidence": confidence, "max_accuracy_drop_points": float(max_drop),
            "passed": not lo > max_drop, "small_set": warning is not None, "warning": warning}


def accepting_drop(check: dict) -> str:
    """The smallest --max_accuracy_drop (2 decimals) that accepts this check's model."""
    v = math.ceil(check["drop_lower_points"] * 100) / 100
    if v < check["drop_lower_points"]:
        v += 0.01
    return f"{max(v, 0.0):.2f}"


def check_line(check: dict) -> str:
    """One log line: the counts, the drop and its bounds, the verdict."""
    if not check["passed"]:
        verdict = "REFUSED"
    elif check["accuracy_drop_points"] > check["max_accuracy_drop_points"]:
        verdict = "pass (the estimate is above the tolerance, not significantly)"
    else:
        verdict = "pass"
    conf = f"{100 * check['confidence']:g} %"
    return (f"int8 vs float on {check['clips']} clips: {check['float_only_right']} only float gets right, "
            f"{check['int8_only_right']} only int8; accuracy drop {check['accuracy_drop_points']:+.2f} points "
            f"({conf} bounds {check['drop_lower_points']:+.2f} .. {check['drop_upper_points']:+.2f}): {verdict}; "
            f"refused only when the drop is above --max_accuracy_drop={check['max_accuracy_drop_points']:g} "
            f"at {conf} confidence")


def refusal_message(name: str, check: dict, qat_epochs: int = 0, ptq_check: dict | None = None) -> str:
    """The one-line refusal; its advice names a run that this test cannot refuse with the same words."""
    head = (f"{name}: accuracy {100 * check['int8_accuracy']:.2f}% is {check['accuracy_drop_points']:.2f} points "
            f"below float {100 * check['float_accuracy']:.2f}% on {check['clips']} evaluation clips "
            f"({check['float_only_right']} clips only float gets right, {check['int8_only_right']} only int8; "
            f"the drop is at least {check['drop_lower_points']:.2f} points at {100 * check['confidence']:g} % "
            f"confidence, above --max_accuracy_drop={check['max_accuracy_drop_points']:g})")
    if not qat_epochs:
        return (f"{head}: post-training quantisation loses accuracy here; try quantisation-aware training "
                f"(--qat_epochs=10), or accept this model with --max_accuracy_drop={accepting_drop(check)}")
    if ptq_check is None:
        return f"{head}; accept this model with --max_accuracy_drop={accepting_drop(check)}"
    if ptq_check["passed"]:
        return f"{head}; the post-training model passes this test: rerun with --qat_epochs=0"
    return (f"{head}; quantisation-aware training did not recover it (post-training int8 "
            f"{100 * ptq_check['int8_accuracy']:.2f}%): accept the post-training model with --qat_epochs=0 "
            f"--max_accuracy_drop={accepting_drop(ptq_check)}")


def _gate_thresholds(name: str, float_pred, int8_pred, y, min_agreement: float, max_drop: float,
                     agreement_pred=None, qat_epochs: int = 0, ptq_check: dict | None = None) -> dict:
    """The export's accuracy check (`accuracy_check`), then the opt-in top-1 agreement check
    (`min_agreement` > 0; against `agreement_pred`, default `float_pred`). Raises ExportError."""
    check = accuracy_check(float_pred, int8_pred, y, max_drop)
    if not check["passed"]:
        raise ExportError(refusal_message(name, check, qat_epochs, ptq_check))
    ref = float_pred if agreement_pred is None else agreement_pred
    agreement = float(np.mean(np.asarray(ref).reshape(-1) == np.asarray(int8_pred).reshape(-1)))
    if min_agreement and agreement < min_agreement:
        raise ExportError(f"{name}: int8 top-1 agrees with {'float' if agreement_pred is None else 'its own float'} "
                          f"on {100 * agreement:.2f}% of {len(y)} evaluation clips, below --min_agreement="
                          f"{min_agreement:g} (an opt-in check; the accuracy test passes: leave --min_agreement out)")
    check["agreement"] = agreement
    return check
