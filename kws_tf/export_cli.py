"""The command line of `python -m kws_tf.export` (flags and `main`); the export itself is
`kws_tf.export.export_model`."""

from __future__ import annotations

import pathlib
import sys

from kws_tf.export import (DEFAULT_CALIBRATION_SAMPLES, DEFAULT_CLASSIFIER, DEFAULT_GATE,
                           DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MIN_AGREEMENT, EVAL_SPLITS, OWNED_FILES,
                           ExportError, _check_out_dir, export_model)
from kws_tf.exported_model import RECOGNIZER_SETTINGS
from kws_tf.operating_point import (DEFAULT_CALIBRATION_MINUTES, DEFAULT_CALIBRATION_SEED,
                                    DEFAULT_TARGET_FA_PER_HOUR)


def define_flags():
    from absl import flags

    flags.DEFINE_bool("int8", True, "Export the fully int8 model (the only export there is).")
    flags.DEFINE_string("model_dir", None, "A finished kws_tf.train model_dir.")
    flags.DEFINE_string("out", None, "Output folder (default: export/<model_dir basename>).")
    flags.DEFINE_string("data_dir", None, "Override the run's data folder (if it moved).")
    flags.DEFINE_integer("qat_epochs", 0, "Quantisation-aware fine-tuning epochs (0: post-training quantisation).")
    flags.DEFINE_float("qat_lr", None, "QAT learning rate (Adam; default 1e-4).")
    flags.DEFINE_integer("qat_batch_size", None, "QAT batch size (default: the run's).")
    flags.DEFINE_integer("calibration_samples", DEFAULT_CALIBRATION_SAMPLES, "Training clips used for calibration.")
    flags.DEFINE_enum("eval_split", "validation", list(EVAL_SPLITS), "Split for the accuracy/agreement checks.")
    flags.DEFINE_float("min_agreement", DEFAULT_MIN_AGREEMENT, "Opt-in: also refuse when int8/float top-1 "
                       "agreement is below this fraction (default 0: off; near-tie clips flip both ways, so "
                       "agreement is not accuracy).")
    flags.DEFINE_float("max_accuracy_drop", DEFAULT_MAX_ACCURACY_DROP, "Tolerance (accuracy points): refuse the int8 "
                       "model only when its accuracy drop below float is above this at 95 % confidence (exact "
                       "paired binomial bound on the evaluation clips where exactly one model is right).")
    flags.DEFINE_bool("per_channel_dense", True, "Per-channel weights for FULLY_CONNECTED too (if any).")
    flags.DEFINE_integer("timing_repeats", 50, "TFLM invokes timed for the median.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output folder's files (only the files export "
                      "writes; a folder holding anything else is refused, never emptied).")
    flags.DEFINE_enum("gate", DEFAULT_GATE, ["secant", "tanh"], "SparkNet's inference gate in int8: 'secant' "
                      "(clip(s*h + 0.5, 0, 1) folded into the head convolution: no op at all) or 'tanh' (the "
                      "paper's clip(tanh(h) + 0.5, 0, 1): TANH, ADD, MINIMUM).")
    flags.DEFINE_enum("classifier", DEFAULT_CLASSIFIER, ["after_average", "per_frame"],
                      "Where the linear classifier runs in int8: on the time average of the gate (the trained "
                      "order) or on every gate frame before the average (same float function; the step model's "
                      "average then covers 12 class channels instead of 32 gate channels).")
    flags.DEFINE_bool("step_model", True, "Also write the per-frame step model (model_step_int8.tflite).")
    flags.DEFINE_bool("operating_point", True, "Choose the recogniser settings for --target_fa_per_hour on a stream "
                      "of the run's validation speakers (kws_tf.operating_point); off: the device defaults.")
    flags.DEFINE_float("target_fa_per_hour", DEFAULT_TARGET_FA_PER_HOUR,
                       "Operating point: false alarms per hour to stay under.")
    flags.DEFINE_float("op_snr_db", 20.0, "Operating point: SNR of the validation stream's background noise.")
    flags.DEFINE_float("op_minutes", DEFAULT_CALIBRATION_MINUTES, "Operating point: validation stream length "
                       "(minutes; the validation clips are reused as often as that takes).")
    flags.DEFINE_integer("op_seed", DEFAULT_CALIBRATION_SEED, "Operating point: stream seed (not the streaming "
                         "benchmark's 0, so the two streams are other arrangements of the clips).")
    for _name in RECOGNIZER_SETTINGS:
        flags.DEFINE_integer(_name, None, f"Recogniser {_name} written to kws_settings.h instead of the chosen one.")
    flags.DEFINE_float("score_temperature", None, "Scores = softmax(logits / T) on the device: this T instead of the "
                       "one chosen with the operating point (among 1, 2, 3, 4); the other settings are chosen for it.")
    flags.DEFINE_string("selftest_clips", None, "Folder with the micro_speech test clips (yes_1000ms.wav, ...): "
                        "also write selftest_data.h/.cc for the board's `t` self-test.")


def main(argv):
    from absl import flags, logging

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.model_dir:
        sys.exit("error: --model_dir is required")
    out = pathlib.Path(FLAGS.out) if FLAGS.out else pathlib.Path("export") / pathlib.Path(FLAGS.model_dir).resolve().name
    try:  # an output folder export may not replace: refused before TensorFlow loads (export_model checks again)
        _check_out_dir(out, FLAGS.overwrite, OWNED_FILES)
    except ExportError as e:
        sys.exit(f"error: {e}")
    logging.set_verbosity(logging.ERROR)
    from kws_tf import tflite_tools, tflm

    # TF's C++ start-up lines (CUDA probing, oneDNN notes) are kept off stderr by kws_tf.cli_env.
    import tensorflow as tf
    import tf_keras  # noqa: F401

    tf.config.list_logical_devices()

    if FLAGS.score_temperature is not None and not FLAGS.score_temperature > 0:
        sys.exit(f"error: --score_temperature must be > 0 (got {FLAGS.score_temperature:g})")
    try:
        export_model(FLAGS.model_dir, FLAGS.out, data_dir=FLAGS.data_dir, int8=FLAGS.int8,
                     qat_epochs=FLAGS.qat_epochs, calibration_samples=FLAGS.calibration_samples,
                     overwrite=FLAGS.overwrite, eval_split=FLAGS.eval_split, min_agreement=FLAGS.min_agreement,
                     max_accuracy_drop=FLAGS.max_accuracy_drop, qat_lr=FLAGS.qat_lr,
                     qat_batch_size=FLAGS.qat_batch_size, per_channel_dense=FLAGS.per_channel_dense,
                     timing_repeats=FLAGS.timing_repeats, gate=FLAGS.gate, classifier=FLAGS.classifier,
                     step_model=FLAGS.step_model,
                     operating_point={"enabled": FLAGS.operating_point, "target_fa_per_hour": FLAGS.target_fa_per_hour,
                                      "snr_db": FLAGS.op_snr_db, "minutes": FLAGS.op_minutes, "seed": FLAGS.op_seed,
                                      "overrides": {**{k: getattr(FLAGS, k) for k in RECOGNIZER_SETTINGS},
                                                    "score_temperature": FLAGS.score_temperature}},
                     log=lambda m: print(m, flush=True))
        if FLAGS.selftest_clips:
            from kws_tf import selftest_data, simulate

            print("self-test clips: labels from the host twin of the device loop ...", flush=True)
            try:
                selftest_data.add_to_export(out, FLAGS.selftest_clips, log=lambda m: print(m, flush=True))
            except (FileNotFoundError, ValueError, simulate.SimulateError) as e:
                sys.exit(f"error: self-test clips: {e}")
    except (ExportError, tflite_tools.ConversionError, tflm.TflmError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: nothing was written")


