"""The graph that is converted: a trained model rewritten for TFLM int8 (`deploy_model`).

`deploy_model` rewrites a trained SparkNet into the graph that is converted.
It computes the same function in float, but every op lands on a TFLM int8 kernel
whose output the TFLite reference kernels reproduce bit for bit:
- BatchNormalization is folded into the convolution before it (conv + bias), and a
  ReLU that alone follows a convolution becomes its activation, so QAT
  fake-quantises exactly the weights that are deployed (tfmot's default scheme
  quantises the unfolded kernel, and leaves a conv's weights unquantised when a
  ReLU layer follows it: its Conv+ReLU transform gives the conv a no-op config);
- the gate `clip(mu + 0.5, 0, 1)` is written `min(relu(mu + 0.5), 1)`: the
  converter fuses the ReLU into the ADD (an output clamp) and MINIMUM keeps its
  input's quantisation. The training form lowers to ADD, MINIMUM, RELU where the
  stand-alone RELU rescales by exactly 1.5 and TFLM rounds the ties differently
  from the TFLite reference kernels (seen on real and random inputs);
- the time average `GlobalAveragePooling2D` (MEAN, whose int8 form in TFLM wants
  equal input/output quantisation and the converter does not give it) becomes
  AVERAGE_POOL_2D over the whole time axis, which the converter quantises with the
  same scale on both sides;
- the Dense classifier on that average becomes a 1x1 CONV_2D + RESHAPE: TFLM's int8
  FULLY_CONNECTED rounds some outputs one step away from the TFLite reference
  kernel (per-tensor and per-channel alike), its CONV_2D matches bit for bit.

A custom layer with a `deployed(x)` method is replaced by what that method builds (plain
layers computing its inference function): that is how model-specific layers reach the
converter without this module knowing them.

Options: the gate (`gate="secant"`: `kws_tf.gates.secant_gate` folded into the head
convolution) and the classifier order (`classifier="per_frame"`); see `deploy_model`.
"""

from __future__ import annotations

import numpy as np

from kws_tf.tflite_tools import ConversionError


def _deploy_gate_class():
    """The gate with the deployable inference branch (a subclass, so training is unchanged)."""
    import tensorflow as tf
    import tf_keras as keras

    from kws_tf.gates import RelaxedBernoulliGate

    @keras.utils.register_keras_serializable(package="kws_tf_export")
    class DeployGate(RelaxedBernoulliGate):
        """RelaxedBernoulliGate whose inference output is `min(relu(mu + 0.5), 1)`.

        Equal to `clip(mu + 0.5, 0, 1)` for every input; in this order the converter
        fuses the ReLU into the ADD and leaves no re-scaling RELU op.
        """

        def call(self, mu, training=None):
            if training:
                return super().call(mu, training=True)
            return tf.minimum(tf.nn.relu(mu + 0.5), 1.0)

    return DeployGate


def _secant_gate_class():
    import tensorflow as tf
    import tf_keras as keras

    from kws_tf.gates import RelaxedBernoulliGate

    @keras.utils.register_keras_serializable(package="kws_tf_export")
    class SecantDeployGate(RelaxedBernoulliGate):
        """Gate `min(relu(x), 1)` on x = s*h + 0.5 (folded into the head convolution by
        `deploy_model(gate="secant")`). For deploy graphs only: it is not the training gate."""

        def call(self, mu, training=None):
            # The same in training: QAT fine-tunes the deploy graph without the gate's noise.
            return tf.minimum(tf.nn.relu(mu), 1.0)

    return SecantDeployGate


_DEPLOY_GATE = None
_SECANT_GATE = None
GATES = ("tanh", "secant")
CLASSIFIERS = ("after_average", "per_frame")


def secant_gate_class():
    global _SECANT_GATE
    if _SECANT_GATE is None:
        _SECANT_GATE = _secant_gate_class()
    return _SECANT_GATE


def deploy_gate_class():
    global _DEPLOY_GATE
    if _DEPLOY_GATE is None:
        _DEPLOY_GATE = _deploy_gate_class()
    return _DEPLOY_GATE


def _fold_bn(conv, bn):
    """Kernel and bias of `conv` followed by inference-mode `bn`."""
    import tf_keras as keras

    weights = conv.get_weights()
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if conv.use_bias else 0.0
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in _bn_params(bn))
    scale = gamma / np.sqrt(var + bn.epsilon)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = kernel.shape
        kernel = (kernel.reshape(kh, kw, cin * mult) * scale).reshape(kh, kw, cin, mult)
    else:
        kernel = kernel * scale  # [kh, kw, cin, cout] broadcasts over cout
    bias = (bias - mean) * scale + beta
    return kernel.astype(np.float32), bias.astype(np.float32)


def _bn_params(bn):
    n = bn.moving_mean.shape[0]
    gamma = bn.gamma.numpy() if bn.scale else np.ones(n)
    beta = bn.beta.numpy() if bn.center else np.zeros(n)
    return gamma, beta, bn.moving_mean.numpy(), bn.moving_variance.numpy()


def deploy_model(model, fold_batchnorm: bool = True, gate: str = "tanh", classifier: str = "after_average"):
    """The deployable form of a trained functional Keras model (see the module doc).

    Same float function (up to float rounding from BN folding), new layers (weights
    copied), so fine-tuning it (QAT) leaves `model` untouched. Besides the rewrites in
    the module doc, a ReLU layer that alone consumes a convolution's output becomes
    that convolution's activation (the converter fuses it anyway; tfmot's QAT would
    otherwise leave that convolution's weights without fake quantisation).

    `gate`: "tanh" keeps the paper's inference gate `clip(tanh(h) + 0.5, 0, 1)`;
    "secant" replaces it by `kws_tf.gates.secant_gate` folded into the head
    convolution (see there), which `kws_tf.int8_gate` then makes free in int8.

    `classifier`: "after_average" (the trained order: average the gate over time, then the
    linear layer) or "per_frame": the linear layer (with its bias) on every gate frame, then
    the time average of its outputs. The same function (both are linear), but the average
    then runs over 12 class channels instead of 32 gate channels: in the per-frame step
    model the 101-frame AVERAGE_POOL_2D and its state shrink to 12/32.
    """
    import tf_keras as keras

    from kws_tf.gates import SECANT_SLOPE, RelaxedBernoulliGate

    if gate not in GATES:
        raise ConversionError(f"unknown gate {gate!r}; choose one of {', '.join(GATES)}")
    if classifier not in CLASSIFIERS:
        raise ConversionError(f"unknown classifier order {classifier!r}; choose one of {', '.join(CLASSIFIERS)}")
    gap_input: dict[int, object] = {}  # GAP output -> the new tensor it averages
    crop_of: dict[int, tuple] = {}  # new Cropping2D output -> (the trained layer, its new input)
    gate_cls = deploy_gate_class() if gate == "tanh" else secant_gate_class()
    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    def inputs_of(layer):
        ins = layer.input
        return list(ins) if isinstance(ins, (list, tuple)) else [ins]

    consumers: dict[int, int] = {}
    for layer in layers:
        for t in inputs_of(layer):
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    outputs = {id(t) for t in model.outputs}

    def sole_input(t) -> bool:
        return consumers.get(id(t), 0) == 1 and id(t) not in outputs

    by_output = {id(layer.output): layer for layer in layers}
    # conv -> BN pairs to fold: the conv's output feeds only that BN.
    fold_into: dict[str, object] = {}
    if fold_batchnorm:
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in ([-1], [3], -1, 3):
                src = by_output.get(id(layer.input))
                if isinstance(src, conv_types) and not hasattr(src, "deployed") and sole_input(src.output):
                    fold_into[src.name] = layer
    # plain ReLU layers that alone consume a tensor: candidates for fusion into a conv.
    relu_of: dict[int, object] = {}
    for layer in layers:
        if (isinstance(layer, keras.layers.ReLU) and layer.max_value is None and not float(layer.negative_slope)
                and not float(layer.threshold) and sole_input(layer.input)):
            relu_of[id(layer.input)] = layer

    inp = model.inputs[0]
    new_in = keras.Input(shape=tuple(inp.shape[1:]), name=inp.name.split(":")[0])
    tensors = {id(inp): new_in}
    pending: dict[str, tuple] = {}  # BN name -> (conv, its new input tensor)
    pooled: dict[int, object] = {}  # GAP output -> the new [1, 1, C] pooled map
    fused_relus: set = set()
    made_by: dict[int, object] = {}  # new tensor -> the new conv layer that computes it
    gate_inputs = {id(layer.input) for layer in layers if isinstance(layer, RelaxedBernoulliGate)}

    def clone(layer, **override):
        cfg = layer.get_config()
        cfg.update(override)
        return type(layer).from_config(cfg)

    def add_conv(conv, x, out_tensor, weights):
        """Clone `conv` onto `x` with `weights`; fuse a following ReLU; map `out_tensor`."""
        override = {"use_bias": True} if len(weights) == 2 else {}
        relu = relu_of.get(id(out_tensor))
        if relu is not None and keras.activations.serialize(conv.activation) in ("linear", None):
            override["activation"] = "relu"
            fused_relus.add(relu.name)
        new = clone(conv, **override)
        y = new(x)
        new.set_weights(list(weights))
        made_by[id(y)] = new
        tensors[id(out_tensor)] = y
        if relu is not None and relu.name in fused_relus:
            tensors[id(relu.output)] = y

    for layer in layers:
        if layer.name in fused_relus:
            continue
        if layer.name in pending:
            conv, conv_in = pending.pop(layer.name)
            add_conv(conv, conv_in, layer.output, _fold_bn(conv, layer))
            continue
        ins = [tensors[id(t)] for t in inputs_of(layer)]
        x = ins[0] if len(ins) == 1 else ins
        if layer.name in fold_into:
            pending[fold_into[layer.name].name] = (layer, x)
            continue
        if hasattr(layer, "deployed"):
            # A custom layer that knows its inference form in plain layers (e.g. SubSpectral Norm
            # as a per-channel affine, sinc filters as an ordinary convolution): `deployed(x)`
            # applies those layers, weights set, to the new tensor and returns the output.
            # Checked before the convolutions: a conv subclass with a deployed form uses it.
            tensors[id(layer.output)] = layer.deployed(x)
            continue
        if isinstance(layer, conv_types):
            add_conv(layer, x, layer.output, layer.get_weights())
            continue
        if (gate == "secant" and isinstance(layer, keras.layers.Activation)
                and keras.activations.serialize(layer.activation) == "tanh" and id(layer.output) in gate_inputs):
            # mu = tanh(h) feeding the gate: fold the secant line s*h + 0.5 into the conv computing h.
            conv = made_by.get(id(x))
            if conv is None or not conv.use_bias or keras.activations.serialize(conv.activation) != "linear":
                raise ConversionError(f"secant gate: {layer.name} does not follow a linear convolution with a bias")
            kernel, bias = conv.get_weights()
            conv.set_weights([kernel * SECANT_SLOPE, bias * SECANT_SLOPE + 0.5])
            tensors[id(layer.output)] = x
            continue
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            if layer.data_format not in (None, "channels_last") or getattr(layer, "keepdims", False):
                raise ConversionError(f"layer {layer.name}: only channels_last pooling without keepdims is supported")
            _, h, w, c = x.shape
            y = keras.layers.AveragePooling2D((h, w), name=layer.name)(x)
            pooled[id(layer.output)] = y
            gap_input[id(layer.output)] = (x, layer.name)
            tensors[id(layer.output)] = keras.layers.Reshape((c,), name=f"{layer.name}_flat")(y)
            continue
        if isinstance(layer, keras.layers.Flatten) and tuple(layer.input.shape[1:3]) == (1, 1):
            # A [1, 1, C] map (a whole-map AveragePooling2D, as the baselines end) flattened
            # for a Dense: remember the map so that Dense becomes a 1x1 CONV_2D as well.
            pooled[id(layer.output)] = x
            tensors[id(layer.output)] = keras.layers.Reshape((int(x.shape[-1]),), name=layer.name)(x)
            continue
        if isinstance(layer, keras.layers.Dropout):  # identity at inference (DS-CNN has one before its Dense)
            tensors[id(layer.output)] = x
            if id(layer.input) in pooled:
                pooled[id(layer.output)] = pooled[id(layer.input)]
            continue
        if isinstance(layer, keras.layers.Dense) and id(layer.input) in pooled and sole_input(layer.input):
            # Dense on the pooled vector -> 1x1 CONV_2D on the [1, 1, C] map, then flatten.
            # (TFLM's int8 FULLY_CONNECTED rounds some outputs differently from the
            # TFLite reference kernel; its CONV_2D matches bit for bit.)
            kernel, *bias = layer.get_weights()
            new = keras.layers.Conv2D(layer.units, 1, use_bias=layer.use_bias, activation=layer.activation,
                                      kernel_regularizer=layer.kernel_regularizer,
                                      bias_regularizer=layer.bias_regularizer, name=layer.name)
            if classifier == "per_frame" and id(layer.input) in gap_input:
                if keras.activations.serialize(layer.activation) not in ("linear", None):
                    raise ConversionError(f"per-frame classifier: {layer.name} is not linear")
                frames, pool_name = gap_input[id(layer.input)]
                crop = crop_of.get(id(frames))
                if crop is not None:  # classify every frame, then crop: the crop stays next to the average
                    z = new(crop[1])
                    z = keras.layers.Cropping2D.from_config({**crop[0].get_config(), "name": f"{crop[0].name}_z"})(z)
                else:
                    z = new(frames)
                # The mean of the class scores as a depthwise convolution with weights 1/T rather
                # than AVERAGE_POOL_2D: the pool must keep its input's quantisation (that of one
                # frame's scores, about twice as coarse as the mean's range); the convolution's
                # requantisation gives the mean its own finer output scale. Weights 1/T quantise
                # exactly (127 at scale 1/(127 T)).
                _, h, w, c = z.shape
                mean = keras.layers.DepthwiseConv2D((h, w), padding="valid", use_bias=False,
                                                    name=f"{pool_name}_of_{layer.name}")
                y = mean(z)
                mean.set_weights([np.full((h, w, c, 1), 1.0 / (h * w), np.float32)])
            else:
                y = new(pooled[id(layer.input)])
            new.set_weights([kernel[None, None], *bias])
            tensors[id(layer.output)] = keras.layers.Reshape((layer.units,), name=f"{layer.name}_flat")(y)
            continue
        new = gate_cls.from_config(layer.get_config()) if isinstance(layer, RelaxedBernoulliGate) else clone(layer)
        y = new(x)
        new.set_weights(layer.get_weights())
        if isinstance(layer, keras.layers.Cropping2D):
            crop_of[id(y)] = (layer, x)
        tensors[id(layer.output)] = y
    if pending:
        raise ConversionError(f"could not fold batch normalisation layers {sorted(pending)}")
    outs = [tensors[id(t)] for t in model.outputs]
    return keras.Model(new_in, outs[0] if len(outs) == 1 else outs, name=model.name)


