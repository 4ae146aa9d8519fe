"""An exported model as the device twin sees it: the flatbuffer plus the constants the device needs.

`load_exported(path)` reads `model_int8.tflite` (the windowed model), `model_step_int8.tflite`
(the per-frame step model) or an export folder (its windowed model): int8 quantisation from
the flatbuffer, normalisation and labels from the folder, the step model's delay from its
metadata, and the recogniser settings the export chose.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from kws_tf import features, labels as labels_lib

# The recogniser settings an export may choose and a user may override (flags, -D macros).
RECOGNIZER_SETTINGS = ("detection_threshold", "average_window_ms", "suppression_ms", "minimum_count")


class SimulateError(ValueError):
    """Unusable model, export folder or audio; one line for the user."""



@dataclasses.dataclass
class ExportedModel:
    """An exported int8 model plus the constants the device needs to feed it."""

    path: pathlib.Path
    model_bytes: bytes
    normalization: features.Normalization
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    output_is_logits: bool
    labels: tuple
    input_shape: tuple
    normalization_source: str
    kind: str = "window"  # "window": the 1 s window model; "frame": the per-frame step model
    step_delay_frames: int = 0  # step model: its look-ahead in frames
    num_states: int = 0  # step model: state tensors
    # The recogniser settings the export chose (export_report.json["recognizer"]["settings"],
    # kws_tf.operating_point); DeviceTwin uses them unless told otherwise. None: core defaults.
    recognizer: dict | None = None
    # softmax(logits / T) of the device's scores (export_report.json["recognizer"]["score_temperature"]).
    score_temperature: float = 1.0

    @property
    def is_step(self) -> bool:
        return self.kind == "frame"


# --------------------------------------------------------------------------- loading

def _find_mean_std(obj, path=""):
    """(path, dict) of every `{"mean": [32], "std": [32]}` object inside a JSON value."""
    found = []
    if isinstance(obj, dict):
        mean, std = obj.get("mean"), obj.get("std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == features.NUM_MFCC:
            found.append((path, obj))
        for key, value in obj.items():
            found.extend(_find_mean_std(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(obj, list) and len(obj) < 64:
        for i, value in enumerate(obj):
            found.extend(_find_mean_std(value, f"{path}[{i}]"))
    return found


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SimulateError(f"{path}: not readable JSON ({e})") from None


def _normalization_from_folder(folder: pathlib.Path, report: dict | None) -> tuple[features.Normalization, str]:
    candidates = []
    norm_path = folder / "normalization.json"
    if norm_path.exists():
        candidates.append((str(norm_path), _read_json(norm_path)))
    if report is not None:
        found = _find_mean_std(report)
        found.sort(key=lambda pd: (0 if "normali" in pd[0].lower() else 1, len(pd[0])))
        candidates += [(f"{folder / 'export_report.json'}:{p or '/'}", d) for p, d in found]
    if not candidates:
        raise SimulateError(f"no normalisation next to the model: expected {folder / 'export_report.json'} "
                            f"(with mean/std) or {norm_path}")
    source, d = candidates[0]
    try:
        return features.Normalization.from_dict(d), source
    except (KeyError, TypeError, ValueError) as e:
        raise SimulateError(f"{source}: unusable normalisation ({e})") from None


def input_kind(shape) -> str | None:
    """"window" for one front-end window (NUM_FRAMES x NUM_MFCC, batch 1), "frame" for one
    frame (1 x NUM_MFCC: a step model's input 0), None for anything else."""
    dims = tuple(int(d) for d in shape)
    for kind, frames in (("window", features.NUM_FRAMES), ("frame", 1)):
        want = (frames, features.NUM_MFCC)
        if len(dims) >= 2 and dims[-2:] == want and int(np.prod(dims)) == want[0] * want[1]:
            return kind
    return None


def check_input_shape(shape, kinds=("window",)) -> str:
    """The input kind of `shape` (see `input_kind`); SimulateError unless it is one of `kinds`."""
    kind = input_kind(shape)
    if kind not in kinds:
        dims = [int(d) for d in shape]
        step = (f", or one frame [1, 1, 1, {features.NUM_MFCC}] (a step model)" if "frame" in kinds else "")
        raise SimulateError(f"model input shape {dims} does not match the front-end window "
                            f"{features.NUM_FRAMES} frames x {features.NUM_MFCC} coefficients "
                            f"(batch 1, e.g. [1, 1, {features.NUM_FRAMES}, {features.NUM_MFCC}]){step}")
    return kind


def step_delay_frames(model_bytes: bytes, report: dict | None, where: str = "") -> int:
    """The step model's look-ahead: `kws_tf.step_graph.read_step_info(model_bytes)` where that
    exists, else `export_report.json["step_model"]["delay_frames"]`."""
    try:
        from kws_tf import step_graph

        read = getattr(step_graph, "read_step_info", None)
    except ImportError:
        read = None
    if read is not None:
        try:
            info = read(model_bytes)
        except Exception:
            info = None
        delay = info.get("delay_frames") if isinstance(info, dict) else getattr(info, "delay_frames", None)
        if delay is not None:
            return int(delay)
    step = report.get("step_model") if isinstance(report, dict) else None
    if isinstance(step, dict) and isinstance(step.get("delay_frames"), int) and step["delay_frames"] >= 0:
        return int(step["delay_frames"])
    raise SimulateError(f"step model {where}: its look-ahead is unknown (export_report.json next to it has no "
                        "step_model.delay_frames); re-export the model")


def _output_op(model_bytes: bytes) -> str:
    """Name of the op that computes the model's output (looking through RESHAPEs), read with
    TFLM's own flatbuffer schema (no TensorFlow import: the CLI starts in a second)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAsModel(model_bytes, 0)
        sg = model.Subgraphs(0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        producer = {}
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            for j in range(op.OutputsLength()):
                producer[op.Outputs(j)] = (name, op.Inputs(0) if op.InputsLength() else -1)
        tensor = sg.Outputs(0)
        for _ in range(sg.OperatorsLength()):
            name, first_input = producer.get(tensor, ("?", -1))
            if name not in ("RESHAPE", "SQUEEZE"):
                return name
            tensor = first_input
    except Exception:
        return "?"
    return "?"


def _check_streaming_frontend(path: pathlib.Path) -> None:
    """The twin feeds the model micro_app's MFCC frames: refuse, in one line, a model whose export
    folder records another front-end (`kws_tf.frontends`, normalization.json's "frontend")."""
    norm_path = path.parent / "normalization.json"
    if not norm_path.is_file():
        return
    obj = _read_json(norm_path)
    name = obj.get("frontend", "mfcc") if isinstance(obj, dict) else "mfcc"
    from kws_tf import frontends

    try:
        fe = frontends.get(str(name))
    except ValueError as e:
        raise SimulateError(f"{norm_path}: {e}") from None
    if not fe.streams:
        raise SimulateError(f"model {path} takes {frontends.shape_summary(fe)} input; the device twin streams "
                            "micro_app's MFCC front-end only")


def load_exported(model_path) -> ExportedModel:
    """Reads an exported model and the constants from its export folder; checks it fits the device.

    `model_path`: `model_int8.tflite` (windowed), `model_step_int8.tflite` (per-frame step
    model; `kind == "frame"`), or the export folder (its windowed `model_int8.tflite`).
    """
    from kws_tf import tflm

    path = pathlib.Path(model_path)
    if path.is_dir():
        path = path / "model_int8.tflite"
    if not path.is_file():
        raise SimulateError(f"model {path} does not exist")
    model_bytes = path.read_bytes()
    if not model_bytes:
        raise SimulateError(f"model {path} is empty")
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise SimulateError(f"model {path} is not a TFLite flatbuffer")
    try:
        runner = tflm.TflmRunner(model_bytes)
    except tflm.TflmError as e:
        raise SimulateError(f"model {path}: {e}") from None
    _check_streaming_frontend(path)
    quant = {}
    for role, det in (("input", runner.input_details), ("output", runner.output_details)):
        if np.dtype(det["dtype"]) != np.int8:
            raise SimulateError(f"model {path}: its {role} is {np.dtype(det['dtype']).name}; the device needs a "
                                "fully int8 model (export with --int8)")
        q = det.get("quantization_parameters") or {}
        scales, zps = np.asarray(q.get("scales", [])).reshape(-1), np.asarray(q.get("zero_points", [])).reshape(-1)
        if scales.size != 1:
            raise SimulateError(f"model {path}: its {role} is not quantised per tensor")
        quant[role] = (float(scales[0]), int(zps[0]) if zps.size else 0)
    kind = check_input_shape(runner.input_shape, kinds=("window", "frame"))
    out_shape = tuple(int(d) for d in runner.output_details["shape"])
    folder = path.parent
    report_path = folder / "export_report.json"
    report = _read_json(report_path) if report_path.exists() else None
    delay, num_states = 0, 0
    if kind == "frame":
        try:
            num_states = tflm.StepRunner(model_bytes).num_states
        except tflm.TflmError as e:
            raise SimulateError(f"model {path}: {e}") from None
        delay = step_delay_frames(model_bytes, report, str(path))
    norm, norm_source = _normalization_from_folder(folder, report)
    label_list = tuple(labels_lib.LABELS)
    if isinstance(report, dict) and isinstance(report.get("labels"), list):
        label_list = tuple(str(s) for s in report["labels"])
    num_out = int(np.prod(out_shape)) if out_shape else 0
    if num_out != len(label_list):
        raise SimulateError(f"model {path} has {num_out} outputs but {len(label_list)} labels")
    return ExportedModel(
        path=path, model_bytes=model_bytes, normalization=norm,
        input_scale=quant["input"][0], input_zero_point=quant["input"][1],
        output_scale=quant["output"][0], output_zero_point=quant["output"][1],
        output_is_logits=_output_op(model_bytes) != "SOFTMAX",
        labels=label_list, input_shape=runner.input_shape, normalization_source=norm_source,
        kind=kind, step_delay_frames=delay, num_states=num_states,
        recognizer=_exported_recognizer(report),
        score_temperature=_exported_temperature(report),
    )


def _exported_temperature(report) -> float:
    rec = report.get("recognizer") if isinstance(report, dict) else None
    t = rec.get("score_temperature") if isinstance(rec, dict) else None
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else 1.0


def _exported_recognizer(report) -> dict | None:
    rec = report.get("recognizer") if isinstance(report, dict) else None
    settings = rec.get("settings") if isinstance(rec, dict) else None
    if not isinstance(settings, dict):
        return None
    return {k: int(v) for k, v in settings.items() if k in RECOGNIZER_SETTINGS and isinstance(v, (int, float))}


