"""The model family: one module per architecture, one registry that `--model=` reads.

Each architecture registers a `ModelSpec` naming its builder, the front-end its input needs
(`frontend`: the features the data pipeline, the export and the device must give it) and the
custom Keras objects its saved model needs to reload. Train, export and evaluate ask the
registry; none of them special-cases a model by name.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

FRONTENDS = ("mfcc", "logmel", "waveform")  # front-ends the pipeline can compute (kws_tf.frontends)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable  # build(channels, num_classes=, weight_decay=, seed=, sigma=, lam=, ...) -> keras.Model
    frontend: str = "mfcc"
    custom_objects: Callable[[], dict] = dict  # called lazily: layers import TensorFlow
    summary: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    if spec.frontend not in FRONTENDS:
        raise ValueError(f"model {spec.name!r}: unknown front-end {spec.frontend!r}; one of {FRONTENDS}")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {list(names())}")
    return _REGISTRY[name]


def build_model(name: str, channels: int, **kwargs):
    return get(name).build(channels=channels, **kwargs)


def custom_objects() -> dict:
    """Every registered model's custom objects: enough to reload any saved `model.keras`."""
    out: dict = {}
    for spec in _REGISTRY.values():
        out.update(spec.custom_objects())
    return out


def _register_builtin() -> None:
    # Imported here, not at the top, so each architecture module stays importable on its own.
    from kws_tf.models import bcresnet, dscnn, sparknet

    register(ModelSpec("sparknet", sparknet.build_sparknet, "mfcc", sparknet.custom_objects,
                       "SparkNet: learned sparse MFCC mask + one linear layer"))
    register(ModelSpec("dscnn", dscnn.build_dscnn, "mfcc", dict, "MLPerf Tiny DS-CNN"))
    register(ModelSpec("bcresnet", bcresnet.build_bcresnet, "logmel", bcresnet.custom_objects,
                       "BC-ResNet (broadcasted residual, SubSpectral Norm) on 40 log-mel bands"))
    from kws_tf.models import sincnet

    register(ModelSpec("sincnet", sincnet.build_sincnet, "waveform", sincnet.custom_objects,
                       "Sinc-convolution GDSConv network on the raw waveform (Mittermaier et al. 2020)"))


_register_builtin()
