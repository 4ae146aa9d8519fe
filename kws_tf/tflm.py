"""Running flatbuffers in the real TensorFlow Lite Micro interpreter (the `tflite_micro` package).

- `TflmRunner` / `run_tflm(model_bytes, x_int8)`: outputs for a batch of int8 inputs.
- `StepRunner`: a per-frame step model, its state carried from hop to hop as on the board.
- `min_arena_bytes(model_bytes)`: the smallest tensor arena the interpreter accepts
  (binary search on `arena_size`; no TFLM call reports it). The figure is for this
  host (x86-64, 8-byte pointers, reference kernels); a Cortex-M build with CMSIS-NN
  needs somewhat different bytes (see `device_arena_bytes`).
- `invoke_time_ms`: median host invoke time (only ratios within one run mean anything).

TFLM prints allocation failures on file descriptor 2 from C++; `quiet_stderr`
silences that while probing arena sizes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

DEFAULT_MAX_ARENA = 8 * 1024 * 1024


class TflmError(RuntimeError):
    """TFLM could not load or run a model; one line for the user."""


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (C++ logging) for the duration of the block."""
    try:
        sys.stderr.flush()
    except Exception:
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


class TflmRunner:
    """A TFLM interpreter on one model (single input, single output)."""

    def __init__(self, model_bytes: bytes, arena_size: int | None = None):
        runtime = _runtime()
        self.model_bytes = bytes(model_bytes)
        self.arena_size = int(arena_size) if arena_size else None
        try:
            with quiet_stderr():
                self.interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=self.arena_size)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TflmError(f"TFLM could not load the model: {msg}") from None
        self.input_details = self.interp.get_input_details(0)
        self.output_details = self.interp.get_output_details(0)
        self.input_shape = tuple(int(d) for d in self.input_details["shape"])
        self.input_dtype = np.dtype(self.input_details["dtype"])

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One inference; `x` has the model's input shape (or that without the batch 1)."""
        x = np.asarray(x)
        if x.dtype != self.input_dtype:
            raise TflmError(f"input dtype {x.dtype}, the model wants {self.input_dtype}")
        x = x.reshape(self.input_shape)
        try:
            self.interp.set_input(x, 0)
            self.interp.invoke()
            return np.array(self.interp.get_output(0), copy=True)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TflmError(f"TFLM invoke failed: {msg}") from None

    def run(self, xs: np.ndarray) -> np.ndarray:
        """Outputs `[N, *output_shape[1:]]` for inputs `[N, *input_shape[1:]]`."""
        xs = np.asarray(xs)
        out = [self.invoke(x)[0] for x in xs]
        if not out:
            return np.zeros((0, *self.output_details["shape"][1:]), self.output_details["dtype"])
        return np.stack(out)

    def time_invoke(self, repeats: int = 50, warmup: int = 5, x: np.ndarray | None = None) -> list[float]:
        """Seconds per invoke (repeats values) on `x` (default: zeros)."""
        if x is None:
            x = np.zeros(self.input_shape, self.input_dtype)
        x = np.asarray(x).reshape(self.input_shape)
        self.interp.set_input(x, 0)
        for _ in range(warmup):
            self.interp.invoke()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.interp.invoke()
            times.append(time.perf_counter() - t0)
        return times


class StepRunner:
    """A per-frame step model (`kws_tf.step_graph`) in TFLM, keeping its state as the board does.

    Input 0 is the newest int8 frame, inputs 1..S the state; output 0 the scores, outputs
    1..S the next state. After each step the state outputs' bytes are copied into the
    state inputs (their quantisation is identical), exactly what the board's runner does;
    `reset()` fills every state with its zero point (the real value 0 the windowed
    model pads with). Extra outputs after the S states (a gate probe) are returned by
    `step_all`.
    """

    def __init__(self, model_bytes: bytes, arena_size: int | None = None):
        runtime = _runtime()
        self.model_bytes = bytes(model_bytes)
        try:
            with quiet_stderr():
                self.interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena_size)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TflmError(f"TFLM could not load the step model: {msg}") from None
        from kws_tf import tflite_tools

        info = tflite_tools.inspect_model(self.model_bytes)
        self.num_inputs, self.num_outputs = len(info.inputs), len(info.outputs)
        self.num_states = self.num_inputs - 1
        if self.num_states < 1 or self.num_outputs < self.num_inputs:
            raise TflmError(f"not a step model: {self.num_inputs} inputs, {self.num_outputs} outputs")
        self.frame_shape = tuple(int(d) for d in info.input.shape)
        self._state_shapes, self._zero_points = [], []
        for i in range(1, self.num_inputs):
            a, b = info.tensors[info.inputs[i]], info.tensors[info.outputs[i]]
            if (a.shape, a.dtype, a.scales, a.zero_points) != (b.shape, b.dtype, b.scales, b.zero_points):
                raise TflmError(f"state {i}: input {a.shape}/{a.scales}/{a.zero_points} and output "
                                f"{b.shape}/{b.scales}/{b.zero_points} differ; the bytes cannot be copied back")
            self._state_shapes.append(tuple(int(d) for d in a.shape))
            self._zero_points.append(int(a.zero_points[0]) if a.zero_points else 0)
        self.reset()

    def reset(self) -> None:
        self.state = [np.full(shape, zp, np.int8) for shape, zp in zip(self._state_shapes, self._zero_points)]

    def step_all(self, frame: np.ndarray) -> list:
        """Runs one hop; returns [scores, *extra outputs] (int8) and keeps the new state."""
        frame = np.asarray(frame, np.int8).reshape(self.frame_shape)
        try:
            self.interp.set_input(frame, 0)
            for i, s in enumerate(self.state, start=1):
                self.interp.set_input(s, i)
            self.interp.invoke()
            outs = [np.array(self.interp.get_output(i), copy=True) for i in range(self.num_outputs)]
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TflmError(f"TFLM invoke failed: {msg}") from None
        self.state = outs[1:1 + self.num_states]
        return [outs[0].reshape(-1)] + [o for o in outs[1 + self.num_states:]]

    def step(self, frame: np.ndarray) -> np.ndarray:
        """int8 scores `[classes]` of one hop."""
        return self.step_all(frame)[0]

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Scores `[N, classes]` for frames `[N, features]`, continuing from the current state."""
        return np.stack([self.step(f) for f in np.asarray(frames)]) if len(frames) else np.zeros((0, 0), np.int8)


def run_tflm(model_bytes: bytes, x_int8: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """TFLM outputs for a batch of inputs `[N, *input_shape[1:]]` (or one input with batch 1)."""
    runner = TflmRunner(model_bytes, arena_size)
    x = np.asarray(x_int8)
    if x.shape == runner.input_shape:
        return runner.invoke(x)
    return runner.run(x)


def _probe_arena(model_bytes: bytes, size: int) -> bool:
    runtime = _runtime()
    try:
        with quiet_stderr():
            interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=int(size))
            det = interp.get_input_details(0)
            interp.set_input(np.zeros(det["shape"], det["dtype"]), 0)
            interp.invoke()
        return True
    except Exception:
        return False


def _arena_works(model_bytes: bytes, size: int) -> bool:
    """Does the model load and run with `size` bytes of arena?

    Probed in a forked child: for some models (DS-CNN) an arena far too small makes the
    TFLM Python interpreter crash the process instead of raising.
    """
    if not hasattr(os, "fork"):
        return _probe_arena(model_bytes, size)
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        ok = False
        try:
            ok = _probe_arena(model_bytes, size)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def min_arena_bytes(model_bytes: bytes, max_bytes: int = DEFAULT_MAX_ARENA) -> int:
    """Smallest `arena_size` with which TFLM loads and invokes the model (binary search)."""
    model_bytes = bytes(model_bytes)
    hi = 4096
    while not _arena_works(model_bytes, hi):
        if hi >= max_bytes:
            raise TflmError(f"TFLM could not run the model with an arena of {max_bytes} bytes")
        hi = min(hi * 2, max_bytes)
    lo = 0
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _arena_works(model_bytes, mid):
            hi = mid
        else:
            lo = mid
    return hi


def device_arena_bytes(host_min_bytes: int) -> int:
    """The arena figure for kws_settings.h (`kArenaBytes`, `kStepArenaBytes`): the host
    minimum, MEASURED here, rounded up to 16 bytes.

    What the board needs is an ESTIMATE: its library (the Feb-2023 TFLM Arduino library,
    32-bit) is expected to need no more than this host (x86-64, the pip TFLM). Measured
    outside this repository for the C=32 windowed model: 19,556 B there, 21,192 B here;
    4-byte pointers shrink the per-tensor and per-node records by more than CMSIS-NN's
    scratch buffers add (depthwise convolution: 2 bytes per channel per tap, 1,856 B for
    C=32 k=29; 2,424 B for a 101-tap mean over 12 classes). The sketch reserves this figure
    + `KWS_ARENA_EXTRA_BYTES` (4 KiB: more than the largest such scratch buffer, in case
    the estimate is wrong) and stops with blink code 9 at boot if fewer than
    `KWS_ARENA_MIN_FREE_BYTES` (1 KiB) of the reserve are left after AllocateTensors
    (micro_app/board_options.h): a slightly-too-small arena can crash that library
    instead of failing cleanly, so the margin itself is checked on the board.
    """
    return -(-int(host_min_bytes) // 16) * 16


def invoke_time_ms(model_bytes: bytes, arena_size: int | None = None, repeats: int = 50,
                   x: np.ndarray | None = None) -> float:
    """Median host TFLM invoke time in milliseconds."""
    runner = TflmRunner(model_bytes, arena_size)
    return float(np.median(runner.time_invoke(repeats=repeats, x=x)) * 1e3)
