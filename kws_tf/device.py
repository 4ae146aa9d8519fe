"""Host side of the board's Serial protocol (micro_app/micro_app.ino), over pyserial.

    python -m kws_tf.device bench    --port PORT [--baud 115200] [--count 10] [--timeout 120] [--json FILE]
    python -m kws_tf.device monitor  --port PORT [--timeout 0]
    python -m kws_tf.device selftest --port PORT [--timeout 60]

Lines the board prints (one per line, ASCII):

    KWS <label> score=<0..255> t=<ms>                 a detection (t: audio time since start)
    BENCH mfcc_us=a/b/c invoke_us=a/b/c frames=N invokes=N arena=N overruns=N dropped=N
          hop_us=a/b/c duty_pct=x.x/x.x/x.x mode=frame|window
                                                      min/median/max of the last K timings;
                                                      hop_us: one 10 ms hop's work (MFCC +
                                                      model if it ran + recogniser), duty_pct:
                                                      hop_us in % of the 10 ms hop
    SELFTEST BEGIN clips=N
    SELFTEST CLIP <name> expected=<label>             (label "" = no keyword)
    SELFTEST PASS|FAIL expected=a,b detected=a,b      (the core's verdict for that clip)
    SELFTEST END pass=N fail=N
    ERROR <what>                                      (fatal errors repeat with a blink code)
    INFO ...                                          boot banner, mode changes

Commands the board accepts (single characters): `b` benchmark lines on, `x` off,
`r` one BENCH line now, `t` self-test, `h` help.

Whatever else arrives on the port (a wrong baud rate on a real UART, another program, another
sketch) is shown with every byte outside printable ASCII as `\\xNN`, never sent raw to the
terminal, and a warning says so once. A malformed SELFTEST line ends the self-test with a
one-line error.

Exit status: 0 success; 1 error (one `error: ...` line on stderr), a failing self-test clip, an
ERROR line from the board during monitor, or bench/selftest interrupted; monitor stopped with
Ctrl-C ends normally.

The parse functions are pure; the serial loops take an open pyserial port so they
can be driven by a pseudo-terminal in the tests.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time

# min/median/max fields of a BENCH line (duty_pct with one decimal: floats).
TRIPLE_METRICS = ("mfcc_us", "invoke_us", "hop_us", "duty_pct")

_DETECTION_RE = re.compile(r"^KWS (?P<label>\S+) score=(?P<score>\d+) t=(?P<t>\d+)$")
_TRIPLE_RE = re.compile(r"^(\d+)/(\d+)/(\d+)$")
_FLOAT_TRIPLE_RE = re.compile(r"^(\d+\.\d+)/(\d+\.\d+)/(\d+\.\d+)$")
MAX_LINE_BYTES = 1024  # a longer run of bytes without a newline is shown in pieces of this size
GARBAGE_WARNING = ("warning: the board sent bytes that are not text (shown as \\xNN): a wrong --baud on a real "
                   "UART, another program on the port, or not the kws_tf sketch?")


class DeviceError(RuntimeError):
    """Port or protocol problem; one line for the user."""


# ------------------------------------------------------------------ parsing (pure)

def parse_bench_line(line: str) -> dict:
    """`BENCH k=v ...` -> {k: int or (min, median, max)}; ValueError if it is not one.

    Unknown keys are kept (integers, triples, or strings), so a newer board can add fields.
    """
    text = line.strip()
    parts = text.split()
    if not parts or parts[0] != "BENCH":
        raise ValueError(f"not a BENCH line: {line!r}")
    out: dict = {}
    for item in parts[1:]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"malformed BENCH field {item!r} in {line!r}")
        m = _TRIPLE_RE.match(value)
        f = _FLOAT_TRIPLE_RE.match(value)
        if m:
            out[key] = tuple(int(g) for g in m.groups())
        elif f:
            out[key] = tuple(float(g) for g in f.groups())
        elif value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    for key in TRIPLE_METRICS:
        if key in out and not isinstance(out[key], tuple):
            raise ValueError(f"BENCH field {key} is not min/median/max: {line!r}")
    if not any(k in out for k in TRIPLE_METRICS):
        raise ValueError(f"BENCH line without timings: {line!r}")
    return out


def parse_detection_line(line: str) -> dict | None:
    """`KWS <label> score=<s> t=<ms>` -> {"label", "score", "t_ms"}; None for any other line."""
    m = _DETECTION_RE.match(line.strip())
    if not m:
        return None
    score = int(m.group("score"))
    if score > 255:
        return None
    return {"label": m.group("label"), "score": score, "t_ms": int(m.group("t"))}


def sanitize(raw: bytes) -> str:
    """Bytes from the board as printable ASCII: every byte outside 0x20..0x7e becomes `\\xNN`."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)


def _count(fields: dict, key: str, line: str) -> int:
    value = fields.get(key)
    if value is None or not (value.isascii() and value.isdigit()):
        raise ValueError(f"'{line.strip()}': {key}='{value}' is not a count" if value is not None
                         else f"'{line.strip()}': no {key}=")
    return int(value)


def parse_selftest_line(line: str) -> dict | None:
    """SELFTEST lines -> {"kind": begin|clip|result|end, ...}; None for any other line.

    ValueError (one line) for a SELFTEST line of a known kind that is malformed (a count that
    is not a number, a CLIP without a name).
    """
    parts = line.strip().split(" ")
    if len(parts) < 2 or parts[0] != "SELFTEST":
        return None
    kind = parts[1]
    fields = {}
    rest = []
    for p in parts[2:]:
        k, sep, v = p.partition("=")
        if sep:
            fields[k] = v
        else:
            rest.append(p)
    if kind == "BEGIN":
        return {"kind": "begin", "clips": _count(fields, "clips", line)}
    if kind == "CLIP":
        if not rest:
            raise ValueError(f"'{line.strip()}': no clip name")
        return {"kind": "clip", "name": rest[0], "expected": fields.get("expected", "")}
    if kind in ("PASS", "FAIL"):
        split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
        return {"kind": "result", "passed": kind == "PASS", "expected": split(fields.get("expected", "")),
                "detected": split(fields.get("detected", ""))}
    if kind == "END":
        return {"kind": "end", "pass": _count(fields, "pass", line), "fail": _count(fields, "fail", line)}
    return None


def is_error_line(line: str) -> bool:
    return line.strip().startswith("ERROR")


def summarize_bench(records: list[dict]) -> dict:
    """Across BENCH lines: per timing metric min of mins, median of medians, max of maxes;
    counters as first/last/delta (they are cumulative on the board); arena as max; the
    model `mode` (frame / window) of the last line that has one."""
    if not records:
        raise ValueError("no BENCH lines to summarise")
    summary: dict = {"lines": len(records), "metrics": {}, "counters": {}}
    for key in TRIPLE_METRICS:
        triples = [r[key] for r in records if isinstance(r.get(key), tuple)]
        if triples:
            summary["metrics"][key] = {
                "min": min(t[0] for t in triples),
                "median": statistics.median(t[1] for t in triples),
                "max": max(t[2] for t in triples),
            }
    for key in ("frames", "invokes", "overruns", "dropped"):
        values = [r[key] for r in records if isinstance(r.get(key), int)]
        if values:
            summary["counters"][key] = {"first": values[0], "last": values[-1], "delta": values[-1] - values[0]}
    arenas = [r["arena"] for r in records if isinstance(r.get("arena"), int)]
    if arenas:
        summary["arena_bytes"] = max(arenas)
    modes = [r["mode"] for r in records if isinstance(r.get("mode"), str)]
    if modes:
        summary["mode"] = modes[-1]
    return summary


def format_bench_summary(summary: dict) -> str:
    mode = f" (model input: {summary['mode']})" if "mode" in summary else ""
    lines = [f"{summary['lines']} BENCH lines{mode}", f"{'metric':<12}{'min':>10}{'median':>10}{'max':>10}"]
    text = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    for key, m in summary["metrics"].items():
        lines.append(f"{key:<12}{text(m['min']):>10}{text(m['median']):>10}{text(m['max']):>10}")
    duty = summary["metrics"].get("duty_pct")
    if duty and duty["max"] >= 100.0:
        lines.append(f"note: the slowest hop took {duty['max']:g} % of the 10 ms hop"
                     + (" (the windowed model's run; the app defers runs while behind)" if summary.get("mode") == "window"
                        else " (the app catches up on the queued frames; sustained > 100 % overruns the ring)"))
    if "arena_bytes" in summary:
        lines.append(f"arena used: {summary['arena_bytes']} bytes")
    for key, c in summary["counters"].items():
        lines.append(f"{key}: {c['last']} (+{c['delta']} during the run)")
    overruns = summary["counters"].get("overruns", {}).get("delta", 0)
    dropped = summary["counters"].get("dropped", {}).get("delta", 0)
    if overruns or dropped:
        lines.append(f"WARNING: audio overruns during the run ({overruns} events, {dropped} samples dropped): "
                     "the loop did not keep up with the microphone")
    return "\n".join(lines)


# ------------------------------------------------------------------ serial

def open_port(port: str, baud: int = 115200, timeout: float = 0.2):
    """pyserial port (device path or pyserial URL); DeviceError with one line if it cannot be opened."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as e:
        raise DeviceError(f"cannot open serial port {port!r}: {e}") from None


def _lines(ser, deadline: float | None, on_garbage=None):
    """Yields stripped, non-empty lines, sanitised to printable ASCII (`sanitize`), until the
    deadline (None: forever). `on_garbage()` is called once, at the first line that held bytes
    other than printable ASCII; a run of MAX_LINE_BYTES without a newline counts as a line."""
    import serial

    pending = b""
    warned = False
    while deadline is None or time.monotonic() < deadline:
        try:
            chunk = ser.read(ser.in_waiting or 1)
        except (serial.SerialException, OSError) as e:
            raise DeviceError(f"serial read failed: {e}") from None
        if not chunk:
            continue
        pending += chunk
        while b"\n" in pending or len(pending) > MAX_LINE_BYTES:
            if b"\n" in pending[:MAX_LINE_BYTES + 1]:
                raw, pending = pending.split(b"\n", 1)
            else:
                raw, pending = pending[:MAX_LINE_BYTES], pending[MAX_LINE_BYTES:]
            raw = raw.strip(b" \t\r")
            if not raw:
                continue
            text = sanitize(raw)
            if len(text) != len(raw) and not warned:
                warned = True
                if on_garbage:
                    on_garbage()
            yield text


def send_command(ser, command: str) -> None:
    ser.write(command.encode("ascii") + b"\n")
    ser.flush()


def collect_bench(ser, count: int, timeout: float, send: bool = True, log=None) -> list[dict]:
    """Turns benchmark lines on (`b`), collects `count` parsed BENCH lines, turns them off (`x`).

    DeviceError if fewer than `count` arrive within `timeout` seconds or the board reports an
    error. `log(line)` sees every non-BENCH line.
    """
    if send:
        send_command(ser, "b")
    records: list[dict] = []
    garbage = (lambda: log(GARBAGE_WARNING)) if log else None  # noqa: E731
    try:
        for line in _lines(ser, time.monotonic() + timeout, on_garbage=garbage):
            if line.startswith("BENCH "):
                try:
                    records.append(parse_bench_line(line))
                except ValueError as e:
                    if log:
                        log(f"ignored: {e}")
                    continue
                if len(records) >= count:
                    break
            else:
                if log:
                    log(line)
                if is_error_line(line):
                    raise DeviceError(f"board reported: {line}")
    finally:
        if send:
            send_command(ser, "x")
    if len(records) < count:
        raise DeviceError(f"got {len(records)} of {count} BENCH lines within {timeout:g} s "
                          "(is the sketch running, and is benchmark mode available?)")
    return records


def run_selftest(ser, timeout: float, log=None, warn=None) -> list[dict]:
    """Sends `t`; returns one dict per clip {"name", "expected", "passed", "detected"}.

    `log(line)` sees every line; `warn(message)` (default: `log`) the warning about non-text bytes.

    DeviceError on timeout, an ERROR line, a malformed SELFTEST line, or a clip count that does
    not match BEGIN.
    """
    send_command(ser, "t")
    clips: list[dict] = []
    announced = None
    current = None
    warn = warn or log
    garbage = (lambda: warn(GARBAGE_WARNING)) if warn else None  # noqa: E731
    for line in _lines(ser, time.monotonic() + timeout, on_garbage=garbage):
        if log:
            log(line)
        if is_error_line(line):
            raise DeviceError(f"board reported: {line}")
        try:
            st = parse_selftest_line(line)
        except ValueError as e:
            raise DeviceError(f"malformed self-test line from the board: {e}") from None
        if st is None:
            continue
        if st["kind"] == "begin":
            announced, clips, current = st["clips"], [], None
        elif st["kind"] == "clip":
            current = {"name": st["name"], "expected": st["expected"]}
        elif st["kind"] == "result":
            entry = dict(current or {"name": f"clip{len(clips)}", "expected": ",".join(st["expected"])})
            entry.update(passed=st["passed"], detected=st["detected"])
            clips.append(entry)
            current = None
        elif st["kind"] == "end":
            if announced is not None and announced != len(clips):
                raise DeviceError(f"self-test announced {announced} clips but reported {len(clips)}")
            if st["pass"] + st["fail"] != len(clips):
                raise DeviceError(f"self-test END counts {st['pass']}+{st['fail']} != {len(clips)} results")
            return clips
    raise DeviceError(f"no complete self-test within {timeout:g} s ({len(clips)} clip results seen)")


def format_detection(d: dict) -> str:
    return f"[{d['t_ms'] / 1000:9.2f} s] {d['label']:<10} score {d['score']:3d}"


def monitor(ser, timeout: float = 0.0, out=None, err=None) -> dict:
    """Prints detections (formatted) and other lines (sanitised) as they come; errors and the
    warning about non-text bytes go to `err`.

    Runs until `timeout` seconds (0: until interrupted; Ctrl-C ends it normally). Returns counts.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    counts = {"detections": 0, "errors": 0, "lines": 0, "garbled": False}
    deadline = time.monotonic() + timeout if timeout > 0 else None

    def garbage():
        counts["garbled"] = True
        print(GARBAGE_WARNING, file=err, flush=True)

    try:
        for line in _lines(ser, deadline, on_garbage=garbage):
            counts["lines"] += 1
            d = parse_detection_line(line)
            if d is not None:
                counts["detections"] += 1
                print(format_detection(d), file=out, flush=True)
            elif is_error_line(line):
                counts["errors"] += 1
                print(line, file=err, flush=True)
            else:
                print(line, file=out, flush=True)
    except KeyboardInterrupt:
        pass
    return counts


# ------------------------------------------------------------------ CLI

def define_flags():
    from absl import flags

    flags.DEFINE_string("port", None, "Serial port (/dev/ttyACM0, COM3) or pyserial URL.")
    flags.DEFINE_integer("baud", 115200, "Baud rate (USB CDC ignores it; kept for real UARTs).")
    flags.DEFINE_integer("count", 10, "bench: BENCH lines to collect.")
    flags.DEFINE_float("timeout", None, "Seconds before giving up (bench 120, selftest 60, monitor 0 = forever).")
    flags.DEFINE_string("json", "", "bench: also write the summary and raw lines to this JSON file.")
    flags.DEFINE_bool("send", True, "bench: send 'b'/'x' to switch benchmark lines on/off.")
    flags.mark_flag_as_required("port")


COMMANDS = ("bench", "monitor", "selftest")


def _unwritable(path: str) -> str | None:
    """Why a file cannot be created at `path` (its nearest existing folder), or None."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        return "it is a folder"
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    return None


def main(argv) -> int:
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"error: usage: python -m kws_tf.device {{{'|'.join(COMMANDS)}}} --port PORT [flags]", file=sys.stderr)
        return 1
    command = argv[1]
    if command == "bench" and FLAGS.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 1
    if FLAGS.timeout is not None and FLAGS.timeout < 0:
        print("error: --timeout must be >= 0", file=sys.stderr)
        return 1
    if command == "bench" and FLAGS.json:
        problem = _unwritable(FLAGS.json)
        if problem:  # before a bench of minutes, not after it
            print(f"error: cannot write {FLAGS.json}: {problem}", file=sys.stderr)
            return 1
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        ser = open_port(FLAGS.port, FLAGS.baud)
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        if command == "bench":
            timeout = 120.0 if FLAGS.timeout is None else FLAGS.timeout
            records = collect_bench(ser, FLAGS.count, timeout, send=FLAGS.send, log=log)
            summary = summarize_bench(records)
            print(format_bench_summary(summary))
            if FLAGS.json:
                from kws_tf.fsutil import atomic_write_bytes

                blob = json.dumps({"summary": summary, "records": records}, indent=2) + "\n"
                try:
                    atomic_write_bytes(FLAGS.json, blob.encode())
                except OSError as e:
                    raise DeviceError(f"cannot write {FLAGS.json}: {e.strerror or e}"
                                      + (f" ({e.filename})" if e.filename else "")) from None
            return 0
        if command == "selftest":
            timeout = 60.0 if FLAGS.timeout is None else FLAGS.timeout
            clips = run_selftest(ser, timeout, warn=log)
            for c in clips:
                print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']:<20} expected={c['expected'] or '-'} "
                      f"detected={','.join(c['detected']) or '-'}")
            failed = sum(not c["passed"] for c in clips)
            print(f"self-test: {len(clips) - failed}/{len(clips)} passed")
            return 0 if clips and not failed else 1
        counts = monitor(ser, 0.0 if FLAGS.timeout is None else FLAGS.timeout)
        return 1 if counts["errors"] else 0
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {command} interrupted", file=sys.stderr)
        return 1
    finally:
        ser.close()


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
