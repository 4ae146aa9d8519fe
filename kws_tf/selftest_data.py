"""Self-test audio embedded in the board firmware (`selftest_data.h/.cc`).

The board's self-test (Serial command `t`, see micro_app/micro_app.ino) replays a
few short recordings through the whole on-device pipeline (MFCC front-end, TFLM
model, recogniser) and prints PASS/FAIL per clip against the label the HOST
pipeline produced for the same audio. This module only renders that data; the
exporter computes the expected labels (by running the int8 model through the
host twin of the device loop, `kws_tf.native_app.NativeApp`, see `host_expected_label`)
and calls `render_selftest_data`.

Expected label semantics (what the device checks):
- a keyword (`yes`, `no`, ...): the clip must produce exactly that one detection;
- `""` (NO_KEYWORD), `_silence_` or `_unknown_`: the clip must produce no detection
  (the recogniser never reports silence/unknown as commands).

Rendering is deterministic: the same clips give byte-identical text.

    clips = select_selftest_clips("../shared/data/micro_speech_testdata")
    triples = [(name, pcm, host_expected_label(app, pcm)) for name, pcm in clips]
    header, source = render_selftest_data(triples)
"""

from __future__ import annotations

import os
import re

import numpy as np

from kws_tf import features, labels as labels_lib

# Expected label meaning "no keyword may be detected".
NO_KEYWORD = ""

# micro_speech test clips (TFLM example), in the order they are embedded.
MICRO_SPEECH_CLIPS = ("yes_1000ms.wav", "no_1000ms.wav", "silence_1000ms.wav", "noise_1000ms.wav")

# 1 s per clip: 4 clips = 128 KB of flash (the Nano 33 BLE has 1 MB).
DEFAULT_MAX_SAMPLES = features.SAMPLE_RATE

# Silence the device appends after each clip (kws::AppConfig::selftest_tail_ms default).
DEFAULT_TAIL_MS = 1000

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,48}$")
_DETECTION_RE = re.compile(r"^KWS (\S+) score=\d+ t=\d+$")


def select_selftest_clips(micro_speech_dir, names=MICRO_SPEECH_CLIPS,
                          max_samples: int = DEFAULT_MAX_SAMPLES) -> list[tuple[str, np.ndarray]]:
    """[(clip name, int16 PCM at 16 kHz)] of the micro_speech test clips, each at most `max_samples`.

    Names are the file names without `.wav` (`yes_1000ms`, ...). Raises
    FileNotFoundError naming every missing file.
    """
    from kws_tf import audio_io

    folder = os.fspath(micro_speech_dir)
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise FileNotFoundError(f"self-test clips missing in {folder}: {', '.join(missing)}")
    if max_samples <= 0:
        raise ValueError("max_samples must be positive")
    out = []
    for n in names:
        pcm = audio_io.read_wav(os.path.join(folder, n))
        out.append((os.path.splitext(n)[0], np.ascontiguousarray(pcm[:max_samples], np.int16)))
    return out


def expected_detections(label: str, labels=labels_lib.LABELS) -> list[str]:
    """The detections the device must see for a clip whose expected label is `label`."""
    labels = tuple(labels)
    if label == NO_KEYWORD or label in (labels_lib.SILENCE, labels_lib.UNKNOWN):
        return []
    if label not in labels:
        raise ValueError(f"expected label {label!r} is not one of the model's labels {labels}")
    return [label]


def detections_from_lines(lines) -> list[str]:
    """Labels of the `KWS <label> score=<s> t=<ms>` lines, in order."""
    out = []
    for line in lines:
        m = _DETECTION_RE.match(line.strip())
        if m:
            out.append(m.group(1))
    return out


def host_expected_label(app, pcm, tail_ms: int = DEFAULT_TAIL_MS) -> str:
    """What the device must report for `pcm`, from the host twin of its loop.

    `app` is a `kws_tf.native_app.NativeApp` running the exported int8 model (e.g. through
    the TFLM interpreter). Replays `pcm` + `tail_ms` of silence from a reset, exactly as
    `KwsApp::SelfTest` does on the board (for a per-frame step model, `app.frame_mode`,
    plus its look-ahead of `step_delay_frames` hops), and returns the single detected
    keyword, or NO_KEYWORD when nothing was detected. Raises ValueError if the host
    itself detects more than one keyword (such a clip cannot be a one-label self-test).
    """
    pcm = np.asarray(pcm, np.int16)
    tail_samples = tail_ms * features.SAMPLE_RATE // 1000 // features.HOP_SAMPLES * features.HOP_SAMPLES
    if getattr(app, "frame_mode", False):
        tail_samples += int(app.config.step_delay_frames) * features.HOP_SAMPLES
    tail = np.zeros(tail_samples, np.int16)
    app.reset()
    try:
        lines = app.process(np.concatenate([pcm, tail]))
    finally:
        app.reset()
    found = detections_from_lines(lines)
    if len(found) > 1:
        raise ValueError(f"host pipeline detected several keywords {found}; use a shorter clip")
    return found[0] if found else NO_KEYWORD


def _check_clips(clips, labels):
    names = set()
    checked = []
    for item in clips:
        if len(item) != 3:
            raise ValueError("each clip is (name, int16 pcm, expected label)")
        name, pcm, label = item
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"clip name {name!r}: use 1-48 characters of [A-Za-z0-9_.-]")
        if name in names:
            raise ValueError(f"duplicate clip name {name!r}")
        names.add(name)
        arr = np.asarray(pcm)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"clip {name}: expected non-empty 1-D PCM")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"clip {name}: PCM must be integer (int16), got {arr.dtype}")
        if arr.min() < -32768 or arr.max() > 32767:
            raise ValueError(f"clip {name}: PCM out of int16 range")
        if not isinstance(label, str) or not all(32 < ord(c) < 127 for c in label):
            raise ValueError(f"clip {name}: expected label must be printable ASCII without spaces")
        expected_detections(label, labels)  # validates
        checked.append((name, arr.astype(np.int16), label))
    if not checked:
        raise ValueError("no self-test clips")
    return checked


def _rows(values, per_line: int = 16) -> str:
    items = [str(int(v)) for v in values]
    return "\n".join("  " + ", ".join(items[i:i + per_line]) + ","
                     for i in range(0, len(items), per_line))


def render_selftest_data(clips, labels=labels_lib.LABELS,
                         header_name: str = "selftest_data.h") -> tuple[str, str]:
    """(`selftest_data.h`, `selftest_data.cc`) text for `clips` = [(name, int16 pcm, expected label)].

    The header defines `kws::SelftestClip`, `kws::kNumSelftestClips` and `kws::kSelftestClips[]`
    with the PCM (const: in flash), with internal linkage: only the sketch includes it, and
    builders that skip `.cc` files (Arduino IDE 1.8, arduino-builder) still build the sketch.
    The source is a comment-only placeholder, kept so an older export's stale `.cc` is
    overwritten rather than linked twice. `labels` (the model's
    classes) is only used to validate the expected labels: the board maps them to class
    indices through kws_settings.h's kLabels, so the two cannot disagree silently.
    """
    checked = _check_clips(clips, tuple(labels))
    total = sum(pcm.size for _, pcm, _ in checked)
    guard = "KWS_" + re.sub(r"[^0-9A-Za-z]", "_", header_name).upper() + "_"
    summary = "\n".join(f"//   {name}: {pcm.size} samples, expected {label or '(no keyword)'}"
                        for name, pcm, label in checked)
    header = (
        "// Generated by kws_tf.selftest_data: audio for the board's self-test. Do not edit.\n"
        "// Expected labels come from the host pipeline (int8 model in the TFLM interpreter,\n"
        "// streamed through the host twin of the device loop). \"\" = no keyword detected.\n"
        f"{summary}\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\nnamespace kws {{\n\n"
        "struct SelftestClip {\n"
        "  const char* name;\n"
        "  const char* expected_label;  // a keyword, or \"\" / _silence_ / _unknown_: no detection\n"
        "  const int16_t* audio;         // 16 kHz mono\n"
        "  uint32_t num_samples;\n"
        "};\n\n"
        f"constexpr int kNumSelftestClips = {len(checked)};\n"
        f"constexpr uint32_t kSelftestTotalSamples = {total}u;\n\n"
        "namespace {\n\n"
    )
    parts = [header]
    for i, (name, pcm, _) in enumerate(checked):
        parts.append(f"// {name}\nconst int16_t kClip{i}[{pcm.size}] = {{\n{_rows(pcm)}\n}};\n\n")
    parts.append("}  // namespace\n\nconst SelftestClip kSelftestClips[kNumSelftestClips] = {\n")
    for i, (name, pcm, label) in enumerate(checked):
        parts.append(f'    {{"{name}", "{label}", kClip{i}, {pcm.size}u}},\n')
    parts.append(f"}};\n\n}}  // namespace kws\n\n#endif  // {guard}\n")
    source = ("// Generated by kws_tf.selftest_data. Intentionally empty: the clips are in "
              f"{header_name} (header-only,\n// so builders that skip .cc files still build the sketch).\n")
    return "".join(parts), source


def write_selftest_data(out_dir, clips, labels=labels_lib.LABELS) -> list[str]:
    """Writes selftest_data.h/.cc into out_dir (unchanged files are kept); returns the paths."""
    from kws_tf import codegen

    header, source = render_selftest_data(clips, labels)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "selftest_data.h"), os.path.join(out_dir, "selftest_data.cc")]
    for path, text in zip(paths, (header, source)):
        codegen.write_if_changed(path, text)
    return paths


def add_to_export(export_dir, clips_dir, log=print) -> list[tuple[str, str]]:
    """Write selftest_data.h/.cc into an export folder for the clips in `clips_dir`.

    The expected label of each clip is what the host twin of the device loop (the C++
    core + the exported int8 model in the real TFLM interpreter) reports for it, so the
    board's self-test proves it reproduces the host, not that the model is right. The
    model is the one the board runs by default: the per-frame step model when the export
    has one (`model_step_int8.tflite`), else the windowed model. With a step model, a
    clip on which the windowed model (the `-DKWS_WINDOWED_MODEL=1` build) reports
    something else gets a warning (that build would fail it).
    Returns [(clip name, expected label)].
    """
    from kws_tf import simulate

    folder = os.fspath(export_dir)
    step_path = os.path.join(folder, "model_step_int8.tflite")
    paths = ([step_path] if os.path.isfile(step_path) else []) + [os.path.join(folder, "model_int8.tflite")]
    twins = [simulate.DeviceTwin(simulate.load_exported(path)) for path in paths]
    model = twins[0].model
    try:
        clips = []
        for name, pcm in select_selftest_clips(clips_dir):
            found = [host_expected_label(twin.app, pcm) for twin in twins]
            if len(set(found)) > 1:
                log(f"  warning: self-test clip {name}: the step model reports {found[0] or 'no keyword'}, the "
                    f"windowed model {found[1] or 'no keyword'}; expecting the step model's (the default build), "
                    "so a -DKWS_WINDOWED_MODEL=1 build fails this clip")
            clips.append((name, pcm, found[0]))
    finally:
        for twin in twins:
            twin.close()
    write_selftest_data(export_dir, clips, model.labels)
    for name, _, label in clips:
        log(f"  self-test clip {name}: host expects {label or 'no keyword'}")
    return [(name, label) for name, _, label in clips]
