"""Export's inputs and outputs: the trained model_dir it reads, the folder it writes, and the
reader of a finished export folder (`load_export`)."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import pathlib
import shutil

import numpy as np

from kws_tf import features, labels


class ExportError(RuntimeError):
    """The export cannot be done or failed a check; the message is one line for the user."""


# --------------------------------------------------------------------------- model_dir

@dataclasses.dataclass
class TrainedModel:
    net: object  # tf_keras Model (float, as trained)
    run_config: dict
    normalization: features.Normalization
    model_dir: pathlib.Path
    weights_file: pathlib.Path


def _read_json(path: pathlib.Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{what} {path} is corrupt or unreadable ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise ExportError(f"{what} {path} is corrupt (not a JSON object)")
    return obj


def load_trained(model_dir) -> TrainedModel:
    """The trained float model of a `kws_tf.train` model_dir (best weights), its config and normalisation."""
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        raise ExportError(f"model_dir {model_dir} does not exist")
    cfg_path, norm_path = model_dir / "run_config.json", model_dir / "normalization.json"
    weights = [p for p in (model_dir / "best.weights.h5", model_dir / "model.keras") if p.is_file()]
    missing = [p.name for p in (cfg_path, norm_path) if not p.is_file()] + ([] if weights else ["best.weights.h5"])
    if missing:
        raise ExportError(f"model_dir {model_dir} is incomplete: no {', '.join(missing)} "
                          "(export needs a finished kws_tf.train run)")
    run_config = _read_json(cfg_path, "run config")
    for key in ("model", "channels", "data"):
        if key not in run_config:
            raise ExportError(f"run config {cfg_path} is incomplete (no {key!r})")
    from kws_tf import models

    try:
        frontend = models.get(str(run_config["model"])).frontend
    except ValueError as e:
        raise ExportError(f"run config {cfg_path}: {e}") from None
    try:
        normalization = features.Normalization.from_dict(_read_json(norm_path, "normalisation"))
    except (KeyError, TypeError, ValueError) as e:
        raise ExportError(f"normalisation {norm_path} is invalid ({e})") from None
    try:
        normalization.require(frontend, f"normalisation {norm_path}")
    except ValueError as e:
        raise ExportError(str(e)) from None

    from kws_tf import train

    try:
        net, _ = train._build(run_config, total_steps=1)
    except Exception as e:
        raise ExportError(f"run config {cfg_path} does not describe a buildable model ({_first_line(e)})") from None
    weights_file = weights[0]
    try:
        if weights_file.suffix == ".h5":
            net.load_weights(str(weights_file))
        else:
            import tf_keras as keras

            from kws_tf import models

            loaded = keras.models.load_model(str(weights_file), custom_objects=models.custom_objects(),
                                             compile=False)
            net.set_weights(loaded.get_weights())
    except Exception as e:
        raise ExportError(f"cannot load weights from {weights_file}: corrupt or not this model's "
                          f"({_first_line(e)})") from None
    return TrainedModel(net, run_config, normalization, model_dir, weights_file)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:300] if text else type(e).__name__)


# --------------------------------------------------------------------------- features

def device_features(audio: np.ndarray, normalization: features.Normalization) -> np.ndarray:
    """Normalised features `[N, 1, steps, dim]` float32 of int16 clips `[N, samples]`, as the device
    computes them: the NumPy reference of the normalisation's front-end (`kws_tf.frontends`; MFCC
    `[N, 1, 101, 32]`), then `Normalization.apply_np` where that front-end is normalised."""
    from kws_tf import frontends

    fe = frontends.get(normalization.frontend)
    out = np.empty((len(audio),) + fe.input_shape, np.float32)
    for i, pcm in enumerate(audio):
        x = fe.np(pcm)
        out[i, 0] = normalization.apply_np(x) if fe.normalized else x
    return out


def calibration_indices(n: int, count: int, seed: int = 0) -> np.ndarray:
    """A fixed random subset (sorted) of `count` of `n` training clips."""
    if count >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:count])


# --------------------------------------------------------------------------- output folder

def foreign_entries(folder: pathlib.Path, owned=None) -> list[str]:
    """Names in `folder` that export did not write: anything that is not a regular file whose
    name matches one of the `owned` patterns (fnmatch; None: every name is owned)."""
    if owned is None:
        return []
    out = []
    for entry in sorted(folder.iterdir()):
        if not (entry.is_file() and not entry.is_symlink()
                and any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in owned)):
            out.append(entry.name + ("/" if entry.is_dir() else ""))
    return out


def _foreign_error(out: pathlib.Path, names: list[str]) -> ExportError:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return ExportError(f"output folder {out} holds files export did not write ({shown}); --overwrite replaces only "
                       "export's own files: move those away or choose another --out")


def _check_out_dir(out: pathlib.Path, overwrite: bool, owned=None):
    """Refuse an output that is a file, a non-empty folder without `overwrite`, or (with it) a folder
    holding anything but the `owned` files (patterns; None: anything may be replaced)."""
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"output {out} exists and is not a folder")
        if any(out.iterdir()):
            if not overwrite:
                raise ExportError(f"output folder {out} already exists; pass --overwrite to replace it")
            foreign = foreign_entries(out, owned)
            if foreign:
                raise _foreign_error(out, foreign)


def _publish(tmp: pathlib.Path, out: pathlib.Path, owned=None):
    """Move the finished temporary folder into place (replacing `out`, atomically: a reader sees the
    old set of files or the new one). The replaced folder is checked once more after it has been
    moved aside: if it holds anything but the `owned` files it is put back and nothing changes."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        try:
            foreign = foreign_entries(old, owned)
            if foreign:
                raise _foreign_error(out, foreign)
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# --------------------------------------------------------------------------- consumers

@dataclasses.dataclass
class Exported:
    """An export folder: the int8 model and what the device needs to feed it."""

    folder: pathlib.Path
    model_bytes: bytes
    normalization: features.Normalization
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    labels: tuple
    report: dict | None

    def prepare(self, pcm: np.ndarray) -> np.ndarray:
        """int16 clip(s) `[samples]` or `[N, samples]` -> int8 model input `[N, 1, T, 32]` (device front-end)."""
        pcm = np.asarray(pcm)
        if pcm.ndim == 1:
            pcm = pcm[None]
        return features.quantize_np(device_features(pcm, self.normalization), self.input_scale,
                                    self.input_zero_point)

    def run_tflm(self, x_int8: np.ndarray) -> np.ndarray:
        """Raw int8 outputs `[N, classes]` from the TFLM interpreter."""
        from kws_tf import tflm

        return tflm.TflmRunner(self.model_bytes).run(x_int8).reshape(len(x_int8), -1)

    def scores(self, x_int8: np.ndarray) -> np.ndarray:
        return features.dequantize_np(self.run_tflm(x_int8), self.output_scale, self.output_zero_point)


def load_export(folder) -> Exported:
    """Read an export folder written by `export_model`."""
    from kws_tf import tflite_tools

    folder = pathlib.Path(folder)
    path = folder / "model_int8.tflite"
    if not path.is_file():
        raise ExportError(f"{folder} holds no model_int8.tflite")
    model_bytes = path.read_bytes()
    try:
        info = tflite_tools.inspect_model(model_bytes)
        in_q, out_q = tflite_tools.quant_params(info.input), tflite_tools.quant_params(info.output)
    except tflite_tools.ConversionError as e:
        raise ExportError(f"{path}: {e}") from None
    norm_path = folder / "normalization.json"
    if not norm_path.is_file():
        raise ExportError(f"{folder} holds no normalization.json")
    try:
        norm = features.Normalization.from_dict(_read_json(norm_path, "normalisation"))
    except (KeyError, TypeError, ValueError) as e:
        raise ExportError(f"normalisation {norm_path} is invalid ({e})") from None
    report_path = folder / "export_report.json"
    report = _read_json(report_path, "export report") if report_path.is_file() else None
    label_list = tuple(report["labels"]) if report and isinstance(report.get("labels"), list) else labels.LABELS
    return Exported(folder, model_bytes, norm, in_q[0], in_q[1], out_q[0], out_q[1], label_list, report)


def run_tflm(model_bytes: bytes, x_int8: np.ndarray) -> np.ndarray:
    """TFLM outputs for int8 inputs `[N, *input_shape[1:]]` (re-exported from kws_tf.tflm)."""
    from kws_tf import tflm

    return tflm.run_tflm(model_bytes, x_int8)

