"""Quantisation-aware fine-tuning (tfmot) of the deployable SparkNet graph.

Flow: `tflite_tools.deploy_model(net)` (BN folded, deployable gate, pooling as
AVERAGE_POOL_2D, classifier as 1x1 conv) -> `quantize_model` (tfmot annotate +
quantize_apply; the gate gets `GateQuantizeConfig`: no weights, its output fake
quantised) -> `init_ranges` (activation ranges set from calibration features, so
the QAT model starts where PTQ is instead of at tfmot's [-6, 6] defaults, which
its 0.999 moving average would take thousands of steps to leave) -> `fine_tune`
(the training recipe's loss: ce_weight * CE + the gate's sparsity loss and noise,
augmented batches) -> `copy_back` into the float deploy graph, which the export
converts with the same calibrated int8 converter as PTQ.

tfmot works only with tf_keras and 2-D layers, which is what `deploy_model` gives.
The QAT model is never saved as `.keras` (that fails to reload); nothing here saves it.
"""

from __future__ import annotations

import numpy as np


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def gate_quantize_config_class():
    tfmot = _tfmot()
    Q = tfmot.quantization.keras

    class GateQuantizeConfig(Q.QuantizeConfig):
        """The gate has no weights; its output (a mask in [0, 1]) is fake quantised."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                         narrow_range=False)]

        def get_config(self):
            return {}

    return GateQuantizeConfig


def depthwise_quantize_config_class():
    """DepthwiseConv2D with per-channel weight fake quantisation.

    tfmot's default quantises per axis along the kernel's last axis, which for a
    depthwise kernel `[kh, kw, C, 1]` is the multiplier (size 1): per tensor. The
    deployed flatbuffer quantises depthwise weights per channel, so QAT should too.
    """
    import tensorflow as tf
    import tf_keras as keras

    tfmot = _tfmot()
    Q = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    class DepthwisePerChannelWeightsQuantizer(Q.quantizers.LastValueQuantizer):
        def __init__(self):
            super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

        def build(self, tensor_shape, name, layer):
            channels = int(np.prod(tensor_shape[2:]))
            return {
                "min_var": layer.add_weight(name + "_min", shape=(channels,),
                                            initializer=keras.initializers.Constant(-6.0), trainable=False),
                "max_var": layer.add_weight(name + "_max", shape=(channels,),
                                            initializer=keras.initializers.Constant(6.0), trainable=False),
            }

        def __call__(self, inputs, training, weights, **kwargs):
            shape = tf.shape(inputs)
            flat = tf.reshape(inputs, tf.concat([shape[:2], [1, -1]], 0))  # [kh, kw, 1, C*mult]
            out = super().__call__(flat, training, weights, **kwargs)
            return tf.reshape(out, shape)

    class DepthwisePerChannelQuantizeConfig(registry.Default8BitQuantizeConfig):
        def __init__(self, weight_attrs=("depthwise_kernel",), activation_attrs=("activation",),
                     quantize_output=False):
            super().__init__(list(weight_attrs), list(activation_attrs), quantize_output)
            self.weight_quantizer = DepthwisePerChannelWeightsQuantizer()

    return DepthwisePerChannelQuantizeConfig


_GATE_QC = None
_DW_QC = None


def _dw_qc():
    global _DW_QC
    if _DW_QC is None:
        _DW_QC = depthwise_quantize_config_class()
    return _DW_QC


def _gate_qc():
    global _GATE_QC
    if _GATE_QC is None:
        _GATE_QC = gate_quantize_config_class()
    return _GATE_QC


def quantize_model(deploy):
    """tfmot QAT model of a `deploy_model` graph (weights copied from it)."""
    import tf_keras as keras

    from kws_tf.deploy_graph import deploy_gate_class, secant_gate_class

    Q = _tfmot().quantization.keras
    gate_cls, qc_cls, dw_cls = (deploy_gate_class(), secant_gate_class()), _gate_qc(), _dw_qc()

    def annotate(layer):
        if isinstance(layer, gate_cls):
            return Q.quantize_annotate_layer(layer, qc_cls())
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return Q.quantize_annotate_layer(layer, dw_cls())
        return Q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(deploy, clone_function=annotate)
    with Q.quantize_scope({"DeployGate": gate_cls[0], "SecantDeployGate": gate_cls[1], "GateQuantizeConfig": qc_cls,
                           "DepthwisePerChannelQuantizeConfig": dw_cls}):
        qat = Q.quantize_apply(annotated)
    # clone_model + quantize_apply carry the weights; make sure (it is cheap).
    _copy_weights(deploy, qat)
    return qat


def _short(var) -> str:
    return var.name.split("/")[-1].split(":")[0]


def _copy_weights(deploy, qat, to_qat: bool = True) -> int:
    """Weights deploy -> the QAT wrappers' layer variables (or back, `to_qat=False`).

    A QuantizeWrapper keeps its layer's variables in `wrapper.weights` (named
    `<layer>/<var>`), while `wrapper.layer.kernel` becomes the fake-quantised tensor,
    so variables are matched by layer and short name. Returns the number copied.
    """
    copied = 0
    for layer in deploy.layers:
        if not layer.weights:
            continue
        try:
            wrapper = qat.get_layer(f"quant_{layer.name}")
        except ValueError:
            continue
        inner = getattr(wrapper, "layer", None)
        if inner is None:
            continue
        prefix = inner.name + "/"
        mine = {_short(w): w for w in wrapper.weights if w.name.startswith(prefix)}
        for w in layer.weights:
            other = mine.get(_short(w))
            if other is None or tuple(other.shape) != tuple(w.shape):
                continue
            if to_qat:
                other.assign(w)
            else:
                w.assign(other)
            copied += 1
    return copied


def copy_back(qat, deploy) -> None:
    """Put the fine-tuned weights of `qat` into the float `deploy` model (same graph).

    The export converts that float model with the calibrated int8 converter: one
    conversion path for PTQ and QAT (see EXPORT_NOTES.md for why not tfmot's ranges).
    """
    trainable = sum(1 for layer in deploy.layers for _ in layer.trainable_weights)
    copied = _copy_weights(deploy, qat, to_qat=False)
    if copied < trainable:
        raise RuntimeError(f"QAT weights: copied {copied} variables back, the float graph has {trainable}")


def init_ranges(qat, deploy, x_calibration: np.ndarray, batch_size: int = 64) -> int:
    """Set every activation fake-quant range to the min/max the float `deploy` model
    gives on `x_calibration` (as the PTQ converter would), always including 0.

    Returns the number of ranges set.
    """
    import tf_keras as keras

    names = [layer.name for layer in deploy.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(deploy.input, [deploy.get_layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    xin_lo, xin_hi = float(np.min(x_calibration)), float(np.max(x_calibration))
    for start in range(0, len(x_calibration), batch_size):
        outs = probe(x_calibration[start:start + batch_size], training=False)
        for n, o in zip(names, outs):
            o = np.asarray(o)
            lo[n] = min(lo[n], float(o.min()))
            hi[n] = max(hi[n], float(o.max()))
    count = 0
    for layer in qat.layers:
        # Weight quantizers (last value) take their ranges from the weights when run in
        # training mode; run each once so inference before any training step is right.
        weight_range_vars = set()
        for weight, quantizer, quantizer_vars in getattr(layer, "_weight_vars", []):
            quantizer(weight, True, quantizer_vars)
            weight_range_vars.update(id(v) for v in quantizer_vars.values())
            count += 1
        if type(layer).__name__ == "QuantizeLayer":  # named quantize_layer_<n> after the first model
            rng = (xin_lo, xin_hi)
        elif layer.name.startswith("quant_") and layer.name[len("quant_"):] in lo:
            n = layer.name[len("quant_"):]
            rng = (lo[n], hi[n])
        else:
            continue
        # The remaining *_min / *_max variables are activation / output ranges.
        for w in layer.weights:
            if id(w) in weight_range_vars:
                continue
            base = _short(w)
            if base.endswith("_min"):
                w.assign(min(0.0, rng[0]))
                count += 1
            elif base.endswith("_max"):
                w.assign(max(0.0, rng[1]))
                count += 1
    return count


DEFAULT_LR = 1e-4


def fine_tune(qat, dataset, normalization, run_config: dict, epochs: int, lr: float | None = None,
              batch_size: int | None = None, optimizer: str = "adam", log=print) -> list[dict]:
    """QAT fine-tuning with the run's loss and augmentation; returns per-epoch logs.

    Adam at a constant `lr` (default 1e-4). Not the run's SGD: with batch norm folded
    the network is no longer scale-invariant, and SGD at even 1e-5 (x ce_weight 100)
    diverged in the first epoch, while Adam's per-weight step size stays small.
    Deterministic: batches are seeded by (seed, epoch) as in training, TF op
    determinism is on.
    """
    import tensorflow as tf
    import tf_keras as keras

    from kws_tf import augment, data

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(int(run_config.get("seed", 0)))
    opt_cfg = run_config["optimizer"]
    lr = float(lr) if lr else DEFAULT_LR
    batch_size = int(batch_size or run_config["batch_size"])
    if optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr)
    else:
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=float(opt_cfg.get("momentum", 0.9)))
    qat.compile(
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        loss_weights=[float(run_config.get("ce_weight", 1.0))],
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    aug = augment.AugmentConfig.from_dict(run_config["augment"])
    steps = data.steps_per_epoch(len(dataset.train), batch_size)
    history = []

    class Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            history.append({"epoch": epoch + 1, **logs})
            log(f"  QAT epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                f"train accuracy {logs.get('accuracy', float('nan')):.4f}")

    import gc

    from kws_tf.tflm import quiet_stderr

    with quiet_stderr():  # tf.data's "NodeDef mentions attribute ..." notes on fd 2
        train_ds = data.train_dataset(dataset.train, normalization, aug, dataset.noise, batch_size,
                                      int(run_config.get("seed", 0)), 0, epochs)
        qat.fit(train_ds, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[Log()])
        del train_ds
        gc.collect()
    return history
