"""Derive the per-frame *step* model from a windowed int8 flatbuffer.

The windowed model maps a 1 s window (101 MFCC frames) to 12 scores. Everything in
SparkNet before the time average is convolutional over time, so each frame of every
layer can be computed once, when its receptive field is complete, and kept. The step
model does exactly that for one new frame per 10 ms hop:

    frame (int8 [1,1,1,32]) + state ──► one new frame of every layer ──► 12 scores + state

It is derived from the windowed flatbuffer itself, op by op, in the spirit of Google's
`kws_streaming` (every layer knows how it streams):

- a convolution over time with kernel k ('SAME', stride 1) keeps the last k − 1 frames
  of its input: CONCATENATION(state, newest) → the same op with 'VALID' padding;
  GATHER of frames 1 … k − 1 gives the next state. Both copy with one memcpy per
  frame (or per input) in TFLM; the Feb-2023 SPLIT/SPLIT_V copy byte by byte and
  STRIDED_SLICE/SLICE index every element, several times the cost on a Cortex-M4;
- a per-frame op (1×1 convolution, element-wise op, activation) runs on one frame;
  when its inputs are ready at different delays (a residual branch skips a
  convolution's look-ahead), it runs at the later delay on frames taken from the
  earlier input's history, so no extra state is needed where a buffer exists;
- the whole-window average (AVERAGE_POOL_2D, or a 'VALID' depthwise mean, over the time
  axis, possibly of a time crop) keeps the last frames it needs and reduces them;
- what follows the average (the classifier) has no time axis and is copied as is.

Weights, biases and the quantisation of every tensor are the windowed model's own, so
each frame of each layer is bit for bit the windowed model's frame wherever the
window's zero padding does not reach it: gate frames R … T − 1 − R of a window, R being
the gate's receptive half-width (35: 31 of 101 frames for SparkNet). Near the edges the window pads every layer with zeros while
the stream has real context (and after a reset, the state starts at each tensor's zero
point, but the layers' frames computed from it are not zero), so edge frames differ;
`kws_tf.step_clips` measures what that does to accuracy. Every state output has the
quantisation of the state input it replaces: the device copies the bytes back.

State mode: external (extra input/output tensors), not TFLM resource variables. The
Python TFLM interpreter and the board's Feb-2023 library both run it with no
`MicroResourceVariables` set-up; the app can reset, inspect and checksum the state;
and the graph stays a plain dataflow graph the TFLite reference interpreter checks
bit for bit. The cost is one memcpy of the state per hop (3.4 KB for C=32 with the
per-frame classifier) and the state held twice in the arena (input and output tensors).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from kws_tf.flatbuffer_graph import TIME_AXIS, EditableGraph, GraphEditError, pack_pruned, read_metadata_json


# Ops that act on each frame independently (given all their time-varying inputs at the
# same delay). Constants may be broadcast if they have no time axis.
FRAMEWISE_OPS = ("ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "RELU", "RELU6", "TANH", "LOGISTIC",
                 "LEAKY_RELU", "HARD_SWISH", "ABS", "NEG", "QUANTIZE")
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
STEP_OPS = ("CONCATENATION", "GATHER")  # what streaming adds to the windowed op set
STEP_METADATA = "kws_tf.step"  # flatbuffer metadata entry: {"delay_frames", "window_frames", ...}


class StepGraphError(GraphEditError):
    """The windowed model cannot be run frame by frame; one line for the user."""


@dataclasses.dataclass(frozen=True)
class StateInfo:
    """One state tensor pair: step input `input_index` is fed from step output `output_index`."""

    name: str  # the windowed tensor whose history it holds (its producing op)
    frames: int
    channels: int
    scale: float
    zero_point: int
    input_index: int  # position in the step model's inputs (0 is the frame)
    output_index: int  # position in its outputs (0 is the scores)

    @property
    def bytes(self) -> int:
        return self.frames * self.channels

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class StepModel:
    model_bytes: bytes
    delay_frames: int  # scores at hop n describe the window ending at frame n - delay_frames
    window_frames: int
    states: list  # [StateInfo]
    ops: list  # op names in execution order
    gate_tensor: int | None  # step output index of the per-frame gate, when exposed
    gate_delay_frames: int = 0  # the exposed gate at hop n is gate frame n - gate_delay_frames
    receptive_frames: int = 0  # a gate frame sees this many input frames on each side
    averaged: tuple = (0, 0)  # (first, count) of the window's gate frames that are averaged

    @property
    def identical_to_windowed(self) -> bool:
        """Every averaged gate frame's receptive field lies inside the window: the scores
        equal the windowed model's bit for bit, not only the interior gates."""
        first, count = self.averaged
        return first >= self.receptive_frames and first + count - 1 <= self.window_frames - 1 - self.receptive_frames

    @property
    def state_bytes(self) -> int:
        return sum(s.bytes for s in self.states)

    def summary(self) -> dict:
        return {"delay_frames": self.delay_frames, "delay_ms": self.delay_frames * 10,
                "window_frames": self.window_frames, "num_states": len(self.states),
                "receptive_frames": self.receptive_frames, "averaged_frames": list(self.averaged),
                "identical_to_windowed": self.identical_to_windowed,
                "state_bytes": self.state_bytes, "states": [s.to_dict() for s in self.states],
                "ops": list(self.ops), "num_ops": len(self.ops)}


def _conv_time_kernel(g: EditableGraph, op) -> tuple[int, int]:
    """(kernel height, kernel width) of a CONV_2D / DEPTHWISE_CONV_2D."""
    w = g.tensor(int(op.inputs[1]))
    return int(w.shape[1]), int(w.shape[2])


def _time_crop(g: EditableGraph, op, name: str, T: int) -> tuple[int, int]:
    """(first frame, frames) of a STRIDED_SLICE / SLICE that only crops the time axis."""
    def const(i):
        t = g.tensor(int(op.inputs[i]))
        buf = g.model.buffers[t.buffer]
        return np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), np.int32)

    shape = [int(d) for d in g.tensor(int(op.inputs[0])).shape]
    out_shape = [int(d) for d in g.tensor(int(op.outputs[0])).shape]
    if not all(g.is_constant(int(t)) for t in op.inputs[1:]):
        raise StepGraphError(f"{name} with computed bounds cannot stream")
    begin = const(1)
    if name == "STRIDED_SLICE":
        strides = const(3)
        o = op.builtinOptions
        if np.any(strides != 1) or (o is not None and (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask)):
            raise StepGraphError("STRIDED_SLICE with strides or axis masks on the time axis cannot stream")
        begin_mask = int(o.beginMask) if o is not None else 0
        begin = np.array([0 if begin_mask >> a & 1 else b for a, b in enumerate(begin)])
    begin = np.where(begin < 0, begin + np.array(shape), begin)
    for axis in range(len(shape)):
        if axis != TIME_AXIS and (begin[axis] != 0 or out_shape[axis] != shape[axis]):
            raise StepGraphError(f"{name} cuts axis {axis}, not only time")
    return int(begin[TIME_AXIS]), int(out_shape[TIME_AXIS])


def _whole_window_reduction(g: EditableGraph, op, name: str) -> bool:
    """An op reducing the whole time axis of its input to one frame (the time average)."""
    src, out = g.tensor(int(op.inputs[0])), g.tensor(int(op.outputs[0]))
    if len(src.shape) != 4 or len(out.shape) != 4 or int(out.shape[TIME_AXIS]) != 1 or int(src.shape[1]) != 1:
        return False
    length = int(src.shape[TIME_AXIS])
    if name == "AVERAGE_POOL_2D":
        return int(op.builtinOptions.filterWidth) == length and int(op.builtinOptions.filterHeight) == 1
    if name == "DEPTHWISE_CONV_2D":
        kh, kw = _conv_time_kernel(g, op)
        return op.builtinOptions.padding == g.schema.Padding.VALID and (kh, kw) == (1, length) and length > 1
    return False


def _gate_tensor(g: EditableGraph, averaged: int) -> int:
    """The gate: the averaged tensor, or the input of the 1x1 classifier applied to every frame
    before the average (`deploy_model(classifier="per_frame")`)."""
    i = g.producer.get(averaged)
    if i is not None:
        op = g.windowed_ops[i]
        if g.name_of(op) == "CONV_2D" and _conv_time_kernel(g, op) == (1, 1):
            return int(op.inputs[0])
    return averaged


def derive_step_model(windowed_bytes: bytes, expose_gate: bool = False) -> StepModel:
    """The step model of a windowed int8 flatbuffer (see the module doc). Raises StepGraphError.

    `expose_gate`: add the newest frame of SparkNet's gate (the averaged tensor, or the input of
    the classifier applied to every frame before the average) as the last output, for checking
    it against the windowed model (`gate_probe_model`).
    """
    g = EditableGraph(windowed_bytes)
    schema = g.schema
    sg = g.sg
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise StepGraphError("the windowed model must have one input and one output")
    x_in = int(sg.inputs[0])
    in_shape = [int(d) for d in g.tensor(x_in).shape]
    if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[1] != 1:
        raise StepGraphError(f"input shape {tuple(in_shape)} is not [1, 1, time, features]")
    T = in_shape[TIME_AXIS]

    def time_varying(i: int) -> bool:
        t = g.tensor(i)
        return (not g.is_constant(i) and len(t.shape) == 4 and int(t.shape[TIME_AXIS]) == T
                and int(t.shape[1]) == 1)

    # ---- 1. classify every op; natural delay (look-ahead) of every time-varying tensor
    kind: dict[int, str] = {}
    half: dict[int, int] = {}
    nd: dict[int, int] = {x_in: 0}
    crops: dict[int, tuple] = {}  # output of a time crop -> (source tensor, first frame, frames)
    pool_src: dict[int, tuple] = {}  # pool op -> (source tensor, first frame, frames) it averages
    pooled: list = []
    for i, op in enumerate(g.windowed_ops):
        name = g.name_of(op)
        ins = [int(t) for t in op.inputs if int(t) >= 0]
        tv = [t for t in ins if time_varying(t)]
        outs = [int(t) for t in op.outputs]
        if _whole_window_reduction(g, op, name) and (ins[0] in crops or ins[0] in tv):
            # AVERAGE_POOL_2D, or a 'VALID' DEPTHWISE_CONV_2D, over every frame of its input
            src, first, n = crops[ins[0]] if ins[0] in crops else (ins[0], 0, T)
            if int(g.tensor(ins[0]).shape[TIME_AXIS]) != n:
                raise StepGraphError(f"{name} over part of a window cannot stream")
            kind[i], pool_src[i] = "pool", (src, first, n)
            pooled.append(i)
            continue
        if name in ("STRIDED_SLICE", "SLICE") and tv:
            crops[outs[0]] = (ins[0], *_time_crop(g, op, name, T))
            kind[i] = "crop"
            continue
        if not tv:
            kind[i] = "static"
            if any(t in nd for t in ins):
                raise StepGraphError(f"{name} consumes a time axis in an unsupported way")
            continue
        if any(t not in nd for t in tv):
            raise StepGraphError(f"{name}: input not computed by a streamable op")
        d = max(nd[t] for t in tv)
        if name in CONV_OPS:
            opts = op.builtinOptions
            kh, kw = _conv_time_kernel(g, op)
            strides = (int(opts.strideH), int(opts.strideW))
            dil = (int(opts.dilationHFactor), int(opts.dilationWFactor))
            if strides != (1, 1) or dil != (1, 1) or kh != 1:
                raise StepGraphError(f"{name} with strides {strides}, dilation {dil}, kernel ({kh}, {kw}) "
                                     "cannot run frame by frame (only stride 1, dilation 1, (1, k) kernels)")
            if kw > 1:
                if opts.padding != schema.Padding.SAME or kw % 2 == 0:
                    raise StepGraphError(f"{name}: only 'same' padding with an odd kernel streams (kernel {kw})")
                kind[i], half[i] = "time_conv", (kw - 1) // 2
                nd[outs[0]] = d + half[i]
            else:
                kind[i] = "framewise"
                nd[outs[0]] = d
        elif name in FRAMEWISE_OPS:
            for t in ins:
                if t not in tv and len(g.tensor(t).shape) == 4 and int(g.tensor(t).shape[TIME_AXIS]) not in (1,):
                    raise StepGraphError(f"{name}: operand {t} has a time axis but is constant")
            kind[i] = "framewise"
            for t in outs:
                nd[t] = d
        elif name == "AVERAGE_POOL_2D":  # whole-window averages were taken above
            raise StepGraphError(f"AVERAGE_POOL_2D over {op.builtinOptions.filterWidth} of {T} frames cannot "
                                 "stream (only the whole-window average)")
        else:
            raise StepGraphError(f"op {name} on the time axis has no streaming form")
    if len(pooled) != 1:
        raise StepGraphError(f"expected exactly one whole-window average before the classifier, found {len(pooled)}")
    out_t = int(sg.outputs[0])
    if out_t in nd:
        raise StepGraphError("the model output still has a time axis")

    # The average's output describes the window of input frames ending `delay` hops ago. Its
    # frames [first, first + n) of that window have delays delay + T - first - n ... delay + T - 1 - first;
    # the newest must already be computable (>= its natural delay).
    src, first, n = pool_src[pooled[0]]
    delay = max(0, nd[src] - (T - first - n))
    pool_window = (delay + T - first - n, delay + T - 1 - first)

    # ---- 2. backwards: the delays at which each tensor is needed, and when to compute it
    need: dict[int, list] = {}  # tensor -> [lo, hi] delays requested

    def request(t: int, lo: int, hi: int):
        if t not in nd:
            return
        r = need.setdefault(t, [lo, hi])
        r[0], r[1] = min(r[0], lo), max(r[1], hi)

    at: dict[int, int] = {}  # op index -> delay at which the op computes its output
    for i in reversed(range(len(g.windowed_ops))):
        op = g.windowed_ops[i]
        ins = [int(t) for t in op.inputs if int(t) >= 0]
        k = kind[i]
        if k in ("static", "crop"):
            continue
        if k == "pool":
            request(pool_src[i][0], *pool_window)
            continue
        out = int(op.outputs[0])
        if out not in need:
            continue  # unused
        d = need[out][0]
        at[i] = d
        for t in ins:
            if k == "time_conv" and t == ins[0]:
                request(t, d - half[i], d + half[i])
            else:
                request(t, d, d)
    for t, (lo, hi) in need.items():
        computed_at = 0 if t == x_in else at[g.producer[t]]
        if lo < computed_at:  # cannot happen for a DAG of the ops above
            raise StepGraphError("internal: a tensor is needed before it can be computed")
        need[t] = [computed_at, hi]

    # ---- 3. forward: emit the step graph
    frame_of: dict[tuple, int] = {}  # (tensor, delay) -> step tensor of one frame
    buffers: dict[int, int] = {}  # tensor -> step tensor holding its history + newest
    windows: dict[tuple, int] = {}
    states: list = []
    state_pairs: list = []  # (state input tensor, next-state output tensor)

    def history(t: int) -> int:
        lo, hi = need[t]
        return hi - lo

    def newest(t: int) -> int:
        return frame_of[(t, need[t][0])]

    def buffer(t: int) -> int:
        """[history + 1] frames of t, oldest first (delay hi ... lo)."""
        if t in buffers:
            return buffers[t]
        L = history(t)
        state_in = g.new_tensor(t, L)
        buf = g.new_tensor(t, L + 1)
        g.concat(state_in, newest(t), buf)
        state_out = g.new_tensor(t, L)
        g.gather(buf, range(1, L + 1), state_out)
        src_op = g.windowed_ops[g.producer[t]] if t in g.producer else None
        label = g.name_of(src_op) if src_op is not None else "input"
        tt = g.tensor(t)
        q = tt.quantization
        states.append(StateInfo(name=f"{label}#{t}", frames=L, channels=int(tt.shape[3]),
                                scale=float(q.scale[0]), zero_point=int(q.zeroPoint[0]),
                                input_index=0, output_index=0))
        state_pairs.append((state_in, state_out))
        buffers[t] = buf
        return buf

    def window(t: int, lo: int, hi: int) -> int:
        """Frames of t with delays hi (oldest) ... lo (newest)."""
        if lo == hi == need[t][0] and (t, lo) in frame_of:
            return frame_of[(t, lo)]
        key = (t, lo, hi)
        if key in windows:
            return windows[key]
        buf = buffer(t)
        L = history(t)
        start = need[t][1] - hi  # buffer index of delay hi
        length = hi - lo + 1
        if start == 0 and length == L + 1:
            windows[key] = buf
            return buf
        want = g.new_tensor(t, length)
        g.gather(buf, range(start, start + length), want)
        windows[key] = want
        return want

    def frame(t: int, d: int) -> int:
        if (t, d) in frame_of:
            return frame_of[(t, d)]
        f = window(t, d, d)
        frame_of[(t, d)] = f
        return f

    step_in = g.new_tensor(x_in, 1)
    frame_of[(x_in, 0)] = step_in
    static_map: dict[int, int] = {}
    for i, op in enumerate(g.windowed_ops):
        k = kind[i]
        if k == "crop" or (k != "static" and k != "pool" and i not in at):
            continue
        new = copy.deepcopy(op)
        ins = [int(t) for t in op.inputs]
        if k == "static":
            new.inputs = [static_map.get(t, t) for t in ins]
            new.outputs = []
            for t in op.outputs:
                static_map[int(t)] = g.copy_tensor(int(t))
                new.outputs.append(static_map[int(t)])
        elif k == "pool":
            new.inputs = [window(pool_src[i][0], *pool_window)] + ins[1:]  # weights of a depthwise mean
            static_map[int(op.outputs[0])] = g.copy_tensor(int(op.outputs[0]))
            new.outputs = [static_map[int(op.outputs[0])]]
        else:
            d = at[i]
            mapped = []
            for j, t in enumerate(ins):
                if t < 0 or t not in nd:
                    mapped.append(t)
                elif k == "time_conv" and j == 0:
                    mapped.append(window(t, d - half[i], d + half[i]))
                else:
                    mapped.append(frame(t, d))
            new.inputs = mapped
            if k == "time_conv":
                new.builtinOptions = copy.deepcopy(op.builtinOptions)
                new.builtinOptions.padding = schema.Padding.VALID
            out = int(op.outputs[0])
            y = g.new_tensor(out, 1)
            new.outputs = [y]
            frame_of[(out, d)] = y
        g.emit(new)
    scores = static_map.get(out_t)
    if scores is None:
        raise StepGraphError("the model output is not computed from the whole-window average")

    # Every buffer's next state must be produced even if its last consumer came first.
    sg.operators = g.new_ops
    sg.inputs = [step_in] + [s for s, _ in state_pairs]
    sg.outputs = [scores] + [o for _, o in state_pairs]
    gate_src = _gate_tensor(g, pool_src[pooled[0]][0])
    gate_index = None
    if expose_gate:
        sg.outputs.append(frame_of[(gate_src, need[gate_src][0])])
        gate_index = len(sg.outputs) - 1
    states = [dataclasses.replace(s, input_index=1 + n, output_index=1 + n) for n, s in enumerate(states)]
    ops = [g.op_name[op.opcodeIndex] for op in g.new_ops]
    info = {"delay_frames": int(delay), "window_frames": int(T), "num_states": len(states),
            "gate_output": gate_index, "gate_delay_frames": int(pool_window[0]), "receptive_frames": int(nd[src]),
            "averaged_frames": [int(first), int(n)]}
    model_bytes = pack_pruned(g, metadata={STEP_METADATA: info})
    return StepModel(model_bytes=model_bytes, delay_frames=int(delay), window_frames=T, states=states, ops=ops,
                     gate_tensor=gate_index, gate_delay_frames=int(pool_window[0]), receptive_frames=int(nd[src]),
                     averaged=(int(first), int(n)))


def gate_probe_model(windowed_bytes: bytes) -> bytes:
    """The windowed model with the gate ([1, 1, T, C], before any time crop) as a second output."""
    g = EditableGraph(windowed_bytes)
    pools = [op for op in g.windowed_ops if _whole_window_reduction(g, op, g.name_of(op))]
    if len(pools) != 1:
        raise StepGraphError(f"expected one whole-window average, found {len(pools)}")
    src = int(pools[0].inputs[0])
    crop = g.producer.get(src)
    if crop is not None and g.name_of(g.windowed_ops[crop]) in ("STRIDED_SLICE", "SLICE"):
        src = int(g.windowed_ops[crop].inputs[0])  # the whole gate, not the averaged interior
    g.sg.outputs = [int(g.sg.outputs[0]), _gate_tensor(g, src)]
    g.new_ops = list(g.windowed_ops)
    return pack_pruned(g)


def read_step_info(model_bytes: bytes) -> dict | None:
    """The step model's own description (delay, window, states) from its metadata; None if absent."""
    return read_metadata_json(model_bytes, STEP_METADATA)
