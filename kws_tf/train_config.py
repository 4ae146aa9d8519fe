"""The `kws_tf.train` command line -> the run configuration: the config file, the flags that
override its keys, the data source and the optional distillation block, validated by the one
config loader (`kws_tf.config`). Nothing is written; folders named by flags are only checked.
"""

from __future__ import annotations

import os

from kws_tf import config as config_lib

DISTILL_DEFAULTS = {"alpha": 0.5, "temperature": 2.0}  # what --teacher_dirs alone trains with


# flag -> the config key it overrides
FLAG_KEYS = {
    "epochs": "epochs", "batch_size": "batch_size", "lr": "optimizer.lr", "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay", "sigma": "gate.sigma", "lam": "gate.lam", "ce_weight": "ce_weight",
    "background_prob": "augment.background_prob", "time_average": "time_average",
}


def _check_run_flags(flag_values) -> None:
    """The flags that are not config keys: data split, sizes, seed."""
    def get(name):
        return getattr(flag_values, name, None)

    problems = []
    for name in ("validation_percent", "test_percent"):
        v = get(name)
        if v is not None and not 0.0 <= v <= 100.0:
            problems.append(f"--{name} must be in [0, 100] (got {v:g})")
    if not problems and (get("validation_percent") or 0.0) + (get("test_percent") or 0.0) >= 100.0:
        problems.append("--validation_percent + --test_percent must be below 100 (no clip would be left for training)")
    for name in ("max_per_class", "stop_after_epochs"):
        v = get(name)
        if v is not None and v < 1:
            problems.append(f"--{name} must be at least 1 (got {v})")
    if (get("seed") or 0) < 0:
        problems.append(f"--seed must be >= 0 (got {get('seed')})")
    if problems:
        raise config_lib.ConfigError("; ".join(problems))


def resolve_config(flag_values) -> dict:
    """Config file + flag overrides + data source -> the run configuration (validated; nothing is written)."""
    cfg = config_lib.load_config(flag_values.config, None if flag_values.config else flag_values.C, flag_values.model)
    overrides, problems = {}, []
    for name, key in FLAG_KEYS.items():
        value = getattr(flag_values, name, None)
        if value is None:
            continue
        why = config_lib.field(key).problem(value)
        if why:
            problems.append(f"--{name}={value}: {key} {why}")
        overrides[key] = value
    if problems:
        raise config_lib.ConfigError("; ".join(problems))
    _check_run_flags(flag_values)
    cfg = config_lib.with_overrides(cfg, overrides)
    from kws_tf import pruning

    cfg = pruning.config_with_target(cfg, getattr(flag_values, "target_sparsity", None))
    cfg = _with_distill_flags(cfg, flag_values)
    source = flag_values.config or config_lib.default_config_path(flag_values.C, flag_values.model)
    config_lib.validate(cfg, f"config {source} with the given flags")
    cfg["seed"] = getattr(flag_values, "seed", 0) or 0
    if flag_values.data_dir:
        cfg["data"] = {"kind": "folder", "path": os.path.abspath(flag_values.data_dir),
                       "validation_percent": flag_values.validation_percent,
                       "test_percent": flag_values.test_percent, "max_per_class": flag_values.max_per_class,
                       "noise_dir": os.path.abspath(flag_values.noise_dir) if flag_values.noise_dir else None}
    else:
        cfg["data"] = {"kind": "tfds", "tfds_data_dir": flag_values.tfds_data_dir,
                       "noise_dir": os.path.abspath(flag_values.noise_dir) if flag_values.noise_dir else None}
    extra = getattr(flag_values, "extra_train_dir", None)
    if extra:
        missing = [d for d in extra if not os.path.isdir(d)]
        if missing:
            raise config_lib.ConfigError(f"--extra_train_dir: {', '.join(missing)} is not a folder")
        cfg["data"]["extra_train"] = [os.path.abspath(d) for d in extra]
    return cfg


def _with_distill_flags(cfg: dict, flag_values) -> dict:
    """The config's distill block with --teacher_dirs / --distill_alpha / --distill_temperature applied;
    teacher paths made absolute (the run config must name them wherever the run is resumed from)."""
    teachers = getattr(flag_values, "teacher_dirs", None)
    alpha, temperature = (getattr(flag_values, n, None) for n in ("distill_alpha", "distill_temperature"))
    block = cfg.get("distill")
    if not teachers and block is None:
        if alpha is not None or temperature is not None:
            raise config_lib.ConfigError("--distill_alpha/--distill_temperature need --teacher_dirs "
                                         "(or a distill block in the config)")
        return cfg
    block = {**DISTILL_DEFAULTS, **(block or {})}
    if teachers:
        block["teachers"] = list(teachers)
    if alpha is not None:
        block["alpha"] = alpha
    if temperature is not None:
        block["temperature"] = temperature
    if isinstance(block.get("teachers"), list):
        block["teachers"] = [os.path.abspath(t) if isinstance(t, str) and t.strip() else t for t in block["teachers"]]
    return {**cfg, "distill": block}
