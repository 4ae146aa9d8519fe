"""The one loader of run configurations (`configs/*.json`), and their schema.

Every config (a shipped one, a user's `--config`, and the result of the command-line
overrides) is checked against `SCHEMA` before anything is written: unknown keys (at any
level), missing keys, wrong types and nonsensical values are refused with one line that
names the key. Keys starting with `_` (e.g. `_comment`) are comments and are dropped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pathlib

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
MODELS = ("sparknet", "dscnn", "bcresnet", "sincnet")  # kws_tf.models.names(), without importing TensorFlow (a test keeps them equal)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One leaf of the schema: its type (`int`, `number`, `str`, or `paths`: a non-empty list of
    non-empty strings) and the values it accepts."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is not allowed
    hi_open: bool = False
    choices: tuple = ()
    required: bool = True

    def rule(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {"int": "an integer", "number": "a number", "str": "a string",
                "paths": "a non-empty list of folder paths"}[self.kind]
        if self.lo is not None and self.hi is not None:
            return f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{what} {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{what} {'<' if self.hi_open else '<='} {self.hi:g}"
        return what

    def problem(self, value) -> str | None:
        """Why `value` is not acceptable, or None."""
        if self.kind == "str":
            ok_type = isinstance(value, str)
        elif self.kind == "paths":
            ok_type = (isinstance(value, list) and bool(value)
                       and all(isinstance(v, str) and v.strip() for v in value))
            return None if ok_type else f"must be {self.rule()} (got {value!r})"
        elif self.kind == "int":
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok_type:
            return f"must be {self.rule()} (got {value!r})"
        if self.choices and value not in self.choices:
            return f"must be {self.rule()} (got {value!r})"
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return f"must be {self.rule()} (got {value!r})"
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            return f"must be {self.rule()} (got {value!r})"
        return None


def _prob():
    return Field("number", 0.0, 1.0)


SCHEMA = {
    "model": Field("str", choices=MODELS),
    "channels": Field("int", 1, 4096),
    "gate": {"sigma": Field("number", 0.0), "lam": Field("number", 0.0)},
    "time_average": Field("str", choices=("full", "interior"), required=False),
    "ce_weight": Field("number", 0.0, lo_open=True),
    # cross-entropy against (1 - e) one-hot + e / classes (not in the paper's recipe; 0 = off)
    "label_smoothing": Field("number", 0.0, 1.0, hi_open=True, required=False),
    "optimizer": {
        "name": Field("str", choices=("sgd",)),
        "lr": Field("number", 0.0, 10.0, lo_open=True),
        "momentum": Field("number", 0.0, 1.0, hi_open=True),
        "weight_decay": Field("number", 0.0, 1.0),
    },
    "schedule": {  # kws_tf.schedules.from_config; which optional keys a schedule needs: SCHEDULE_KEYS
        "name": Field("str", choices=("poly_hold_decay", "warmup_cosine")),
        "warmup_fraction": Field("number", 0.0, 1.0, required=False),
        "hold_fraction": Field("number", 0.0, 1.0, required=False),
        "power": Field("number", 0.0, lo_open=True, required=False),
        "warmup_epochs": Field("number", 0.0, required=False),
        "min_lr": Field("number", 0.0),
    },
    "epochs": Field("int", 1, 100_000),
    "batch_size": Field("int", 1, 1_000_000),
    "augment": {
        "shift_ms": Field("number", 0.0, 500.0),
        "shift_prob": _prob(),
        "white_noise_db_min": Field("number", -200.0, 0.0),
        "white_noise_db_max": Field("number", -200.0, 0.0),
        "white_noise_prob": _prob(),
        "background_prob": _prob(),
        "background_snr_db_min": Field("number", -40.0, 80.0),
        "background_snr_db_max": Field("number", -40.0, 80.0),
        # SpecAugment-style masks on the normalised MFCC (not in the paper's recipe; 0 = off)
        "spec_prob": Field("number", 0.0, 1.0, required=False),
        "spec_time_masks": Field("int", 0, 10, required=False),
        "spec_time_mask_frames": Field("int", 0, 100, required=False),
        "spec_freq_masks": Field("int", 0, 10, required=False),
        "spec_freq_mask_coeffs": Field("int", 0, 32, required=False),
        # two words in one window (kws_tf.augment.neighbour_mix; 0 = off)
        "neighbour_prob": Field("number", 0.0, 1.0, required=False),
        "neighbour_offset_ms_min": Field("number", 0.0, 1000.0, required=False),
        "neighbour_offset_ms_max": Field("number", 0.0, 1000.0, required=False),
        "neighbour_gain_db_min": Field("number", -60.0, 20.0, required=False),
        "neighbour_gain_db_max": Field("number", -60.0, 20.0, required=False),
    },
    # weight pruning during training (kws_tf.pruning); the whole block is optional
    "prune": {
        "target_sparsity": Field("number", 0.0, 1.0, hi_open=True),
        "begin_fraction": _prob(),
        "end_fraction": _prob(),
        "frequency": Field("int", 1, 1_000_000),
    },
    # distillation from finished runs (kws_tf.distill; not in the paper's recipe); the block is optional
    "distill": {
        "teachers": Field("paths"),
        "alpha": Field("number", 0.0, 1.0),  # weight of the hard-label cross-entropy
        "temperature": Field("number", 0.0, 100.0, lo_open=True),
    },
}
OPTIONAL_SECTIONS = ("prune", "distill")
# schedule name -> the optional schedule keys it needs (the others listed here are refused)
SCHEDULE_KEYS = {"poly_hold_decay": ("warmup_fraction", "hold_fraction", "power"),
                 "warmup_cosine": ("warmup_epochs",)}
REQUIRED = tuple(k for k, f in SCHEMA.items()
                 if (not isinstance(f, Field) and k not in OPTIONAL_SECTIONS) or (isinstance(f, Field) and f.required))


def strip_comments(cfg):
    """`cfg` without keys starting with `_`, at every level."""
    if isinstance(cfg, dict):
        return {k: strip_comments(v) for k, v in cfg.items() if not (isinstance(k, str) and k.startswith("_"))}
    return cfg


def field(key: str) -> Field | None:
    """The schema leaf of a dotted key (`optimizer.lr`), or None."""
    node = SCHEMA
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Field) else None


def problems(cfg, extra_keys=()) -> list[str]:
    """Everything wrong with `cfg` (comments already stripped), each naming its dotted key.

    `extra_keys` are top-level keys that are allowed besides the schema's (a resolved run
    configuration also holds `seed` and `data`)."""
    out = []

    def walk(node, schema, prefix):
        if not isinstance(node, dict):
            out.append(f"{prefix.rstrip('.') or 'the config'} must be a JSON object (got {node!r})")
            return
        for k in node:
            if k not in schema and not (prefix == "" and k in extra_keys):
                out.append(f"unknown key {prefix}{k} (known here: {', '.join(schema)})")
        for k, sub in schema.items():
            if k not in node:
                if (isinstance(sub, dict) and f"{prefix}{k}" not in OPTIONAL_SECTIONS) or getattr(sub, "required", False):
                    out.append(f"missing key {prefix}{k}")
                continue
            if isinstance(sub, dict):
                walk(node[k], sub, f"{prefix}{k}.")
            else:
                why = sub.problem(node[k])
                if why:
                    out.append(f"{prefix}{k} {why}")

    walk(cfg, SCHEMA, "")
    if out:
        return out
    # relations between fields (only once every field is valid)
    opt, sch, aug = cfg["optimizer"], cfg["schedule"], cfg["augment"]
    needs = SCHEDULE_KEYS[sch["name"]]
    for k in sorted({k for keys in SCHEDULE_KEYS.values() for k in keys}):
        if k in needs and k not in sch:
            out.append(f"missing key schedule.{k} (schedule {sch['name']!r} needs it)")
        elif k not in needs and k in sch:
            out.append(f"schedule.{k} does not apply to schedule {sch['name']!r} (it takes {', '.join(needs)})")
    if out:
        return out
    if sch["name"] == "poly_hold_decay" and sch["warmup_fraction"] + sch["hold_fraction"] > 1.0:
        out.append("schedule.warmup_fraction + schedule.hold_fraction must be <= 1 "
                   f"(got {sch['warmup_fraction']} + {sch['hold_fraction']})")
    if sch["min_lr"] > opt["lr"]:
        out.append(f"schedule.min_lr must be <= optimizer.lr (got {sch['min_lr']} > {opt['lr']})")
    for lo, hi in (("white_noise_db_min", "white_noise_db_max"), ("background_snr_db_min", "background_snr_db_max"),
                   ("neighbour_offset_ms_min", "neighbour_offset_ms_max"),
                   ("neighbour_gain_db_min", "neighbour_gain_db_max")):
        if lo in aug and hi in aug and aug[lo] > aug[hi]:
            out.append(f"augment.{lo} must be <= augment.{hi} (got {aug[lo]} > {aug[hi]})")
    prune = cfg.get("prune")
    if prune and prune["begin_fraction"] >= prune["end_fraction"]:
        out.append("prune.begin_fraction must be < prune.end_fraction "
                   f"(got {prune['begin_fraction']} >= {prune['end_fraction']})")
    return out


def validate(cfg, where: str, extra_keys=()) -> dict:
    """`cfg` if it passes the schema, else ConfigError naming `where` and every bad key (one line)."""
    found = problems(cfg, extra_keys)
    if found:
        raise ConfigError(f"{where}: {'; '.join(found)}")
    return cfg


def default_config_path(channels: int, model: str = "sparknet") -> pathlib.Path:
    return CONFIG_DIR / f"{model}_c{channels}.json"


def load_config(path=None, channels: int | None = None, model: str = "sparknet") -> dict:
    """Read and validate a config file; without `path`, the shipped one for `model` and `channels`."""
    if path is None:
        if channels is None:
            raise ConfigError("give a config file or C")
        path = default_config_path(channels, model)
        if not path.exists():
            shipped = sorted(p.stem for p in CONFIG_DIR.glob(f"{model}_c*.json"))
            raise ConfigError(f"no shipped config for {model} with C={channels} (have: {', '.join(shipped)}); pass --config")
    path = pathlib.Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read ({e})") from None
    cfg = validate(strip_comments(cfg), f"config file {path}")
    if channels is not None and cfg["channels"] != channels:
        raise ConfigError(f"config file {path} is for C={cfg['channels']}, not C={channels}")
    return cfg


def with_overrides(cfg: dict, overrides: dict) -> dict:
    """A copy of `cfg` with dotted keys (`optimizer.lr`) set; None values are ignored."""
    out = copy.deepcopy(cfg)
    for key, value in overrides.items():
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
