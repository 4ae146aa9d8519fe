"""Export's step model: derive it from the windowed int8 flatbuffer and prove it is the same network.

Checks, each an ExportError (one line) when it fails:
- fully int8 and only ops the device registers (`tflite_tools.MICRO_OPS`, a subset of what
  the board's Feb-2023 TFLM library has);
- every state output has its state input's shape and quantisation (bytes copy back);
- streamed over calibration clips laid end to end, every output of every hop (scores and
  state) in TFLM equals the TFLite reference kernels bit for bit;
- the per-frame gate equals the windowed int8 model's gate bit for bit at every frame whose
  receptive field lies inside the window, for windows at many offsets of that stream.
"""

from __future__ import annotations

import time

import numpy as np

from kws_tf import features
from kws_tf.export_io import ExportError

STEP_ARTIFACTS = ("model_step_int8.tflite", "model_step_data.h", "model_step_data.cc")


class ReferenceStepRunner:
    """The step model in the TFLite interpreter with reference kernels (TFLM's bit-exact twin)."""

    def __init__(self, model_bytes: bytes, num_states: int):
        from kws_tf import tflite_tools

        self.interp = tflite_tools.reference_interpreter(model_bytes)
        self.ins = [d["index"] for d in self.interp.get_input_details()]
        self.outs = [d["index"] for d in self.interp.get_output_details()]
        self.in_details = self.interp.get_input_details()
        self.num_states = num_states
        self.reset()

    def reset(self):
        self.state = [np.full(d["shape"], d["quantization"][1], np.int8) for d in self.in_details[1:]]

    def step_all(self, frame: np.ndarray) -> list:
        self.interp.set_tensor(self.ins[0], np.asarray(frame, np.int8).reshape(self.in_details[0]["shape"]))
        for idx, s in zip(self.ins[1:], self.state):
            self.interp.set_tensor(idx, s)
        self.interp.invoke()
        outs = [np.array(self.interp.get_tensor(i), copy=True) for i in self.outs]
        self.state = outs[1:1 + self.num_states]
        return outs


def _check_stream(step, windowed_bytes: bytes, frames: np.ndarray) -> dict:
    """TFLM == reference on every hop, and the gate proof on windows of the stream."""
    from kws_tf import step_graph, tflm

    probe = step_graph.derive_step_model(windowed_bytes, expose_gate=True)
    runner = tflm.StepRunner(probe.model_bytes)
    ref = ReferenceStepRunner(probe.model_bytes, len(probe.states))
    shipped = tflm.StepRunner(step.model_bytes)  # the same graph without the probe output
    gates, step_scores = [], []
    for n, f in enumerate(frames):
        scores, gate = runner.step_all(f)
        step_scores.append(scores)
        want = ref.step_all(f)
        tflm_all = [scores] + list(runner.state) + [gate]
        if any(not np.array_equal(a.reshape(-1), b.reshape(-1)) for a, b in zip(tflm_all, want)):
            raise ExportError(f"step model: TFLM output differs from the TFLite reference kernels at hop {n}")
        if not (np.array_equal(shipped.step(f), scores)
                and all(np.array_equal(a, b) for a, b in zip(shipped.state, runner.state))):
            raise ExportError(f"step model: differs from its gate probe at hop {n} (a bug in kws_tf.step_graph)")
        gates.append(gate.reshape(-1))
    gates = np.stack(gates)  # hop n holds gate frame n - gate_delay_frames of the stream
    T, G, R = step.window_frames, probe.gate_delay_frames, probe.receptive_frames
    window_probe = tflm.TflmRunner(step_graph.gate_probe_model(windowed_bytes))
    interior = range(R, T - R)
    compared = scores_compared = 0
    for start in range(0, len(frames) - T + 1, max(1, T // 4)):
        window_probe.interp.set_input(frames[start:start + T].reshape(1, 1, T, -1), 0)
        window_probe.interp.invoke()
        wg = np.asarray(window_probe.interp.get_output(1)).reshape(T, -1)
        hop = start + T - 1 + step.delay_frames
        if step.identical_to_windowed and hop < len(step_scores):
            if not np.array_equal(np.asarray(window_probe.interp.get_output(0)).reshape(-1), step_scores[hop]):
                raise ExportError(f"step model: scores of the window at frame {start} differ from the windowed "
                                  "model's although every averaged frame is interior (a bug in kws_tf.step_graph)")
            scores_compared += 1
        for t in interior:
            hop = start + t + G
            if hop >= len(gates):
                continue
            if not np.array_equal(gates[hop], wg[t]):
                raise ExportError(f"step model: gate frame {t} of the window at frame {start} differs from the "
                                  "windowed model's (a bug in kws_tf.step_graph)")
            compared += 1
    if compared == 0:
        raise ExportError("step model: the check stream is too short to compare any gate frame")
    return {"hops": int(len(frames)), "tflm_equals_reference": True, "gate_frames_compared": compared,
            "gate_frames_equal": compared, "interior_frames_per_window": len(interior),
            "windows_with_equal_scores": scores_compared if step.identical_to_windowed else None}


def build_step_model(windowed_bytes: bytes, x_calibration: np.ndarray, in_q: tuple, micro_ops: dict,
                     timing_repeats: int = 50, check_clips: int = 4) -> tuple:
    """(StepModel, report dict) for the windowed int8 model; raises ExportError."""
    from kws_tf import step_graph, tflite_tools, tflm

    try:
        step = step_graph.derive_step_model(windowed_bytes)
    except step_graph.GraphEditError as e:  # StepGraphError, or a flatbuffer the editor cannot read
        raise ExportError(f"no step model: {e}") from None
    info = tflite_tools.inspect_model(step.model_bytes)
    problems = tflite_tools.int8_problems(info, multi_io=True)
    if problems:
        raise ExportError(f"step model is not fully int8: {problems[0]}")
    problems = tflite_tools.micro_problems(info, micro_ops)
    if problems:
        raise ExportError(f"step model cannot run on the device: {problems[0]}")
    try:
        tflm.StepRunner(step.model_bytes)  # checks every state pair copies back byte for byte
    except tflm.TflmError as e:
        raise ExportError(f"step model: {e}") from None

    clips = x_calibration[:max(2, check_clips)]
    frames = features.quantize_np(clips[:, 0].reshape(-1, clips.shape[-1]), *in_q)
    checks = _check_stream(step, windowed_bytes, frames)

    try:
        arena_min = tflm.min_arena_bytes(step.model_bytes)
        runner = tflm.StepRunner(step.model_bytes, arena_size=arena_min)
        for f in frames[:50]:
            runner.step(f)
        times = []
        for f in frames[50:50 + max(1, timing_repeats)]:
            t0 = time.perf_counter()
            runner.step(f)
            times.append(time.perf_counter() - t0)
    except tflm.TflmError as e:
        raise ExportError(f"step model: {e}") from None
    report = {
        **step.summary(),
        "op_set": info.op_set,
        "int8_bytes": len(step.model_bytes),
        "arena_bytes_min_host": arena_min,
        "arena_bytes_settings": tflm.device_arena_bytes(arena_min),
        "tflm_step_ms_median_host": float(np.median(times) * 1e3),
        "checks": checks,
    }
    return step, report
