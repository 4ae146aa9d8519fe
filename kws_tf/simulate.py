"""The device twin: the board's whole keyword-spotting loop, run on the host.

    python -m kws_tf.simulate --model=export/NAME/model_int8.tflite --wav=LONG.wav
        [--csv=out.csv] [--period_frames=N] [--detection_threshold=S] [--average_window_ms=MS]
        [--suppression_ms=MS] [--minimum_count=N] [--tail_ms=MS]
    python -m kws_tf.simulate --model=export/NAME/model_step_int8.tflite --wav=LONG.wav ...

Output: one line per detection on stdout, `t=<seconds, 2 decimals>s <label> score=<0..255>`
(audio time since the start of the file, e.g. `t=3.52s yes score=231`); one summary line
starting with `# ` on stderr (detections, model runs, recogniser settings), and warnings
(`warning: ...`, e.g. resampled audio) there too. `--csv` also writes `time_s,label,score`.
Errors: one `error: ...` line on stderr and exit status 1 (0 on success).

Nothing of the pipeline is rewritten in Python:

    audio (int16, fed in chunks) ──► C++ MFCC front-end + int8 feature window (micro_app/src)
        ──► every N frames: the int8 101×32 window ──► the int8 flatbuffer in the real
            TensorFlow Lite Micro interpreter (`tflite_micro`, via `kws_tf.tflm`)
        ──► C++ output scaling + recogniser ──► detections (the board prints them as
            "KWS <label> score=<s> t=<ms>"; the twin as "t=<s>s <label> score=<s>", above)

With the per-frame step model (`model_step_int8.tflite`, input [1, 1, 1, 32]) the twin
runs as the board's default build does: the C++ app in frame mode (`model_input="frame"`)
hands every new int8 frame, one per 10 ms hop, to `kws_tf.tflm.StepRunner`, which keeps
the model's state as the board's runner does; scores before `NUM_FRAMES + delay` frames
(the model's look-ahead, from `export_report.json["step_model"]["delay_frames"]`) are
warm-up and skip the recogniser. `--model` may also name an export folder: its windowed
`model_int8.tflite` runs (the comparison model), as before.

The C++ side is `kws_app` (KwsApp::ProcessSamples) through `kws_tf.native_app.NativeApp`,
the same code the board compiles; only the model runner is the Python TFLM binding.
Defaults (inference period, recogniser settings) are read from the C++ core, not
retyped; recogniser settings an export chose for a false-alarm target
(`export_report.json["recognizer"]`, `kws_tf.operating_point`) replace the core's,
and the `--detection_threshold` ... flags override both. Timestamps are audio time since the start of the file, as on the board.

Constants come from the export folder next to the model:
- int8 input/output quantisation: from the flatbuffer, as the TFLM interpreter reports it;
  whether the output is logits: the op writing the output is not SOFTMAX;
- per-coefficient normalisation: `normalization.json` (the exporter's copy of the
  training statistics), else any `{"mean": [...32], "std": [...32]}` object in
  `export_report.json`;
- labels: `export_report.json["labels"]` if present, else `kws_tf.labels.LABELS`.

Python API:
    model = load_exported(path)                  # ExportedModel
    twin = DeviceTwin(model, period_frames=None, recognizer={"detection_threshold": 200})
    detections = twin.run(pcm)                   # [Detection(time_s, label, score)]
"""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import pathlib
import re
import sys

import numpy as np

from kws_tf import features
from kws_tf.exported_model import (RECOGNIZER_SETTINGS, ExportedModel, SimulateError,  # noqa: F401
                                   check_input_shape, input_kind, load_exported, step_delay_frames)


@dataclasses.dataclass(frozen=True)
class Detection:
    """A command the device reported: audio time (s) of the inference that fired it."""

    time_s: float
    label: str
    score: int

    def line(self) -> str:
        return f"t={self.time_s:.2f}s {self.label} score={self.score}"


# --------------------------------------------------------------------------- device defaults

def device_defaults() -> dict:
    """The C++ core's AppConfig defaults (`inference_every_frames`, ...) and RecognizerConfig defaults."""
    from kws_tf import native

    lib = native.load_library()
    cfg = native._AppConfig()
    lib.kws_app_default_config(ctypes.byref(cfg))
    out = {name: int(getattr(cfg, name)) for name in native.APP_FIELDS}
    out["recognizer"] = native.recognizer_defaults()
    return out


RECOGNIZER_FLAGS = RECOGNIZER_SETTINGS

_KWS_LINE = re.compile(r"^KWS (\S+) score=(-?\d+) t=(\d+)$")


def parse_kws_line(line: str) -> Detection | None:
    """`KWS yes score=231 t=12340` -> Detection(12.34, 'yes', 231); other lines -> None."""
    m = _KWS_LINE.match(line.strip())
    if not m:
        return None
    return Detection(int(m.group(3)) / 1000.0, m.group(1), int(m.group(2)))


# --------------------------------------------------------------------------- the twin

class DeviceTwin:
    """The board's loop (C++ kws_app) around the real TFLM interpreter.

    Windowed model: `period_frames`: run the model every this many 10 ms frames (None:
    the core's default). Step model (`model.is_step`): the model runs on every frame
    (one `tflm.StepRunner.step` per 10 ms hop, its state reset with the app), as on the
    board; `period_frames` must be None or 1. `recognizer`: overrides of the C++
    RecognizerConfig fields, over the export's chosen settings (`model.recognizer`, from
    export_report.json) when it has them, else over the core's defaults. `temperature`: the
    score temperature (softmax(logits / T)); None: the export's (`model.score_temperature`). `record_windows=True` keeps every int8 input fed to TFLM
    (the window, or the step model's frame) with the number of frames computed so far
    (`windows`, `window_frames`) for parity checks.
    """

    def __init__(self, model: ExportedModel, period_frames: int | None = None, recognizer: dict | None = None,
                 record_windows: bool = False, arena_size: int | None = None, temperature: float | None = None):
        from kws_tf import native, native_app, tflm

        if period_frames is not None and int(period_frames) < 1:
            raise SimulateError(f"period_frames must be >= 1, got {period_frames}")
        if model.is_step and period_frames is not None and int(period_frames) != 1:
            raise SimulateError(f"period_frames={period_frames}: the step model runs on every frame "
                                "(use model_int8.tflite for a model run every N frames)")
        self.model = model
        try:
            if model.is_step:
                self.runner = tflm.StepRunner(model.model_bytes, arena_size)
                check_input_shape(self.runner.frame_shape, kinds=("frame",))
            else:
                self.runner = tflm.TflmRunner(model.model_bytes, arena_size)
                check_input_shape(self.runner.input_shape)
        except tflm.TflmError as e:
            raise SimulateError(f"model {model.path}: {e}") from None
        self.record_windows = record_windows
        self.windows: list[np.ndarray] = []
        self.window_frames: list[int] = []
        app_config = {}
        if model.is_step:
            app_config.update(model_input="frame", step_delay_frames=model.step_delay_frames)
        elif period_frames is not None:
            app_config["inference_every_frames"] = int(period_frames)
        rec = {k: int(v) for k, v in {**(model.recognizer or {}), **(recognizer or {})}.items() if v is not None}
        self.temperature = float(model.score_temperature if temperature is None else temperature)
        if not self.temperature > 0:
            raise SimulateError(f"the score temperature must be > 0, got {temperature}")
        try:
            self.app = native_app.NativeApp(
                model.normalization, model.input_scale, model.input_zero_point,
                self._step if model.is_step else self._run,
                labels=model.labels, output_scale=model.output_scale, output_zero_point=model.output_zero_point,
                output_is_logits=model.output_is_logits, output_temperature=self.temperature, recognizer=rec,
                reset_fn=self.runner.reset if model.is_step else None, **app_config)
        except ValueError as e:
            raise SimulateError(str(e)) from None
        self.period_frames = 1 if model.is_step else int(self.app.config.inference_every_frames)
        self.delay_frames = model.step_delay_frames if model.is_step else 0
        self.recognizer_config = {name: int(getattr(self.app.config.recognizer, name))
                                  for name in native.RECOGNIZER_FIELDS}

    def _run(self, window: np.ndarray) -> np.ndarray:
        if self.record_windows:
            self.windows.append(window.copy())
            self.window_frames.append(self.app.counters["frames"])
        return self.runner.invoke(window.reshape(self.runner.input_shape))

    def _step(self, frame: np.ndarray) -> np.ndarray:
        if self.record_windows:
            self.windows.append(frame.copy())
            self.window_frames.append(self.app.counters["frames"])
        return self.runner.step(frame)

    def reset(self) -> None:
        self.app.reset()
        self.windows.clear()
        self.window_frames.clear()

    def feed(self, pcm, chunk_samples: int = 512) -> list[Detection]:
        """Feeds int16 audio in chunks of `chunk_samples` (as the board's PDM buffers do)."""
        pcm = np.asarray(pcm)
        found = []
        for start in range(0, pcm.shape[0], max(1, int(chunk_samples))):
            for line in self.app.process(pcm[start:start + chunk_samples]):
                d = parse_kws_line(line)
                if d is not None:
                    found.append(d)
        return found

    def run(self, pcm, tail_ms: int = 1000, chunk_samples: int = 512) -> list[Detection]:
        """From a reset: the audio plus `tail_ms` of silence (so a keyword at the very end
        still gets its averaging window) -> detections, in time order. With a step model
        and `tail_ms > 0` its look-ahead (`delay_frames` hops) is added to the tail, as the
        board's self-test does."""
        self.reset()
        found = self.feed(pcm, chunk_samples)
        tail = int(tail_ms) * features.SAMPLE_RATE // 1000
        if tail > 0:
            tail += self.delay_frames * features.HOP_SAMPLES
        if tail > 0:
            found += self.feed(np.zeros(tail, np.int16), chunk_samples)
        return found

    @property
    def counters(self) -> dict:
        return self.app.counters

    def close(self) -> None:
        self.app.close()


def write_csv(path, detections: list[Detection]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", "label", "score"])
        for d in detections:
            w.writerow([f"{d.time_s:.3f}", d.label, d.score])


def read_stream_wav(path, warn=None) -> np.ndarray:
    """A wav as 16 kHz mono int16; other rates / channel counts are converted with a warning."""
    import soundfile as sf

    from kws_tf.audio_io import AudioError, read_wav

    path = pathlib.Path(path)
    if not path.is_file():
        raise SimulateError(f"wav {path} does not exist")
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise SimulateError(f"{path}: not a readable audio file ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    try:
        pcm = read_wav(path)
    except AudioError as e:
        raise SimulateError(str(e)) from None
    if pcm.size == 0:
        raise SimulateError(f"{path}: empty audio file")
    if info.samplerate != features.SAMPLE_RATE or info.channels != 1:
        (warn or _warn)(f"warning: {path} is {info.samplerate} Hz, {info.channels} channel(s); "
                        f"resampled/downmixed to {features.SAMPLE_RATE} Hz mono")
    return pcm


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- CLI

def define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "Exported int8 model: export/NAME/model_int8.tflite (the 1 s window every "
                        "N frames), export/NAME/model_step_int8.tflite (the per-frame step model, as the board's "
                        "default build) or the folder export/NAME (its model_int8.tflite); the folder holds "
                        "export_report.json / normalization.json.")
    flags.DEFINE_string("wav", None, "Audio to run (any length; other rates/stereo are converted with a warning).")
    flags.DEFINE_string("csv", None, "Also write the detections here (time_s,label,score).")
    flags.DEFINE_integer("period_frames", None, "Windowed model: run it every N 10 ms frames (default: the device "
                         "core's). The step model runs on every frame.")
    flags.DEFINE_integer("tail_ms", 1000, "Silence appended after the audio so a final keyword can complete.")
    flags.DEFINE_integer("average_window_ms", None, "Recogniser averaging window (default: the export's "
                         "operating point, else the device core's).")
    flags.DEFINE_integer("detection_threshold", None, "Recogniser threshold 0..255 (default: the export's "
                         "operating point, else the device core's).")
    flags.DEFINE_integer("suppression_ms", None, "Recogniser: no new command within this long (default: the "
                         "export's, else the core's).")
    flags.DEFINE_integer("minimum_count", None, "Recogniser: results needed before deciding (default: the "
                         "export's, else the core's).")
    flags.DEFINE_float("score_temperature", None, "Scores = softmax(logits / T) (default: the export's, else 1).")


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SimulateError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.model or not FLAGS.wav:
        raise SimulateError("--model and --wav are required")
    if FLAGS.tail_ms < 0:
        raise SimulateError("--tail_ms must be >= 0")
    pcm = read_stream_wav(FLAGS.wav)
    model = load_exported(FLAGS.model)
    rec = {name: getattr(FLAGS, name) for name in RECOGNIZER_FLAGS}
    if FLAGS.score_temperature is not None and not FLAGS.score_temperature > 0:
        raise SimulateError(f"--score_temperature must be > 0 (got {FLAGS.score_temperature:g})")
    twin = DeviceTwin(model, period_frames=FLAGS.period_frames, recognizer=rec, temperature=FLAGS.score_temperature)
    detections = twin.run(pcm, tail_ms=FLAGS.tail_ms)
    for d in detections:
        print(d.line())
    c = twin.counters
    runs = (f"{c['inferences']} step model runs (every 10 ms frame; look-ahead {twin.delay_frames} frames)"
            if model.is_step else f"{c['inferences']} inferences every {twin.period_frames} frames")
    print(f"# {len(detections)} detection(s) in {pcm.size / features.SAMPLE_RATE:.2f} s of audio; "
          f"{runs}; recogniser "
          + " ".join(f"{k}={v}" for k, v in twin.recognizer_config.items() if k in RECOGNIZER_FLAGS)
          + f" score_temperature={twin.temperature:g}"
          + (" (export's operating point" + (", flags override" if any(v is not None for v in rec.values()) else "")
             + ")" if model.recognizer else " (device defaults)" if not any(v is not None for v in rec.values())
             else ""),
          file=sys.stderr)
    if c["invoke_errors"]:
        raise SimulateError(f"{c['invoke_errors']} model invocations failed")
    if FLAGS.csv:
        try:
            write_csv(FLAGS.csv, detections)
        except OSError as e:
            raise SimulateError(f"cannot write {FLAGS.csv}: {e.strerror or e}") from None
    return 0


def _entry():
    from absl import app, flags

    from kws_tf import cli_env

    cli_env.start()  # before TensorFlow is imported: its start-up lines off stderr unless --tf_logs

    def guarded(argv):
        try:
            return main(argv)
        except SimulateError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except (RuntimeError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {first}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(1)

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    define_flags()
    app.run(guarded, flags_parser=parse)


if __name__ == "__main__":
    _entry()
