"""Evaluate a trained or exported model: accuracy, per-class accuracy, confusion, SNR sweep, gates.

    python -m kws_tf.evaluate --model=PATH [--runtime=keras|tflite|tflm]
        [--data_dir=DIR | --split=validation|test|all] [--out=DIR] [--normalization=norm.json]
        [--snr [--snr_levels=clean,20,10,5,0] [--noise_dir=DIR]] [--gates=N] [--wav=a.wav,b.wav]

`--model` is
- a model_dir of `kws_tf.train` (or its `model.keras`): runtime `keras` (default);
- a `.tflite` file, float or int8 (or an export folder, meaning its `model_int8.tflite`):
  runtime `tflite` (default: the ai_edge_litert interpreter with the reference kernels,
  `--tflite_kernels=optimized` for the default ones) or `tflm` (the real TensorFlow
  Lite Micro interpreter of the `tflite_micro` package);
- a per-frame step model (`model_step_int8.tflite`): runtime `tflm`; each clip is streamed
  frame by frame with the context it needs (`--step_context=silence|neighbours|zeros`:
  `kws_tf.step_clips`) and classified at the hop whose 1 s window is the clip.

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
import pathlib
import sys

import numpy as np

from kws_tf import features, labels, metrics
from kws_tf.audio_io import AudioError, ReadStats, read_wav
from kws_tf.predictors import (INPUT_SHAPE, RUNTIMES, EvalError, Predictor,  # noqa: F401
                               _read_json, find_normalization, load_predictor, normalized_features)

SPLITS = ("test", "validation", "all")
DEFAULT_SNR_LEVELS = (None, 20.0, 10.0, 5.0, 0.0)  # None = clean


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
         "normalization_source": predictor.normalization_source, "frontend": predictor.frontend,
         "features": predictor.normalization.frontend}
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
    from kws_tf.models import sparknet
    from kws_tf import plots

    if predictor.keras_model is None:
        raise EvalError("gate pictures need the keras runtime (the flatbuffer does not expose the gate mask); "
                        "pass the model_dir with --runtime=keras")
    out_dir = pathlib.Path(out_dir)
    x = predictor.features(audio_set)
    try:
        gate_net = sparknet.gate_model(predictor.keras_model)
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
                   max_clips: int | None = None, step_context: str = "silence", log=print) -> dict:
    """The whole CLI as a function: evaluate, optionally sweep SNR and draw gates; write outputs.

    Returns `{"eval": ..., "snr": ... or None, "gates": ... or None, "out": folder}`.
    """
    from kws_tf.fsutil import atomic_write_json

    levels = parse_snr_levels(snr_levels)
    if gates < 0:
        raise EvalError("--gates must be >= 0")
    predictor = load_predictor(model, runtime, normalization, reference_kernels, step_context)
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
    flags.DEFINE_enum("step_context", "silence", ["silence", "neighbours", "zeros"],
                      "Step models: what surrounds each clip in its stream (digital silence, the ends of "
                      "neighbouring clips, or zero-point feature frames).", flag_values=fv)
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
            pred = load_predictor(fv.model, fv.runtime, fv.normalization, fv.tflite_kernels == "reference",
                                  fv.step_context)
            for row in classify_wavs(pred, fv.wav, log=lambda m: print(m, file=sys.stderr)):
                top3 = np.argsort(row["scores"])[::-1][:3]
                log(f"{row['path']}: {row['label']}  (" +
                    ", ".join(f"{labels.LABELS[i]} {row['scores'][i]:.2f}" for i in top3) + ")")
            return 0
        run_evaluation(fv.model, fv.runtime, fv.data_dir, fv.split, fv.out, fv.normalization, fv.snr,
                       fv.snr_levels, fv.noise_dir, fv.seed, fv.gates, fv.tflite_kernels == "reference",
                       fv.tfds_data_dir, fv.max_clips, step_context=fv.step_context, log=log)
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
        return 1


def main(argv):
    from absl import flags, logging

    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(1)
    logging.set_verbosity(logging.WARNING)
    sys.exit(run_cli(flags.FLAGS))


if __name__ == "__main__":
    from absl import app

    from kws_tf import cli_env

    cli_env.start()  # before TensorFlow is imported: its start-up lines off stderr unless --tf_logs
    define_flags()
    app.run(main)
