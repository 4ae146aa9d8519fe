"""Data-parallel training with tf.distribute: `python -m kws_tf.train --strategy=default|mirrored|multi_worker`.

- default: no distribution (today's single-device run, unchanged).
- mirrored: `tf.distribute.MirroredStrategy` over the local GPUs; on a machine without a GPU
  over `cpu_replicas` logical CPU devices (for testing the distributed path on CPUs).
- multi_worker: `tf.distribute.MultiWorkerMirroredStrategy`, one process per worker, the
  cluster and this process's place in it read from the `TF_CONFIG` environment variable.

The recipe's `batch_size` stays the *global* batch: every step takes the same clips a
single-device run takes (the same seeded order and augmentation, data.train_dataset) and
splits them in equal, consecutive pieces, replica g of R taking rows [g·B/R, (g+1)·B/R).
The learning rate therefore stays the recipe's. With more than one replica the model is
adapted so that a step computes what the single-device step computes, up to the order of
floating-point sums (`prepare_model`):
  - batch normalisation uses the statistics of the global batch (synchronised), not of the piece;
  - the gate's noise: replica g draws the noise a single device would draw for the whole
    batch, seeded by (seed, step) as gates.RelaxedBernoulliGate does, and keeps its rows
    [g·b, (g+1)·b), b its own piece's size. Every replica's noise is thus a function of
    (seed, step, replica id, replica count), reproducible after --resume, independent across
    replicas, and for every full batch exactly the single-device noise.
Only the last, partial batch of an epoch may split unevenly (pieces differ by one clip).
Keras scales each replica's loss by 1/R before the gradients are summed, which for equal
pieces is the global-batch mean.

Only the chief (worker 0, or the `chief` task) keeps what it writes; the other workers run
the same saves (a multi-worker save reads variables collectively, so every worker must take
part) into a temporary folder that they delete (`output_dir`, `discard_output_dir`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

STRATEGIES = ("default", "mirrored", "multi_worker")
TF_CONFIG = "TF_CONFIG"


class DistributeError(ValueError):
    """The strategy cannot be set up as asked; the message is one line meant for the user."""


def check_name(name: str) -> None:
    if name not in STRATEGIES:
        raise DistributeError(f"unknown --strategy={name!r}; choose one of {', '.join(STRATEGIES)}")


def read_tf_config(environ=None) -> dict:
    """TF_CONFIG parsed and checked: a worker list and this process's task in it."""
    environ = os.environ if environ is None else environ
    raw = environ.get(TF_CONFIG)
    hint = ('set it to e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}')
    if not raw or not raw.strip():
        raise DistributeError(f"--strategy=multi_worker needs the {TF_CONFIG} environment variable; {hint}")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DistributeError(f"{TF_CONFIG} is not valid JSON ({e.msg} at character {e.pos}); {hint}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict):
        raise DistributeError(f"{TF_CONFIG} has no \"cluster\" object; {hint}")
    cluster, task = cfg["cluster"], cfg.get("task")
    jobs = {k: v for k, v in cluster.items() if k in ("chief", "worker")}
    if not jobs or not all(isinstance(v, list) and v and all(isinstance(a, str) and ":" in a for a in v)
                           for v in jobs.values()):
        raise DistributeError(f"{TF_CONFIG} cluster needs a non-empty \"worker\" (or \"chief\") list of "
                              f"\"host:port\" addresses; {hint}")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise DistributeError(f"{TF_CONFIG} task must name this process's job ({' or '.join(sorted(jobs))}) "
                              f"and index; {hint}")
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[task["type"]]):
        raise DistributeError(f"{TF_CONFIG} task index {index!r} is not in 0..{len(jobs[task['type']]) - 1} "
                              f"(the {task['type']} list has {len(jobs[task['type']])} address(es))")
    if "chief" in jobs and len(jobs["chief"]) != 1:
        raise DistributeError(f"{TF_CONFIG} cluster may have one chief, not {len(jobs['chief'])}")
    return cfg


def use_cpu_replicas(n: int) -> None:
    """Split the host CPU into `n` logical devices; must run before TensorFlow initialises its devices."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        raise DistributeError("--cpu_replicas must be set before TensorFlow starts its devices "
                              "(call make_strategy first in a fresh process)") from None


def make_strategy(name: str, cpu_replicas: int | None = None, environ=None):
    """The tf.distribute.Strategy for `name` (see the module docstring); call it before any other TF work."""
    check_name(name)
    if cpu_replicas is not None and cpu_replicas < 1:
        raise DistributeError(f"--cpu_replicas must be at least 1 (got {cpu_replicas})")
    if cpu_replicas is not None and name != "mirrored":
        raise DistributeError("--cpu_replicas applies only to --strategy=mirrored "
                              "(multi_worker runs one replica per worker without a GPU)")
    if name == "multi_worker":
        read_tf_config(environ)  # a clear message instead of TF's own failure
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if cpu_replicas is not None:
            raise DistributeError(f"--cpu_replicas is for machines without a GPU; this one has {len(gpus)} "
                                  "and --strategy=mirrored uses them")
        return tf.distribute.MirroredStrategy()
    use_cpu_replicas(cpu_replicas or 1)
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def is_distributed(strategy) -> bool:
    """False for None and the default (no-op) strategy: the single-device run of before."""
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))


def is_chief(strategy) -> bool:
    """Whether this process keeps what it writes: the `chief` task, or worker 0 when there is none."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def describe(strategy) -> str:
    if not is_distributed(strategy):
        return "one device"
    resolver = getattr(strategy, "cluster_resolver", None)
    where = ""
    if resolver is not None and resolver.task_type:
        where = f", this is {resolver.task_type} {resolver.task_id}{' (chief)' if is_chief(strategy) else ''}"
    kind = "MirroredStrategy" if resolver is None or not resolver.task_type else "MultiWorkerMirroredStrategy"
    return f"{kind} with {strategy.num_replicas_in_sync} replica(s){where}"


def replicas(strategy) -> int:
    return 1 if strategy is None else strategy.num_replicas_in_sync


def check_batches(n_train: int, batch_size: int, r: int) -> None:
    """Refuse a global batch that cannot be split in equal pieces over `r` replicas, or a last
    batch that would leave a replica without a clip."""
    if r == 1:
        return
    if batch_size % r:
        raise DistributeError(f"batch_size {batch_size} does not split evenly over {r} replicas; "
                              f"use a multiple of {r}")
    last = n_train % batch_size
    if 0 < last < r:
        raise DistributeError(f"the last batch of each epoch ({n_train} clips mod batch_size {batch_size} = {last}) "
                              f"has fewer clips than the {r} replicas; choose another batch_size")


def output_dir(model_dir, strategy) -> pathlib.Path:
    """Where this process writes: `model_dir` on the chief, a new temporary folder on the other workers."""
    if is_chief(strategy):
        return pathlib.Path(model_dir)
    return pathlib.Path(tempfile.mkdtemp(prefix="kws_tf_worker_"))


def discard_output_dir(path, model_dir) -> None:
    """Delete a non-chief worker's temporary folder (never the chief's model_dir)."""
    if pathlib.Path(path).resolve() != pathlib.Path(model_dir).resolve():
        shutil.rmtree(path, ignore_errors=True)


def distribute_batches(strategy, make_dataset):
    """A distributed dataset in which replica g of R gets rows [g·n/R, (g+1)·n/R) of each global batch of n.

    `make_dataset()` returns a tf.data.Dataset of global batches `(x, y)`. Every worker builds it
    (the batches are seeded functions of the step, so all workers build the same ones) and keeps
    only the pieces of its own replicas: the sharding is explicit, by input_pipeline_id.
    """
    import tensorflow as tf

    def dataset_fn(ctx: tf.distribute.InputContext):
        replicas = ctx.num_replicas_in_sync
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local

        def pieces(x, y):
            n = tf.shape(y, out_type=tf.int64)[0]

            def piece(g):
                lo, hi = g * n // replicas, (g + 1) * n // replicas
                return x[lo:hi], y[lo:hi]

            # a worker's dataset feeds its local replicas in turn, in replica order
            return tf.data.Dataset.range(first, first + local).map(piece)

        return make_dataset().flat_map(pieces).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def prepare_model(net, strategy) -> None:
    """With more than one replica, make a replica's step the matching piece of the single-device step.

    Call after building `net` under `strategy.scope()` and before training. Batch normalisation
    is switched to global-batch (synchronised) statistics; every RelaxedBernoulliGate draws the
    global batch's noise and keeps its replica's rows (module docstring). The saved model is
    built afresh without a strategy, so neither change reaches model.keras.
    """
    import tf_keras as keras

    from kws_tf.gates import RelaxedBernoulliGate

    if replicas(strategy) == 1:
        return
    for layer in net.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            layer.fused = False  # the fused kernel cannot synchronise
        elif isinstance(layer, RelaxedBernoulliGate):
            layer._noise = _replica_noise(layer._noise)


def _replica_noise(single_device_noise):
    """Wrap a gate's `_noise(mu)`: draw it for the global batch, keep this replica's rows."""
    import tensorflow as tf

    def noise(mu):
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return single_device_noise(mu)
        replicas = ctx.num_replicas_in_sync
        n = tf.shape(mu)[0]
        g = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        # only the shape and dtype of the argument matter to the draw
        full = single_device_noise(tf.zeros(tf.concat([[n * replicas], tf.shape(mu)[1:]], 0), mu.dtype))
        return full[g * n:(g + 1) * n]

    return noise
