"""What every kws_tf command-line tool does first: keep TensorFlow's start-up lines out of the way.

Importing TensorFlow prints C++ log lines on file descriptor 2 (the absl notice `WARNING: All log
messages before absl::InitializeLog() ...`, oneDNN and CPU-feature notes, the CUDA probe's `cuInit`
error on a machine without a GPU, tf.data's `NodeDef mentions attribute ...`). Some of them ignore
`TF_CPP_MIN_LOG_LEVEL`, so besides setting it to 3 before TensorFlow is imported, `start()` passes
the process's stderr through a small filter process that drops TensorFlow's INFO and WARNING lines
and its known start-up ERROR lines (CUDA/cuDNN/TensorRT probing); everything else on stderr, and
the lines of a crash, go through unchanged and in order.

    python -m kws_tf.<tool> ... --tf_logs     show TensorFlow's C++ log lines (TF_CPP_MIN_LOG_LEVEL=0)

Exit status, the same for every tool (train, export, evaluate, simulate, model, device): 0
success; 1 error (one `error: ...` line on stderr, no traceback) or interruption; `device
selftest` also 1 when a clip fails. `start()` adds this to the tool's --help text.

Usage, in a CLI's `if __name__ == "__main__":` block (before anything imports TensorFlow; a
module that imports TensorFlow at its top calls it before that import):

    from kws_tf import cli_env
    cli_env.start()
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys

FLAG = "tf_logs"
EXIT_OK = 0
EXIT_ERROR = 1

EXIT_STATUS_HELP = (
    "\nExit status: 0 success; 1 error (one `error: ...` line on stderr, no traceback) or interruption.\n"
    "TensorFlow's C++ start-up lines are kept off stderr; --tf_logs shows them.\n")

_TRUE = ("1", "true", "t", "yes", "y")

# Runs as `python -I -S -c`: standard library only. stdin = the pipe the tool's fd 2 now
# writes to, stdout = the tool's original stderr.
_FILTER_SOURCE = r'''
import os, re, select, signal
for _sig in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"):
    # Ctrl-C reaches the whole process group: the filter stays to pass on the tool's last
    # lines and ends when every writer has closed the pipe.
    if hasattr(signal, _sig):
        signal.signal(getattr(signal, _sig), signal.SIG_IGN)
GLOG = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
                  rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] )")
LEVEL = re.compile(rb"^(?:([IWEF])\d{4} |\d{4}-\d\d-\d\d \S+: ([IWEF]) )")
STARTUP_ERRORS = re.compile(rb"cuInit|CUDA|cuda|cuDNN|cudnn|cuFFT|cufft|cuBLAS|cublas|TensorRT|TF-TRT|"
                            rb"Unable to register|computation_placer|stream_executor")
NOTES = (re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
         re.compile(rb"^To enable the following instructions: .* in other operations, rebuild TensorFlow with the "
                    rb"appropriate compiler flags\.$"))
broken = False

def emit(data):
    global broken
    while data and not broken:
        try:
            data = data[os.write(1, data):]
        except InterruptedError:
            continue
        except OSError:
            broken = True  # nobody reads the original stderr any more: keep draining

def hidden(line):
    text = line.rstrip(b"\r")
    if GLOG.match(text):
        m = LEVEL.match(text)
        level = m.group(1) or m.group(2)
        return level in (b"I", b"W") or (level == b"E" and STARTUP_ERRORS.search(text) is not None)
    return any(p.match(text) for p in NOTES)

pending = b""
while True:
    try:
        ready, _, _ = select.select([0], [], [], 0.05 if pending else None)
    except InterruptedError:
        continue
    if not ready:  # a partial line (a prompt, a progress bar) waited 50 ms: pass it on
        emit(pending)
        pending = b""
        continue
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    except OSError:
        break
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\n")
    emit(b"".join(line + b"\n" for line in lines if not hidden(line)))
emit(pending)
'''

_state: dict = {"started": False, "show": False, "proc": None, "saved_fd": None}


def tf_logs_requested(argv) -> bool:
    """Whether `argv` asks for TensorFlow's log lines (`--tf_logs`, `--tf_logs=true`; the last wins).

    Read before absl parses the flags, because TensorFlow may be imported (and print) first.
    """
    show = False
    for arg in list(argv)[1:]:
        if arg == "--":
            break
        name, sep, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-"):
            continue
        if name == FLAG:
            show = (value.lower() in _TRUE) if sep else True
        elif name == "no" + FLAG and not sep:
            show = False
    return show


def start(argv=None, filter_stderr: bool = True) -> bool:
    """Set up a CLI process before TensorFlow is imported; returns whether TF's logs are shown.

    Defines the shared `--tf_logs` flag (listed in the tool's --help), adds the exit-status
    convention to the --help text, sets TF_CPP_MIN_LOG_LEVEL (3, or 0 with --tf_logs) and, unless
    `filter_stderr` is False or --tf_logs is given, filters TensorFlow's lines out of fd 2.
    Calling it again does nothing.
    """
    if _state["started"]:
        return _state["show"]
    _state["started"] = True
    show = tf_logs_requested(sys.argv if argv is None else argv)
    _state["show"] = show
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if show else "3"
    _define_flag(show)
    main = sys.modules.get("__main__")
    if main is not None and main.__doc__ and "Exit status:" not in main.__doc__:
        main.__doc__ = main.__doc__.rstrip("\n") + "\n" + EXIT_STATUS_HELP
    if not show and filter_stderr:
        _install_filter()
    return show


def tf_logs_shown() -> bool:
    return bool(_state["show"])


def _define_flag(default: bool) -> None:
    try:
        from absl import flags
    except ImportError:
        return
    fv = flags.FLAGS
    if FLAG not in fv:
        flags.DEFINE_bool(FLAG, default, "Show TensorFlow's C++ log lines on stderr (start-up notes: oneDNN, CPU "
                          "features, CUDA probing; hidden by default).")
    try:  # list it with the tool's own flags in --help, not only in --helpfull
        fv.register_key_flag_for_module(sys.argv[0] if sys.argv and sys.argv[0] else "__main__", fv[FLAG])
    except Exception:
        pass


def _install_filter() -> None:
    if os.name != "posix" or not sys.executable:
        return
    try:
        sys.stderr.flush()
    except Exception:
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        return
    try:
        read_end, write_end = os.pipe()
    except OSError:
        os.close(saved)
        return
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER_SOURCE], stdin=read_end, stdout=saved,
                                stderr=saved, close_fds=True)
    except OSError:
        for fd in (read_end, write_end, saved):
            os.close(fd)
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    _state.update(proc=proc, saved_fd=saved)
    atexit.register(_stop_filter)


def _stop_filter() -> None:
    """At exit: hand fd 2 back and let the filter pass on what it still holds, so the tool's last
    lines are out before the shell's prompt."""
    proc, saved = _state["proc"], _state["saved_fd"]
    if proc is None:
        return
    _state.update(proc=None, saved_fd=None)
    try:
        sys.stderr.flush()
    except Exception:
        pass
    try:
        os.dup2(saved, 2)
        os.close(saved)
    except OSError:
        return
    try:
        proc.wait(timeout=5)  # ends at end of file; a child still holding the pipe keeps it open
    except subprocess.TimeoutExpired:
        pass
