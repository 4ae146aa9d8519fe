"""The one loader of run configurations (`configs/*.json`)."""

from __future__ import annotations

import copy
import json
import pathlib

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
REQUIRED = ("model", "channels", "gate", "ce_weight", "optimizer", "schedule", "epochs", "batch_size", "augment")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line for the user."""


def default_config_path(channels: int, model: str = "sparknet") -> pathlib.Path:
    return CONFIG_DIR / f"{model}_c{channels}.json"


def load_config(path=None, channels: int | None = None, model: str = "sparknet") -> dict:
    """Read a config file; without `path`, the shipped one for `model` and `channels`."""
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
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON ({e})") from None
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"config file {path} lacks {', '.join(missing)}")
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
