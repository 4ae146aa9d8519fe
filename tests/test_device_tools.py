"""kws_tf.device: pure parsers, and the serial loops against a real pseudo-terminal pair.

A thread plays the board on the pty master: it reads the single-character commands the
tool sends and answers with lines in the sketch's exact formats (CRLF, as Serial.println
writes them, and split across writes). pyserial opens the slave side like a real port.

Also: the sketch's op table (micro_app/board_ops.h) against tflite_tools.MICRO_OPS, and
the board files compiled on the host against stand-in Arduino/TFLM headers.
"""

import os
import pathlib
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import tty

import pytest

from kws_tf import device

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICRO_APP = ROOT / "micro_app"

BENCH = ("BENCH mfcc_us=610/640/900 invoke_us=41000/41500/47000 frames={f} invokes={i} "
         "arena=21344 overruns={o} dropped={d}")
# The step model's line (the sketch's default), with the per-hop time and duty cycle.
BENCH_FRAME = ("BENCH mfcc_us=610/640/900 invoke_us=1800/1900/2600 frames={f} invokes={i} arena=9344 "
               "overruns=0 dropped=0 hop_us=2450/2560/3600 duty_pct=24.5/25.6/36.0 mode=frame")


# ------------------------------------------------------------------ pure parsing

def test_parse_bench_line():
    r = device.parse_bench_line(BENCH.format(f=505, i=101, o=0, d=0) + "\r\n")
    assert r == {"mfcc_us": (610, 640, 900), "invoke_us": (41000, 41500, 47000), "frames": 505,
                 "invokes": 101, "arena": 21344, "overruns": 0, "dropped": 0}
    assert device.parse_bench_line("BENCH invoke_us=1/2/3 future=abc")["future"] == "abc"
    f = device.parse_bench_line(BENCH_FRAME.format(f=300, i=300))
    assert f["hop_us"] == (2450, 2560, 3600) and f["duty_pct"] == (24.5, 25.6, 36.0)
    assert f["mode"] == "frame" and f["invokes"] == f["frames"] == 300


@pytest.mark.parametrize("line", ["KWS yes score=200 t=5", "BENCH", "BENCH mfcc_us=1/2", "BENCH mfcc_us",
                                  "BENCH frames=3", "xBENCH mfcc_us=1/2/3", "BENCH hop_us=1/2/x",
                                  "BENCH mfcc_us=1/2/3 duty_pct=1/2"])
def test_parse_bench_line_rejects(line):
    with pytest.raises(ValueError):
        device.parse_bench_line(line)


def test_parse_detection_line():
    assert device.parse_detection_line("KWS yes score=231 t=10560\r") == {"label": "yes", "score": 231,
                                                                          "t_ms": 10560}
    assert device.parse_detection_line("KWS _unknown_ score=0 t=0")["label"] == "_unknown_"
    for line in ("KWS yes score=256 t=1", "KWS yes score=-1 t=1", "KWS yes t=1", "BENCH mfcc_us=1/2/3",
                 "ERROR AllocateTensors failed", "", "KWS  score=1 t=1"):
        assert device.parse_detection_line(line) is None


def test_parse_selftest_lines():
    assert device.parse_selftest_line("SELFTEST BEGIN clips=4") == {"kind": "begin", "clips": 4}
    assert device.parse_selftest_line("SELFTEST CLIP yes_1000ms expected=yes") == {
        "kind": "clip", "name": "yes_1000ms", "expected": "yes"}
    assert device.parse_selftest_line("SELFTEST CLIP silence expected=")["expected"] == ""
    assert device.parse_selftest_line("SELFTEST FAIL expected=yes detected=no,up") == {
        "kind": "result", "passed": False, "expected": ["yes"], "detected": ["no", "up"]}
    assert device.parse_selftest_line("SELFTEST PASS expected= detected=")["detected"] == []
    assert device.parse_selftest_line("SELFTEST END pass=3 fail=1") == {"kind": "end", "pass": 3, "fail": 1}
    assert device.parse_selftest_line("KWS yes score=1 t=2") is None


def test_summarize_bench():
    recs = [device.parse_bench_line(BENCH.format(f=100 * k, i=25 * k, o=k // 2, d=160 * (k // 2)))
            for k in (1, 2, 3)]
    recs[1]["invoke_us"] = (40000, 42000, 60000)
    s = device.summarize_bench(recs)
    assert s["metrics"]["invoke_us"] == {"min": 40000, "median": 41500, "max": 60000}
    assert s["counters"]["overruns"] == {"first": 0, "last": 1, "delta": 1}
    assert s["arena_bytes"] == 21344
    text = device.format_bench_summary(s)
    assert "invoke_us" in text and "WARNING: audio overruns" in text
    with pytest.raises(ValueError):
        device.summarize_bench([])
    # Step model lines: per-hop time and duty cycle summarised like the other timings.
    frame = [device.parse_bench_line(BENCH_FRAME.format(f=100 * k, i=100 * k)) for k in (1, 2, 3)]
    frame[2]["duty_pct"] = (20.0, 30.0, 101.5)
    s = device.summarize_bench(frame)
    assert s["metrics"]["hop_us"] == {"min": 2450, "median": 2560, "max": 3600}
    assert s["metrics"]["duty_pct"] == {"min": 20.0, "median": 25.6, "max": 101.5}
    assert s["mode"] == "frame" and s["counters"]["invokes"]["delta"] == 200
    text = device.format_bench_summary(s)
    assert "(model input: frame)" in text and "duty_pct" in text and "101.5 % of the 10 ms hop" in text


# ------------------------------------------------------------------ fake board on a pty

class FakeBoard:
    """Plays the sketch on the master side of a pty."""

    def __init__(self, selftest_results=("PASS", "PASS", "FAIL", "PASS"), error_on_bench=False):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a USB CDC port: no echo, no newline translation
        self.path = os.ttyname(self.slave)
        self.commands = []
        self.selftest_results = selftest_results
        self.error_on_bench = error_on_bench
        self._stop = threading.Event()
        self._bench = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)

    def _write(self, text):
        data = text.encode("ascii")
        # Split mid-line, like USB packets do.
        for i in range(0, len(data), 23):
            os.write(self.master, data[i:i + 23])

    def _line(self, text):
        self._write(text + "\r\n")

    def _run(self):
        self._line("INFO kws_tf micro_app model=sparknet_c32 arena_used=21344 frontend=0xa4a6deb5")
        frames = invokes = 0
        last = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                for ch in os.read(self.master, 64).decode("ascii", "replace"):
                    if ch.isspace():
                        continue
                    self.commands.append(ch)
                    if ch == "b":
                        self._bench = True
                        self._line("INFO bench on every=25")
                        if self.error_on_bench:
                            self._line("ERROR model run failed")
                    elif ch == "x":
                        self._bench = False
                        self._line("INFO bench off")
                    elif ch == "t":
                        self._selftest()
            if time.monotonic() - last > 0.02:
                last = time.monotonic()
                frames += 100
                invokes += 25
                self._line(f"KWS yes score=231 t={invokes * 40}")
                if self._bench:
                    self._line(BENCH.format(f=frames, i=invokes, o=invokes // 100, d=0))

    def _selftest(self):
        names = ["yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"]
        expected = ["yes", "no", "", ""]
        self._line(f"SELFTEST BEGIN clips={len(names)}")
        for name, exp, verdict in zip(names, expected, self.selftest_results):
            self._line(f"SELFTEST CLIP {name} expected={exp}")
            detected = exp if verdict == "PASS" else "up"
            self._line(f"SELFTEST {verdict} expected={exp} detected={detected}")
        npass = sum(v == "PASS" for v in self.selftest_results)
        self._line(f"SELFTEST END pass={npass} fail={len(names) - npass}")


def test_collect_bench_over_pty():
    with FakeBoard() as board:
        ser = device.open_port(board.path)
        try:
            seen = []
            recs = device.collect_bench(ser, count=5, timeout=20, log=seen.append)
        finally:
            ser.close()
        time.sleep(0.1)
    assert len(recs) == 5
    assert all(r["invoke_us"] == (41000, 41500, 47000) for r in recs)
    assert recs[-1]["frames"] > recs[0]["frames"]
    assert board.commands[:2] == ["b", "x"]
    assert any(line.startswith("INFO bench on") for line in seen)
    assert not any(line.startswith("BENCH") for line in seen)


def test_collect_bench_reports_board_error():
    with FakeBoard(error_on_bench=True) as board:
        ser = device.open_port(board.path)
        try:
            with pytest.raises(device.DeviceError, match="model run failed"):
                device.collect_bench(ser, count=5, timeout=20)
        finally:
            ser.close()


def test_collect_bench_times_out():
    with FakeBoard() as board:
        ser = device.open_port(board.path)
        try:
            with pytest.raises(device.DeviceError, match="0 of 3 BENCH lines"):
                device.collect_bench(ser, count=3, timeout=0.5, send=False)
        finally:
            ser.close()


def test_selftest_over_pty():
    with FakeBoard() as board:
        ser = device.open_port(board.path)
        try:
            clips = device.run_selftest(ser, timeout=20)
        finally:
            ser.close()
    assert [c["name"] for c in clips] == ["yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"]
    assert [c["passed"] for c in clips] == [True, True, False, True]
    assert clips[2]["expected"] == "" and clips[2]["detected"] == ["up"]


def test_monitor_over_pty():
    import io

    out, err = io.StringIO(), io.StringIO()
    with FakeBoard() as board:
        ser = device.open_port(board.path)
        try:
            counts = device.monitor(ser, timeout=0.6, out=out, err=err)
        finally:
            ser.close()
    assert counts["detections"] >= 3 and counts["errors"] == 0
    assert "yes" in out.getvalue() and "score 231" in out.getvalue()
    # (The boot banner was written before the port opened: pyserial flushes it on open.)


def _cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "kws_tf.device", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_cli_bench_and_selftest_over_pty(tmp_path):
    with FakeBoard() as board:
        r = _cli("bench", f"--port={board.path}", "--count=3", "--timeout=30", f"--json={tmp_path / 'b.json'}")
        assert r.returncode == 0, r.stderr
        assert re.search(r"invoke_us\s+41000\s+41500\s+47000", r.stdout), r.stdout
        assert (tmp_path / "b.json").exists()
        r = _cli("selftest", f"--port={board.path}", "--timeout=30")
    assert r.returncode == 1, r.stdout + r.stderr  # one clip fails
    assert "FAIL  silence_1000ms" in r.stdout and "3/4 passed" in r.stdout


def test_cli_bad_port_is_one_line_error():
    r = _cli("bench", "--port=/dev/does-not-exist-kws", "--timeout=1")
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open serial port"), r.stderr


def test_cli_unknown_command():
    r = _cli("flash", "--port=/dev/null")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: usage: python -m kws_tf.device {bench|monitor|selftest} --port PORT [flags]"], r.stderr


# ------------------------------------------------------------------ bad input from the board (pty)

def test_parse_selftest_line_rejects_malformed_lines():
    for line, needle in [("SELFTEST BEGIN clips=zz", "clips='zz' is not a count"), ("SELFTEST BEGIN", "no clips="),
                         ("SELFTEST BEGIN clips=-1", "is not a count"), ("SELFTEST END pass=3 fail=x", "fail='x'"),
                         ("SELFTEST END pass=3", "no fail="), ("SELFTEST CLIP", "no clip name")]:
        with pytest.raises(ValueError, match=re.escape(needle)) as info:
            device.parse_selftest_line(line)
        assert "\n" not in str(info.value)
    assert device.parse_selftest_line("SELFTEST SOMETHING new=1") is None  # unknown kinds: a newer board


def test_sanitize_shows_every_non_printable_byte():
    assert device.sanitize(b"KWS yes score=1 t=2") == "KWS yes score=1 t=2"
    assert device.sanitize(b"\x1b[2J\x00\x07ok\xff\r") == "\\x1b[2J\\x00\\x07ok\\xff\\x0d"


GARBAGE = b"\x1b[2J\x1b]0;pwned\x07\x00\xff\xfe\x9b31m\x08\x08"


class ScriptedBoard(FakeBoard):
    """FakeBoard whose self-test prints `selftest_lines` (None: FakeBoard's), and which sends `noise` (raw bytes, a
    wrong baud rate's worth of garbage with terminal escape sequences) between its lines."""

    def __init__(self, selftest_lines=None, noise=b"", **kw):
        super().__init__(**kw)
        self.selftest_lines = selftest_lines
        self.noise = noise

    def _line(self, text):
        if self.noise:
            os.write(self.master, self.noise + b"\r\n")
        super()._line(text)

    def _selftest(self):
        if self.selftest_lines is None:
            return super()._selftest()
        for line in self.selftest_lines:
            self._line(line)


def _assert_one_error_line(r, needle):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def _no_control_bytes(text: str) -> bool:
    return not [c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) >= 0x7F]


@pytest.mark.parametrize("lines, needle", [
    (["SELFTEST BEGIN clips=zz"], "malformed self-test line from the board: 'SELFTEST BEGIN clips=zz': clips='zz'"),
    (["SELFTEST BEGIN clips=1", "SELFTEST CLIP yes expected=yes", "SELFTEST PASS expected=yes detected=yes",
      "SELFTEST END pass=1 fail=1x"], "'SELFTEST END pass=1 fail=1x': fail='1x' is not a count"),
    (["SELFTEST BEGIN clips=1", "SELFTEST CLIP"], "no clip name"),
])
def test_cli_selftest_malformed_lines_are_one_line_errors(tmp_path, lines, needle):
    before = sorted(p.name for p in ROOT.iterdir())
    with ScriptedBoard(selftest_lines=lines) as board:
        r = _cli("selftest", f"--port={board.path}", "--timeout=10")
    _assert_one_error_line(r, needle)
    assert sorted(p.name for p in ROOT.iterdir()) == before  # wrote nothing


def test_cli_monitor_and_bench_never_echo_raw_bytes(tmp_path):
    with ScriptedBoard(noise=GARBAGE) as board:
        r = _cli("monitor", f"--port={board.path}", "--timeout=1.5")
        assert r.returncode == 0, r.stderr
        assert "score 231" in r.stdout  # detections still parsed between the noise
        assert "\\x1b[2J" in r.stdout and "\\x00\\xff" in r.stdout  # shown, escaped
        assert _no_control_bytes(r.stdout) and _no_control_bytes(r.stderr), (r.stdout[-500:], r.stderr)
        assert r.stderr.count("warning: the board sent bytes that are not text") == 1, r.stderr
        r = _cli("bench", f"--port={board.path}", "--count=3", "--timeout=20", f"--json={tmp_path / 'b.json'}")
    assert r.returncode == 0, r.stderr
    assert re.search(r"invoke_us\s+41000\s+41500\s+47000", r.stdout), r.stdout
    assert _no_control_bytes(r.stdout) and _no_control_bytes(r.stderr), (r.stdout, r.stderr)
    assert r.stderr.count("warning: the board sent bytes that are not text") == 1, r.stderr
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_cli_selftest_garbage_warns_and_still_runs():
    with ScriptedBoard(noise=b"\xff\xfe\x1b[31m") as board:
        r = _cli("selftest", f"--port={board.path}", "--timeout=20")
    assert r.returncode == 1 and "3/4 passed" in r.stdout, r.stdout + r.stderr  # one clip fails, as FakeBoard's
    assert r.stderr.strip().splitlines() == [device.GARBAGE_WARNING], r.stderr


def test_cli_bench_json_unwritable_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with FakeBoard() as board:
        for target, why in [(blocker / "b.json", f"{blocker} is not a folder"), (tmp_path, "it is a folder")]:
            r = _cli("bench", f"--port={board.path}", "--count=2", "--timeout=20", f"--json={target}")
            _assert_one_error_line(r, f"cannot write {target}: {why}")  # refused before the bench
    assert [p.name for p in tmp_path.iterdir()] == ["file"] and blocker.read_text() == "x"


@pytest.mark.parametrize("args, needle", [
    (("bench", "--count=0"), "--count must be at least 1"),
    (("selftest", "--timeout=-1"), "--timeout must be >= 0"),
    (("bench",), "cannot open serial port"),
])
def test_cli_bad_arguments_exit_1(args, needle):
    r = _cli(*args, "--port=/dev/does-not-exist-kws")
    _assert_one_error_line(r, needle)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ board sources

def _ops_in_generated_table():
    from kws_tf import codegen, features

    text = codegen.render_frontend_header(features.Normalization.identity(), 0.05, 0)
    return dict(re.findall(r'^\s*X\("([A-Z0-9_]+)",\s*(\w+)\)', text, re.M))


def test_board_op_table_is_generated_from_micro_ops():
    from kws_tf import tflite_tools

    assert _ops_in_generated_table() == tflite_tools.MICRO_OPS
    assert 'X("' not in (MICRO_APP / "board_ops.h").read_text()  # no second, hand-typed copy


# ------------------------------------------------------------------ the sketch, on the host
#
# No Arduino core or TFLM library can be fetched here, so the sketch is compiled
# against minimal stand-ins of the APIs it uses (Arduino.h, PDM.h, the TFLM headers),
# linked with the real portable core and generated files, and run: setup(), Serial
# commands, PDM callbacks, self-test, an overrun, and a fatal error. This checks the
# glue's logic and output formats, not the real libraries' signatures.

_STUB_ARDUINO = r"""
#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#define LEDR 22
#define LEDG 23
#define LEDB 24
#define OUTPUT 1
#define HIGH 1
#define LOW 0
unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
void pinMode(int, int);
void digitalWrite(int, int);
void analogWrite(int, int);
class StubSerial {
 public:
  void begin(long) {}
  explicit operator bool() const { return true; }
  int available() { return static_cast<int>(strlen(in_ + pos_)); }
  int read() { return in_[pos_] ? in_[pos_++] : -1; }
  void print(const char* s) { fputs(s, stdout); }
  void print(int v) { printf("%d", v); }
  void println(const char* s) { printf("%s\n", s); }
  void println(int v) { printf("%d\n", v); }
  void inject(const char* s) { strncpy(in_, s, sizeof(in_) - 1); pos_ = 0; }
 private:
  char in_[64] = {0};
  size_t pos_ = 0;
};
extern StubSerial Serial;
#ifdef STUB_CMSIS  // the Cortex-M4 cycle counter registers, for the DWT clock path
struct StubDwt { volatile uint32_t CTRL, CYCCNT; };
struct StubCoreDebug { volatile uint32_t DEMCR; };
extern StubDwt g_stub_dwt;
extern StubCoreDebug g_stub_core_debug;
extern uint32_t SystemCoreClock;
#define DWT (&g_stub_dwt)
#define CoreDebug (&g_stub_core_debug)
#define CoreDebug_DEMCR_TRCENA_Msk (1u << 24)
#define DWT_CTRL_CYCCNTENA_Msk 1u
#endif
"""

_STUB_PDM = r"""
#pragma once
#include <stdint.h>
class PDMClass {
 public:
  void onReceive(void (*cb)()) { cb_ = cb; }
  int begin(int channels, long rate) { return channels == 1 && rate == 16000; }
  void end() {}
  void setGain(int) {}
  int available() { return bytes_; }
  int read(void* dst, int n);
  void Push(const int16_t* samples, int n);  // test helper: "DMA" then IRQ
 private:
  void (*cb_)() = nullptr;
  int16_t buf_[256];
  int bytes_ = 0;
  int pos_ = 0;
};
extern PDMClass PDM;
"""

_STUB_INTERPRETER = r"""
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef struct { int size; int data[4]; } TfLiteIntArray;
typedef struct { float scale; int32_t zero_point; } TfLiteQuantizationParams;
typedef union { int8_t* int8; } TfLitePtrUnion;
typedef struct {
  TfLiteType type; TfLitePtrUnion data; TfLiteIntArray* dims;
  TfLiteQuantizationParams params; size_t bytes;
} TfLiteTensor;
namespace tflite {
// The stub tells the two models apart by the first byte of their data: 'S' = step model.
struct Model { bool step; uint32_t version() const { return 3; } };
inline const Model* GetModel(const void* data) {
  static Model m;
  m.step = static_cast<const char*>(data)[0] == 'S';
  return &m;
}
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver&, uint8_t* arena, size_t size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  size_t inputs_size() const { return n_in_; }
  size_t outputs_size() const { return n_out_; }
  TfLiteTensor* input(size_t i) { return i < n_in_ ? &in_[i] : nullptr; }
  TfLiteTensor* output(size_t i) { return i < n_out_ ? &out_[i] : nullptr; }
  size_t arena_used_bytes() const { return used_; }
 private:
  TfLiteStatus InvokeStep();
  bool step_;
  size_t size_, used_ = 0, n_in_ = 0, n_out_ = 0;
  TfLiteTensor in_[3], out_[3];
  TfLiteIntArray in_dims_[3], out_dims_[3];
  int8_t in_data_[101 * 32], out_data_[12];
  int8_t state_a_[64], state_b_[64], state_c_[64];
  unsigned count_ = 0;
  bool corrupt_ = false;
};
}  // namespace tflite
"""

_STUB_SOURCES = r"""
#include "Arduino.h"
#include "PDM.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include <stdlib.h>
StubSerial Serial;
PDMClass PDM;
static unsigned long g_us = 0;
static int g_delays = 0;
unsigned long micros() { return g_us += 37; }
unsigned long millis() { return micros() / 1000; }
void delay(unsigned long ms) { g_us += ms * 1000; if (++g_delays > 50) { fflush(stdout); exit(42); } }
void delayMicroseconds(unsigned int us) { g_us += us; }
void pinMode(int, int) {}
void digitalWrite(int, int) {}
void analogWrite(int, int) {}
namespace tflite { void InitializeTarget() {} }
int PDMClass::read(void* dst, int n) {
  if (n > bytes_) n = bytes_;
  memcpy(dst, reinterpret_cast<char*>(buf_) + pos_, n);
  pos_ += n; bytes_ -= n;
  return n;
}
void PDMClass::Push(const int16_t* s, int n) {
  memcpy(buf_, s, n * 2); bytes_ = n * 2; pos_ = 0;
  if (cb_) cb_();
}
// The step model (kStepDelayFrames = STUB_DELAY in the test's kws_settings.h):
//   input 1 "flags": loudness of the last STUB_DELAY + 29 frames (zero point -5 quiet, 7 loud);
//   input 2 "count": frames since reset, two base-100 digits (zero point 3).
// Output 1 sits on top of nothing; output 2 on top of input 1 (as TFLM's planner may place
// it once input 1 has been read), so copying state 1 back first would destroy state 2.
// STUB_STATE_CYCLE also puts input 2 on top of output 1: a cycle that needs staging.
#define STUB_DELAY 5
#define STUB_FLAGS (STUB_DELAY + 29)
#ifndef STUB_COUNT_OUT_ZP
#define STUB_COUNT_OUT_ZP 3
#endif
namespace tflite {
static void SetTensor(TfLiteTensor* t, TfLiteIntArray* d, TfLiteIntArray dims, int8_t* data, size_t bytes,
                      float scale, int32_t zp) {
  *d = dims;
  *t = {kTfLiteInt8, {data}, d, {scale, zp}, bytes};
}
MicroInterpreter::MicroInterpreter(const Model* model, const MicroOpResolver&, uint8_t*, size_t size)
    : step_(model->step), size_(size) {}
TfLiteStatus MicroInterpreter::AllocateTensors() {
  used_ = step_ ? 8888 : 12345;
  if (size_ < used_) return kTfLiteError;
  SetTensor(&out_[0], &out_dims_[0], {2, {1, 12, 0, 0}}, out_data_, 12, 1.0f / 256.0f, -128);
  if (!step_) {
    n_in_ = n_out_ = 1;
    SetTensor(&in_[0], &in_dims_[0], {4, {1, 1, 101, 32}}, in_data_, 101 * 32, STUB_INPUT_SCALE, 0);
    return kTfLiteOk;
  }
  n_in_ = n_out_ = 3;
  SetTensor(&in_[0], &in_dims_[0], {4, {1, 1, 1, 32}}, in_data_, 32, STUB_INPUT_SCALE, 0);
  SetTensor(&in_[1], &in_dims_[1], {4, {1, 1, STUB_FLAGS, 1}}, state_a_, STUB_FLAGS, 0.5f, -5);
  SetTensor(&out_[1], &out_dims_[1], {4, {1, 1, STUB_FLAGS, 1}}, state_c_, STUB_FLAGS, 0.5f, -5);
#ifdef STUB_STATE_CYCLE
  SetTensor(&in_[2], &in_dims_[2], {4, {1, 1, 2, 1}}, state_c_ + 4, 2, 0.25f, 3);
#else
  SetTensor(&in_[2], &in_dims_[2], {4, {1, 1, 2, 1}}, state_b_, 2, 0.25f, 3);
#endif
  SetTensor(&out_[2], &out_dims_[2], {4, {1, 1, 2, 1}}, state_a_ + 10, 2, 0.25f, STUB_COUNT_OUT_ZP);
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() {
  if (step_) return InvokeStep();
  // "yes" while any of the newest 30 frames has energy in MFCC coefficient 1.
  bool loud = false;
  for (int t = 101 - 30; t < 101; ++t) loud = loud || in_data_[t * 32 + 1] > 20 || in_data_[t * 32 + 1] < -20;
  for (int c = 0; c < 12; ++c) out_data_[c] = -128;
  out_data_[loud ? 0 : 10] = 127;
  return kTfLiteOk;
}
// The same decision, for the window ending STUB_DELAY frames before the newest frame.
TfLiteStatus MicroInterpreter::InvokeStep() {
  int8_t flags[STUB_FLAGS + 1], count[2];  // read every input first, as the graph would
  memcpy(flags, in_[1].data.int8, STUB_FLAGS);
  memcpy(count, in_[2].data.int8, 2);
  const int8_t* f = in_[0].data.int8;
  flags[STUB_FLAGS] = (f[1] > 20 || f[1] < -20) ? 7 : -5;
  const int lo = count[0] - 3, hi = count[1] - 3;
  if (lo == 0 && hi == 0) count_ = 0;  // a reset state
  bool ok = lo >= 0 && lo < 100 && hi >= 0 && hi < 100 && static_cast<unsigned>(lo + 100 * hi) == count_;
  for (int i = 0; i < STUB_FLAGS; ++i) ok = ok && (flags[i] == -5 || flags[i] == 7);
  if (!ok && !corrupt_) {
    corrupt_ = true;
    printf("STUB state corrupt at count %u\n", count_);
  }
  bool loud = false;
  for (int i = 0; i < 30; ++i) loud = loud || flags[i] == 7;
  for (int c = 0; c < 12; ++c) out_data_[c] = -128;
  out_data_[loud ? 0 : 10] = 127;
  memcpy(out_[1].data.int8, flags + 1, STUB_FLAGS);
  ++count_;
  out_[2].data.int8[0] = static_cast<int8_t>(3 + count_ % 100);
  out_[2].data.int8[1] = static_cast<int8_t>(3 + count_ / 100 % 100);
  return kTfLiteOk;
}
}  // namespace tflite
"""

_STUB_MAIN = r"""
#include <math.h>
#include "Arduino.h"
#include "PDM.h"
void setup();
void loop();
static void Feed(double seconds, double amplitude) {
  static long n = 0;
  int16_t chunk[256];
  for (long k = 0; k < static_cast<long>(seconds * 16000) / 256; ++k) {
    for (int i = 0; i < 256; ++i, ++n) chunk[i] = static_cast<int16_t>(amplitude * sin(2 * M_PI * 700.0 * n / 16000));
    PDM.Push(chunk, 256);
    loop();
  }
}
int main() {
  setup();
  Serial.inject("h\n");
  loop();
  Serial.inject("b");
  Feed(1.5, 0.0);
  Feed(0.6, 8000.0);
  Feed(1.5, 0.0);
  Serial.inject("r");
  loop();
  Serial.inject("xt");
  loop();
  int16_t chunk[256] = {0};
  for (int k = 0; k < 80; ++k) PDM.Push(chunk, 256);  // 1.3 s without the loop: overrun
  for (int k = 0; k < 200; ++k) { PDM.Push(chunk, 256); loop(); }
  return 0;
}
"""

# kOpNames covers both exported models (the step model adds CONCATENATION and SPLIT_V).
SKETCH_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "TANH", "MINIMUM", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
              "CONCATENATION", "SPLIT_V")
STUB_STEP = {"delay_frames": 5, "num_states": 2, "arena_bytes": 9000}  # STUB_DELAY in the stub
BUILD_FLAGS = ["-std=gnu++14", "-O1", "-fno-exceptions", "-fno-rtti"]


def _write_stubs(root: pathlib.Path):
    from kws_tf import tflite_tools

    tfl = root / "tensorflow" / "lite"
    (tfl / "micro").mkdir(parents=True)
    (tfl / "schema").mkdir(parents=True)
    (root / "Arduino.h").write_text(_STUB_ARDUINO)
    (root / "PDM.h").write_text(_STUB_PDM)
    (root / "TensorFlowLite.h").write_text("#pragma once\n")
    (tfl / "micro" / "micro_interpreter.h").write_text(_STUB_INTERPRETER)
    (tfl / "micro" / "system_setup.h").write_text("#pragma once\nnamespace tflite { void InitializeTarget(); }\n")
    (tfl / "schema" / "schema_generated.h").write_text("#pragma once\n#define TFLITE_SCHEMA_VERSION (3)\n")
    methods = "\n".join(f'  TfLiteStatus {m}() {{ return Add("{op}"); }}' for op, m in tflite_tools.MICRO_OPS.items())
    (tfl / "micro" / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\n#include <stdio.h>\n#include \"tensorflow/lite/micro/micro_interpreter.h\"\n"
        "namespace tflite {\ntemplate <unsigned int tOpCount>\nclass MicroMutableOpResolver : public MicroOpResolver {\n"
        f" public:\n{methods}\n private:\n  TfLiteStatus Add(const char* name) {{\n"
        "    if (count_ >= tOpCount) return kTfLiteError;\n    ++count_;\n"
        "    printf(\"STUB registered %s\\n\", name);\n    return kTfLiteOk;\n  }\n  unsigned int count_ = 0;\n};\n}\n")
    (root / "stubs.cc").write_text(_STUB_SOURCES)
    (root / "main.cc").write_text(_STUB_MAIN)


def _write_generated(sketch: pathlib.Path, settings_step: bool = True, step_data: bool = True) -> list:
    """The exporter's files, generated for the stubs, into the sketch folder; returns the .cc files."""
    import numpy as np

    from kws_tf import codegen, features, selftest_data

    (sketch / "kws_settings.h").write_text(codegen.render_frontend_header(
        features.Normalization.identity(), 0.05, 0, ops=SKETCH_OPS, arena_bytes=12000, model_name="stub",
        output_scale=1.0 / 256.0, output_zero_point=-128, output_is_logits=False,
        step_model=STUB_STEP if settings_step else None))
    sources = []
    models = [("g_model", "model_data", bytes(range(32)))]
    if step_data:  # the stub interpreter knows the step model by its first byte
        models.append(("g_step_model", "model_step_data", b"S" + bytes(range(31))))
    for name, base, data in models:
        h, c = codegen.render_model_data(data, name=name)  # as export calls it
        (sketch / f"{base}.h").write_text(h)
        (sketch / f"{base}.cc").write_text(c)
        sources.append(sketch / f"{base}.cc")
    tone = (8000 * np.sin(2 * np.pi * 700 * np.arange(16000) / 16000)).astype(np.int16)
    selftest_data.write_selftest_data(sketch, [("tone", tone, "yes"), ("quiet", np.zeros(16000, np.int16), ""),
                                               ("quiet_bad", np.zeros(1600, np.int16), "no")])
    return sources + [sketch / "selftest_data.cc"]


def _sketch_folder(tmp_path: pathlib.Path, **generated) -> tuple[pathlib.Path, list]:
    """A sketch folder as the Arduino builder sees it: the .ino as .cpp, the board headers and src/
    (linked from micro_app/), and the generated files; nothing else from micro_app/ (a model
    copied there for the board cannot leak into the test)."""
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    (sketch / "src").symlink_to(MICRO_APP / "src", target_is_directory=True)
    for header in MICRO_APP.glob("board_*.h"):
        (sketch / header.name).symlink_to(header)
    (sketch / "micro_app.ino.cpp").write_text(  # what the Arduino builder makes of the .ino
        "#include <Arduino.h>\n#line 1 \"micro_app.ino\"\n" + (MICRO_APP / "micro_app.ino").read_text())
    return sketch, _write_generated(sketch, **generated)


@pytest.fixture(scope="module")
def core_objects(tmp_path_factory):
    """The portable core compiled once for every sketch build of this module."""
    out = tmp_path_factory.mktemp("core")
    objs = []
    for src in sorted((MICRO_APP / "src").glob("*.cpp")):
        if src.name == "kws_c_api.cpp":
            continue
        obj = out / (src.stem + ".o")
        subprocess.run(["g++", *BUILD_FLAGS, "-c", str(src), "-o", str(obj)], check=True)
        objs.append(str(obj))
    return objs


def _build_sketch(tmp_path, core_objects, *defines, **generated):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _write_stubs(stubs)
    sketch, sources = _sketch_folder(tmp_path, **generated)
    exe = tmp_path / "sketch_exe"
    flags = [*BUILD_FLAGS, "-I", str(stubs), "-DSTUB_INPUT_SCALE=0.05f", *defines]
    r = subprocess.run(["g++", *flags, "-Wall", "-Wextra", "-Werror", "-c", str(sketch / "micro_app.ino.cpp"),
                        "-o", str(tmp_path / "sketch.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    subprocess.run(["g++", *flags, str(tmp_path / "sketch.o"), str(stubs / "stubs.cc"), str(stubs / "main.cc"),
                    *map(str, sources), *core_objects, "-lm", "-o", str(exe)], check=True)
    return exe


_HAVE_GXX = shutil.which("g++") is not None


@pytest.mark.skipif(not _HAVE_GXX, reason="g++ not installed")
@pytest.mark.parametrize("variant", ["step", "step_cycle", "window", "no_step_model"])
def test_sketch_runs_on_host_stubs(tmp_path, core_objects, variant):
    """setup(), commands, detections, BENCH lines, self-test and an overrun, with
    step: the default build, the per-frame step model (its state copied back through the plan:
       the stub's state output 2 sits on state input 1);
    step_cycle: the state buffers overlap in a cycle (staged through KWS_STEP_STAGING_BYTES);
    window: -DKWS_WINDOWED_MODEL=1;
    no_step_model: an export without a step model (kHasStepModel false, no model_step_data.h)."""
    defines = {"step_cycle": ["-DSTUB_STATE_CYCLE"], "window": ["-DKWS_WINDOWED_MODEL=1"]}.get(variant, [])
    generated = {"settings_step": False, "step_data": False} if variant == "no_step_model" else {}
    exe = _build_sketch(tmp_path, core_objects, *defines, **generated)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    step = variant.startswith("step")
    arena_used = 8888 if step else 12345
    registered = [line.split()[-1] for line in lines if line.startswith("STUB registered")]
    assert sorted(registered) == sorted(SKETCH_OPS)  # exactly the exported ops
    assert not [line for line in lines if "STUB state corrupt" in line]
    banner = [line for line in lines if line.startswith("INFO kws_tf micro_app")]
    assert banner and f"arena_used={arena_used}" in banner[0] and "selftest_clips=3" in banner[0]
    assert ("mode=frame delay=5 states=2" if step else "mode=window delay=0 states=0") in banner[0], banner[0]
    assert not [line for line in lines if line.startswith("ERROR")]

    detections = [d for d in map(device.parse_detection_line, lines) if d]
    assert [d["label"] for d in detections[:1]] == ["yes"]
    assert 1500 <= detections[0]["t_ms"] <= 3000
    bench = [device.parse_bench_line(line) for line in lines if line.startswith("BENCH")]
    assert len(bench) >= 3
    assert all(b["arena"] == arena_used and b["overruns"] == 0 for b in bench)
    assert bench[-1]["invoke_us"][0] > 0 and bench[-1]["mfcc_us"][1] > 0
    assert all(b["mode"] == ("frame" if step else "window") for b in bench)
    assert all(b["hop_us"][2] >= b["invoke_us"][2] and len(b["duty_pct"]) == 3 for b in bench)
    if step:  # the model ran on every frame
        assert all(b["invokes"] == b["frames"] for b in bench)
    else:
        assert all(b["invokes"] < b["frames"] / 3 for b in bench)

    st = [s for s in map(device.parse_selftest_line, lines) if s]
    kinds = [s["kind"] for s in st]
    assert kinds == ["begin", "clip", "result", "clip", "result", "clip", "result", "end"], st
    assert [s["passed"] for s in st if s["kind"] == "result"] == [True, True, False]
    assert st[-1] == {"kind": "end", "pass": 2, "fail": 1}
    warn = [line for line in lines if line.startswith("WARN audio overrun")]
    assert warn and re.search(r"events=[1-9]\d* dropped=[1-9]", warn[0]), lines[-20:]


def _fatal_line(exe) -> str:
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 42, r.stdout[-2000:]  # the stub's delay() ends the endless blink loop
    return [line for line in r.stdout.splitlines() if line.startswith("ERROR")][0]


@pytest.mark.skipif(not _HAVE_GXX, reason="g++ not installed")
def test_sketch_fatal_error_on_mismatched_input_quantisation(tmp_path, core_objects):
    first = _fatal_line(_build_sketch(tmp_path, core_objects, "-USTUB_INPUT_SCALE", "-DSTUB_INPUT_SCALE=0.1f"))
    assert re.match(r"ERROR input quantisation: model scale 1000000\d\d e-9 zp 0, kws_settings.h scale "
                    r"500000\d\d e-9 zp 0 .*\(blink code 4\)$", first), first


@pytest.mark.skipif(not _HAVE_GXX, reason="g++ not installed")
def test_sketch_fatal_error_on_step_state_mismatch(tmp_path, core_objects):
    """A state output whose zero point differs from its input's cannot be copied back."""
    first = _fatal_line(_build_sketch(tmp_path, core_objects, "-DSTUB_COUNT_OUT_ZP=4"))
    assert re.match(r"ERROR step model state 2: input type 9 2 bytes scale 250000000 e-9 zp 3, output type 9 "
                    r"2 bytes scale 250000000 e-9 zp 4; .*\(blink code 8\)$", first), first


@pytest.mark.skipif(not _HAVE_GXX, reason="g++ not installed")
def test_sketch_fatal_error_when_state_staging_is_too_small(tmp_path, core_objects):
    first = _fatal_line(_build_sketch(tmp_path, core_objects, "-DSTUB_STATE_CYCLE", "-DKWS_STEP_STAGING_BYTES=1"))
    assert re.match(r"ERROR step model: its state copies need 2 bytes of staging .*KWS_STEP_STAGING_BYTES is 1: "
                    r"build with -DKWS_STEP_STAGING_BYTES=2 \(blink code 8\)$", first), first


@pytest.mark.skipif(not _HAVE_GXX, reason="g++ not installed")
def test_sketch_without_step_model_data_says_what_to_copy(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _write_stubs(stubs)
    sketch, _ = _sketch_folder(tmp_path, step_data=False)  # kws_settings.h has a step model, the data is missing
    r = subprocess.run(["g++", *BUILD_FLAGS, "-fsyntax-only", "-I", str(stubs), "-DSTUB_INPUT_SCALE=0.05f",
                        str(sketch / "micro_app.ino.cpp")], capture_output=True, text=True)
    assert r.returncode != 0 and "model_step_data.h is missing" in r.stderr, r.stderr[-2000:]
    ok = subprocess.run(["g++", *BUILD_FLAGS, "-fsyntax-only", "-I", str(stubs), "-DSTUB_INPUT_SCALE=0.05f",
                         "-DKWS_WINDOWED_MODEL=1", str(sketch / "micro_app.ino.cpp")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="arm-none-eabi-g++ not installed")
@pytest.mark.parametrize("model", ["step", "window"])
def test_sketch_cross_compiles_for_cortex_m4(tmp_path, model):
    """The sketch (with the DWT clock path) compiles as the board's gnu++14, -Wall -Wextra -Werror:
    catches printf formats that differ on ARM (int32_t is long there)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _write_stubs(stubs)
    sketch, _ = _sketch_folder(tmp_path)
    r = subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                        "-std=gnu++14", "-Os", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra", "-Werror",
                        "-DSTUB_CMSIS", "-DSTUB_INPUT_SCALE=0.05f", "-I", str(stubs),
                        *(["-DKWS_WINDOWED_MODEL=1"] if model == "window" else []),
                        "-c", str(sketch / "micro_app.ino.cpp"), "-o", str(tmp_path / "sketch.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
