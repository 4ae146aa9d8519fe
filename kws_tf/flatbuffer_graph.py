"""An editable TFLite subgraph: read a flatbuffer, append tensors and ops, write it back pruned.

`kws_tf.step_graph` derives the step model with it; `EditableGraph` keeps the source model's
tensors, buffers and op codes (weights are reused, never copied) and `pack_pruned` writes only
what the new op list uses, plus JSON metadata entries (`read_metadata_json`).
"""

from __future__ import annotations

import copy
import json

import numpy as np

TIME_AXIS = 2  # tensors are [batch 1, height 1, time, channels]


class GraphEditError(RuntimeError):
    """Not a flatbuffer this editor handles; one line for the user (StepGraphError is one too)."""


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _op_names(schema) -> dict:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


class EditableGraph:
    """The windowed subgraph with helpers to append step tensors and ops."""

    def __init__(self, model_bytes: bytes):
        schema = _schema()
        self.schema = schema
        try:
            self.model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
        except Exception as e:
            raise GraphEditError(f"not a TFLite flatbuffer ({e})") from None
        if len(self.model.subgraphs) != 1:
            raise GraphEditError(f"expected one subgraph, found {len(self.model.subgraphs)}")
        self.sg = self.model.subgraphs[0]
        names = _op_names(schema)
        self.op_name = [names.get(max(int(c.builtinCode), int(c.deprecatedBuiltinCode)), "?")
                        for c in self.model.operatorCodes]
        self.windowed_ops = list(self.sg.operators)
        self.new_ops: list = []
        self.producer = {}
        for i, op in enumerate(self.windowed_ops):
            for t in op.outputs:
                self.producer[int(t)] = i

    # ---------------------------------------------------------------- tensors
    def name_of(self, op) -> str:
        return self.op_name[op.opcodeIndex]

    def tensor(self, i: int):
        return self.sg.tensors[i]

    def is_constant(self, i: int) -> bool:
        t = self.tensor(i)
        buf = self.model.buffers[t.buffer] if 0 < t.buffer < len(self.model.buffers) else None
        return buf is not None and buf.data is not None and len(buf.data) > 0

    def new_tensor(self, like: int, frames: int) -> int:
        """A new activation tensor with `like`'s type and quantisation and `frames` time steps."""
        src = self.tensor(like)
        t = self._schema_tensor(src.type, [int(d) for d in src.shape], copy.deepcopy(src.quantization))
        t.shape[TIME_AXIS] = frames
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def copy_tensor(self, like: int) -> int:
        src = self.tensor(like)
        t = self._schema_tensor(src.type, [int(d) for d in src.shape], copy.deepcopy(src.quantization))
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def _schema_tensor(self, dtype, shape, quant):
        t = self.schema.TensorT()
        t.type, t.shape, t.quantization, t.buffer = dtype, shape, quant, 0
        return t

    def int32_constant(self, values) -> int:
        schema = self.schema
        values = np.asarray(values, np.int32)
        buf = schema.BufferT()
        buf.data = np.frombuffer(values.tobytes(), np.uint8).copy()
        self.model.buffers.append(buf)
        t = self._schema_tensor(schema.TensorType.INT32, list(values.shape), None)
        t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    # ---------------------------------------------------------------- ops
    def opcode(self, name: str) -> int:
        schema = self.schema
        code = getattr(schema.BuiltinOperator, name)
        for i, c in enumerate(self.model.operatorCodes):
            if max(int(c.builtinCode), int(c.deprecatedBuiltinCode)) == code:
                return i
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        self.model.operatorCodes.append(oc)
        self.op_name.append(name)
        return len(self.model.operatorCodes) - 1

    def emit(self, op):
        self.new_ops.append(op)

    def concat(self, a: int, b: int, out: int):
        schema = self.schema
        op = schema.OperatorT()
        op.opcodeIndex = self.opcode("CONCATENATION")
        op.inputs, op.outputs = [a, b], [out]
        opts = schema.ConcatenationOptionsT()
        opts.axis, opts.fusedActivationFunction = TIME_AXIS, schema.ActivationFunctionType.NONE
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.ConcatenationOptions, opts
        self.emit(op)

    def gather(self, x: int, frames: list, out: int):
        """out = frames `frames` of x along the time axis (one memcpy per frame in TFLM)."""
        schema = self.schema
        op = schema.OperatorT()
        op.opcodeIndex = self.opcode("GATHER")
        op.inputs, op.outputs = [x, self.int32_constant(list(frames))], [out]
        opts = schema.GatherOptionsT()
        opts.axis, opts.batchDims = TIME_AXIS, 0
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.GatherOptions, opts
        self.emit(op)


def read_metadata_json(model_bytes: bytes, name: str):
    """The JSON value of metadata entry `name`, or None when absent or unreadable."""
    schema = _schema()
    try:
        model = schema.Model.GetRootAsModel(model_bytes, 0)
        for i in range(model.MetadataLength()):
            m = model.Metadata(i)
            if m.Name() and m.Name().decode() == name:
                return json.loads(bytes(model.Buffers(m.Buffer()).DataAsNumpy()).decode())
    except Exception:
        return None
    return None


def pack_pruned(g: EditableGraph, metadata: dict | None = None) -> bytes:
    """Serialise with only the tensors, buffers and op codes the step graph uses (+ JSON metadata)."""
    import json

    import flatbuffers

    model, sg = g.model, g.sg
    used = set(int(t) for t in sg.inputs) | set(int(t) for t in sg.outputs)
    for op in sg.operators:
        used |= {int(t) for t in op.inputs if int(t) >= 0} | {int(t) for t in op.outputs}
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    buffers = [model.buffers[0]]
    buf_map = {0: 0}
    tensors = []
    for old in order:
        t = sg.tensors[old]
        if t.buffer and t.buffer not in buf_map:
            buf_map[t.buffer] = len(buffers)
            buffers.append(model.buffers[t.buffer])
        t.buffer = buf_map.get(t.buffer, 0)
        tensors.append(t)
    codes_used = sorted({op.opcodeIndex for op in sg.operators})
    code_map = {old: new for new, old in enumerate(codes_used)}
    model.operatorCodes = [model.operatorCodes[c] for c in codes_used]
    for op in sg.operators:
        op.opcodeIndex = code_map[op.opcodeIndex]
        op.inputs = [remap[int(t)] if int(t) >= 0 else -1 for t in op.inputs]
        op.outputs = [remap[int(t)] for t in op.outputs]
    sg.tensors = tensors
    sg.inputs = [remap[int(t)] for t in sg.inputs]
    sg.outputs = [remap[int(t)] for t in sg.outputs]
    model.buffers = buffers
    model.signatureDefs = None
    model.metadata = None  # the windowed model's (min_runtime_version) pointed at dropped buffers
    if metadata:
        model.metadata = []
        for name, value in metadata.items():
            buf = g.schema.BufferT()
            buf.data = np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8).copy()
            buffers.append(buf)
            md = g.schema.MetadataT()
            md.name, md.buffer = name, len(buffers) - 1
            model.metadata.append(md)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
