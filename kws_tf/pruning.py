"""Sparse training: weights pruned during training (tfmot `prune_low_magnitude`).

A run config's optional block

    "prune": {"target_sparsity": 0.9, "begin_fraction": 0.2, "end_fraction": 0.8, "frequency": 100}

(or `python -m kws_tf.train --target_sparsity=0.9`, which fills the other keys from
`DEFAULTS`) makes `kws_tf.train` wrap the prunable layers in tfmot's pruning wrapper. The
sparsity follows tfmot's polynomial decay (power 3, from 0 to `target_sparsity`) between
step `begin_fraction` and `end_fraction` of all training steps, the mask updated every
`frequency` steps; the rest of the run fine-tunes at the final sparsity, and only those
epochs may become the "best" weights (an earlier, denser epoch would otherwise win).
`strip` removes the wrappers before saving, so `model.keras` is an ordinary model.

The criterion is weight MAGNITUDE (Zhu & Gupta's gradual pruning, what tfmot implements):
each update keeps the largest |w| of each layer's kernel, and a pruned weight never comes
back. The paper this follows ("Weight-importance sparse training in keyword spotting",
Xue et al. 2018: > 90 % of a KWS DNN's weights pruned with little loss) ranks weights by an
"importance"; its definition could not be checked here (only the abstract was available),
so where it is not plain |w| (e.g. a gradient-based |w * dL/dw| score, or pruned weights
allowed to regrow), this module differs from it.

Prunable: the kernels of Conv2D (1x1 and kxk) and Dense layers; biases, batch-norm
parameters and the gate (RelaxedBernoulliGate: a custom layer, only its noise counter) are never
wrapped. Depthwise kernels are left dense on purpose: a depthwise filter is one channel's
few time (or frequency) taps (SparkNet: 11..29 per channel, about a fifth of C=32's
weights), so pruning 90 % of it leaves one or two taps of that channel's filter, while
the 1x1/dense matrices hold the redundant cross-channel weights that magnitude pruning
removes cheaply; and on the board a zero tap costs the same as any other (dense kernels).

On the device (TFLM Feb-2023, CMSIS-NN) every kernel is dense: sparsity changes neither
the arena nor the MACs nor the time; it only makes the int8 weights compressible (see
`int8_zlib_bytes` in export_report.json).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULTS = {"target_sparsity": 0.9, "begin_fraction": 0.2, "end_fraction": 0.8, "frequency": 100}
POLYNOMIAL_POWER = 3  # Zhu & Gupta's cubic ramp: prune fast while the network is redundant, slowly at the end


def config_with_target(cfg: dict, target: float | None) -> dict:
    """`cfg` with its prune block's target set (a block from `DEFAULTS` if it has none);
    target 0 removes the block (dense training). None: `cfg` unchanged."""
    if target is None:
        return cfg
    out = dict(cfg)
    if target == 0:
        out.pop("prune", None)
        return out
    out["prune"] = {**DEFAULTS, **cfg.get("prune", {}), "target_sparsity": target}
    return out


def schedule_steps(prune: dict, total_steps: int) -> tuple[int, int, int]:
    """(begin_step, end_step, frequency) for a run of `total_steps` steps.

    tfmot updates the mask at steps begin + k * frequency up to end; `end` is moved back
    onto that grid (and the frequency shortened for short runs) so the last update is at
    `end` itself, where the polynomial reaches the target sparsity.
    """
    begin = int(round(prune["begin_fraction"] * total_steps))
    end = int(round(prune["end_fraction"] * total_steps))
    begin = max(1, min(begin, total_steps))  # the wrapper's first training step is 1
    end = max(begin + 1, min(end, total_steps))
    span = end - begin
    frequency = max(1, min(int(prune["frequency"]), span))
    return begin, begin + frequency * (span // frequency), frequency


def first_sparse_epoch(prune: dict, total_steps: int, steps_per_epoch: int) -> int:
    """The first epoch (1-based) that ends with the final mask in place."""
    _, end, _ = schedule_steps(prune, total_steps)
    return max(1, math.ceil(end / steps_per_epoch))


def is_prunable(layer) -> bool:
    import tf_keras as keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):  # a Conv2D subclass: checked first
        return False
    return type(layer) in (keras.layers.Conv2D, keras.layers.Dense)


def wrap(model, prune: dict, total_steps: int):
    """`model` with its prunable layers wrapped for pruning (the same layer objects and
    weights; every other layer, the gate included, is reused as it is)."""
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    sp = tfmot.sparsity.keras
    begin, end, frequency = schedule_steps(prune, total_steps)

    def clone(layer):
        if not is_prunable(layer):
            return layer
        schedule = sp.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(prune["target_sparsity"]),
                                      begin_step=begin, end_step=end, power=POLYNOMIAL_POWER, frequency=frequency)
        return sp.prune_low_magnitude(layer, pruning_schedule=schedule)

    if not any(is_prunable(layer) for layer in model.layers):
        raise ValueError(f"{model.name} has no prunable layer (Conv2D or Dense)")
    wrapped = keras.models.clone_model(model, clone_function=clone)
    return keras.Model(wrapped.inputs, wrapped.outputs, name=model.name)


def callbacks() -> list:
    """Listed before any callback that saves weights: tfmot's callback re-applies the mask at
    each epoch end (the optimizer moves pruned weights between mask applications)."""
    import tensorflow_model_optimization as tfmot

    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model):
    """The ordinary model inside a pruning-wrapped one (masks applied first); others unchanged."""
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    wrappers = [layer for layer in model.layers if isinstance(layer, pruning_wrapper.PruneLowMagnitude)]
    if not wrappers:
        return model
    for layer in wrappers:
        for weight, mask, _ in layer.pruning_vars:
            weight.assign(weight * mask)
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    # strip_pruning reuses the layer objects, which then belong to two graphs (`layer.output` would be
    # the wrapped model's); a clone from config with the weights copied has layers of its own.
    fresh = keras.models.clone_model(stripped)
    fresh.set_weights(stripped.get_weights())
    return keras.Model(fresh.inputs, fresh.outputs, name=model.name)


def measured_sparsity(model) -> dict:
    """Zeros / size of every prunable kernel of a stripped model, and over all of them."""
    layers = {}
    zeros = size = 0
    for layer in model.layers:
        if not is_prunable(layer):
            continue
        w = np.asarray(layer.kernel)
        z = int(np.count_nonzero(w == 0))
        layers[layer.name] = {"zeros": z, "size": int(w.size), "sparsity": z / w.size}
        zeros += z
        size += w.size
    return {"overall": zeros / size if size else 0.0, "zeros": zeros, "size": int(size), "layers": layers}


def train_hooks(prune: dict | None, total_steps: int, steps_per_epoch: int) -> dict:
    """What kws_tf.train's callbacks need for a pruned run (nothing for a dense one):
    the pruning callbacks, to run first, the first epoch that may be kept as best, and the
    stripped model whose weights best.weights.h5 holds (loadable into the ordinary model)."""
    if not prune:
        return {}
    return {"first": callbacks(), "best_from_epoch": first_sparse_epoch(prune, total_steps, steps_per_epoch),
            "best_model": strip}


def int8_weight_zeros(tflite_bytes: bytes) -> tuple[int, int]:
    """(zeros, size) of the weight tensors of the CONV_2D and FULLY_CONNECTED ops in a flatbuffer."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))
    sg = model.subgraphs[0]
    wanted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED}
    zeros = size = 0
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) not in wanted:
            continue
        w = np.asarray(model.buffers[sg.tensors[op.inputs[1]].buffer].data, dtype=np.uint8).view(np.int8)
        zeros += int(np.count_nonzero(w == 0))
        size += w.size
    return zeros, size
