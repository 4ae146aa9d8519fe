"""Evaluate a trained or exported model: accuracy, per-class accuracy, confusion, SNR sweep, gates.

    python -m kws_tf.evaluate --model=PATH [--runtime=keras|tflite|tflm]
        [--data_dir=DIR | --split=validation|test|all] [--out=DIR] [--normalization=norm.json]
        [--snr [--snr_levels=clean,20,10,5,0] [--noise_dir=DIR]] [--gates=N] [--wav=a.wav,b.wav]

`--model` is
- a model_dir of `kws_tf.train` (or its `model.keras`): runtime `keras` (default);
- a `.tflite` file, float or int8 (or an export folder, meaning its `model_int8.tflite`):
  runtime `tflite` (default: the ai_edge_litert interpreter with the reference kernels,
  `--tflite_kernels=optimized` for the default ones) or `tflm` (the real TensorFlow
  Lite Micro interpreter of the `tflite_micro` package).

Every runtime gets the same input: the MFCC of `kws_tf.features` standardised per
coefficient with the training statistics; an int8 model gets it quantised with its
input scale and zero point (`features.quantize_np`, as the device does). The statistics
come from `--normalization`, else `normalization.json` beside the model, else the
`normalization` stored in `export_report.json`, else the model_dir the export came from.

Data: `--data_dir` (Speech Commands layout), else the data the model was trained on
(`run_config.json` of the model_dir), else tfds `speech_commands`. `--split` picks
`test` (default; `validation` when the folder has no test clips), `validation` or `all`.

Outputs in `--out` (default `<model folder>/eval`), `<tag>` = keras, tflite_int8,
tflite_float or tflm:
  eval_<tag>.json, confusion_<tag>.png            accuracy, per_class, confusion, clips
  snr_<tag>.json, snr_<tag>.png                   --snr: the same at each noise level
  gates_<tag>.json, gate_open_fraction_<tag>.png, gates_<tag>/clip_*.png   --gates=N (keras)
`--wav` classifies single files and prints the scores instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys

import numpy as np

from kws_tf import features, labels, metrics
from kws_tf.audio_io import AudioError, ReadStats, read_wav

RUNTIMES = ("keras", "tflite", "tflm")
SPLITS = ("test", "validation", "all")
DEFAULT_SNR_LEVELS = (None, 20.0, 10.0, 5.0, 0.0)  # None = clean
INPUT_SHAPE = (1, features.NUM_FRAMES, features.NUM_MFCC)


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

    @property
    def frontend(self) -> str:
        """Keras sees the training front-end; flatbuffers the device's (NumPy reference)."""
        return "tf" if self.runtime == "keras" else "device"

    def features(self, audio_set) -> np.ndarray:
        return normalized_features(audio_set, self.normalization, self.frontend)

    @property
    def tag(self) -> str:
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


def _check_input_shape(shape, where) -> tuple:
    shape = tuple(int(d) for d in shape)
    if shape != INPUT_SHAPE:
        raise EvalError(f"{where}: model input shape {shape} does not match the front-end settings {INPUT_SHAPE} "
                        f"({features.NUM_FRAMES} frames x {features.NUM_MFCC} MFCC)")
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
                   reference_kernels: bool = True) -> Predictor:
    """Open `model` (model_dir, .keras, .tflite, export folder) for `runtime` (None: by file type)."""
    if runtime is not None and runtime not in RUNTIMES:
        raise EvalError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    path, runtime = _resolve_model_path(model, runtime)
    norm, norm_src = find_normalization(path, normalization)
    folder = path.parent
    if runtime == "keras" and path.is_dir():
        from kws_tf import export

        try:
            net = export.load_trained(path).net
        except export.ExportError as e:
            raise EvalError(str(e)) from None
        _check_output(int(net.output_shape[-1]), path)
        return Predictor("keras", "float", str(path / "best.weights.h5"), norm, norm_src,
                         _check_input_shape(net.input_shape[1:], path), keras_model=net, model_dir=str(path))
    if runtime == "keras":
        import tf_keras as keras

        from kws_tf import model as model_lib

        try:
            net = keras.models.load_model(str(path), custom_objects=model_lib.custom_objects(), compile=False)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EvalError(f"{path}: not a loadable Keras model ({msg})") from None
        shape = _check_input_shape(net.input_shape[1:], path)
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
    shape = _check_input_shape(inp.shape[1:], path)
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


# --------------------------------------------------------------------------- data

@dataclasses.dataclass
class EvalData:
    clips: object  # data.AudioSet
    noise: list
    source: str
    split: str
    noise_source: str = ""


def load_eval_data(data_dir: str | None = None, split: str | None = None, model_dir: str | None = None,
                   noise_dir: str | None = None, tfds_data_dir: str | None = None, max_clips: int | None = None,
                   log=print, max_per_class: int | None = None) -> EvalData:
    """The clips of `split` from `data_dir`, else the model's own data source, else tfds."""
    from kws_tf import data

    if split is not None and split not in SPLITS:
        raise EvalError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    src = {"kind": "folder", "path": data_dir, "validation_percent": 10.0, "test_percent": 10.0} if data_dir else None
    if src is None and model_dir and (pathlib.Path(model_dir) / "run_config.json").is_file():
        src = _read_json(pathlib.Path(model_dir) / "run_config.json").get("data")
        if src:
            log(f"data: the model's own source ({src.get('kind')}: {src.get('path') or 'tfds'})")
    try:
        if src and src.get("kind") == "folder":
            ds = data.load_folder(src["path"], src.get("validation_percent", 10.0), src.get("test_percent", 10.0),
                                  noise_dir=noise_dir or src.get("noise_dir"),
                                  max_per_class=max_per_class or src.get("max_per_class"), log=log)
        else:
            ds = data.load_tfds(tfds_data_dir or (src or {}).get("tfds_data_dir"), log=log)
            if noise_dir:
                ds.noise = data.load_noise(noise_dir)
    except data.DataError as e:
        raise EvalError(str(e)) from None
    if noise_dir and not ds.noise:
        raise EvalError(f"--noise_dir {noise_dir} holds no readable wav")
    if split == "all":
        parts = [s for s in (ds.train, ds.validation, ds.test) if s is not None and len(s)]
        clips = data.AudioSet(np.concatenate([p.audio for p in parts]), np.concatenate([p.labels for p in parts]),
                              sum((list(p.names) for p in parts), []))
    else:
        chosen = split or "test"
        clips = ds.test if chosen == "test" else ds.validation
        if (clips is None or len(clips) == 0) and split is None:
            chosen, clips = "validation", ds.validation
            log("note: no test clips in this data; evaluating the validation split")
        if clips is None or len(clips) == 0:
            raise EvalError(f"the data ({ds.source}) has no {chosen} clips; try --split=all")
        split = chosen
    if max_clips and len(clips) > max_clips:
        idx = np.sort(np.random.default_rng(0).permutation(len(clips))[:max_clips])
        clips = clips.subset(idx)
    eff_noise = noise_dir or (src or {}).get("noise_dir")
    noise_source = eff_noise or ("_background_noise_ of the data" if src and src.get("kind") == "folder"
                                 else "_silence_ clips of tfds train")
    return EvalData(clips, ds.noise, ds.source, split, noise_source)


def normalized_features(audio_set, normalization: features.Normalization, frontend: str = "tf") -> np.ndarray:
    """`[N, 1, T, 32]` standardised MFCC of int16 clips (the model input before int8 quantisation).

    `frontend="tf"`: the batched TF graph training uses (`data.clean_features`);
    `"device"`: the NumPy reference the device reproduces (`export.device_features`).
    """
    if frontend == "device":
        from kws_tf import export

        return export.device_features(audio_set.audio, normalization)
    from kws_tf import data

    return data.clean_features(audio_set, normalization)


# --------------------------------------------------------------------------- evaluation

def evaluate_clips(predictor: Predictor, audio_set) -> dict:
    """metrics.summarize of the predictions, plus the predictions themselves."""
    x = predictor.features(audio_set)
    pred = predictor.predict(x)
    summary = metrics.summarize(audio_set.labels, pred)
    summary["predictions"] = [int(p) for p in pred]
    return summary


def _describe(predictor: Predictor) -> dict:
    d = {"runtime": predictor.runtime, "precision": predictor.precision, "model": predictor.model_path,
         "normalization_source": predictor.normalization_source, "frontend": predictor.frontend}
    if predictor.runtime == "tflite":
        d["kernels"] = "reference" if predictor.reference_kernels else "optimized"
    if predictor.input_quant is not None:
        d["input_scale"], d["input_zero_point"] = float(predictor.input_quant[0]), int(predictor.input_quant[1])
    return d


def parse_snr_levels(text) -> list:
    """'clean,20,10,5,0' -> [None, 20.0, 10.0, 5.0, 0.0]."""
    if not isinstance(text, str):
        return [None if (v is None or v == "clean") else float(v) for v in text]
    levels = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in ("clean", "inf", "none"):
            levels.append(None)
            continue
        try:
            levels.append(float(part.removesuffix("db")))
        except ValueError:
            raise EvalError(f"--snr_levels: {part!r} is not a number or 'clean'") from None
    if not levels:
        raise EvalError("--snr_levels is empty")
    return levels


def noisy_clips(audio_set, noise: list, snr_db: float | None, seed: int = 0):
    """`audio_set` with background noise mixed in at `snr_db` (None: unchanged), as int16 clips.

    Each clip gets its own noise segment, drawn from the concatenated noise recordings with
    `np.random.default_rng(seed)`: the same clips and seed give the same segments at every
    level, so only the level changes along a sweep. Mixing is `augment.mix_at_snr`
    (rms ratio per clip), then clipped to [-1, 1) and rounded to int16 like a microphone.
    """
    from kws_tf import augment, data
    from kws_tf.audio_io import to_int16

    if snr_db is None:
        return audio_set
    pool = augment.noise_pool(noise)
    if pool.shape[0] == 0:
        raise EvalError("no background noise of at least 1 s to mix (the data has no _background_noise_ folder); "
                        "pass --noise_dir")
    n, length = len(audio_set), features.CLIP_SAMPLES
    starts = np.random.default_rng(seed).integers(0, pool.shape[0] - length + 1, size=n)
    segments = pool[starts[:, None] + np.arange(length)[None, :]]
    wave = features.pcm_to_float(audio_set.audio)
    mixed = np.asarray(augment.mix_at_snr(wave, segments, np.float32(snr_db)))
    return data.AudioSet(to_int16(np.clip(mixed, -1.0, 1.0)), audio_set.labels, list(audio_set.names))


def snr_sweep(predictor: Predictor, audio_set, noise: list, levels=DEFAULT_SNR_LEVELS, seed: int = 0,
              log=print) -> list[dict]:
    """Accuracy (and per-class accuracy) of `predictor` at each noise level."""
    rows = []
    for level in levels:
        s = evaluate_clips(predictor, noisy_clips(audio_set, noise, level, seed))
        rows.append({"snr_db": level, "accuracy": s["accuracy"], "per_class": s["per_class"], "clips": s["clips"]})
        log(f"  {_snr_text(level):>8}  accuracy {s['accuracy']:.4f}")
    return rows


def _snr_text(level) -> str:
    return "clean" if level is None else f"{level:g} dB"


def format_snr_table(rows: list[dict]) -> str:
    lines = [f"{'SNR':>8}  {'accuracy':>8}  {'clips':>6}"]
    for r in rows:
        lines.append(f"{_snr_text(r['snr_db']):>8}  {100 * r['accuracy']:7.2f}%  {r['clips']:>6}")
    return "\n".join(lines)


def choose_gate_clips(y: np.ndarray, n: int) -> list[int]:
    """`n` clip indices, one per class when possible (classes in label order, round robin)."""
    by_class = [list(np.flatnonzero(np.asarray(y) == c)) for c in range(labels.NUM_CLASSES)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n and any(len(b) > depth for b in by_class):
        for b in by_class:
            if len(b) > depth and len(chosen) < n:
                chosen.append(int(b[depth]))
        depth += 1
    return chosen


def gate_analysis(predictor: Predictor, audio_set, n: int, out_dir, log=print) -> dict:
    """Gate pictures of `n` clips and the open-gate fraction per class (keras runtime only).

    Open means g > 0 (the gate passes anything), the measure train's report uses.
    """
    from kws_tf import model as model_lib
    from kws_tf import plots

    if predictor.keras_model is None:
        raise EvalError("gate pictures need the keras runtime (the flatbuffer does not expose the gate mask); "
                        "pass the model_dir with --runtime=keras")
    out_dir = pathlib.Path(out_dir)
    x = predictor.features(audio_set)
    try:
        gate_net = model_lib.gate_model(predictor.keras_model)
    except ValueError:
        raise EvalError(f"{predictor.model_path} has no gate layer (only SparkNet models have a gate mask)") from None
    gates = np.asarray(gate_net.predict(x, batch_size=256, verbose=0))
    pred = np.argmax(predictor.keras_model.predict(x, batch_size=256, verbose=0), axis=-1)
    y = np.asarray(audio_set.labels)
    open_per_clip = (gates > 0).reshape(len(gates), -1).mean(axis=1)
    mean_per_clip = gates.reshape(len(gates), -1).mean(axis=1)
    per_class, per_class_mean, counts = {}, {}, {}
    for c, name in enumerate(labels.LABELS):
        m = y == c
        counts[name] = int(m.sum())
        per_class[name] = float(open_per_clip[m].mean()) if m.any() else None
        per_class_mean[name] = float(mean_per_clip[m].mean()) if m.any() else None
    tag = predictor.tag
    pic_dir = out_dir / f"gates_{tag}"
    pic_dir.mkdir(parents=True, exist_ok=True)
    pictures = []
    for k, i in enumerate(choose_gate_clips(y, n)):
        name = labels.LABELS[y[i]]
        path = pic_dir / f"clip_{k:02d}_{name.strip('_')}.png"
        clip_name = audio_set.names[i] if audio_set.names else f"clip {i}"
        plots.plot_gate_clip(x[i, 0], gates[i, 0], path,
                             title=f"{clip_name}: true {name}, predicted {labels.LABELS[pred[i]]}")
        pictures.append({"path": str(path), "clip": clip_name, "label": name,
                         "predicted": labels.LABELS[pred[i]], "open_fraction": float(open_per_clip[i])})
    bar = out_dir / f"gate_open_fraction_{tag}.png"
    plots.plot_open_fraction(per_class, bar, title=f"open-gate fraction per class ({len(y)} clips, "
                                                   f"overall {open_per_clip.mean():.1%})")
    log(f"gates: open fraction {open_per_clip.mean():.4f} overall; {len(pictures)} pictures in {pic_dir}")
    return {"open_fraction": float(open_per_clip.mean()), "gate_mean": float(gates.mean()),
            "per_class_open_fraction": per_class, "per_class_gate_mean": per_class_mean,
            "per_class_clips": counts, "pictures": pictures, "bar_chart": str(bar)}


def default_out_dir(predictor: Predictor) -> pathlib.Path:
    return pathlib.Path(predictor.model_path).parent / "eval"


def run_evaluation(model, runtime: str | None = None, data_dir: str | None = None, split: str | None = None,
                   out: str | None = None, normalization: str | None = None, snr: bool = False,
                   snr_levels=DEFAULT_SNR_LEVELS, noise_dir: str | None = None, seed: int = 0, gates: int = 0,
                   reference_kernels: bool = True, tfds_data_dir: str | None = None,
                   max_clips: int | None = None, log=print) -> dict:
    """The whole CLI as a function: evaluate, optionally sweep SNR and draw gates; write outputs.

    Returns `{"eval": ..., "snr": ... or None, "gates": ... or None, "out": folder}`.
    """
    from kws_tf.fsutil import atomic_write_json

    levels = parse_snr_levels(snr_levels)
    if gates < 0:
        raise EvalError("--gates must be >= 0")
    predictor = load_predictor(model, runtime, normalization, reference_kernels)
    if gates and predictor.keras_model is None:
        raise EvalError("gate pictures need the keras runtime (the flatbuffer does not expose the gate mask); "
                        "pass the model_dir with --runtime=keras")
    ed = load_eval_data(data_dir, split, predictor.model_dir, noise_dir, tfds_data_dir, max_clips, log)
    out_dir = pathlib.Path(out) if out else default_out_dir(predictor)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = predictor.tag
    head = {**_describe(predictor), "data_source": ed.source, "split": ed.split}

    summary = evaluate_clips(predictor, ed.clips)
    result = {**head, **summary, "clip_names": list(ed.clips.names)}
    atomic_write_json(out_dir / f"eval_{tag}.json", result)
    metrics.plot_confusion(summary["confusion"], labels.LABELS, out_dir / f"confusion_{tag}.png",
                           title=f"{tag}, {ed.split} accuracy {summary['accuracy']:.3f} ({summary['clips']} clips)")
    log(f"{tag}: accuracy {summary['accuracy']:.4f} on {summary['clips']} {ed.split} clips "
        f"-> {out_dir / f'eval_{tag}.json'}")

    snr_result = None
    if snr:
        noise = ed.noise
        if not noise:
            raise EvalError("--snr: no background noise (the data has no _background_noise_ folder); pass --noise_dir")
        log(f"SNR sweep ({tag}, seed {seed}):")
        rows = snr_sweep(predictor, ed.clips, noise, levels, seed, log=lambda m: None)
        print_fn = log
        print_fn(format_snr_table(rows))
        snr_result = {**head, "seed": seed, "noise": ed.noise_source, "levels": rows}
        atomic_write_json(out_dir / f"snr_{tag}.json", snr_result)
        from kws_tf import plots

        plots.plot_snr_curve({tag: rows}, out_dir / f"snr_{tag}.png",
                             title=f"{tag}: accuracy vs background-noise SNR ({ed.split}, {len(ed.clips)} clips)")

    gate_result = None
    if gates:
        gate_result = {**head, **gate_analysis(predictor, ed.clips, gates, out_dir, log)}
        atomic_write_json(out_dir / f"gates_{tag}.json", gate_result)
    return {"eval": result, "snr": snr_result, "gates": gate_result, "out": str(out_dir)}


# --------------------------------------------------------------------------- single files

def classify_wavs(predictor: Predictor, paths, log=print) -> list[dict]:
    """Scores of single wav files. Other rates are resampled and stereo downmixed (with a warning);
    empty, truncated or non-audio files raise EvalError."""
    from kws_tf import data

    rows = []
    for p in paths:
        stats = ReadStats()
        try:
            pcm = read_wav(p, stats)
        except AudioError as e:
            raise EvalError(str(e)) from None
        if len(pcm) < features.HOP_SAMPLES:
            raise EvalError(f"{p}: only {len(pcm)} samples, too short to classify")
        notes = []
        if stats.resampled:
            notes.append(f"resampled to {features.SAMPLE_RATE} Hz")
        if stats.downmixed:
            notes.append("downmixed to mono")
        if len(pcm) != features.CLIP_SAMPLES:
            notes.append(f"{len(pcm)} samples {'cropped' if len(pcm) > features.CLIP_SAMPLES else 'zero-padded'} to 1 s")
        if notes:
            log(f"warning: {p}: {', '.join(notes)}")
        clip = data.AudioSet(features.fix_length(pcm)[None].astype(np.int16), np.zeros((1,), np.int32), [str(p)])
        s = predictor.scores(predictor.features(clip))[0]
        top = int(np.argmax(s))
        rows.append({"path": str(p), "label": labels.LABELS[top], "scores": [float(v) for v in s], "notes": notes})
    return rows


# --------------------------------------------------------------------------- CLI

def define_flags(fv=None):
    """The CLI's flags, on `fv` (default: absl's global FLAGS; tests pass their own FlagValues)."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    flags.DEFINE_string("model", None, "model_dir, .keras, .tflite or export folder.", flag_values=fv)
    flags.DEFINE_enum("runtime", None, list(RUNTIMES), "keras | tflite | tflm (default: from --model's type).",
                      flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Speech Commands-layout folder (default: the model's own data source).",
                        flag_values=fv)
    flags.DEFINE_enum("split", None, list(SPLITS), "Which clips (default test, else validation).", flag_values=fv)
    flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir for speech_commands.", flag_values=fv)
    flags.DEFINE_string("out", None, "Output folder (default: <model folder>/eval).", flag_values=fv)
    flags.DEFINE_string("normalization", None, "normalization.json overriding the one found beside the model.",
                        flag_values=fv)
    flags.DEFINE_bool("snr", False, "Also evaluate with background noise mixed in at --snr_levels.", flag_values=fv)
    flags.DEFINE_string("snr_levels", "clean,20,10,5,0", "Comma-separated SNRs in dB ('clean' = no noise).",
                        flag_values=fv)
    flags.DEFINE_string("noise_dir", None, "Noise wav folder (default: the data's _background_noise_).",
                        flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the noise segments.", flag_values=fv)
    flags.DEFINE_integer("gates", 0, "Draw the gate mask of N clips (keras runtime) + open fraction per class.",
                         flag_values=fv)
    flags.DEFINE_enum("tflite_kernels", "reference", ["reference", "optimized"],
                      "TFLite interpreter kernels (reference = what TFLM reproduces bit for bit).", flag_values=fv)
    flags.DEFINE_integer("max_clips", None, "Evaluate a fixed random subset of at most N clips.", flag_values=fv)
    flags.DEFINE_list("wav", None, "Classify these wav files (prints scores) instead of a data set.", flag_values=fv)


def run_cli(fv) -> int:
    """Run with parsed flags `fv`; errors -> one `error: ...` line on stderr, exit status 1."""
    from kws_tf.data import DataError

    def log(m):
        print(m, flush=True)

    try:
        if not fv.model:
            raise EvalError("--model is required (a model_dir, .keras, .tflite or export folder)")
        if fv.wav:
            pred = load_predictor(fv.model, fv.runtime, fv.normalization, fv.tflite_kernels == "reference")
            for row in classify_wavs(pred, fv.wav, log=lambda m: print(m, file=sys.stderr)):
                top3 = np.argsort(row["scores"])[::-1][:3]
                log(f"{row['path']}: {row['label']}  (" +
                    ", ".join(f"{labels.LABELS[i]} {row['scores'][i]:.2f}" for i in top3) + ")")
            return 0
        run_evaluation(fv.model, fv.runtime, fv.data_dir, fv.split, fv.out, fv.normalization, fv.snr,
                       fv.snr_levels, fv.noise_dir, fv.seed, fv.gates, fv.tflite_kernels == "reference",
                       fv.tfds_data_dir, fv.max_clips, log=log)
        return 0
    except (EvalError, DataError, AudioError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the exporter's / interpreters' own one-line errors
        from kws_tf import tflite_tools, tflm

        if isinstance(e, (tflite_tools.ConversionError, tflm.TflmError)):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def main(argv):
    from absl import flags, logging

    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.WARNING)
    sys.exit(run_cli(flags.FLAGS))


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
