"""Export's output: the files' bytes, export_report.json, and their atomic publishing.

Everything written is assembled in memory first (`render_files`, `build_report`), so the report
can carry every file's sha256; `publish` writes it all into a temporary sibling folder and renames
that into place (`export_io._publish`), so a failed export leaves nothing half-written and an
output folder is replaced only in what export owns. The model and C++ files depend on the
model_dir alone (byte-identical re-exports); the report differs only in timings.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
import zlib

from kws_tf import features, labels
from kws_tf.export_checks import _accuracy
from kws_tf.export_io import ExportError, _check_out_dir, _publish


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _versions() -> dict:
    out = {}
    for mod in ("tensorflow", "tf_keras", "tflite_micro", "ai_edge_litert", "tensorflow_model_optimization"):
        try:
            from importlib import metadata

            out[mod] = metadata.version(mod.replace("_", "-") if mod != "tflite_micro" else "tflite-micro")
        except Exception:
            out[mod] = None
    return out


def render_files(model_bytes: bytes, float_bytes: bytes, settings_h: str, norm, step_bytes: bytes | None) -> dict:
    """{file name: bytes} of every artifact (the report aside), in the order they are written."""
    from kws_tf import codegen

    data_h, data_cc = codegen.render_model_data(model_bytes, name="g_model")
    files = {
        "model_int8.tflite": model_bytes,
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
    return files


def build_report(*, net, trained, fe, norm, flt, int8, step_report, recognizer_report, files: dict, ops,
                 arena_min: int, arena_device: int, invoke_ms: float, timing_repeats: int, calibration_clips: int,
                 seed: int, eval_split: str, y_eval, data_source, min_agreement: float, max_accuracy_drop: float,
                 per_channel_dense: bool) -> dict:
    """The export_report.json dictionary (`flt`: export_float.FloatStage, `int8`: export_int8.Int8Result).

    "export_seconds" is None here; `publish` sets it once the files are written.
    """
    from kws_tf import model as model_lib

    chosen, check, qat_report, ptq_stats = int8.chosen, int8.check, int8.qat_report, int8.ptq_stats
    info, in_q, out_q = chosen.info, chosen.in_q, chosen.out_q
    return {
        "model": net.name,
        "model_dir": str(trained.model_dir.resolve()),
        "gate": flt.gate_report,
        "step_model": step_report,
        "weights": trained.weights_file.name,
        "exported": chosen.name,
        "params": model_lib.count_params(net),
        "macs": model_lib.count_macs(net),
        "int8_bytes": len(chosen.model_bytes),
        # zlib level 9 of the int8 flatbuffer: what a compressed-weights format could save for a pruned
        # model (TFLM's kernels are dense: sparsity changes neither arena nor MACs, kws_tf.pruning)
        "int8_zlib_bytes": len(zlib.compress(chosen.model_bytes, 9)),
        "ptq_int8_bytes": len(int8.ptq_bytes),
        "float_bytes": len(flt.float_bytes),
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
        "calibration": {"clips": calibration_clips, "split": "train", "seed": seed,
                        "tflm_equals_reference_kernels": True},
        "eval": {
            "split": eval_split,
            "clips": int(len(y_eval)),
            "data_source": data_source,
            "float_accuracy": _accuracy(flt.float_pred, y_eval),
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
        "float_checks": {"deploy_vs_trained_max_abs": flt.deploy_diff,
                         "float_tflite_vs_keras_max_abs": flt.float_tfl_diff},
        "per_channel_dense": per_channel_dense,
        "labels": list(labels.LABELS),
        "normalization": norm.to_dict(),
        "sha256": {name: _sha256(blob) for name, blob in files.items()},
        "versions": _versions(),
        "export_seconds": None,
        "recognizer": recognizer_report,
    }


def publish(out: pathlib.Path, files: dict, report: dict, overwrite: bool, owned, t_start: float) -> None:
    """Write `files` and export_report.json into `out` atomically (ExportError when it cannot).

    Sets report["export_seconds"] (since `t_start`, a time.perf_counter()) just before the report
    is written; `out` is checked again (`_check_out_dir`) because another process may have
    created it meanwhile.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
        report["export_seconds"] = time.perf_counter() - t_start
        (tmp / "export_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _check_out_dir(out, overwrite, owned)
        _publish(tmp, out, owned)
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def settings_header(fe, norm, chosen, ops, arena_bytes: int, model_name: str, step_report: dict | None,
                    recognizer_report: dict, log=print) -> str:
    """kws_settings.h for `chosen` (export_int8.Int8Model): `codegen.render_frontend_header`, or
    `codegen_input.render_header` for a front-end no C++ code computes (the waveform).

    `step_report`: the step model's report entry, None when no step model is written;
    `recognizer_report`: `operating_point.export_step`'s, whose "settings" go into the header.
    """
    from kws_tf import codegen, codegen_input
    from kws_tf import operating_point as op_lib

    in_q, out_q = chosen.in_q, chosen.out_q
    if fe.mel_bands is None:  # no C++ front-end computes it (the waveform: the device feeds its PCM)
        settings_h = codegen_input.render_header(
            norm, input_scale=in_q[0], input_zero_point=in_q[1], labels=labels.LABELS, ops=ops,
            arena_bytes=arena_bytes, model_name=model_name, output_scale=out_q[0], output_zero_point=out_q[1],
            output_is_logits=True)
        log(f"      kws_settings.h describes the {fe.name} model input (the device feeds its int16 PCM as int8); "
            "micro_app has no such front-end, so the header stops its build with #error")
        return settings_h
    if not fe.dct:
        log("      kws_settings.h: the log-mel front-end; build micro_app with -DKWS_FRONTEND_LOGMEL")
    return codegen.render_frontend_header(
        norm, input_scale=in_q[0], input_zero_point=in_q[1], labels=labels.LABELS, ops=ops,
        arena_bytes=arena_bytes, model_name=model_name, output_scale=out_q[0], output_zero_point=out_q[1],
        output_is_logits=True,
        step_model=None if step_report is None else {
            "delay_frames": step_report["delay_frames"], "num_states": step_report["num_states"],
            "arena_bytes": step_report["arena_bytes_settings"]},
        recognizer={**recognizer_report["settings"],
                    "score_temperature": float(recognizer_report.get("score_temperature", 1.0))},
        recognizer_note=op_lib.header_note(recognizer_report))
