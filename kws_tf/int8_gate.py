"""The secant gate in int8 at no cost: saturation instead of MINIMUM.

`deploy_model(gate="secant")` folds the gate's slope and `+0.5` into the head
convolution, so the float graph ends the gate with `min(relu(x), 1)`; the converter
fuses the ReLU into the CONV_2D and keeps a MINIMUM. `saturate_gate` rewrites the int8
flatbuffer so that the convolution's own output quantisation is exactly [0, 1]
(scale 1/255, zero point -128): int8 saturation is then the clip, and MINIMUM goes.
Everything the gate feeds moves to that quantisation: the whole-window AVERAGE_POOL_2D
(whose int8 form needs equal input and output quantisation) and the bias of the
classifier after it (int32, scaled by input scale × weight scale, so it is rescaled
to the new input scale).

The result is an ordinary int8 flatbuffer; export verifies it like any other (TFLM
equals the TFLite reference kernels bit for bit).
"""

from __future__ import annotations

import numpy as np

GATE_SCALE = 1.0 / 255.0
GATE_ZERO_POINT = -128


class GateRewriteError(RuntimeError):
    """The flatbuffer does not have the secant gate's shape; one line for the user."""


def saturate_gate(model_bytes: bytes) -> bytes:
    """The int8 flatbuffer with the gate's MINIMUM replaced by [0, 1] output saturation."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    sg = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}

    def op_name(op) -> str:
        c = model.operatorCodes[op.opcodeIndex]
        return names.get(max(int(c.builtinCode), int(c.deprecatedBuiltinCode)), "?")

    def constant(i: int):
        t = sg.tensors[i]
        buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
        return None if buf is None or buf.data is None or not len(buf.data) else buf

    producer = {int(t): op for op in sg.operators for t in op.outputs}
    consumers: dict = {}
    for op in sg.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)

    mins = [op for op in sg.operators if op_name(op) == "MINIMUM"]
    if len(mins) != 1:
        raise GateRewriteError(f"expected one MINIMUM (the gate's clip at 1), found {len(mins)}")
    mn = mins[0]
    x, one = (int(t) for t in mn.inputs)
    if constant(x) is not None:
        x, one = one, x
    conv = producer.get(x)
    if conv is None or op_name(conv) != "CONV_2D" or len(consumers.get(x, [])) != 1:
        raise GateRewriteError("the gate's MINIMUM does not follow a CONV_2D it alone consumes")
    if conv.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.RELU:
        raise GateRewriteError("the gate's CONV_2D has no fused ReLU")
    c_q = sg.tensors[one].quantization
    c_val = (np.frombuffer(bytes(constant(one).data), np.int8).astype(np.float64) - c_q.zeroPoint[0]) * c_q.scale[0]
    if not np.allclose(c_val, 1.0, atol=c_q.scale[0]):
        raise GateRewriteError(f"the gate's MINIMUM clips at {c_val.ravel()[:1]}, not 1")

    gate = int(mn.outputs[0])
    gate_old_scale = float(sg.tensors[gate].quantization.scale[0])
    conv.outputs = [gate]
    sg.operators = [op for op in sg.operators if op is not mn]
    _set_quant(sg.tensors[gate], GATE_SCALE, GATE_ZERO_POINT)

    # Downstream of the gate: crops and the average keep the quantisation; the classifier's bias follows it.
    pools, frontier = [], [gate]
    while frontier:
        t = frontier.pop()
        for op in consumers.get(t, []):
            if op is mn:
                continue
            if op_name(op) in ("STRIDED_SLICE", "SLICE", "RESHAPE"):
                _set_quant(sg.tensors[int(op.outputs[0])], GATE_SCALE, GATE_ZERO_POINT)
                frontier.append(int(op.outputs[0]))
            elif op_name(op) in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
                # a classifier on every gate frame (deploy_model(classifier="per_frame"))
                if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
                    _rescale_bias(model, sg.tensors[int(op.inputs[2])], gate_old_scale / GATE_SCALE)
            else:
                pools.append(op)
    for pool in pools:
        if op_name(pool) != "AVERAGE_POOL_2D":
            raise GateRewriteError(f"the gate feeds {op_name(pool)}, expected AVERAGE_POOL_2D")
        pooled = int(pool.outputs[0])
        old_scale = float(sg.tensors[pooled].quantization.scale[0])
        _set_quant(sg.tensors[pooled], GATE_SCALE, GATE_ZERO_POINT)
        for head in consumers.get(pooled, []):
            if op_name(head) not in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
                raise GateRewriteError(f"the averaged gate feeds {op_name(head)}, expected a convolution")
            if len(head.inputs) > 2 and int(head.inputs[2]) >= 0:
                _rescale_bias(model, sg.tensors[int(head.inputs[2])], old_scale / GATE_SCALE)
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set_quant(tensor, scale: float, zero_point: int):
    q = tensor.quantization
    q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
    q.min = q.max = None


def _rescale_bias(model, tensor, factor: float):
    """int32 bias values multiplied by `factor` (its accumulator scale divided by 1/factor)."""
    buf = model.buffers[tensor.buffer]
    values = np.frombuffer(bytes(buf.data), np.int32).astype(np.float64)
    new = np.clip(np.round(values * factor), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
    buf.data = np.frombuffer(new.tobytes(), np.uint8).copy()
    q = tensor.quantization
    if q is not None and q.scale is not None:
        q.scale = [float(s) / factor for s in q.scale]
