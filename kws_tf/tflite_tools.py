"""Keras -> TFLite conversion and flatbuffer inspection for the microcontroller.

Two jobs (the deploy graph they convert is `kws_tf.deploy_graph`):

1. `convert_int8` / `convert_float`: deterministic conversion with int8 input and
   output (no QUANTIZE/DEQUANTIZE ops), per-channel weights, batch 1. QAT-fine-tuned
   weights go through `convert_int8` too (see `kws_tf.qat`).
2. `inspect_model` and the checks: op list, tensor types, quantisation parameters,
   read from the flatbuffer itself (`tensorflow.lite.python.schema_py_generated`);
   `run_tflite` runs the TFLite interpreter (reference kernels by default).

`MICRO_OPS` is THE list of ops the device's `MicroMutableOpResolver` can register;
an exported model may use only these, and the settings header lists the ones it uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import warnings

import numpy as np

# Builtin op name -> the MicroMutableOpResolver method that registers it. Defined once:
# the export checks models against it and the generated header registers from it.
# Not in the list on purpose: RELU_0_TO_1 (no TFLM kernel), QUANTIZE/DEQUANTIZE (the
# model must be int8 end to end).
MICRO_OPS: dict[str, str] = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "LOGISTIC": "AddLogistic",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax",
    "SPLIT_V": "AddSplitV",
    "STRIDED_SLICE": "AddStridedSlice",
    "TANH": "AddTanh",
}

# What the board's library registers: `MicroMutableOpResolver::Add<Op>` methods of the TFLM
# Arduino library (tflite-micro synced 2023-02-27; list read from ../shared/ON_CHIP.md). The
# 2026 Python interpreter has more; MICRO_OPS must stay inside this list (tested).
BOARD_LIBRARY_RESOLVER_METHODS = frozenset("Add" + name for name in (
    "Abs Add AddN ArgMax ArgMin AssignVariable AveragePool2D BatchToSpaceNd BroadcastArgs BroadcastTo "
    "CallOnce Cast Ceil CircularBuffer Concatenation Conv2D Cos CumSum DepthToSpace DepthwiseConv2D "
    "Dequantize DetectionPostprocess Div Elu Equal EthosU Exp ExpandDims Fill Floor FloorDiv FloorMod "
    "FullyConnected Gather GatherNd Greater GreaterEqual HardSwish If L2Normalization L2Pool2D LeakyRelu "
    "Less LessEqual Log LogicalAnd LogicalNot LogicalOr Logistic LogSoftmax Maximum MaxPool2D MirrorPad "
    "Mean Minimum Mul Neg NotEqual Pack Pad PadV2 Prelu Quantize ReadVariable ReduceMax Relu Relu6 "
    "Reshape ResizeBilinear ResizeNearestNeighbor Round Rsqrt SelectV2 Shape Sin Slice Softmax "
    "SpaceToBatchNd SpaceToDepth Split SplitV Squeeze Sqrt Square SquaredDifference StridedSlice Sub Sum "
    "Svdf Tanh TransposeConv Transpose Unpack UnidirectionalSequenceLSTM VarHandle While ZerosLike").split())

# Ops whose int8 TFLM kernel needs the same quantisation on input and output.
SAME_SCALE_OPS = ("MEAN",)


class ConversionError(RuntimeError):
    """Conversion or a structural check of the flatbuffer failed; one line for the user."""


# The deploy graph moved to kws_tf.deploy_graph; these names stay importable from here.
_DEPLOY_NAMES = ("deploy_model", "deploy_gate_class", "secant_gate_class", "GATES", "CLASSIFIERS")


def __getattr__(name):
    if name in _DEPLOY_NAMES:
        from kws_tf import deploy_graph

        return getattr(deploy_graph, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- conversion

def _fixed_batch(model):
    """`model` applied to a batch-1 input, so the flatbuffer has static shapes."""
    import tf_keras as keras

    inp = keras.Input(batch_size=1, shape=tuple(model.inputs[0].shape[1:]), name=model.inputs[0].name.split(":")[0])
    return keras.Model(inp, model(inp, training=False), name=model.name)


def _converter(model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(_fixed_batch(model))


def _int8_settings(converter, per_channel_dense: bool = True):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense


@contextlib.contextmanager
def quiet_fds():
    """Silence file descriptors 1 and 2 (the converter's C++ logging) for the block."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass
    try:
        yield
    finally:
        for fd, dup in saved:
            os.dup2(dup, fd)
            os.close(dup)


def _convert(converter) -> bytes:
    try:
        with quiet_fds(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(converter.convert())
    except Exception as e:  # the converter raises many types with long messages
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"TFLite conversion failed: {first}") from None


def convert_float(model) -> bytes:
    """Float32 flatbuffer of the (deploy) model, batch 1."""
    return _convert(_converter(model))


def convert_int8(model, representative: np.ndarray, per_channel_dense: bool = True) -> bytes:
    """Fully int8 flatbuffer, calibrated on `representative` `[N, *input_shape]` float32.

    Calibration feeds the clips one by one in the given order: the same inputs give
    the same bytes.
    """
    representative = np.asarray(representative, np.float32)
    if representative.ndim < 2 or representative.shape[0] == 0:
        raise ConversionError("calibration needs at least one clip")
    conv = _converter(model)
    _int8_settings(conv, per_channel_dense)

    def gen():
        for x in representative:
            yield [x[None]]

    conv.representative_dataset = gen
    return compact_flatbuffer(_convert(conv))


# Metadata entries TFLM reads; the converter's others (CONVERSION_METADATA) are dropped.
_KEPT_METADATA = (b"min_runtime_version",)


def compact_flatbuffer(model_bytes: bytes) -> bytes:
    """The same int8 model in fewer bytes of flash (C=32: 32.8 KB -> 23.4 KB).

    Drops what neither TFLM nor the TFLite interpreter needs to run the graph: tensor
    and subgraph names (~4 KB), signature defs, the converter's metadata, and the
    per-channel quantisation parameters of int32 bias tensors (~5 KB; kernels derive
    the bias scale from input x weight scales and never read them). Export verifies the
    result like any other flatbuffer (TFLM == TFLite reference kernels, bit for bit).
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    for sg in model.subgraphs:
        sg.name = None
        for t in sg.tensors:
            t.name = None
            q = t.quantization
            if t.type == schema.TensorType.INT32 and q is not None and q.scale is not None and len(q.scale) > 1:
                t.quantization = None
    model.signatureDefs = None
    model.metadata = [m for m in (model.metadata or []) if m.name in _KEPT_METADATA] or None
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --------------------------------------------------------------------------- inspection

@dataclasses.dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str  # schema name: INT8, INT32, FLOAT32, ...
    shape: tuple
    scales: tuple
    zero_points: tuple
    quantized_dimension: int
    constant: bool

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclasses.dataclass
class ModelInfo:
    ops: list  # builtin op names in execution order (custom ops as "CUSTOM:<code>")
    tensors: list  # TensorInfo
    op_io: list  # (op name, input tensor indices, output tensor indices)
    inputs: list  # tensor indices
    outputs: list
    num_bytes: int

    @property
    def op_set(self) -> list:
        """Distinct op names, sorted."""
        return sorted(set(self.ops))

    def tensor(self, index: int) -> TensorInfo:
        return self.tensors[index]

    @property
    def input(self) -> TensorInfo:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> TensorInfo:
        return self.tensors[self.outputs[0]]


def _enum_names(cls) -> dict:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def inspect_model(model_bytes: bytes) -> ModelInfo:
    """Ops, tensors and quantisation parameters read from the flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        if not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
            raise ValueError("no TFL3 identifier")
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    except Exception as e:
        raise ConversionError(f"not a TFLite flatbuffer ({e})") from None
    if len(model.subgraphs) != 1:
        raise ConversionError(f"expected one subgraph, found {len(model.subgraphs)}")
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    sg = model.subgraphs[0]

    def op_name(code) -> str:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin == schema.BuiltinOperator.CUSTOM:
            return f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}"
        return op_names.get(builtin, f"BUILTIN_{builtin}")

    tensors = []
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        scales = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
        zps = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
        buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
        has_data = buf is not None and buf.data is not None and len(buf.data) > 0
        constant = has_data or (buf is not None and int(getattr(buf, "size", 0) or 0) > 0)
        tensors.append(TensorInfo(
            index=i, name=(t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")) or f"#{i}",
            dtype=type_names.get(int(t.type), str(t.type)),
            shape=tuple(int(d) for d in (t.shape if t.shape is not None else ())),
            scales=scales, zero_points=zps,
            quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
            constant=constant,
        ))
    ops, op_io = [], []
    for op in sg.operators:
        name = op_name(model.operatorCodes[op.opcodeIndex])
        ops.append(name)
        op_io.append((name, [int(i) for i in (op.inputs if op.inputs is not None else ())],
                      [int(i) for i in (op.outputs if op.outputs is not None else ())]))
    return ModelInfo(ops=ops, tensors=tensors, op_io=op_io, inputs=[int(i) for i in sg.inputs],
                     outputs=[int(i) for i in sg.outputs], num_bytes=len(model_bytes))


# Ops whose weight tensor (input 1) must be quantised per output channel.
_WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def int8_problems(info: ModelInfo, per_channel_dense: bool = True, multi_io: bool = False) -> list[str]:
    """Why the model is not fully int8 (empty list: it is).

    int8 inputs and outputs, every activation int8, int32 only for biases and shape/axis
    operands, no float tensor, no QUANTIZE/DEQUANTIZE, per-channel weights. `multi_io`:
    more than one input and output are expected (a step model's state).
    """
    problems = []
    roles = [(i, "input") for i in info.inputs] + [(o, "output") for o in info.outputs]
    for idx, role in roles if multi_io else roles[:1] + [(info.outputs[0], "output")]:
        if info.tensors[idx].dtype != "INT8":
            problems.append(f"model {role} is {info.tensors[idx].dtype}, not INT8")
    if not multi_io and (len(info.inputs) != 1 or len(info.outputs) != 1):
        problems.append(f"expected one input and one output, got {len(info.inputs)} and {len(info.outputs)}")
    for op in ("QUANTIZE", "DEQUANTIZE"):
        if op in info.ops:
            problems.append(f"{op} op in the graph")
    bias_like = set()
    for name, ins, _ in info.op_io:
        if name in _WEIGHT_OPS and len(ins) > 2 and ins[2] >= 0:
            bias_like.add(ins[2])
    for name, ins, _ in info.op_io:
        if name in ("MEAN", "RESHAPE", "SUM") and len(ins) > 1:
            bias_like.add(ins[1])  # axis / shape operands are int32 by definition
        if name == "SPLIT_V":
            bias_like.update(ins[1:3])  # size_splits and axis
        if name == "GATHER":
            bias_like.add(ins[1])  # positions
        if name in ("STRIDED_SLICE", "SLICE"):
            bias_like.update(ins[1:])  # begin / end / strides or size
    for t in info.tensors:
        if t.dtype == "INT8":
            if not t.scales:
                problems.append(f"tensor {t.name} is INT8 without quantisation parameters")
        elif t.dtype == "INT32":
            if t.index not in bias_like:
                problems.append(f"tensor {t.name} is INT32 but not a bias or shape operand")
        else:
            problems.append(f"tensor {t.name} is {t.dtype}")
    for name, ins, outs in info.op_io:
        if name in _WEIGHT_OPS and len(ins) > 1:
            w = info.tensors[ins[1]]
            channels = w.shape[_WEIGHT_OPS[name]] if w.shape else 0
            want_per_channel = per_channel_dense or name != "FULLY_CONNECTED"
            if want_per_channel and channels > 1 and len(w.scales) != channels:
                problems.append(f"{name} weights {w.name} are not quantised per channel")
    return problems


def micro_problems(info: ModelInfo, registered: dict | None = None) -> list[str]:
    """Why TFLM (with the registered op list) cannot run the model as exported."""
    registered = MICRO_OPS if registered is None else registered
    problems = []
    missing = [op for op in info.op_set if op not in registered]
    if missing:
        problems.append(f"op(s) {', '.join(missing)} not in the TFLM registered list ({', '.join(sorted(registered))})")
    for name, ins, outs in info.op_io:
        if name in SAME_SCALE_OPS:
            a, b = info.tensors[ins[0]], info.tensors[outs[0]]
            if a.dtype == "INT8" and (a.scales != b.scales or a.zero_points != b.zero_points):
                problems.append(f"{name} {b.name}: int8 input and output quantisation differ "
                                f"({a.scales[:1]}/{a.zero_points[:1]} vs {b.scales[:1]}/{b.zero_points[:1]})")
    return problems


def used_micro_ops(info: ModelInfo, registered: dict | None = None) -> list[str]:
    """The registered ops the model uses, in MICRO_OPS order (what the device must register)."""
    registered = MICRO_OPS if registered is None else registered
    used = set(info.ops)
    return [op for op in registered if op in used]


def quant_params(t: TensorInfo) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor quantised tensor."""
    if len(t.scales) != 1:
        raise ConversionError(f"tensor {t.name} is not per-tensor quantised")
    return t.scales[0], t.zero_points[0] if t.zero_points else 0


# --------------------------------------------------------------------------- TFLite interpreters

def _litert():
    from ai_edge_litert import interpreter as lit

    return lit


def reference_interpreter(model_bytes: bytes):
    """TFLite interpreter with the reference kernels (what TFLM reproduces bit for bit)."""
    lit = _litert()
    with quiet_fds():
        interp = lit.Interpreter(model_content=model_bytes,
                                 experimental_op_resolver_type=lit.OpResolverType.BUILTIN_REF, num_threads=1)
        interp.allocate_tensors()
    return interp


def run_tflite(model_bytes: bytes, x: np.ndarray, reference: bool = True) -> np.ndarray:
    """Run a batch-1 flatbuffer on each row of `x` `[N, *input_shape]` -> `[N, *output_shape]`."""
    lit = _litert()
    if reference:
        interp = reference_interpreter(model_bytes)
    else:
        with quiet_fds():  # "Created TensorFlow Lite XNNPACK delegate" on stderr
            interp = lit.Interpreter(model_content=model_bytes, num_threads=1)
            interp.allocate_tensors()
    i_idx = interp.get_input_details()[0]["index"]
    o_det = interp.get_output_details()[0]
    out = np.empty((len(x), *o_det["shape"][1:]), o_det["dtype"])
    for n in range(len(x)):
        interp.set_tensor(i_idx, x[n:n + 1])
        interp.invoke()
        out[n] = interp.get_tensor(o_det["index"])[0]
    return out
