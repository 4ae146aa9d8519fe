"""Train SparkNet: `python -m kws_tf.train --C=32 [--data_dir=DIR] [--model_dir=DIR] [--resume]`.
(How the flags become the run configuration: `kws_tf.train_config`.)

The recipe (configs/sparknet_c<C>.json, SPEC.md): SGD with momentum, L2 weight
decay as PyTorch's SGD applies it, polynomial hold-decay schedule, loss
`ce_weight · CE + λ · sparsity`. Every epoch a checkpoint (model + optimizer +
gate noise counter) is written atomically; `--resume` continues from the last one
and, because batches and noise are seeded per step, ends with the weights an
uninterrupted run would have. The best-on-validation weights are kept.

model_dir layout:
  run_config.json       the resolved configuration and data source (checked on --resume)
  normalization.json    per-coefficient mean/std of the model's front-end features (and its name)
  checkpoints/          state.json + the latest epoch's checkpoint
  best.weights.h5       best validation accuracy so far
  model.keras           the best model, saved at the end
  history.csv, tensorboard/
  report.json, confusion_matrix.png
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import sys
import time

from absl import app, flags, logging

from kws_tf import config as config_lib
from kws_tf import labels, train_config


def define_flags():
    """The CLI's flags (defined only when this module is the program)."""
    flags.DEFINE_integer("C", 32, "SparkNet channels C (4, 8, 16 or 32 have shipped configs).")
    flags.DEFINE_string("model", "sparknet", "Model family.")
    flags.DEFINE_string("config", None, "Config JSON (default: configs/<model>_c<C>.json).")
    flags.DEFINE_string("data_dir", None, "Folder in the Speech Commands layout; default: tfds speech_commands.")
    flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir (where speech_commands is or will be prepared).")
    flags.DEFINE_string("noise_dir", None, "Background-noise wav folder (default: the data's _background_noise_).")
    flags.DEFINE_float("validation_percent", 10.0, "Folder data without lists: % of speakers for validation.")
    flags.DEFINE_float("test_percent", 10.0, "Folder data without lists: % of speakers for test.")
    flags.DEFINE_integer("max_per_class", None, "Read at most this many wavs per word folder (quick runs).")
    flags.DEFINE_string("model_dir", None, "Output folder (default: runs/<model>_c<C>).")
    flags.DEFINE_integer("epochs", None, "Epochs (default from config).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default from config).")
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, batch order, augmentation and gate noise.")
    flags.DEFINE_bool("resume", False, "Continue the run in --model_dir from its last checkpoint.")
    flags.DEFINE_float("lr", None, "Peak learning rate.")
    flags.DEFINE_float("momentum", None, "SGD momentum.")
    flags.DEFINE_float("weight_decay", None, "L2 weight decay (PyTorch SGD convention).")
    flags.DEFINE_float("sigma", None, "Gate noise standard deviation.")
    flags.DEFINE_float("lam", None, "Weight of the gate sparsity loss.")
    flags.DEFINE_float("ce_weight", None, "Weight of the cross-entropy loss.")
    flags.DEFINE_float("background_prob", None, "Probability of mixing background noise into a training clip.")
    flags.DEFINE_enum("time_average", None, ["full", "interior"],
                      "SparkNet's time average: over all 101 gate frames (the paper) or only the 'interior' ones "
                      "whose receptive field lies inside the window (streams identically, no look-ahead).")
    flags.DEFINE_float("target_sparsity", None, "Prune the Conv2D/Dense kernels during training to this fraction of "
                       "zeros (kws_tf.pruning; the config's prune block or its defaults for the rest; 0: dense).")
    flags.DEFINE_list("teacher_dirs", None, "Distil from these finished runs (comma-separated model_dirs; their "
                      "scores are averaged). Adds the config's distill block (kws_tf.distill; not the paper's recipe).")
    flags.DEFINE_float("distill_alpha", None, "Distillation: weight of the hard-label cross-entropy (default 0.5).")
    flags.DEFINE_float("distill_temperature", None, "Distillation: softmax temperature of teacher and student "
                       "(default 2).")
    flags.DEFINE_list("extra_train_dir", None, "Folders in the Speech Commands layout whose every clip is added to "
                      "the TRAINING clips (e.g. the hard negatives of `python -m kws_tf.mine`).")
    flags.DEFINE_string("strategy", "default",
                        "Data parallelism (kws_tf.distribute): 'default' one device; 'mirrored' all local GPUs "
                        "(or --cpu_replicas logical CPUs); 'multi_worker' one process per worker, cluster from "
                        "TF_CONFIG. The config's batch_size stays the global batch, split over the replicas, so "
                        "the learning rate stays the recipe's.")
    flags.DEFINE_integer("cpu_replicas", None, "--strategy=mirrored on a machine without a GPU: mirror over this "
                         "many logical CPU devices (tests the distributed path on CPUs).")
    flags.DEFINE_integer("stop_after_epochs", None, "Stop this invocation after N epochs (continue later with --resume).")
    flags.DEFINE_enum("verbose", "auto", ["auto", "bar", "epoch", "quiet"],
                      "Progress output: 'auto' = a progress bar on a terminal, one line per epoch otherwise "
                      "(no carriage returns in redirected logs); 'bar' forces the bar.")


class RunError(RuntimeError):
    """A problem with the run itself (model_dir conflicts); one line for the user."""


# Fields that must match for --resume to continue a run.
RESUME_KEYS = ("model", "channels", "gate", "ce_weight", "optimizer", "schedule", "epochs", "batch_size",
               "augment", "seed", "data", "time_average", "prune", "label_smoothing", "distill")
# runs written before the key existed
RESUME_DEFAULTS = {"time_average": "full", "prune": None, "label_smoothing": 0.0, "distill": None}


def _check_writable(model_dir: pathlib.Path) -> None:
    """Refuse a model_dir that is a file, lies under a file, or cannot be created/written, before any work."""
    probe = model_dir
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            where = "is a file" if probe == model_dir else f"lies under the file {probe}"
            raise RunError(f"model_dir {model_dir} {where}; choose a folder path with --model_dir")
        if not os.access(probe, os.W_OK | os.X_OK):
            what = "is not writable" if probe == model_dir else f"cannot be created: {probe} is not writable"
            raise RunError(f"model_dir {model_dir} {what}; choose another --model_dir")
    except OSError as e:
        raise RunError(f"model_dir {model_dir} cannot be used ({e.strerror or e})") from None


def _check_model_dir(model_dir: pathlib.Path, run_config: dict, resume: bool) -> dict | None:
    """Return the checkpoint state to resume from (or None); refuse conflicting folders."""
    _check_writable(model_dir)
    state_path = model_dir / "checkpoints" / "state.json"
    cfg_path = model_dir / "run_config.json"
    if not resume:
        if state_path.exists() or cfg_path.exists():
            raise RunError(f"model_dir {model_dir} already holds a run; pass --resume to continue it or choose another --model_dir")
        return None
    if not cfg_path.exists():
        raise RunError(f"--resume: model_dir {model_dir} holds no run (no run_config.json)")
    try:
        old = json.loads(cfg_path.read_text())
    except json.JSONDecodeError:
        raise RunError(f"--resume: {cfg_path} is corrupt") from None
    diffs = [k for k in RESUME_KEYS
             if old.get(k, RESUME_DEFAULTS.get(k)) != run_config.get(k, RESUME_DEFAULTS.get(k))]
    if diffs:
        raise RunError(f"--resume: model_dir {model_dir} holds an incompatible run (differs in {', '.join(diffs)})")
    if not state_path.exists():
        return None
    return json.loads(state_path.read_text())


def _load_data(run_config: dict, log):
    from kws_tf import data

    src = run_config["data"]
    if src["kind"] == "folder":
        ds = data.load_folder(src["path"], src["validation_percent"], src["test_percent"],
                              noise_dir=src.get("noise_dir"), max_per_class=src.get("max_per_class"), log=log)
    else:
        ds = data.load_tfds(src.get("tfds_data_dir"), log=log)
        if src.get("noise_dir"):
            ds.noise = data.load_noise(src["noise_dir"])
    for folder in src.get("extra_train") or ():
        ds = data.with_extra_train(ds, data.load_extra_train(folder, log=log))
    return ds


def _build(run_config: dict, total_steps: int, prune: bool = False):
    """The compiled model; `prune`: with the config's pruning wrappers (for training; a model to
    load weights into, e.g. export's, is the ordinary one: best.weights.h5 is saved stripped)."""
    import tf_keras as keras

    from kws_tf import losses, models, schedules

    net = models.build_model(
        run_config["model"], run_config["channels"], sigma=run_config["gate"]["sigma"],
        lam=run_config["gate"]["lam"], weight_decay=run_config["optimizer"]["weight_decay"],
        seed=run_config["seed"], time_average=run_config.get("time_average", "full"))
    from kws_tf import frontends

    fe = frontends.of_model(run_config["model"])
    if tuple(net.input_shape[1:]) != fe.input_shape:  # a registry entry naming the wrong front-end
        raise config_lib.ConfigError(f"model {run_config['model']} takes input {tuple(net.input_shape[1:])} but "
                                     f"declares the front-end {frontends.shape_summary(fe)}")
    if prune and run_config.get("prune"):
        from kws_tf import pruning

        net = pruning.wrap(net, run_config["prune"], total_steps)
    opt_cfg, sch = run_config["optimizer"], run_config["schedule"]
    if opt_cfg.get("name", "sgd") != "sgd":
        raise config_lib.ConfigError(f"unsupported optimizer {opt_cfg['name']!r} (only sgd)")
    schedule = schedules.from_config(sch, opt_cfg["lr"], total_steps, total_steps // run_config["epochs"])
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=opt_cfg["momentum"])
    distill = run_config.get("distill")
    if distill:  # labels arrive packed with the teachers' scores (kws_tf.distill)
        loss = losses.distillation_loss(distill["alpha"], distill["temperature"], run_config.get("label_smoothing", 0.0))
        metric = losses.packed_accuracy()
    else:
        loss = losses.classification_loss(run_config.get("label_smoothing", 0.0))
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    net.compile(optimizer=optimizer, loss=loss, loss_weights=[run_config["ce_weight"]], metrics=[metric])
    optimizer.build(net.trainable_variables)
    return net, optimizer


def _callbacks(model_dir: pathlib.Path, ckpt, state: dict, batch_size: int, steps: int, log,
               first=(), best_from_epoch: int = 1, best_model=lambda m: m):
    import tf_keras as keras

    from kws_tf.fsutil import atomic_save, atomic_write_json

    ckpt_dir = model_dir / "checkpoints"

    class Throughput(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            dt = time.perf_counter() - self.t0
            logs["epoch_seconds"] = dt
            logs["samples_per_sec"] = steps * batch_size / dt
            logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))  # also mirrored

    class BestAndCheckpoint(keras.callbacks.Callback):
        """Keep the best weights, then checkpoint; state.json is written last, so it
        only ever points at a complete checkpoint."""

        def on_epoch_end(self, epoch, logs=None):
            val = float(logs.get("val_accuracy", float("nan")))
            if val > state.get("best_val_accuracy", -1.0) and epoch + 1 >= best_from_epoch:
                atomic_save(model_dir / "best.weights.h5", best_model(self.model).save_weights)
                state.update(best_val_accuracy=val, best_epoch=epoch + 1)
            name = f"epoch_{epoch + 1:04d}"
            tmp = ckpt_dir / f".tmp-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            ckpt.write(str(tmp / "ckpt"))
            final = ckpt_dir / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            state.update(epoch=epoch + 1, checkpoint=f"{name}/ckpt")
            atomic_write_json(ckpt_dir / "state.json", state)
            for old in ckpt_dir.glob("epoch_*"):
                if old.name != name:
                    shutil.rmtree(old, ignore_errors=True)
            best = (f"best {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}" if "best_epoch" in state
                    else f"best kept from epoch {best_from_epoch}, when pruning ends")
            log(f"epoch {epoch + 1}: val_accuracy {val:.4f} ({best}), {logs['samples_per_sec']:.0f} samples/s")

    class History1(keras.callbacks.CSVLogger):
        """history.csv with epochs counted from 1, as the console and checkpoints count them."""

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch + 1, logs)

    # The progress bar is listed before the epoch summary so that it finishes its line first
    # (Keras otherwise appends its own logger after every user callback).
    return [
        *first,  # pruning re-applies its masks at epoch end: before anything saves weights
        Throughput(),
        keras.callbacks.ProgbarLogger(count_mode="steps"),
        BestAndCheckpoint(),
        History1(str(model_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(model_dir / "tensorboard"), write_graph=False, profile_batch=0),
    ]


def write_report(net, dataset, normalization, model_dir: pathlib.Path, extra: dict, batch_size: int = 256) -> dict:
    """Evaluate the (best) model and write report.json and confusion_matrix.png."""
    import numpy as np

    from kws_tf import data, metrics
    from kws_tf import model as model_lib
    from kws_tf.models import sparknet
    from kws_tf.fsutil import atomic_write_json

    def predict(audio_set):
        if audio_set is None or len(audio_set) == 0:
            return None, None
        x = data.clean_features(audio_set, normalization)
        return x, np.argmax(net.predict(x, batch_size=batch_size, verbose=0), axis=-1)

    xv, pv = predict(dataset.validation)
    xt, pt = predict(dataset.test)
    val = metrics.summarize(dataset.validation.labels, pv) if pv is not None else None
    test = metrics.summarize(dataset.test.labels, pt) if pt is not None else None
    main = test or val
    gate_x = xv if xv is not None else data.clean_features(dataset.train.subset(np.arange(min(500, len(dataset.train)))), normalization)
    has_gate = any(layer.name == "gate" for layer in net.layers)  # baselines have none
    gates = sparknet.gate_model(net).predict(gate_x, batch_size=batch_size, verbose=0) if has_gate else None
    report = {
        "model": net.name,
        "params": model_lib.count_params(net),
        "macs": model_lib.count_macs(net),
        "val_accuracy": val["accuracy"] if val else None,
        "test_accuracy": test["accuracy"] if test else None,
        "gate_open_fraction": float((gates > 0).mean()) if gates is not None else None,
        "gate_mean": float(gates.mean()) if gates is not None else None,
        "per_class": main["per_class"],
        "confusion": main["confusion"],
        "confusion_split": "test" if test else "validation",
        "labels": list(labels.LABELS),
        "validation": val,
        "test": test,
        **extra,
    }
    atomic_write_json(model_dir / "report.json", report)
    metrics.plot_confusion(main["confusion"], labels.LABELS, model_dir / "confusion_matrix.png",
                           title=f"{net.name}, {report['confusion_split']} accuracy {main['accuracy']:.3f}")
    return report


def run_training(run_config: dict, model_dir, resume: bool = False, verbose: str = "epoch", log=print,
                 dataset=None, stop_after_epochs: int | None = None, strategy=None) -> dict | None:
    """Train per `run_config` (a resolved config with `seed` and `data`) into `model_dir`.

    `dataset` may be passed in (tests) instead of being loaded from `run_config['data']`.
    `stop_after_epochs` ends this invocation early (the run continues with resume=True).
    `strategy` (kws_tf.distribute.make_strategy; None: one device) trains data-parallel; only the
    chief keeps files, the other workers write into a temporary folder and return None.
    Returns the report dict, or None when stopped early.
    """
    model_dir = pathlib.Path(model_dir)
    config_lib.validate(run_config, "run configuration", extra_keys=("seed", "data"))
    from kws_tf import distribute

    chief = distribute.is_chief(strategy)
    # other workers read the chief's model_dir only to resume from its checkpoint
    state = _check_model_dir(model_dir, run_config, resume) if chief or resume else None

    import tensorflow as tf
    import tf_keras as keras

    from kws_tf import augment, data, features, pruning
    from kws_tf.fsutil import atomic_save, atomic_write_json

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(run_config["seed"])
    aug = augment.AugmentConfig.from_dict(run_config["augment"])

    if dataset is None:
        dataset = _load_data(run_config, log)
    data.check_splits(dataset, log)

    # Nothing is written before the configuration, the data and the model have passed.
    norm_path = model_dir / "normalization.json"
    write_norm = not (state is not None and norm_path.exists())
    from kws_tf import models

    frontend = models.get(run_config["model"]).frontend
    if write_norm and run_config.get("distill"):  # the teachers score the student's inputs: their normalisation
        from kws_tf import distill

        normalization = distill.teacher_normalization(run_config["distill"])
        if normalization.frontend != frontend:
            raise distill.DistillError(f"the teacher {run_config['distill']['teachers'][0]} uses the "
                                       f"{normalization.frontend} front-end, the student {frontend}")
        log(f"normalisation: the teacher's ({run_config['distill']['teachers'][0]})")
    elif write_norm:
        log(f"computing per-coefficient {frontend} normalisation on training clips ...")
        normalization = data.compute_normalization(dataset.train, seed=run_config["seed"], frontend=frontend)
    else:
        try:
            normalization = features.Normalization.from_dict(json.loads(norm_path.read_text())).require(
                frontend, str(norm_path))
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"--resume: {norm_path} is unusable ({e})") from None

    teachers = None
    if run_config.get("distill"):
        from kws_tf import distill

        teachers = distill.load_teachers(run_config["distill"], normalization, student_dir=model_dir)
        log(f"distilling from {len(teachers.nets)} teacher(s) at temperature {teachers.temperature:g}, "
            f"hard-label weight {run_config['distill']['alpha']:g}")

    epochs, batch_size = run_config["epochs"], run_config["batch_size"]
    steps = data.steps_per_epoch(len(dataset.train), batch_size)
    distribute.check_batches(len(dataset.train), batch_size, distribute.replicas(strategy))
    with (strategy or tf.distribute.get_strategy()).scope():
        net, optimizer = _build(run_config, total_steps=epochs * steps, prune=True)
    distribute.prepare_model(net, strategy)
    out_dir = distribute.output_dir(model_dir, strategy)  # model_dir on the chief

    out_dir.mkdir(parents=True, exist_ok=True)
    if write_norm:
        atomic_write_json(out_dir / norm_path.name, normalization.to_dict())
    atomic_write_json(out_dir / "run_config.json", run_config)
    ckpt = tf.train.Checkpoint(model=net, optimizer=optimizer)
    start_epoch = 0
    state = state or {}
    if state.get("checkpoint"):
        ckpt.read(str(model_dir / "checkpoints" / state["checkpoint"])).assert_existing_objects_matched()
        start_epoch = int(state["epoch"])
        log(f"resuming from epoch {start_epoch} of {epochs}")

    log(f"{net.name}: {sum(int(tf.size(w)) for w in net.trainable_weights):,} trainable parameters; "
        f"{len(dataset.train)} training clips, {steps} steps per epoch, {epochs} epochs")
    t0 = time.perf_counter()
    end_epoch = epochs if stop_after_epochs is None else min(epochs, start_epoch + stop_after_epochs)
    if start_epoch < end_epoch:
        pack = teachers.pack if teachers else None
        train_ds = data.train_dataset(dataset.train, normalization, aug, dataset.noise, batch_size,
                                      run_config["seed"], start_epoch, epochs, targets=pack)
        val_ds = data.eval_dataset(dataset.validation, normalization, 256, targets=pack)
        val_steps = None
        if distribute.is_distributed(strategy):
            log(f"data parallel: {distribute.describe(strategy)}, global batch {batch_size}")
            train_ds, val_ds = (distribute.distribute_batches(strategy, lambda ds=ds: ds) for ds in (train_ds, val_ds))
            val_steps = data.steps_per_epoch(len(dataset.validation), 256)
        if verbose == "auto":  # Keras draws its bar with \r even into files and pipes
            verbose = "bar" if sys.stdout.isatty() else "epoch"
        fit_verbose = {"bar": 1, "epoch": 2, "quiet": 0}[verbose]
        net.fit(train_ds, epochs=end_epoch, initial_epoch=start_epoch, steps_per_epoch=steps,
                validation_data=val_ds, validation_steps=val_steps, callbacks=_callbacks(out_dir, ckpt, state, batch_size, steps, log,
                                                              **pruning.train_hooks(run_config.get("prune"), epochs * steps, steps)),
                verbose=fit_verbose)
    train_seconds = time.perf_counter() - t0
    if not chief:
        distribute.discard_output_dir(out_dir, model_dir)
        return None
    if end_epoch < epochs:
        log(f"stopped after epoch {end_epoch} of {epochs}; rerun with --resume to continue")
        return None

    if distribute.is_distributed(strategy):  # a plain copy saves and evaluates without the other workers
        net, _ = _build(run_config, total_steps=epochs * steps)
    net = pruning.strip(net)  # model.keras is an ordinary model
    net.load_weights(str(model_dir / "best.weights.h5"))
    atomic_save(model_dir / "model.keras", net.save)
    extra = {
        "best_epoch": state.get("best_epoch"),
        "epochs": epochs,
        "train_clips": len(dataset.train),
        "data_source": dataset.source,
        "train_seconds_this_invocation": train_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "prune": run_config.get("prune"),
        "distill": run_config.get("distill"),
        "extra_train": run_config["data"].get("extra_train"),
        "sparsity": pruning.measured_sparsity(net),  # zeros / size of the Conv2D/Dense kernels
    }
    report = write_report(net, dataset, normalization, model_dir, extra)
    log(f"done: val_accuracy {report['val_accuracy']:.4f}"
        + (f", test_accuracy {report['test_accuracy']:.4f}" if report["test_accuracy"] is not None else "")
        + (f", gates open {report['gate_open_fraction']:.3f}" if report["gate_open_fraction"] is not None else "")
        + f"; report in {model_dir / 'report.json'}")
    return report


def main(argv):
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from kws_tf import distribute
    from kws_tf.data import DataError
    from kws_tf.distill import DistillError

    try:
        cfg = train_config.resolve_config(FLAGS)
        model_dir = FLAGS.model_dir or os.path.join("runs", f"{cfg['model']}_c{cfg['channels']}")
        strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)  # before any other TF work
        run_training(cfg, model_dir, resume=FLAGS.resume, verbose=FLAGS.verbose,
                     log=lambda m: print(m, flush=True), stop_after_epochs=FLAGS.stop_after_epochs,
                     strategy=strategy)
    except (config_lib.ConfigError, DataError, RunError, distribute.DistributeError, DistillError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # e.g. the disk filled up or the folder was made read-only mid-run
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        sys.exit(f"error: {e.strerror or e}{where}")
    except KeyboardInterrupt:
        sys.exit("interrupted: rerun with --resume to continue from the last finished epoch")


if __name__ == "__main__":
    from kws_tf import cli_env

    cli_env.start()  # before TensorFlow is imported: its start-up lines off stderr unless --tf_logs
    define_flags()
    app.run(main)
