"""Models to evaluate, in the runtime they run in: Keras, the TFLite interpreter, TFLM.

`load_predictor(model, runtime)` opens a model_dir, a `.keras` file, a `.tflite` file or an
export folder; a `Predictor` maps a set of clips to scores. A per-frame step model
(`model_step_int8.tflite`) runs in TFLM: each clip is streamed frame by frame in its
context (`kws_tf.step_clips`, `--step_context`) and read at the hop whose window is the clip.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np

from kws_tf import features, labels

RUNTIMES = ("keras", "tflite", "tflm")
INPUT_SHAPE = (1, features.NUM_FRAMES, features.NUM_MFCC)  # the MFCC front-end's; see kws_tf.frontends


class EvalError(ValueError):
    """The evaluation cannot run as asked; the message is one line for the user."""


# --------------------------------------------------------------------------- normalisation

def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EvalError(f"{path} is not readable JSON ({e})") from None


def _norm_from(obj, source) -> features.Normalization:
    try:
        return features.Normalization.from_dict(obj)
    except (KeyError, TypeError, ValueError) as e:
        raise EvalError(f"{source} does not hold a valid normalisation ({e})") from None


def _export_source_dir(folder: pathlib.Path) -> pathlib.Path | None:
    """The model_dir an export folder came from, as export_report.json records it (if it does)."""
    rep = folder / "export_report.json"
    if not rep.exists():
        return None
    report = _read_json(rep)
    for key in ("model_dir", "source_model_dir", "keras_model_dir"):
        value = report.get(key)
        if isinstance(value, str) and value:
            p = pathlib.Path(value)
            return p if p.is_dir() else None
    return None


def find_normalization(model_path, override=None) -> tuple[features.Normalization, str]:
    """(normalisation, where it came from) for a model file or folder.

    Order: `override` json; `normalization.json` in the model's folder; the
    `normalization` entry of `export_report.json` there; `normalization.json` of the
    model_dir the export report names; `normalization.json` one folder up.
    """
    if override:
        p = pathlib.Path(override)
        if not p.is_file():
            raise EvalError(f"--normalization {override} does not exist")
        return _norm_from(_read_json(p), p), str(p)
    path = pathlib.Path(model_path)
    folder = path if path.is_dir() else path.parent
    looked = []
    candidate = folder / "normalization.json"
    looked.append(str(candidate))
    if candidate.is_file():
        return _norm_from(_read_json(candidate), candidate), str(candidate)
    rep = folder / "export_report.json"
    looked.append(f"{rep}['normalization']")
    if rep.is_file():
        report = _read_json(rep)
        norm = report.get("normalization")
        if isinstance(norm, dict) and "mean" in norm:
            return _norm_from(norm, rep), f"{rep}:normalization"
        if isinstance(norm, str) and norm:
            p = pathlib.Path(norm) if os.path.isabs(norm) else folder / norm
            if p.is_file():
                return _norm_from(_read_json(p), p), str(p)
        src = _export_source_dir(folder)
        if src is not None and (src / "normalization.json").is_file():
            return _norm_from(_read_json(src / "normalization.json"), src), str(src / "normalization.json")
    up = folder.parent / "normalization.json"
    looked.append(str(up))
    if up.is_file():
        return _norm_from(_read_json(up), up), str(up)
    raise EvalError(f"no normalisation found for {model_path} (looked at {', '.join(looked)}); "
                    f"pass --normalization=normalization.json")


# --------------------------------------------------------------------------- models

@dataclasses.dataclass
class Predictor:
    """One model in one runtime: normalised features `[N, 1, T, 32]` float -> scores `[N, classes]`.

    For int8 models `raw(x)` gives the int8 outputs and `scores(x)` their dequantised values
    (argmax is the same: the output scale is positive).
    """

    runtime: str  # keras | tflite | tflm
    precision: str  # float | int8
    model_path: str
    normalization: features.Normalization
    normalization_source: str
    input_shape: tuple
    keras_model: object = None
    model_bytes: bytes | None = None
    input_quant: tuple | None = None  # (scale, zero_point)
    output_quant: tuple | None = None
    reference_kernels: bool = True
    model_dir: str | None = None  # the training run, when known (its data source)
    step_delay: int | None = None  # a per-frame step model: its look-ahead in frames
    step_context: str = "silence"  # what surrounds each clip in its stream (kws_tf.step_clips)

    @property
    def frontend(self) -> str:
        """Keras sees the training front-end; flatbuffers the device's (NumPy reference)."""
        return "tf" if self.runtime == "keras" else "device"

    def features(self, audio_set) -> np.ndarray:
        """Model input before quantisation: `[N, 1, T, 32]`, or for a step model each clip's
        stream in context `[N, 1, L, 32]` (read at hop L - 1)."""
        if self.step_delay is not None:
            from kws_tf import step_clips

            return step_clips.context_features(audio_set.audio, self.normalization, self.step_delay,
                                               self.step_context)[:, None]
        return normalized_features(audio_set, self.normalization, self.frontend)

    @property
    def tag(self) -> str:
        if self.step_delay is not None:
            return f"{self.runtime}_step_{self.step_context}"
        return f"tflite_{self.precision}" if self.runtime == "tflite" else self.runtime

    def model_input(self, x: np.ndarray) -> np.ndarray:
        """What the interpreter is fed: float features, or them quantised to int8."""
        x = np.asarray(x, np.float32)
        if self.input_quant is not None:
            return features.quantize_np(x, *self.input_quant)
        return x

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = self.model_input(x)
        if self.runtime == "keras":
            return np.asarray(self.keras_model.predict(x, batch_size=256, verbose=0))
        if self.runtime == "tflite":
            from kws_tf import tflite_tools

            return tflite_tools.run_tflite(self.model_bytes, x, reference=self.reference_kernels)
        from kws_tf import tflm

        if len(x) == 0:
            return np.zeros((0, labels.NUM_CLASSES), np.int8)
        try:
            if self.step_delay is not None:
                from kws_tf import step_clips

                return step_clips.step_outputs(self.model_bytes, x[:, 0], x.shape[2] - 1)
            return tflm.TflmRunner(self.model_bytes).run(x)
        except tflm.TflmError as e:
            raise EvalError(str(e)) from None

    def scores(self, x: np.ndarray) -> np.ndarray:
        out = self.raw(x)
        out = out.reshape(len(out), -1)
        if self.output_quant is not None:
            return features.dequantize_np(out, *self.output_quant)
        return out.astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(x), axis=-1)


def _check_input_shape(shape, where, normalization: features.Normalization | None = None) -> tuple:
    """`shape` if it is the input of the normalisation's front-end (MFCC when not given)."""
    from kws_tf import frontends

    fe = frontends.get(normalization.frontend if normalization is not None else "mfcc")
    shape = tuple(int(d) for d in shape)
    if shape != fe.input_shape:
        raise EvalError(f"{where}: model input shape {shape} does not match the front-end settings {fe.input_shape} "
                        f"({fe.name}: {fe.summary}; the normalisation found says {fe.name})")
    return shape


def _check_output(n: int, where):
    if n != labels.NUM_CLASSES:
        raise EvalError(f"{where}: model has {n} outputs, the label set has {labels.NUM_CLASSES}")


def _resolve_model_path(model, runtime: str | None) -> tuple[pathlib.Path, str]:
    path = pathlib.Path(model)
    if not path.exists():
        raise EvalError(f"--model {model} does not exist")
    if path.is_dir():
        keras_file = path / "model.keras"
        int8_file = path / "model_int8.tflite"
        if runtime in (None, "keras"):
            if keras_file.is_file():
                return keras_file, "keras"
            if (path / "best.weights.h5").is_file() and (path / "run_config.json").is_file():
                return path, "keras"  # a run still training (or interrupted): its best weights so far
            if runtime == "keras" or not int8_file.is_file():
                raise EvalError(f"{model} holds no model.keras (train writes it at the end of a run) "
                                "nor best.weights.h5 + run_config.json")
        if int8_file.is_file():
            return int8_file, runtime or "tflite"
        raise EvalError(f"{model} holds no model_int8.tflite; pass the .tflite file itself")
    if path.suffix == ".tflite":
        if runtime == "keras":
            raise EvalError(f"{model} is a flatbuffer: use --runtime=tflite or --runtime=tflm")
        return path, runtime or "tflite"
    if path.suffix in (".keras", ".h5"):
        if runtime not in (None, "keras"):
            raise EvalError(f"{model} is a Keras model: use --runtime=keras (export it for tflite/tflm)")
        return path, "keras"
    raise EvalError(f"--model {model}: expected a model_dir, a .keras file or a .tflite file")


def load_predictor(model, runtime: str | None = None, normalization: str | None = None,
                   reference_kernels: bool = True, step_context: str = "silence") -> Predictor:
    """Open `model` (model_dir, .keras, .tflite, export folder) for `runtime` (None: by file type).

    A step model (`model_step_int8.tflite`) runs in TFLM only; `step_context` says what
    surrounds each clip in its stream (`kws_tf.step_clips.CONTEXTS`).
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise EvalError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    requested = runtime
    path, runtime = _resolve_model_path(model, runtime)
    norm, norm_src = find_normalization(path, normalization)
    folder = path.parent
    if runtime == "keras" and path.is_dir():
        from kws_tf import export

        try:
            trained = export.load_trained(path)
        except export.ExportError as e:
            raise EvalError(str(e)) from None
        net = trained.net
        if norm.frontend != trained.normalization.frontend:
            raise EvalError(f"{norm_src} holds {norm.frontend} statistics but {path}'s model takes "
                            f"{trained.normalization.frontend} features")
        _check_output(int(net.output_shape[-1]), path)
        return Predictor("keras", "float", str(path / "best.weights.h5"), norm, norm_src,
                         _check_input_shape(net.input_shape[1:], path, norm), keras_model=net, model_dir=str(path))
    if runtime == "keras":
        import tf_keras as keras

        from kws_tf import models

        try:
            net = keras.models.load_model(str(path), custom_objects=models.custom_objects(), compile=False)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EvalError(f"{path}: not a loadable Keras model ({msg})") from None
        shape = _check_input_shape(net.input_shape[1:], path, norm)
        _check_output(int(net.output_shape[-1]), path)
        return Predictor("keras", "float", str(path), norm, norm_src, shape, keras_model=net,
                         model_dir=str(folder) if (folder / "run_config.json").exists() else None)

    from kws_tf import tflite_tools

    data = path.read_bytes()
    try:
        info = tflite_tools.inspect_model(data)
    except tflite_tools.ConversionError as e:
        raise EvalError(f"{path}: {e}") from None
    inp, out = info.input, info.output
    if len(info.inputs) > 1:
        return _step_predictor(path, data, info, requested or "tflm", norm, norm_src, step_context)
    shape = _check_input_shape(inp.shape[1:], path, norm)
    _check_output(int(np.prod(out.shape[1:])), path)
    if inp.dtype == "INT8":
        precision = "int8"
        in_q = tflite_tools.quant_params(inp)
    elif inp.dtype == "FLOAT32":
        precision, in_q = "float", None
    else:
        raise EvalError(f"{path}: input tensor type {inp.dtype} is neither INT8 nor FLOAT32")
    out_q = tflite_tools.quant_params(out) if out.dtype == "INT8" else None
    if runtime == "tflm" and precision != "int8":
        raise EvalError(f"{path} is a float model; the tflm runtime evaluates the int8 export (model_int8.tflite)")
    src = _export_source_dir(folder)
    if src is None and (folder.parent / "run_config.json").exists():
        src = folder.parent
    return Predictor(runtime, precision, str(path), norm, norm_src, shape, model_bytes=data,
                     input_quant=in_q, output_quant=out_q, reference_kernels=reference_kernels,
                     model_dir=str(src) if src else None)


def normalized_features(audio_set, normalization: features.Normalization, frontend: str = "tf") -> np.ndarray:
    """`[N, 1, steps, dim]` normalised features of int16 clips (the model input before int8
    quantisation), of the normalisation's front-end (`kws_tf.frontends`; MFCC `[N, 1, 101, 32]`).

    `frontend="tf"`: the batched TF graph training uses (`data.clean_features`);
    `"device"`: the NumPy reference the device reproduces (`export.device_features`).
    """
    if frontend == "device":
        from kws_tf import export

        return export.device_features(audio_set.audio, normalization)
    from kws_tf import data

    return data.clean_features(audio_set, normalization)



def _step_predictor(path, data: bytes, info, runtime: str, norm, norm_src: str, context: str) -> Predictor:
    from kws_tf import step_clips, step_graph, tflite_tools

    if runtime != "tflm":
        raise EvalError(f"{path} is a per-frame step model: evaluate it with --runtime=tflm")
    if context not in step_clips.CONTEXTS:
        raise EvalError(f"unknown step context {context!r}; choose one of {', '.join(step_clips.CONTEXTS)}")
    from kws_tf import frontends

    if not frontends.get(norm.frontend).streams:
        raise EvalError(f"{path}: a per-frame step model needs the mfcc front-end; its normalisation "
                        f"({norm_src}) is {norm.frontend}")
    step_info = step_graph.read_step_info(data)
    if not step_info:
        raise EvalError(f"{path} has {len(info.inputs)} inputs but no kws_tf step metadata (not a kws_tf step model)")
    if tuple(info.input.shape[1:]) != (1, 1, features.NUM_MFCC):
        raise EvalError(f"{path}: step model frame shape {tuple(info.input.shape[1:])} does not match the front-end "
                        f"(1, 1, {features.NUM_MFCC})")
    _check_output(int(np.prod(info.output.shape[1:])), path)
    folder = path.parent
    src = _export_source_dir(folder)
    return Predictor("tflm", "int8", str(path), norm, norm_src, tuple(int(d) for d in info.input.shape[1:]),
                     model_bytes=data, input_quant=tflite_tools.quant_params(info.input),
                     output_quant=tflite_tools.quant_params(info.output), model_dir=str(src) if src else None,
                     step_delay=int(step_info["delay_frames"]), step_context=context)
