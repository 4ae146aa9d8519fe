"""Bad input to training and to the shared readers: each case is a one-line error (non-zero exit, no
traceback) or a warning with counts, and leaves every file it was not asked to write untouched.

Real components throughout: generated wav files, the real `python -m kws_tf.train` CLI, the readers
of train / evaluate / simulate. CLI training runs use tiny data, C=4 and one epoch."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from kws_tf import audio_io, config as config_lib, data, labels
from kws_tf.audio_io import AudioError, read_wav, write_wav
from synth import class_clip, make_speech_commands_folder

ROOT = pathlib.Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------- helpers

def snapshot(*roots) -> dict:
    """path -> (size, sha1) of every file under `roots` (what must not change)."""
    out = {}
    for r in roots:
        r = pathlib.Path(r)
        for p in sorted(r.rglob("*")) if r.is_dir() else [r]:
            if p.is_file():
                out[str(p)] = (p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kws_tf.train", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=timeout)


def assert_one_line_error(out, *fragments):
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), out.stderr[-3000:]
    for f in fragments:
        assert f in last, last
    return last


def shipped(**changes) -> dict:
    cfg = json.loads((ROOT / "configs" / "sparknet_c4.json").read_text())
    for k, v in changes.items():
        node = cfg
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        if v is DELETE:
            del node[leaf]
        else:
            node[leaf] = v
    return cfg


DELETE = object()


def float_wav(path, samples):
    sf.write(str(path), np.asarray(samples, np.float32), 16000, subtype="FLOAT")


def truncated_wav(path, rng, cut=4000):
    write_wav(path, class_clip(0, rng))
    raw = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(raw[:-cut])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small learnable folder: 12 classes x 6 clips, 6 speakers, 5 s of background noise
    (with --validation_percent=30: 48 training and 24 validation clips)."""
    return make_speech_commands_folder(tmp_path_factory.mktemp("tiny") / "sc", clips_per_class=6, speakers=6)


# --------------------------------------------------------------------------- (b) config schema

@pytest.mark.parametrize("change, fragment", [
    ({"channels": 0}, "channels must be an integer in [1, 4096] (got 0)"),
    ({"channels": "sixteen"}, "channels must be an integer in [1, 4096] (got 'sixteen')"),
    ({"epochs": "2"}, "epochs must be an integer in [1, 100000] (got '2')"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"optimizer.lr": DELETE}, "missing key optimizer.lr"),
    ({"augment": DELETE}, "missing key augment"),
    ({"optimizer.lr": -1}, "optimizer.lr must be a number in (0, 10] (got -1)"),
    ({"optimizer.momentum": 1.5}, "optimizer.momentum must be a number in [0, 1)"),
    ({"optimizer.name": "adam"}, "optimizer.name must be one of 'sgd'"),
    ({"time_average": "middle"}, "time_average must be one of 'full', 'interior'"),
    ({"batchsize": 64}, "unknown key batchsize"),
    ({"optimizer.lrr": 0.1}, "unknown key optimizer.lrr"),
    ({"augment.shift_prob": 2.0}, "augment.shift_prob must be a number in [0, 1]"),
    ({"gate": 3}, "gate must be a JSON object"),
    ({"schedule.min_lr": 1.0}, "schedule.min_lr must be <= optimizer.lr"),
    ({"augment.white_noise_db_min": -10.0}, "augment.white_noise_db_min must be <= augment.white_noise_db_max"),
])
def test_config_schema_names_the_key(tmp_path, change, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(shipped(**change)))
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"config file {path}: ") and fragment in msg, msg


def test_config_comments_and_time_average_are_accepted(tmp_path):
    cfg = shipped()
    cfg["optimizer"]["_comment"] = "nested comments are comments too"
    cfg["time_average"] = "interior"
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(cfg))
    loaded = config_lib.load_config(path)
    assert loaded["time_average"] == "interior" and "_comment" not in loaded and "_comment" not in loaded["optimizer"]
    del cfg["time_average"]
    path.write_text(json.dumps(cfg))
    assert "time_average" not in config_lib.load_config(path)  # optional: the paper's "full"


def test_every_shipped_config_passes_and_models_match_the_builders():
    from kws_tf import models

    assert set(config_lib.MODELS) == set(models.names())
    for p in sorted((ROOT / "configs").glob("*.json")):
        config_lib.load_config(p)


def test_a_bad_config_writes_nothing_and_the_corrected_rerun_trains(tmp_path, tiny):
    """Also (i): a redirected log has no carriage returns, the epoch summary is its own line, and
    history.csv counts epochs from 1 like the console."""
    cfg_path, run = tmp_path / "my.json", tmp_path / "run"
    cfg_path.write_text(json.dumps(shipped(**{"optimizer.lr": DELETE, "epochs": "1"})))
    before = snapshot(tmp_path, tiny)
    out = cli(f"--config={cfg_path}", f"--data_dir={tiny}", f"--model_dir={run}", "--batch_size=64")
    assert_one_line_error(out, "missing key optimizer.lr", "epochs must be an integer")
    assert not run.exists() and snapshot(tmp_path, tiny) == before

    cfg_path.write_text(json.dumps(shipped(epochs=1)))
    before = snapshot(tmp_path, tiny)
    out = cli(f"--config={cfg_path}", f"--data_dir={tiny}", f"--model_dir={run}", "--batch_size=64",
              "--validation_percent=30", "--test_percent=0")
    assert out.returncode == 0, out.stderr[-3000:]
    after = snapshot(tmp_path, tiny)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and all(p.startswith(str(run) + os.sep) for p in changed), sorted(changed)
    assert "\r" not in out.stdout and "\r" not in out.stderr
    summary = [line for line in out.stdout.splitlines() if "val_accuracy" in line and "best" in line]
    assert len(summary) == 1 and summary[0].startswith("epoch 1: "), out.stdout
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epoch"] == 1


# --------------------------------------------------------------------------- CLI matrix: (a) (c) (e) (g)

def _model_dir_under_a_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "run"


def _model_dir_is_a_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile"


@pytest.mark.parametrize("make, fragment", [
    (_model_dir_under_a_file, "lies under the file"),
    (_model_dir_is_a_file, "is a file"),
])
def test_cli_model_dir_that_cannot_be_a_folder(tmp_path, tiny, make, fragment):
    model_dir = make(tmp_path)
    before = snapshot(tmp_path, tiny)
    out = cli(f"--data_dir={tiny}", f"--model_dir={model_dir}", "--C=4", "--epochs=1")
    assert_one_line_error(out, fragment, str(model_dir))
    assert snapshot(tmp_path, tiny) == before


@pytest.mark.skipif(IS_ROOT, reason="running as root: chmod does not stop root from writing, so a read-only "
                                    "folder cannot be made here (the under-a-file cases cover the refusal)")
def test_cli_read_only_model_dir(tmp_path, tiny):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        before = snapshot(tmp_path, tiny)
        out = cli(f"--data_dir={tiny}", f"--model_dir={ro / 'run'}", "--C=4", "--epochs=1")
        assert_one_line_error(out, "is not writable")
        assert snapshot(tmp_path, tiny) == before
    finally:
        ro.chmod(0o755)


def _no_left_folder(root, tiny):
    import shutil

    shutil.copytree(tiny, root)
    shutil.rmtree(root / "left")


@pytest.mark.parametrize("args, fragments", [
    (["--lr=-1"], ["--lr=-1.0: optimizer.lr must be a number in (0, 10] (got -1.0)"]),
    (["--momentum=2", "--batch_size=0"], ["--momentum=2.0: optimizer.momentum", "--batch_size=0: batch_size"]),
    (["--background_prob=1.5"], ["augment.background_prob must be a number in [0, 1]"]),
    (["--validation_percent=60", "--test_percent=50"], ["must be below 100"]),
    (["--seed=-3"], ["--seed must be >= 0"]),
    (["--data_dir={tiny}/yes/{first}"], ["is a file, not a folder"]),
    (["--data_dir={tmp}/nodata"], ["no training clip for class(es) left", "left 0"]),
])
def test_cli_nonsense_values_and_unusable_data(tmp_path, tiny, args, fragments):
    if any("nodata" in a for a in args):
        _no_left_folder(tmp_path / "nodata", tiny)
    first = sorted(p.name for p in (tiny / "yes").glob("*.wav"))[0]
    args = [a.format(tiny=tiny, tmp=tmp_path, first=first) for a in args]
    if not any(a.startswith("--data_dir") for a in args):
        args.append(f"--data_dir={tiny}")
    before = snapshot(tmp_path, tiny)
    out = cli(*args, f"--model_dir={tmp_path / 'run'}", "--C=4", "--epochs=1")
    assert_one_line_error(out, *fragments)
    assert snapshot(tmp_path, tiny) == before and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- (e) thin data: warnings with counts

def test_empty_keyword_folder_no_silence_source_and_tiny_validation_are_reported(tmp_path):
    root = make_speech_commands_folder(tmp_path / "sc", clips_per_class=3, speakers=3, background=False,
                                       words=[w for w in labels.KEYWORDS if w != "up"] + ["bed"])
    (root / "up").mkdir()
    msgs = []
    ds = data.load_folder(str(root), validation_percent=10, test_percent=0, log=msgs.append)
    text = "\n".join(msgs)
    assert "1 word folder(s)" in text and ": up" in text
    assert "no silence source" in text
    with pytest.raises(data.DataError) as e:
        data.check_splits(ds, msgs.append)
    assert "no training clip for class(es) up, _silence_" in str(e.value) and "up 0" in str(e.value)
    assert "_background_noise_" in str(e.value) and "\n" not in str(e.value)


def test_small_validation_split_is_a_warning_with_counts(tiny):
    msgs = []
    ds = data.load_folder(str(tiny), validation_percent=30, test_percent=0, log=msgs.append)
    ds.validation = ds.validation.subset(np.arange(3))
    data.check_splits(ds, msgs.append)
    warning = [m for m in msgs if "validation split has only 3 clip(s)" in m]
    assert len(warning) == 1 and "per class:" in warning[0] and "none for" in warning[0]


def test_missing_keyword_folder_is_reported(tmp_path):
    root = make_speech_commands_folder(tmp_path / "sc", clips_per_class=2, speakers=2, words=["yes", "bed"])
    msgs = []
    data.load_folder(str(root), log=msgs.append)
    assert any("no folder for 9 keyword(s)" in m and "no, up" in m for m in msgs)


# --------------------------------------------------------------------------- (d) (f) one reading rule

def _bad_wavs(tmp_path):
    rng = np.random.default_rng(0)
    nan = class_clip(1, rng).astype(np.float32)
    nan[100:110] = np.nan
    inf = class_clip(1, rng).astype(np.float32)
    inf[5] = np.inf
    float_wav(tmp_path / "nan.wav", nan)
    float_wav(tmp_path / "inf.wav", inf)
    truncated_wav(tmp_path / "cut.wav", rng)
    return {"nan.wav": "10 of 16000 samples are NaN or Inf", "inf.wav": "1 of 16000 samples are NaN or Inf",
            "cut.wav": "truncated wav (data chunk declares 32000 bytes, the file holds 28000)"}


def test_read_wav_refuses_non_finite_and_truncated_audio(tmp_path):
    for name, fragment in _bad_wavs(tmp_path).items():
        with pytest.raises(AudioError) as e:
            read_wav(tmp_path / name)
        assert fragment in str(e.value) and str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)
    # a clean float wav and a short (but complete) wav are fine
    float_wav(tmp_path / "ok.wav", np.zeros(8000, np.float32))
    assert read_wav(tmp_path / "ok.wav").shape == (8000,)
    assert audio_io.wav_truncation(tmp_path / "ok.wav") is None


def test_training_data_skips_and_counts_bad_wavs(tmp_path, tiny):
    import shutil

    root = tmp_path / "sc"
    shutil.copytree(tiny, root)
    bad = _bad_wavs(tmp_path)
    for name in bad:
        shutil.copy(tmp_path / name, root / "yes" / f"zz{name[:3]}_nohash_0.wav")
    msgs = []
    ds = data.load_folder(str(root), validation_percent=0, test_percent=0, log=msgs.append)
    assert len(ds.train) == len(data.load_folder(str(tiny), 0, 0, log=lambda m: None).train)
    warning = [m for m in msgs if m.startswith("warning") and "unusable" in m][0]
    assert "3 unusable and skipped" in warning


def test_evaluate_and_simulate_refuse_the_same_files(tmp_path):
    from kws_tf import evaluate, simulate

    for name, fragment in _bad_wavs(tmp_path).items():
        with pytest.raises(evaluate.EvalError) as e:
            evaluate.classify_wavs(None, [tmp_path / name], log=lambda m: None)
        assert fragment in str(e.value)
        with pytest.raises(simulate.SimulateError) as e:
            simulate.read_stream_wav(tmp_path / name, warn=lambda m: None)
        assert fragment in str(e.value)


# --------------------------------------------------------------------------- (h) tfds offline: fail fast

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_tfds_fails_within_seconds(tmp_path):
    env = {data.PROBE_ENV: f"127.0.0.1:{_closed_port()}"}
    before = snapshot(tmp_path)
    t0 = time.monotonic()
    out = cli("--C=32", f"--tfds_data_dir={tmp_path / 'tfds'}", f"--model_dir={tmp_path / 'run'}", env=env,
              timeout=120)
    elapsed = time.monotonic() - t0
    assert_one_line_error(out, "cannot be reached", "speech_commands_v0.02.tar.gz", "--data_dir")
    assert "Retrying" not in out.stderr
    assert elapsed < 60, elapsed  # the process, TensorFlow's start-up included; tfds alone retried for 3.5 min
    assert not (tmp_path / "run").exists()
    # in-process, the probe itself answers in well under a second
    os.environ[data.PROBE_ENV] = env[data.PROBE_ENV]
    try:
        t0 = time.monotonic()
        with pytest.raises(data.DataError, match="cannot be reached"):
            data.load_tfds(str(tmp_path / "tfds2"), log=lambda m: None)
        assert time.monotonic() - t0 < 5
    finally:
        del os.environ[data.PROBE_ENV]
    assert before == {k: v for k, v in snapshot(tmp_path).items() if k in before}


def test_probe_times_out_instead_of_hanging():
    t0 = time.monotonic()
    assert data.probe_host("127.0.0.1", _closed_port(), timeout=1.0) is not None
    assert time.monotonic() - t0 < 3


def test_corrupt_manual_archives_are_named_as_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv(data.PROBE_ENV, f"127.0.0.1:{_closed_port()}")  # never reaches the network
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in data.TFDS_ARCHIVES:
        (manual / name).write_bytes(b"not a tar.gz" * 100)
    with pytest.raises(data.DataError) as e:
        data.load_tfds(str(tmp_path), log=lambda m: None)
    msg = str(e.value)
    assert "corrupt or incomplete" in msg and "delete them and download them again" in msg and "\n" not in msg
