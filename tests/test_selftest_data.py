"""kws_tf.selftest_data: rendering, C++ compilation, selection of the micro_speech clips."""

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from kws_tf import labels as labels_lib
from kws_tf import selftest_data as sd

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _clips():
    rng = np.random.default_rng(0)
    return [
        ("yes_1000ms", rng.integers(-32768, 32768, 16000).astype(np.int16), "yes"),
        ("silence_1000ms", np.zeros(1234, np.int16), sd.NO_KEYWORD),
        ("noise", np.array([-32768, 32767, 0, 1, -1], np.int16), "_unknown_"),
    ]


def test_render_is_deterministic_and_describes_clips():
    h1, c1 = sd.render_selftest_data(_clips())
    h2, c2 = sd.render_selftest_data(_clips())
    assert (h1, c1) == (h2, c2)
    assert "constexpr int kNumSelftestClips = 3;" in h1
    assert f"constexpr uint32_t kSelftestTotalSamples = {16000 + 1234 + 5}u;" in h1
    assert '{"yes_1000ms", "yes", kClip0, 16000u}' in h1
    assert '{"silence_1000ms", "", kClip1, 1234u}' in h1
    assert "-32768, 32767, 0, 1, -1," in h1
    assert "kClip" not in c1  # header-only: the source is a placeholder


@pytest.mark.parametrize("bad, match", [
    ([("a b", np.zeros(3, np.int16), "yes")], "clip name"),
    ([("a", np.zeros(3, np.float32), "yes")], "integer"),
    ([("a", np.zeros((2, 3), np.int16), "yes")], "1-D"),
    ([("a", np.array([40000]), "yes")], "int16 range"),
    ([("a", np.zeros(3, np.int16), "maybe")], "not one of"),
    ([("a", np.zeros(3, np.int16), "yes"), ("a", np.zeros(3, np.int16), "no")], "duplicate"),
    ([], "no self-test clips"),
])
def test_render_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        sd.render_selftest_data(bad)


def test_expected_detection_semantics():
    assert sd.expected_detections("yes") == ["yes"]
    for none in ("", labels_lib.SILENCE, labels_lib.UNKNOWN):
        assert sd.expected_detections(none) == []
    assert sd.detections_from_lines(["BENCH x=1", "KWS no score=200 t=950", "KWS up score=181 t=3000"]) == [
        "no", "up"]


class _FakeHostApp:
    """Stands in for native_app.NativeApp: detects 'no' when the audio is loud."""

    def __init__(self):
        self.resets = 0
        self.seen = None

    def reset(self):
        self.resets += 1

    def process(self, pcm):
        self.seen = pcm
        return ["KWS no score=230 t=900"] if np.abs(pcm).max() > 1000 else []


def test_host_expected_label_replays_clip_plus_tail():
    app = _FakeHostApp()
    assert sd.host_expected_label(app, np.full(100, 5000, np.int16), tail_ms=500) == "no"
    assert app.seen.size == 100 + 8000 and app.resets == 2
    assert sd.host_expected_label(app, np.zeros(100, np.int16)) == sd.NO_KEYWORD


_PRINTER = r"""
#include <stdio.h>
#include "selftest_data.h"
int main() {
  long long total = 0;
  for (int i = 0; i < kws::kNumSelftestClips; ++i) {
    const kws::SelftestClip& c = kws::kSelftestClips[i];
    long long sum = 0;
    for (uint32_t k = 0; k < c.num_samples; ++k) sum += c.audio[k];
    total += c.num_samples;
    printf("%s|%s|%u|%lld|%d|%d\n", c.name, c.expected_label, (unsigned)c.num_samples, sum,
           (int)c.audio[0], (int)c.audio[c.num_samples - 1]);
  }
  printf("total|%lld|%u\n", total, (unsigned)kws::kSelftestTotalSamples);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_generated_cpp_compiles_and_matches_python(tmp_path):
    clips = _clips()
    sd.write_selftest_data(tmp_path, clips)
    # Header-only (builders that skip .cc files must still link the sketch): the .cc holds no code.
    assert "kClip" not in (tmp_path / "selftest_data.cc").read_text()
    (tmp_path / "tu.cc").write_text('#include "selftest_data.h"\n')
    for std in ("c++14", "gnu++14", "c++17"):
        for src in ("tu.cc", "selftest_data.cc"):
            subprocess.run(["g++", f"-std={std}", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", src],
                           check=True, cwd=tmp_path)
    (tmp_path / "main.cc").write_text(_PRINTER)
    exe = tmp_path / "printer"
    subprocess.run(["g++", "-std=c++14", "-Wall", "-Werror", "-I", str(tmp_path), str(tmp_path / "main.cc"),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    want = [f"{n}|{lab}|{p.size}|{int(p.astype(np.int64).sum())}|{int(p[0])}|{int(p[-1])}" for n, p, lab in clips]
    total = sum(p.size for _, p, _ in clips)
    assert out == want + [f"total|{total}|{total}"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="arm-none-eabi-g++ not installed")
def test_generated_cpp_cross_compiles_into_flash(tmp_path):
    sd.write_selftest_data(tmp_path, _clips())
    obj = tmp_path / "selftest_data.o"
    # A translation unit that includes the header and keeps the table (as the sketch does).
    (tmp_path / "tu.cc").write_text('#include "selftest_data.h"\n'
                                    "extern const kws::SelftestClip* const g_keep;\n"
                                    "const kws::SelftestClip* const g_keep = kws::kSelftestClips;\n")
    subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                    "-std=gnu++14", "-Os", "-fno-exceptions", "-fno-rtti", "-Wall", "-Werror", "-c",
                    str(tmp_path / "tu.cc"), "-o", str(obj)], check=True)
    sizes = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], check=True, capture_output=True,
                           text=True).stdout
    ram = sum(int(line.split()[1]) for line in sizes.splitlines()
              if line.startswith((".data", ".bss")) and len(line.split()) > 1)
    assert ram == 0, sizes  # everything is const: flash only


def test_select_selftest_clips_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="yes_1000ms.wav"):
        sd.select_selftest_clips(tmp_path)


def test_select_selftest_clips_on_generated_wavs(tmp_path):
    from kws_tf import audio_io

    for i, name in enumerate(sd.MICRO_SPEECH_CLIPS):
        audio_io.write_wav(tmp_path / name, np.full(16000 + 500, i * 100, np.int16))
    clips = sd.select_selftest_clips(tmp_path)
    assert [n for n, _ in clips] == ["yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"]
    assert all(p.dtype == np.int16 and p.size == 16000 for _, p in clips)
    assert [int(p[0]) for _, p in clips] == [0, 100, 200, 300]


def test_select_selftest_clips_real(real_data):
    clips = sd.select_selftest_clips(real_data / "micro_speech_testdata")
    assert len(clips) == 4
    assert all(p.dtype == np.int16 and 0 < p.size <= 16000 for _, p in clips)
    assert np.abs(clips[0][1]).max() > 1000  # "yes" is not silent
    header, source = sd.render_selftest_data([(n, p, "") for n, p in clips])
    assert "kNumSelftestClips = 4" in header and len(header) > 100_000  # header-only: the PCM is here
