"""kws_tf.device: pure parsers, and the serial loops against a real pseudo-terminal pair.

A thread plays the board on the pty master: it reads the single-character commands the
tool sends and answers with lines in the sketch's exact formats (CRLF, as Serial.println
writes them, and split across writes). pyserial opens the slave side like a real port.

The sketch itself (compiled on the host against the stand-ins in micro_app/tests/sketch_host/,
its output read by these parsers) and its op table: tests/test_sketch_board.py.
"""

import os
import pathlib
import re
import select
import subprocess
import sys
import threading
import time
import tty

import pytest

from kws_tf import device

ROOT = pathlib.Path(__file__).resolve().parent.parent

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
