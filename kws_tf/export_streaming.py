"""Export's step-model stage: derive the per-frame step model (`export_step.build_step_model`),
or say in the report why there is none, and measure it on the evaluation clips.

A model whose graph cannot stream (no SparkNet gate, or a front-end without a streaming twin)
is exported windowed only, with the reason in the report; for SparkNet with a streaming
front-end a failed derivation or check is the export's error, since the device needs it.
"""

from __future__ import annotations

import numpy as np

from kws_tf import features
from kws_tf.export_checks import _accuracy
from kws_tf.export_float import _is_sparknet
from kws_tf.export_io import ExportError
from kws_tf.export_step import build_step_model


def _step_scores(step_obj, audio, norm, in_q, out_q) -> np.ndarray:
    from kws_tf import step_clips

    raw = step_clips.step_scores(step_obj.model_bytes, audio, norm, in_q[0], in_q[1], step_obj.delay_frames,
                                 context="silence")
    return features.dequantize_np(raw, *out_q)


def step_stage(net, chosen, x_cal, eval_audio, y_eval, eval_split: str, norm, micro_ops, timing_repeats: int,
               no_stream: str | None, log=print) -> tuple[bytes | None, dict]:
    """(step model bytes or None, the report's "step_model" entry) for `chosen` (export_int8.Int8Model)."""
    in_q, out_q = chosen.in_q, chosen.out_q
    try:
        if no_stream:
            raise ExportError(f"no step model: {no_stream}")
        step_obj, step_report = build_step_model(chosen.model_bytes, x_cal, in_q, micro_ops, timing_repeats)
    except ExportError as e:
        if _is_sparknet(net) and not no_stream:
            raise
        log(f"      {e} (the windowed model is exported alone)")
        return None, {"skipped": str(e)}
    step_pred = _step_scores(step_obj, eval_audio, norm, in_q, out_q).argmax(-1)
    step_report["eval"] = {
        "context": "silence", "clips": int(len(y_eval)), "split": eval_split,
        "int8_accuracy": _accuracy(step_pred, y_eval),
        "windowed_int8_accuracy": _accuracy(chosen.pred, y_eval),
        "agreement_with_windowed_int8": float(np.mean(step_pred == chosen.pred)),
    }
    log(f"      step model: {len(step_obj.ops)} ops, delay {step_obj.delay_frames} frames "
        f"({10 * step_obj.delay_frames} ms), state {step_obj.state_bytes:,} B, "
        f"{step_report['checks']['gate_frames_equal']} gate frames equal to the windowed model's, "
        f"arena {step_report['arena_bytes_min_host']:,} B, step {step_report['tflm_step_ms_median_host']:.3f} ms "
        f"on this host; accuracy {100 * step_report['eval']['int8_accuracy']:.2f}% (clips in silence; "
        f"windowed {100 * step_report['eval']['windowed_int8_accuracy']:.2f}%)")
    return step_obj.model_bytes, step_report
