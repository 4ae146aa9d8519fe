"""Sweep file -> job list (pure: no Ray, no TensorFlow, nothing written).

A sweep file (`configs/sweeps/<name>.json`) is data:

    {
      "models": {"sparknet": [32, 16], "dscnn": [64]},   model -> sizes C
      "seeds": [0, 1, 2],
      "stages": ["train", "export"],                     any of train, export, evaluate (train first)
      "train": {"epochs": 10, "data_dir": "$KWS_REAL_DATA/sc_v2_test_dev"},   flags of every train run
      "export": {"timing_repeats": 20},                  flags of every export run (optional)
      "evaluate": {"split": "validation"},               flags of every evaluate run (optional)
      "variants": [{"tag": "e10", "train": {"epochs": 10}}],   optional: each variant is its own group
      "resources": {"num_cpus": 1, "num_gpus": 0}         Ray resources of one job (optional)
    }

Flag names and value types are checked against the `flags.DEFINE_*` calls of the tools
themselves (read from their source, so a flag added there is accepted here at once); the flags
the sweep sets per job (model, C, seed, model_dir, resume, out, ...) may not be given. String
values may hold `$VAR`/`${VAR}` (environment variables, e.g. `$KWS_REAL_DATA`); an unset
variable is an error. Relative paths in path flags are made absolute against the sweep's
working directory, because jobs run with their model_dir as working directory.

Each job is model × C × variant × seed, in that order, with model_dir
`<out>/<model>_c<C>_s<seed>[_<tag>]`.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pathlib
import re

from kws_tf.config import MODELS, ConfigError, strip_comments

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
SWEEP_DIR = PACKAGE_DIR.parent / "configs" / "sweeps"
STAGES = ("train", "export", "evaluate")
# Where each stage's flags are defined (module of `python -m`, source file).
TOOLS = {"train": ("kws_tf.train", "train.py"), "export": ("kws_tf.export", "export_cli.py"),
         "evaluate": ("kws_tf.evaluate", "evaluate.py")}
# Set by the sweep for every job: a sweep file may not give them.
RESERVED = {"train": ("model", "C", "seed", "model_dir", "resume", "verbose", "stop_after_epochs"),
            "export": ("model_dir", "out", "int8", "overwrite"),
            "evaluate": ("model", "out", "wav")}
STAGE_REPORTS = {"train": "report.json", "export": "export/export_report.json", "evaluate": "eval/eval_*.json"}
PATH_FLAGS = ("config", "data_dir", "noise_dir", "tfds_data_dir", "selftest_clips", "normalization")
TOP_KEYS = ("models", "seeds", "stages", "train", "export", "evaluate", "variants", "resources")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
_VAR_RE = re.compile(r"\$(\w+|\{\w+\})")


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    kind: str  # integer, float, bool, string, enum, list
    choices: tuple = ()


@dataclasses.dataclass(frozen=True)
class Job:
    """One model × C × variant × seed: the stages to run and each stage's flags (all values strings)."""

    model: str
    channels: int
    seed: int
    tag: str
    model_dir: str
    stages: tuple
    train: dict
    export: dict
    evaluate: dict
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def name(self) -> str:
        return pathlib.Path(self.model_dir).name

    @property
    def group(self) -> tuple:
        return (self.model, self.channels, self.tag)

    def spec(self) -> dict:
        """The manifest (`sweep_job.json`): everything that decides what the job computes.

        Resources are left out: running the same job with more CPUs is the same job."""
        return {"model": self.model, "C": self.channels, "seed": self.seed, "tag": self.tag,
                "model_dir": self.model_dir, "stages": list(self.stages), "train": dict(self.train),
                "export": dict(self.export), "evaluate": dict(self.evaluate)}


def tool_flags(stage: str) -> dict[str, FlagSpec]:
    """The flags a tool defines, read from the `flags.DEFINE_*("name", ...)` calls in its source."""
    source = (PACKAGE_DIR / TOOLS[stage][1]).read_text()
    out = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("DEFINE_") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        kind = node.func.attr[len("DEFINE_"):]
        choices = ()
        if kind == "enum" and len(node.args) > 2 and isinstance(node.args[2], (ast.List, ast.Tuple)):
            choices = tuple(e.value for e in node.args[2].elts if isinstance(e, ast.Constant))
        out[node.args[0].value] = FlagSpec(kind, choices)
    out.pop("tf_logs", None)
    return out


def _expand(value: str, env, where: str) -> str:
    def sub(m):
        name = m.group(1).strip("{}")
        if name not in env:
            raise ConfigError(f"{where}: ${name} is not set (export it or write the path out)")
        return env[name]
    return _VAR_RE.sub(sub, value)


def _flag_value(spec: FlagSpec, name: str, value, env, cwd: str, where: str) -> str:
    """A sweep-file flag value as the command-line text, or ConfigError."""
    bad = f"{where}: --{name} must be "
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(bad + f"true or false (got {value!r})")
        return "true" if value else "false"
    if spec.kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(bad + f"an integer (got {value!r})")
        return str(value)
    if spec.kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(bad + f"a number (got {value!r})")
        return repr(float(value))
    if spec.kind == "list" and isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ConfigError(bad + f"a string (got {value!r})")
    value = _expand(value, env, f"{where}: --{name}")
    if spec.kind == "enum" and spec.choices and value not in spec.choices:
        raise ConfigError(bad + f"one of {', '.join(spec.choices)} (got {value!r})")
    if name in PATH_FLAGS and value:
        value = os.path.normpath(os.path.join(cwd, value))
    return value


def _stage_flags(stage: str, given, known: dict, env, cwd: str, where: str) -> dict:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ConfigError(f"{where} must be a JSON object of --flag: value (got {given!r})")
    out = {}
    for name, value in given.items():
        if name in RESERVED[stage]:
            raise ConfigError(f"{where}: --{name} is set by the sweep for every job and may not be given")
        if name not in known:
            raise ConfigError(f"{where}: python -m {TOOLS[stage][0]} has no flag --{name}")
        out[name] = _flag_value(known[name], name, value, env, cwd, where)
    return out


def _int_list(value, where: str, lo: int) -> list[int]:
    if (not isinstance(value, list) or not value
            or any(not isinstance(v, int) or isinstance(v, bool) or v < lo for v in value)):
        raise ConfigError(f"{where} must be a non-empty list of integers >= {lo} (got {value!r})")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} lists a value twice (got {value!r})")
    return value


def expand(sweep: dict, out_dir, where: str = "sweep", env=None, cwd: str | None = None,
           models=MODELS) -> list[Job]:
    """The jobs of a sweep (comments already stripped), or ConfigError naming the bad key (one line)."""
    env = os.environ if env is None else env
    cwd = cwd or os.getcwd()
    if not isinstance(sweep, dict):
        raise ConfigError(f"{where} must be a JSON object (got {type(sweep).__name__})")
    unknown = [k for k in sweep if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(TOP_KEYS)})")
    for key in ("models", "seeds"):
        if key not in sweep:
            raise ConfigError(f"{where}: missing key {key}")
    if not isinstance(sweep["models"], dict) or not sweep["models"]:
        raise ConfigError(f"{where}: models must be a non-empty object of model name -> list of C")
    sizes = {}
    for model, cs in sweep["models"].items():
        if model not in models:
            raise ConfigError(f"{where}: models.{model}: unknown model (known: {', '.join(models)})")
        sizes[model] = _int_list(cs, f"{where}: models.{model}", 1)
    seeds = _int_list(sweep["seeds"], f"{where}: seeds", 0)
    stages = sweep.get("stages", ["train"])
    if (not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages)
            or len(set(stages)) != len(stages)):
        raise ConfigError(f"{where}: stages must be a non-empty list of distinct {', '.join(STAGES)} (got {stages!r})")
    if "train" not in stages:
        raise ConfigError(f"{where}: stages must include train (export and evaluate need its model_dir)")
    stages = tuple(s for s in STAGES if s in stages)
    known = {stage: tool_flags(stage) for stage in STAGES}
    base = {stage: _stage_flags(stage, sweep.get(stage), known[stage], env, cwd, f"{where}: {stage}")
            for stage in STAGES}
    res = sweep.get("resources", {})
    if not isinstance(res, dict) or any(k not in ("num_cpus", "num_gpus") for k in res):
        raise ConfigError(f"{where}: resources must be an object with num_cpus and/or num_gpus (got {res!r})")
    num_cpus, num_gpus = res.get("num_cpus", 1), res.get("num_gpus", 0)
    for name, v, lo_ok in (("num_cpus", num_cpus, False), ("num_gpus", num_gpus, True)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (v == 0 and not lo_ok):
            raise ConfigError(f"{where}: resources.{name} must be a number {'>=' if lo_ok else '>'} 0 (got {v!r})")

    variants = sweep.get("variants", [{}])
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{where}: variants must be a non-empty list of objects")
    resolved = []
    for i, var in enumerate(variants):
        vwhere = f"{where}: variants[{i}]"
        if not isinstance(var, dict):
            raise ConfigError(f"{vwhere} must be an object (got {var!r})")
        bad = [k for k in var if k not in ("tag",) + STAGES]
        if bad:
            raise ConfigError(f"{vwhere}: unknown key {bad[0]} (known: tag, {', '.join(STAGES)})")
        tag = var.get("tag", "")
        if len(variants) > 1 and not tag:
            raise ConfigError(f"{vwhere}: a tag is needed when there is more than one variant")
        if tag and (not isinstance(tag, str) or not TAG_RE.match(tag)):
            raise ConfigError(f"{vwhere}: tag must be 1-40 letters, digits, '.' or '-' (got {tag!r})")
        flags = {stage: {**base[stage], **_stage_flags(stage, var.get(stage), known[stage], env, cwd,
                                                       f"{vwhere}.{stage}")} for stage in STAGES}
        resolved.append((tag, flags))
    tags = [t for t, _ in resolved]
    if len(set(tags)) != len(tags):
        raise ConfigError(f"{where}: variants repeat the tag {next(t for t in tags if tags.count(t) > 1)!r}")

    out_dir = os.path.normpath(os.path.join(cwd, str(out_dir)))
    jobs = []
    for model, cs in sizes.items():
        for c in cs:
            for tag, flags in resolved:
                for seed in seeds:
                    name = f"{model}_c{c}_s{seed}" + (f"_{tag}" if tag else "")
                    jobs.append(Job(model, c, seed, tag, os.path.join(out_dir, name), stages, flags["train"],
                                    flags["export"] if "export" in stages else {},
                                    flags["evaluate"] if "evaluate" in stages else {},
                                    float(num_cpus), float(num_gpus)))
    dirs = [j.model_dir for j in jobs]
    if len(set(dirs)) != len(dirs):  # cannot happen with the naming above; a guard for later changes
        raise ConfigError(f"{where}: two jobs share a model_dir")
    return jobs


def load_sweep(path, out_dir, env=None, cwd: str | None = None) -> list[Job]:
    """Read a sweep file and expand it into jobs; ConfigError (one line) for anything wrong."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist" if not path.exists() else f"sweep file {path} is not a file")
    try:
        sweep = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"sweep file {path} is not valid JSON ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"sweep file {path} cannot be read ({e})") from None
    return expand(strip_comments(sweep), out_dir, f"sweep file {path}", env=env, cwd=cwd)


def stage_done(model_dir, stage: str) -> bool:
    """Whether a stage's report exists in `model_dir` (its tool writes it last, atomically)."""
    md = pathlib.Path(model_dir)
    pattern = STAGE_REPORTS[stage]
    return any(md.glob(pattern)) if "*" in pattern else (md / pattern).is_file()


def commands(job: Job, python: str = "python") -> list[tuple[str, list[str]]]:
    """(stage, argv) of each stage as a fresh run (the runner adds --resume to an interrupted train)."""
    md = job.model_dir
    out = []
    train = [python, "-m", TOOLS["train"][0], f"--model={job.model}", f"--C={job.channels}", f"--seed={job.seed}",
             f"--model_dir={md}", "--verbose=epoch"] + [f"--{k}={v}" for k, v in job.train.items()]
    out.append(("train", train))
    if "export" in job.stages:
        out.append(("export", [python, "-m", TOOLS["export"][0], "--int8", f"--model_dir={md}",
                               f"--out={os.path.join(md, 'export')}", "--overwrite"]
                    + [f"--{k}={v}" for k, v in job.export.items()]))
    if "evaluate" in job.stages:
        target = os.path.join(md, "export") if "export" in job.stages else md
        out.append(("evaluate", [python, "-m", TOOLS["evaluate"][0], f"--model={target}",
                                 f"--out={os.path.join(md, 'eval')}"]
                    + [f"--{k}={v}" for k, v in job.evaluate.items()]))
    return out
