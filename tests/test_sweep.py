"""kws_tf.sweep: sweep-file expansion, and real sweeps on a two-node Ray cluster on 127.0.0.1."""

import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pytest

from kws_tf import sweep_jobs
from kws_tf.config import ConfigError

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "sweeps" / "tiny.json"

# Ray 2.60's `ray start --node-ip-address=127.0.0.1` swaps loopback for the machine's network
# address when multi-node mode is on; the head keeps 127.0.0.1 with multi-node mode off, and the
# second node (which needs multi-node mode) is started by Ray's own CLI with that swap disabled.
WORKER_NODE = ("import sys; import ray._private.services as s; s.resolve_ip_for_localhost = lambda h: h; "
               "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")
# Explicit, so that a token some earlier local `ray.init()` left in ~/.ray does not switch the head
# (but not the worker node) to token authentication. The test cluster listens on loopback only.
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled"}


def _base(**over):
    sweep = {"models": {"sparknet": [4, 8], "dscnn": [16]}, "seeds": [0, 1, 2], "stages": ["train"],
             "train": {"epochs": 1, "data_dir": "$DATA/sc"}}
    sweep.update(over)
    return sweep


def _expand(sweep, env=None):
    return sweep_jobs.expand(sweep, "out", env={"DATA": "/d"} if env is None else env, cwd="/w")


# --------------------------------------------------------------------------- expansion (pure)

def test_expansion_counts_dirs_tags_and_flags():
    variants = [{"tag": "e1"}, {"tag": "e3", "train": {"epochs": 3}}]
    jobs = _expand(_base(variants=variants, stages=["export", "train"]))
    assert len(jobs) == 3 * 2 * 3  # (sparknet C=4, C=8, dscnn C=16) × variants × seeds
    assert len({j.model_dir for j in jobs}) == len(jobs)
    assert {j.name for j in jobs if j.model == "dscnn" and j.seed == 2} == {"dscnn_c16_s2_e1", "dscnn_c16_s2_e3"}
    assert all(j.model_dir == f"/w/out/{j.name}" for j in jobs)
    assert {j.group for j in jobs} == {(m, c, t) for m, c in (("sparknet", 4), ("sparknet", 8), ("dscnn", 16))
                                       for t in ("e1", "e3")}
    e3 = next(j for j in jobs if j.tag == "e3")
    assert e3.train == {"epochs": "3", "data_dir": "/d/sc"}  # variant over base; $DATA expanded
    assert e3.stages == ("train", "export")  # train first whatever the file's order
    argv = dict(sweep_jobs.commands(e3))
    assert "--resume" not in argv["train"] and f"--model_dir={e3.model_dir}" in argv["train"]
    assert f"--out={e3.model_dir}/export" in argv["export"]
    one = _expand(_base(seeds=[5], models={"bcresnet": [8]}))
    assert [j.name for j in one] == ["bcresnet_c8_s5"]  # no tag: no suffix
    assert one[0].train["data_dir"] == "/d/sc"


def test_relative_paths_are_made_absolute_and_spec_is_json():
    job = _expand(_base(train={"config": "configs/x.json", "epochs": 2}))[0]
    assert job.train["config"] == "/w/configs/x.json"
    assert json.loads(json.dumps(job.spec())) == job.spec()


@pytest.mark.parametrize("change, message", [
    ({"modelz": {}}, "unknown key modelz"),
    ({"models": {"resnet": [4]}}, "models.resnet: unknown model"),
    ({"models": {"sparknet": []}}, "models.sparknet must be a non-empty list"),
    ({"seeds": [0, 0]}, "seeds lists a value twice"),
    ({"seeds": [-1]}, "seeds must be a non-empty list of integers >= 0"),
    ({"stages": ["export"]}, "stages must include train"),
    ({"stages": ["train", "deploy"]}, "stages must be a non-empty list of distinct"),
    ({"train": {"epochz": 1}}, "python -m kws_tf.train has no flag --epochz"),
    ({"train": {"seed": 1}}, "--seed is set by the sweep"),
    ({"train": {"epochs": "ten"}}, "--epochs must be an integer"),
    ({"train": {"time_average": "half"}}, "--time_average must be one of full, interior"),
    ({"train": {"data_dir": "$NOPE/x"}}, "$NOPE is not set"),
    ({"export": {"gate": "relu"}}, "--gate must be one of secant, tanh"),
    ({"export": {"out": "x"}}, "--out is set by the sweep"),
    ({"variants": [{"tag": "a"}, {"tag": "a"}]}, "variants repeat the tag 'a'"),
    ({"variants": [{"tag": "a"}, {}]}, "variants[1]: a tag is needed"),
    ({"variants": [{"tag": "a b"}]}, "tag must be 1-40 letters"),
    ({"variants": [{"tag": "a", "train": {"lr": "x"}}]}, "variants[0].train: --lr must be a number"),
    ({"resources": {"num_cpus": 0}}, "resources.num_cpus must be a number > 0"),
    ({"resources": {"gpus": 1}}, "resources must be an object"),
])
def test_bad_sweep_files_are_refused_with_one_line(change, message):
    with pytest.raises(ConfigError) as e:
        _expand(_base(**change))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_shipped_sweep_files_expand(tmp_path):
    jobs = sweep_jobs.load_sweep(ROOT / "configs" / "sweeps" / "seeds_real.json", tmp_path,
                                 env={"KWS_REAL_DATA": "/data"})
    assert len(jobs) == 4 * 3 and {j.seed for j in jobs} == {0, 1, 2}
    assert {(j.model, j.channels) for j in jobs} == {("sparknet", 32), ("sparknet", 16), ("dscnn", 64),
                                                     ("bcresnet", 8)}
    assert jobs[0].train["data_dir"] == "/data/sc_v2_test_dev" and jobs[0].train["test_percent"] == "0.0"
    assert len(sweep_jobs.load_sweep(TINY, tmp_path, env={"KWS_SWEEP_DATA": "/x"})) == 2


def _sweep_cli(*args, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kws_tf.sweep", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, **kw)


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_base(train={"epochz": 1})))
    r = _sweep_cli(f"--sweep={bad}", f"--out={tmp_path / 'o'}", "--dry_run")
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: sweep file")
    # Ray missing: one line naming the extra, before anything is run or written
    code = ("import runpy, sys; sys.modules['ray'] = None; "
            f"sys.argv = ['sweep', '--sweep={TINY}', '--out={tmp_path / 'o2'}']; "
            "runpy.run_module('kws_tf.sweep', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "KWS_SWEEP_DATA": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == 'error: Ray is not installed: pip install -e ".[cluster]"'
    assert not (tmp_path / "o2").exists()


# --------------------------------------------------------------------------- a real Ray cluster

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a worker node (1 CPU each) on 127.0.0.1; its address."""
    pytest.importorskip("ray")
    ray_cli = str(pathlib.Path(sys.executable).parent / "ray")
    # Short: Ray's AF_UNIX socket paths under it must stay below 108 characters.
    temp = tempfile.mkdtemp(prefix="kws_ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--temp-dir={temp}",
                        "--include-dashboard=false", *common], check=True, capture_output=True, timeout=120,
                       env={**os.environ, **CLUSTER_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        subprocess.run([sys.executable, "-c", WORKER_NODE, "start", f"--address={address}", *common],
                       check=True, capture_output=True, timeout=120, env={**os.environ, **CLUSTER_ENV})
        yield address
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_sweep(ray_cluster, synth_folder, tmp_path_factory):
    """configs/sweeps/tiny.json (2 seeds) run once on the cluster: (out, completed process, env, table)."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    env = {"KWS_SWEEP_DATA": str(synth_folder), **CLUSTER_ENV}
    r = _sweep_cli(f"--sweep={TINY}", f"--out={out}", f"--address={ray_cluster}", env_extra=env, timeout=600)
    table = json.loads((out / "table.json").read_text()) if (out / "table.json").exists() else None
    return out, r, env, table


def test_sweep_on_two_nodes_gathers_mean_std_and_rerun_does_nothing(ray_cluster, tiny_sweep):
    out, r, env, table = tiny_sweep
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to 2 at once" in r.stdout and "2 done, 0 running, 0 failed, 0 pending of 2" in r.stdout
    reports = [json.loads((out / f"sparknet_c4_s{s}" / "report.json").read_text()) for s in (0, 1)]
    (row,) = table["rows"]
    accs = [rep["val_accuracy"] for rep in reports]
    assert row["n"] == 2 and row["seeds"] == [0, 1] and row["failed"] == []
    assert row["val_accuracy"]["mean"] == pytest.approx(statistics.mean(accs))
    assert row["val_accuracy"]["std"] == pytest.approx(statistics.stdev(accs))
    assert row["params"]["mean"] == reports[0]["params"] and row["macs"]["mean"] == reports[0]["macs"]
    walls = [j["job_wall_s"] for j in table["per_job"]]
    assert table["sum_job_wall_s"] == pytest.approx(sum(walls))
    # the two jobs ran at the same time, one per node
    assert table["total_wall_s"] < 0.9 * table["sum_job_wall_s"]
    md = (out / "table.md").read_text()
    assert f"{100 * statistics.mean(accs):.2f} ± {100 * statistics.stdev(accs):.2f}" in md
    logs = {s: (out / f"sparknet_c4_s{s}" / "sweep_job.log") for s in (0, 1)}
    assert all("=== train exit status 0" in p.read_text() for p in logs.values())
    before = {s: (p.stat().st_mtime_ns, p.read_text()) for s, p in logs.items()}

    again = _sweep_cli(f"--sweep={TINY}", f"--out={out}", f"--address={ray_cluster}", env_extra=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("complete, skipped") == 2 and "jobs to run" not in again.stdout
    assert {s: (p.stat().st_mtime_ns, p.read_text()) for s, p in logs.items()} == before
    assert json.loads((out / "table.json").read_text())["rows"] == table["rows"]
    assert (out / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dry = _sweep_cli(f"--sweep={TINY}", f"--out={out}", "--dry_run", env_extra=env)
    assert "2 jobs: 2 complete, 0 to run" in dry.stdout
    (out / "table.json").unlink()
    gathered = _sweep_cli(f"--sweep={TINY}", f"--out={out}", "--gather_only", env_extra=env)
    assert gathered.returncode == 0 and json.loads((out / "table.json").read_text())["rows"] == table["rows"]


def test_killed_worker_fails_its_job_only(ray_cluster, tiny_sweep, tmp_path):
    """A third seed added to the finished sweep: its Ray worker is SIGKILLed while it trains."""
    import psutil

    out, _, env, _ = tiny_sweep
    three = tmp_path / "three_seeds.json"
    three.write_text(json.dumps({**json.loads(TINY.read_text()), "seeds": [0, 1, 2]}))
    victim = out / "sparknet_c4_s2"
    proc = subprocess.Popen([sys.executable, "-m", "kws_tf.sweep", f"--sweep={three}", f"--out={out}",
                             f"--address={ray_cluster}", "--retries=0"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    try:
        deadline = time.time() + 120
        train = None
        while time.time() < deadline and train is None:  # the Ray worker running seed 2, once its train started
            time.sleep(0.2)
            try:
                worker = psutil.Process(json.loads((victim / "sweep_attempt.json").read_text())["worker_pid"])
                train = next((c for c in worker.children() if "kws_tf.train" in " ".join(c.cmdline())), None)
            except (OSError, ValueError, KeyError, psutil.Error):
                continue
        assert train is not None, "seed 2's training never started"
        os.kill(worker.pid, signal.SIGKILL)
        train.wait(timeout=30)  # the training process dies with its worker (no orphan left writing)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and stderr.strip().splitlines()[-1].startswith("error: 1 of 3 jobs failed")
    assert stdout.count("complete, skipped") == 2 and "sparknet_c4_s2 failed" in stdout
    table = json.loads((out / "table.json").read_text())
    (row,) = table["rows"]
    assert row["n"] == 2 and row["seeds"] == [0, 1] and row["failed"] == [2]
    assert table["jobs_done"] == 2 and table["jobs_failed"] == 1
    failed = next(j for j in table["per_job"] if j["seed"] == 2)
    assert failed["status"] == "failed" and "Worker" in failed["error"]
    assert not (victim / "report.json").exists()
    assert "sparknet_c4_s2 failed" in (out / "table.md").read_text()
    result = json.loads((victim / "sweep_result.json").read_text())
    assert result["status"] == "failed" and len(result["attempts"]) == 1
