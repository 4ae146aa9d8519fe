"""Bad input and noise around the command-line tools, through the real CLIs (subprocesses):

- TensorFlow's start-up lines stay off stderr unless `--tf_logs` asks for them (kws_tf.cli_env);
- one exit-status convention (1 for every error, one `error: ...` line, no traceback), in --help;
- `simulate --help` documents the lines it prints;
- `export --overwrite` never deletes files export did not write;
- files written atomically (kws_tf.fsutil) get the umask's permissions, like ordinary files.

Each case also checks that nothing outside the command's own outputs changed. The serial
tool's bad-input cases (malformed SELFTEST lines, binary garbage) are in test_device_tools.py.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# TensorFlow's C++ log lines (absl/glog format), and the notes printed around them.
TF_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] |WARNING: All log messages before absl::"
                     r"InitializeLog\(\)|To enable the following instructions:)")


def _run(*args, cwd=ROOT, timeout=180, env=None):
    full_env = dict(os.environ, PYTHONPATH=str(ROOT))
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def _snapshot(folder: pathlib.Path) -> dict:
    """{relative path: (bytes, mode, mtime_ns)} of every file under `folder`."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (p.read_bytes(), st.st_mode, st.st_mtime_ns)
        else:
            out[str(p.relative_to(folder)) + "/"] = None
    return out


def _assert_one_error_line(res, needle: str):
    assert res.returncode == 1, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.stdout + res.stderr


# --------------------------------------------------------------------------- TensorFlow's start-up lines

_FILTER_PROBE = r"""
import os, sys, time
from kws_tf import cli_env
cli_env.start()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"I0000 00:00:1796239751.731023    8512 port.cc:153] oneDNN custom operations are on.\nkept 1\n")
os.write(2, b"E0000 00:00:1796239757.851971    8512 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
os.write(2, b"W0000 00:00:1796239757.852000    8512 node_def_util.cc:1] NodeDef mentions attribute x\n")
os.write(2, b"E0000 00:00:1796239757.853000    8512 kernel.cc:7] a real error stays\n")
os.write(2, b"2024-01-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] old-style note\n")
print("kept 2 (a partial line,", end="", file=sys.stderr, flush=True)
time.sleep(0.3)
print(" completed later)", file=sys.stderr)
print("stdout untouched")
sys.exit("error: the last line")
"""


def test_filter_drops_tensorflow_lines_and_keeps_the_rest_in_order(tmp_path):
    res = _run("-c", _FILTER_PROBE, "--x", cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == "stdout untouched\n"
    assert res.stderr.splitlines() == ["kept 1", "E0000 00:00:1796239757.853000    8512 kernel.cc:7] a real error stays",
                                       "kept 2 (a partial line, completed later)", "error: the last line"], res.stderr
    shown = _run("-c", _FILTER_PROBE, "--tf_logs", cwd=tmp_path)
    assert shown.returncode == 1 and len(shown.stderr.splitlines()) == 9, shown.stderr
    assert "cuInit" in shown.stderr and "NodeDef mentions" in shown.stderr
    assert list(tmp_path.iterdir()) == []


def test_tf_logs_flag_parsing():
    from kws_tf import cli_env

    assert not cli_env.tf_logs_requested(["prog", "--model=x"])
    assert cli_env.tf_logs_requested(["prog", "--tf_logs"])
    assert cli_env.tf_logs_requested(["prog", "-tf_logs=true"])
    assert not cli_env.tf_logs_requested(["prog", "--tf_logs", "--notf_logs"])
    assert not cli_env.tf_logs_requested(["prog", "--tf_logs=false"])
    assert not cli_env.tf_logs_requested(["prog", "--", "--tf_logs"])


def test_cli_stderr_has_no_tensorflow_lines_unless_asked(tmp_path):
    """evaluate imports TensorFlow before it finds that --model is missing: by default its stderr is
    the one error line; with --tf_logs TensorFlow's own lines come first."""
    missing = tmp_path / "nope"
    quiet = _run("-m", "kws_tf.evaluate", f"--model={missing}")
    _assert_one_error_line(quiet, f"--model {missing} does not exist")
    loud = _run("-m", "kws_tf.evaluate", f"--model={missing}", "--tf_logs")
    assert loud.returncode == 1
    lines = loud.stderr.splitlines()
    assert [line for line in lines if TF_LINE.match(line)], loud.stderr
    assert lines[-1] == f"error: --model {missing} does not exist"
    assert list(tmp_path.iterdir()) == []


def test_module_importing_tensorflow_at_its_top_is_quiet_too():
    res = _run("-m", "kws_tf.model", "--C=4")
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert "trainable parameters: 1,504" in res.stdout


# --------------------------------------------------------------------------- exit status and --help

@pytest.mark.parametrize("tool", ["train", "export", "evaluate", "simulate"])
def test_help_documents_exit_status_and_tf_logs(tool):
    res = _run("-m", f"kws_tf.{tool}", "--help")  # (absl ends --help with status 1)
    assert "Exit status: 0 success; 1 error" in res.stdout
    assert "--[no]tf_logs" in res.stdout  # listed with the tool's own flags


def test_simulate_help_documents_what_it_prints():
    text = _run("-m", "kws_tf.simulate", "--help").stdout
    assert "`t=<seconds, 2 decimals>s <label> score=<0..255>`" in text
    assert '──► "KWS <label> score=<s> t=<ms>" lines' not in text  # the board's format, not the twin's
    assert "\\\n" not in text and "LONG.wav         [" not in text  # usage lines render as written


@pytest.mark.parametrize("args, needle", [
    (("-m", "kws_tf.simulate", "--bogus_flag"), "Unknown command line flag 'bogus_flag'"),
    (("-m", "kws_tf.simulate", "--model=m.tflite", "--wav=missing.wav"), "wav missing.wav does not exist"),
    (("-m", "kws_tf.simulate", "extra"), "unexpected arguments: extra"),
    (("-m", "kws_tf.evaluate", "extra"), "unexpected arguments"),
    (("-m", "kws_tf.device", "flash", "--port=/dev/null"), "usage"),
])
def test_errors_exit_1_everywhere(tmp_path, args, needle):
    before = _snapshot(ROOT / "export") if (ROOT / "export").exists() else None
    res = _run(*args, cwd=tmp_path)
    _assert_one_error_line(res, needle)
    assert list(tmp_path.iterdir()) == []
    assert (_snapshot(ROOT / "export") if (ROOT / "export").exists() else None) == before


# --------------------------------------------------------------------------- export --overwrite

def _fake_export_folder(folder: pathlib.Path) -> pathlib.Path:
    from kws_tf import export

    folder.mkdir(parents=True)
    for name in export.ARTIFACTS + ("export_report.json", "selftest_data.h", "selftest_data.cc"):
        (folder / name).write_bytes(b"old " + name.encode())
    return folder


@pytest.mark.parametrize("foreign", ["notes.txt", "eval/", ".hidden"])
def test_export_overwrite_refuses_a_folder_with_files_it_did_not_write(tmp_path, foreign):
    out = _fake_export_folder(tmp_path / "export" / "c8")
    if foreign.endswith("/"):
        (out / foreign).mkdir()
        (out / foreign / "eval_test.json").write_text("{}")
    else:
        (out / foreign).write_text("my notes")
    before = _snapshot(tmp_path)
    res = _run("-m", "kws_tf.export", "--int8", f"--model_dir={tmp_path / 'any'}", f"--out={out}", "--overwrite",
               cwd=tmp_path)
    _assert_one_error_line(res, f"output folder {out} holds files export did not write ({foreign}); --overwrite "
                                "replaces only export's own files")
    assert _snapshot(tmp_path) == before


def test_export_publish_replaces_only_an_owned_folder(tmp_path):
    """The atomic swap itself: an owned-only folder is replaced whole; one that gained a foreign
    file after the first check is put back untouched and the new files stay unpublished."""
    from kws_tf import export
    from kws_tf.export_io import ExportError, _check_out_dir, _publish

    out = _fake_export_folder(tmp_path / "c8")
    _check_out_dir(out, True, export.OWNED_FILES)  # owned files only: fine
    with pytest.raises(ExportError, match="pass --overwrite"):
        _check_out_dir(out, False, export.OWNED_FILES)
    new = tmp_path / ".c8.tmp"
    new.mkdir()
    (new / "model_int8.tflite").write_bytes(b"new")
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    with pytest.raises(ExportError, match=r"holds files export did not write \(notes.txt\)"):
        _publish(new, out, export.OWNED_FILES)
    assert _snapshot(out) == before and (new / "model_int8.tflite").read_bytes() == b"new"
    (out / "notes.txt").unlink()
    _publish(new, out, export.OWNED_FILES)
    assert sorted(p.name for p in out.iterdir()) == ["model_int8.tflite"]  # stale owned files went with the swap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c8"]  # no temporary or old folder left


# --------------------------------------------------------------------------- file modes

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_honour_the_umask(tmp_path, mask):
    from kws_tf import fsutil

    old = os.umask(mask)
    try:
        fsutil.atomic_write_json(tmp_path / "report.json", {"a": 1})
        fsutil.atomic_write_bytes(tmp_path / "sub" / "blob.bin", b"x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert plain == 0o666 & ~mask
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == plain
    assert (tmp_path / "sub" / "blob.bin").stat().st_mode & 0o777 == plain
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blob.bin", "plain.txt", "report.json", "sub"]


def test_atomic_rewrite_keeps_the_files_mode(tmp_path):
    from kws_tf import fsutil

    path = tmp_path / "run_config.json"
    fsutil.atomic_write_json(path, {"a": 1})
    path.chmod(0o640)
    fsutil.atomic_write_json(path, {"a": 2})
    assert path.stat().st_mode & 0o777 == 0o640 and '"a": 2' in path.read_text()

