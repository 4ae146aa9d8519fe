"""Run a sweep (models × sizes × seeds × variants) as Ray tasks, then gather a mean ± std table.

    python -m kws_tf.sweep --sweep=configs/sweeps/seeds_real.json --out=runs/sweeps/seeds_real
        [--address=HOST:PORT | ray://HOST:10001] [--max_parallel=N] [--retries=1] [--dry_run] [--gather_only]

The sweep file format is in kws_tf/sweep_jobs.py. Each job is ordinary `python -m kws_tf.train`
(then `kws_tf.export --int8`, `kws_tf.evaluate` when the sweep asks) subprocesses, run inside one
Ray task that declares the sweep's num_cpus/num_gpus, with its own model_dir
`<out>/<model>_c<C>_s<seed>[_<tag>]` holding:

  sweep_job.json     the job's manifest (model, C, seed, stages, every flag)
  sweep_job.log      the stages' stdout and stderr, appended by every attempt
  sweep_attempt.json the node and worker process of the latest attempt
  sweep_result.json  done / failed, and each attempt's wall time, exit code or crash

A job is complete when its manifest matches and every stage's report exists (report.json,
export/export_report.json, eval/eval_*.json): a rerun skips it. An incomplete one is resumed
(train gets --resume). A stage that exits non-zero is retried up to --retries times; a worker
that dies (killed, node lost) is retried by Ray up to --retries times; then the job is reported
as failed in the table and the others go on. Without --address a local Ray instance is started
(all CPUs); with it, the sweep joins that cluster, whose nodes must see --out at the same path
(shared storage) and have this package installed.

Outputs in --out: table.json, table.md, table.png (kws_tf.sweep_table).
Ray is the optional `cluster` extra: pip install -e ".[cluster]".
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys
import time

from kws_tf import sweep_jobs
from kws_tf.config import ConfigError
from kws_tf.fsutil import atomic_write_json

MANIFEST = "sweep_job.json"
LOG = "sweep_job.log"
ATTEMPT = "sweep_attempt.json"
RESULT = "sweep_result.json"
INSTALL_HINT = 'Ray is not installed: pip install -e ".[cluster]"'


class SweepError(RuntimeError):
    """A problem with the sweep as a whole; one line for the user."""


def define_flags():
    from absl import flags

    flags.DEFINE_string("sweep", None, "Sweep file (configs/sweeps/<name>.json).")
    flags.DEFINE_string("out", None, "Output folder: one model_dir per job, and the table.")
    flags.DEFINE_string("address", None, "Join this Ray cluster (HOST:PORT of `ray start --head`, or ray://HOST:10001); "
                        "default: start a local Ray instance.")
    flags.DEFINE_integer("max_parallel", None, "Jobs in flight at once (default: the cluster's CPUs / num_cpus per job).")
    flags.DEFINE_integer("retries", 1, "Retries of a job whose stage exits non-zero, and Ray retries of a job whose "
                         "worker dies.")
    flags.DEFINE_bool("dry_run", False, "List the jobs, their commands and which are complete; run nothing.")
    flags.DEFINE_bool("gather_only", False, "Only rebuild the table from the job folders in --out.")


# --------------------------------------------------------------------------- job state (files)

def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def manifest_state(job: sweep_jobs.Job) -> str:
    """'new' (no manifest), 'same' or 'other' (the folder holds a different job)."""
    path = pathlib.Path(job.model_dir) / MANIFEST
    if not path.exists():
        return "new"
    return "same" if _read_json(path) == job.spec() else "other"


def is_complete(job: sweep_jobs.Job) -> bool:
    return manifest_state(job) == "same" and all(sweep_jobs.stage_done(job.model_dir, s) for s in job.stages)


def _die_with_parent():
    """Runs in the stage's child before exec: if the Ray worker dies (killed, node lost), the
    child is killed too, so a retry never races an orphaned training run in the same folder."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _last_error(log_path: pathlib.Path, offset: int = 0) -> str:
    """The stage's `error: ...` line (else its last line), from what it wrote after `offset`."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("=== ")]
    errors = [ln for ln in lines if ln.startswith(("error:", "interrupted:"))]
    return (errors or lines or [""])[-1][:300]


def run_job(spec: dict, num_cpus: float = 1.0, num_gpus: float = 0.0) -> dict:
    """Run one job's stages (the body of the Ray task; plain Python, so it can also run without Ray).

    Returns {"status": "done"|"failed", ...}; never raises for a failing stage."""
    import platform

    job = sweep_jobs.Job(model=spec["model"], channels=spec["C"], seed=spec["seed"], tag=spec["tag"],
                         model_dir=spec["model_dir"], stages=tuple(spec["stages"]), train=spec["train"],
                         export=spec["export"], evaluate=spec["evaluate"], num_cpus=num_cpus, num_gpus=num_gpus)
    md = pathlib.Path(job.model_dir)
    started = time.time()
    base = {"started": started, "node": platform.node(), "worker_pid": os.getpid()}
    if manifest_state(job) == "other":
        return {**base, "status": "failed", "stage": None, "rc": None, "ended": time.time(), "wall_s": 0.0,
                "error": f"{md} holds a different job ({MANIFEST} differs); remove it or choose another --out"}
    md.mkdir(parents=True, exist_ok=True)
    atomic_write_json(md / MANIFEST, job.spec())
    atomic_write_json(md / ATTEMPT, base)
    env = dict(os.environ)
    # Keep TensorFlow's thread pools to the CPUs Ray gave this job, so parallel jobs do not oversubscribe.
    threads = str(max(1, int(num_cpus)))
    env.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
    stage_walls = {}
    for stage, argv in sweep_jobs.commands(job, sys.executable):
        if sweep_jobs.stage_done(md, stage):
            continue
        if stage == "train" and (md / "run_config.json").exists():
            argv.append("--resume")
        t0 = time.time()
        offset = (md / LOG).stat().st_size if (md / LOG).exists() else 0
        with open(md / LOG, "a") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {stage} on {platform.node()}: "
                      f"{' '.join(argv)}\n")
            log.flush()
            rc = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=md,
                                 env=env, preexec_fn=_die_with_parent)
            log.write(f"=== {stage} exit status {rc} after {time.time() - t0:.1f} s\n")
        stage_walls[stage] = time.time() - t0
        if rc != 0:
            ended = time.time()
            return {**base, "status": "failed", "stage": stage, "rc": rc, "ended": ended, "wall_s": ended - started,
                    "stage_wall_s": stage_walls, "error": _last_error(md / LOG, offset) or f"{stage} exited with {rc}"}
    ended = time.time()
    return {**base, "status": "done", "stage": None, "rc": 0, "ended": ended, "wall_s": ended - started,
            "stage_wall_s": stage_walls, "error": None}


def record_result(job: sweep_jobs.Job, attempts: list[dict]) -> dict:
    """Merge this run's attempts into sweep_result.json (earlier runs' attempts are kept)."""
    path = pathlib.Path(job.model_dir) / RESULT
    old = _read_json(path) if manifest_state(job) == "same" else None
    history = (old or {}).get("attempts", []) + attempts
    final = attempts[-1]
    result = {"job": job.name, "status": final["status"], "error": final.get("error"),
              "attempts": history, "wall_s": sum(a.get("wall_s") or 0.0 for a in history)}
    if pathlib.Path(job.model_dir).is_dir():
        atomic_write_json(path, result)
    return result


# --------------------------------------------------------------------------- Ray

def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(INSTALL_HINT) from None
    return ray


def _is_loopback(address: str | None) -> bool:
    if not address:
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def import_ray_for(address: str | None):
    """`import ray`, set up for `address` (before Ray reads its settings at import)."""
    if _is_loopback(address) and not (address or "").startswith("ray://"):
        # Ray swaps a loopback address for the machine's network address (so that other nodes can
        # reach it) unless multi-node mode is off; a driver on the head node or a local instance
        # has no other node to be reached from, so it stays on loopback.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    return import_ray()


def connect(address: str | None):
    """ray.init: a local instance, or join `address`."""
    ray = import_ray_for(address)
    # Workers import kws_tf.sweep and their stages run `python -m kws_tf...` from the model_dir: give
    # them this checkout first on their path (on other nodes it must be at the same path, or installed).
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    path = os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    kwargs = {"log_to_driver": False, "configure_logging": True, "logging_level": "ERROR",
              "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SweepError(f"cannot start or join {where}: {str(e).strip().splitlines()[0] if str(e).strip() else e}")
    return ray


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """jobs done / running / failed / pending, with an ETA from the finished jobs' durations."""

    def __init__(self, total: int, parallel: int, log=print):
        self.total, self.parallel, self.log = total, max(1, parallel), log
        self.walls: list[float] = []
        self.last = None

    def show(self, done: int, running_since: list, failed: int, pending: int, note: str = "") -> None:
        """`running_since`: submission times of the jobs in flight (what they have left is the
        mean job wall less their time so far)."""
        running = len(running_since)
        key = (done, running, failed, pending)
        if key == self.last and not note:
            return
        self.last = key
        eta = ""
        if self.walls and (running or pending):
            mean = sum(self.walls) / len(self.walls)
            now = time.time()
            left = sum(max(0.0, mean - (now - t)) for t in running_since) + pending * mean
            eta = f", ETA {_fmt_s(max(left / self.parallel, max((mean - (now - t) for t in running_since), default=0.0)))}"
        self.log(f"[{time.strftime('%H:%M:%S')}] jobs: {done} done, {running} running, {failed} failed, "
                 f"{pending} pending of {self.total}{eta}" + (f"  ({note})" if note else ""))


def run_jobs(ray, jobs: list[sweep_jobs.Job], max_parallel: int, retries: int, log=print) -> dict[str, dict]:
    """Run `jobs` (none complete) as Ray tasks; returns job name -> result. Failures never stop the others."""
    remote = ray.remote(run_job)
    pending = collections.deque((job, 0) for job in jobs)
    running: dict = {}  # ObjectRef -> (job, attempt number)
    attempts: dict[str, list] = {job.name: [] for job in jobs}
    results: dict[str, dict] = {}
    prog = Progress(len(jobs), max_parallel, log)
    failed = 0
    prog.show(0, [], 0, len(pending))
    try:
        while pending or running:
            while pending and len(running) < max_parallel:
                job, n = pending.popleft()
                ref = remote.options(num_cpus=job.num_cpus, num_gpus=job.num_gpus, max_retries=retries,
                                     retry_exceptions=False, name=f"sweep:{job.name}").remote(
                    job.spec(), job.num_cpus, job.num_gpus)
                running[ref] = (job, n, time.time())
            prog.show(len(results) - failed, [r[2] for r in running.values()], failed, len(pending))
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                job, n, t_submit = running.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as e:  # worker died (after Ray's retries), node lost, task error
                    text = str(e).strip().splitlines()
                    attempt = _read_json(pathlib.Path(job.model_dir) / ATTEMPT) or {}
                    started = max(t_submit, attempt.get("started") or t_submit)  # not the time it queued
                    res = {"status": "failed", "stage": None, "rc": None, "started": started, "ended": time.time(),
                           "wall_s": time.time() - started,
                           "error": f"{type(e).__name__}: {text[0] if text else ''}"[:300], "crashed": True}
                attempts[job.name].append(res)
                note = f"{job.name} {res['status']}"
                if res["status"] != "done":
                    note += f": {res.get('error')}"
                if res["status"] == "failed" and not res.get("crashed") and n < retries:
                    pending.appendleft((job, n + 1))
                    note += f" (retry {n + 1} of {retries})"
                else:
                    results[job.name] = record_result(job, attempts[job.name])
                    prog.walls.append(res["wall_s"])
                    failed += res["status"] != "done"
                prog.show(len(results) - failed, [r[2] for r in running.values()], failed, len(pending), note)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)  # kills the workers; their stage processes die with them
        raise
    return results


# --------------------------------------------------------------------------- CLI

def sweep(sweep_path, out, address=None, max_parallel=None, retries=1, dry_run=False, gather_only=False,
          log=print) -> dict:
    """Load, run what is not complete, gather. Returns the table dict (None for a dry run)."""
    from kws_tf import sweep_table

    if retries < 0:
        raise SweepError(f"--retries must be >= 0 (got {retries})")
    if max_parallel is not None and max_parallel < 1:
        raise SweepError(f"--max_parallel must be at least 1 (got {max_parallel})")
    t0 = time.time()
    out = pathlib.Path(out).resolve()
    jobs = sweep_jobs.load_sweep(sweep_path, out)
    states = {job.name: ("complete" if is_complete(job) else manifest_state(job)) for job in jobs}
    clash = [job.name for job in jobs if states[job.name] == "other"]
    if clash:
        raise SweepError(f"{out / clash[0]} holds a different job ({MANIFEST} differs from the sweep file); "
                         f"remove it or choose another --out")
    todo = [job for job in jobs if states[job.name] != "complete"]
    if todo and not (dry_run or gather_only):
        import_ray_for(address)  # a missing Ray is reported before any work
    if dry_run:
        for job in jobs:
            what = {"complete": "complete (skipped)", "same": "incomplete (resumed)", "new": "new"}[states[job.name]]
            log(f"{job.name}: {what}")
            for stage, argv in sweep_jobs.commands(job):
                log(f"  {stage}: {' '.join(argv)}")
        log(f"{len(jobs)} jobs: {len(jobs) - len(todo)} complete, {len(todo)} to run")
        return None
    run_wall = None
    if not gather_only:
        for job in jobs:
            if states[job.name] == "complete":
                log(f"{job.name}: complete, skipped")
        if todo:
            ray = connect(address)
            try:
                cpus = ray.cluster_resources().get("CPU", 1.0)
                per_job = max(job.num_cpus for job in todo)
                parallel = max_parallel or max(1, int(cpus // per_job))
                log(f"{len(todo)} of {len(jobs)} jobs to run on {cpus:g} CPUs, up to {parallel} at once "
                    f"({per_job:g} CPU each); logs in <model_dir>/{LOG}")
                run_jobs(ray, todo, parallel, retries, log)
            finally:
                ray.shutdown()
        run_wall = time.time() - t0
    table = sweep_table.gather(jobs, out, run_wall_s=run_wall)
    sweep_table.write(table, out)
    log(sweep_table.markdown(table))
    log(f"table in {out / 'table.md'} (.json, .png)")
    return table


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.sweep:
        sys.exit("error: --sweep is required (a file in configs/sweeps/)")
    if not FLAGS.out:
        sys.exit("error: --out is required (the sweep's output folder)")
    try:
        table = sweep(FLAGS.sweep, FLAGS.out, address=FLAGS.address, max_parallel=FLAGS.max_parallel,
                      retries=FLAGS.retries, dry_run=FLAGS.dry_run, gather_only=FLAGS.gather_only,
                      log=lambda m: print(m, flush=True))
    except (ConfigError, SweepError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: rerun the same command to resume")
    if table is not None and table["jobs_failed"]:
        sys.exit(f"error: {table['jobs_failed']} of {table['jobs']} jobs failed (see table.md and their {LOG})")


if __name__ == "__main__":
    from absl import app

    from kws_tf import cli_env

    cli_env.start()
    define_flags()
    app.run(main)
