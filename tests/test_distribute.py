"""Data-parallel training (kws_tf.distribute) through the real CLI: MirroredStrategy over 2 logical
CPU devices and a 2-worker MultiWorkerMirroredStrategy on 127.0.0.1 compute the single-device run;
only the chief keeps files; --resume continues from the chief's checkpoint; bad strategy input is a
one-line error.

Every training process is its own `python -m kws_tf.train` (logical devices and the collective
runtime are fixed when TensorFlow starts); independent ones run concurrently to save wall time.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from kws_tf import distribute

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Tiny SparkNet, 240 training clips = 8 steps of 32, split into 2 x 16 per step; the run is
# 2 epochs long (the schedule's length) and stops after the first, so --resume can add the second.
RESUME = ["--C=4", "--epochs=2", "--batch_size=32", "--seed=3", "--verbose=epoch", "--resume"]
RUN = [*RESUME[:-1], "--stop_after_epochs=1"]
TIMEOUT_S = 600


def _start(data_dir, model_dir, *extra, env=None):
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    full_env.update(TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "kws_tf.train", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                             *extra], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait(procs: dict) -> dict:
    """name -> (returncode, stdout, stderr); a failed process ends the others (a worker whose peer
    died would wait for it forever)."""
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p in procs.values()):
        failed = any(p.returncode not in (None, 0) for p in procs.values())
        if failed or time.monotonic() > deadline:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.5)
    out = {name: (p.wait(), *p.communicate()) for name, p in procs.items()}
    for name, (rc, stdout, stderr) in out.items():
        assert rc == 0, f"{name} exited {rc}\n{stdout[-2000:]}\n{stderr[-3000:]}"
    return out


def _free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tf_config(ports, index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _checkpoint(model_dir) -> dict:
    import tensorflow as tf

    state = json.loads((model_dir / "checkpoints" / "state.json").read_text())
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / state["checkpoint"]))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith(("model/", "optimizer/"))}


def _history(model_dir) -> list:
    with open(model_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# The replicated runs must compute the single-device run: the same clips per step, the
# global-batch statistics in batch norm and the single-device gate noise, so that only the order
# of floating-point sums differs (gradients all-reduced from two halves, batch norm moments as
# E[x²] - E[x]² from all-reduced sums instead of the fused kernel's). Those differences grow
# through 8 SGD steps at the recipe's rate (ce_weight 100, momentum 0.9); measured here: relative
# distance of all float model variables 1e-3 (mirrored) and 2e-3 (two workers), training loss
# equal to 3e-6. Any real difference in the computation is far above 1e-2: per-replica batch-norm
# statistics give 0.44, replicas sharing one noise draw give 1.0.
WEIGHT_RTOL = 1e-2
LOSS_RTOL = 1e-4


def assert_same_training(single, replicated):
    a, b = _checkpoint(single), _checkpoint(replicated)
    assert a.keys() == b.keys() and len(a) > 20
    counters = [k for k in a if a[k].dtype.kind == "i"]  # optimizer iterations, the gate's noise step
    assert counters and all(int(a[k]) == int(b[k]) == 8 for k in counters), {k: (a[k], b[k]) for k in counters}
    floats = sorted(k for k in a if k.startswith("model/") and a[k].dtype.kind == "f")
    va = np.concatenate([a[k].ravel() for k in floats]).astype(np.float64)
    vb = np.concatenate([b[k].ravel() for k in floats]).astype(np.float64)
    distance = np.linalg.norm(va - vb) / np.linalg.norm(va)
    assert distance < WEIGHT_RTOL, distance
    la, lb = float(_history(single)[0]["loss"]), float(_history(replicated)[0]["loss"])
    assert abs(la - lb) <= LOSS_RTOL * abs(la), (la, lb)


@pytest.fixture(scope="module")
def first_epochs(tmp_path_factory, synth_folder):
    """Epoch 1 of the same run on one device, mirrored over 2 logical CPUs and on 2 workers, all at once."""
    root = tmp_path_factory.mktemp("distribute")
    ports = _free_ports(2)
    (root / "tmp1").mkdir()
    dirs = {"single": root / "single", "mirrored": root / "mirrored", "chief": root / "workers",
            "worker1": root / "worker1_model_dir"}
    procs = {
        "single": _start(synth_folder, dirs["single"], *RUN),
        "mirrored": _start(synth_folder, dirs["mirrored"], *RUN, "--strategy=mirrored", "--cpu_replicas=2"),
        "chief": _start(synth_folder, dirs["chief"], *RUN, "--strategy=multi_worker",
                        env={"TF_CONFIG": _tf_config(ports, 0)}),
        # worker 1 is told another model_dir: it must write nothing there (only the chief keeps files)
        "worker1": _start(synth_folder, dirs["worker1"], *RUN, "--strategy=multi_worker",
                          env={"TF_CONFIG": _tf_config(ports, 1), "TMPDIR": str(root / "tmp1")}),
    }
    return root, dirs, _wait(procs)


def test_mirrored_over_two_cpu_devices_trains_like_one_device(first_epochs):
    _, dirs, out = first_epochs
    assert "data parallel: MirroredStrategy with 2 replica(s), global batch 32" in out["mirrored"][1]
    assert "data parallel" not in out["single"][1]
    assert_same_training(dirs["single"], dirs["mirrored"])


def test_two_workers_keep_one_checkpoint_and_resume_from_it(first_epochs, synth_folder):
    root, dirs, out = first_epochs
    chief_dir = dirs["chief"]
    assert "this is worker 0 (chief)" in out["chief"][1] and "this is worker 1," in out["worker1"][1]
    assert_same_training(dirs["single"], chief_dir)
    # one checkpoint set, the chief's; the other worker's temporary folder is gone
    assert not dirs["worker1"].exists()
    assert list((root / "tmp1").iterdir()) == []
    assert sorted(p.name for p in (chief_dir / "checkpoints").iterdir()) == ["epoch_0001", "state.json"]
    assert not (chief_dir / "report.json").exists()  # stopped after epoch 1 of 2

    ports = _free_ports(2)
    out = _wait({
        "chief": _start(synth_folder, chief_dir, *RESUME, "--strategy=multi_worker",
                        env={"TF_CONFIG": _tf_config(ports, 0)}),
        "worker1": _start(synth_folder, chief_dir, *RESUME, "--strategy=multi_worker",
                          env={"TF_CONFIG": _tf_config(ports, 1), "TMPDIR": str(root / "tmp1")}),
    })
    for name in ("chief", "worker1"):
        assert "resuming from epoch 1 of 2" in out[name][1], out[name][1][-2000:]
    assert "done: val_accuracy" in out["chief"][1] and "done:" not in out["worker1"][1]
    assert [row["epoch"] for row in _history(chief_dir)] == ["1", "2"]  # continued, not restarted
    state = json.loads((chief_dir / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2
    assert sorted(p.name for p in (chief_dir / "checkpoints").iterdir()) == ["epoch_0002", "state.json"]
    assert all(int(v) == 16 for k, v in _checkpoint(chief_dir).items() if v.dtype.kind == "i")
    report = json.loads((chief_dir / "report.json").read_text())
    assert report["epochs"] == 2 and report["validation"]["clips"] == 24
    assert sorted(p.name for p in chief_dir.iterdir() if p.suffix in (".json", ".keras", ".h5")) == [
        "best.weights.h5", "model.keras", "normalization.json", "report.json", "run_config.json"]
    assert list((root / "tmp1").iterdir()) == []


def test_bad_strategy_input_is_a_one_line_error(tmp_path, synth_folder):
    cases = {  # run at once: each is a fresh interpreter that imports TensorFlow
        "bogus": (["--strategy=bogus"], ["unknown --strategy='bogus'", "default, mirrored, multi_worker"]),
        "no_tf_config": (["--strategy=multi_worker"], ["needs the TF_CONFIG environment variable"]),
    }
    procs = {name: _start(synth_folder, tmp_path / name, "--C=4", "--epochs=1", *args) for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode != 0, stdout[-2000:]
        assert "Traceback" not in stderr, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and all(f in last for f in cases[name][1]), last
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name, cpu_replicas, environ, fragment", [
    ("multi_worker", None, {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
    ("multi_worker", None, {"TF_CONFIG": " "}, "needs the TF_CONFIG environment variable"),
    ("default", 2, {}, "--cpu_replicas applies only to --strategy=mirrored"),
    ("mirrored", 0, {}, "--cpu_replicas must be at least 1"),
    ("Mirrored", None, {}, "unknown --strategy='Mirrored'"),
])
def test_strategy_problems_are_refused_before_tensorflow_starts(name, cpu_replicas, environ, fragment):
    with pytest.raises(distribute.DistributeError) as e:
        distribute.make_strategy(name, cpu_replicas, environ=environ)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("tf_config, fragment", [
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "task must name this process's job"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty \"worker\""),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "index 1 is not in 0..0"),
    ('[1, 2]', "no \"cluster\" object"),
])
def test_tf_config_problems_are_named(tf_config, fragment):
    with pytest.raises(distribute.DistributeError, match="TF_CONFIG") as e:
        distribute.read_tf_config({"TF_CONFIG": tf_config})
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_tf_config_of_a_two_worker_cluster_is_accepted():
    cfg = distribute.read_tf_config({"TF_CONFIG": _tf_config([2222, 2223], 1)})
    assert cfg["task"] == {"type": "worker", "index": 1}


def test_global_batch_must_split_evenly_over_replicas():
    distribute.check_batches(240, 32, 2)
    distribute.check_batches(242, 32, 2)  # a last batch of 2: one clip each
    with pytest.raises(distribute.DistributeError, match="does not split evenly over 2 replicas"):
        distribute.check_batches(240, 33, 2)
    with pytest.raises(distribute.DistributeError, match="fewer clips than the 2 replicas"):
        distribute.check_batches(225, 32, 2)  # 7 x 32 + 1
    distribute.check_batches(241, 33, 1)  # one device: anything goes
