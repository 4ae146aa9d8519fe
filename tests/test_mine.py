"""Hard-negative mining (kws_tf.mine): which windows are kept and as what, suppression in time, and
the CLI end to end on a small trained model and its generated folder (its output checked against
the stream rebuilt from the same seeds, and the folder rules: no silent overwrite, never of a
folder mine did not write)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import quick_run_config
from kws_tf import features, labels, mine
from kws_tf.stream import Event

ROOT = pathlib.Path(__file__).resolve().parent.parent
KW = labels.KEYWORDS


def row(winner: str, score: float, second: str | None = None, second_score: float = 0.0) -> np.ndarray:
    """A probability row: `winner` at `score`, optionally `second` at `second_score`, the rest even."""
    p = np.zeros(labels.NUM_CLASSES)
    p[labels.LABELS.index(winner)] = score
    if second:
        p[labels.LABELS.index(second)] = second_score
    rest = [i for i in range(labels.NUM_CLASSES) if p[i] == 0]
    p[rest] = (1.0 - p.sum()) / len(rest)
    assert np.isclose(p.sum(), 1.0) and p.min() >= 0
    return p


def kw(word, start_s, onset_s, end_s):
    return Event(word, word, start_s, onset_s, end_s)


# --------------------------------------------------------------------------- classify_windows

# ground truth: `bed` (unknown) sounds 1.3-1.8 s, `yes` 5.3-5.8 s, `no` 8.2-8.5 and `up` 8.7-8.9 s,
# and a `_silence_` item (noise only) 11.0-12.0 s
EVENTS = [Event(labels.UNKNOWN, "bed", 1.0, 1.3, 1.8), kw("yes", 5.0, 5.3, 5.8), kw("no", 8.0, 8.2, 8.5),
          kw("up", 8.6, 8.7, 8.9), Event(labels.SILENCE, labels.SILENCE, 11.0, 11.0, 12.0)]

# (window start, probability row, expected (kind, label, fired) or None)
CASES = [
    (0.0, row("no", 0.7), ("negative", labels.SILENCE, "no")),  # nothing in it
    (1.0, row("left", 0.6), ("negative", labels.UNKNOWN, "left")),  # the unknown word lies in it
    (1.75, row("left", 0.6), ("negative", labels.SILENCE, "left")),  # only 0.05 s of the unknown word
    (0.65, row("off", 0.6), ("negative", labels.UNKNOWN, "off")),  # exactly 0.35 s of it (>= 0.1 s)
    (11.0, row("go", 0.55), ("negative", labels.SILENCE, "go")),  # a silence item is no unknown word
    (3.8, row("stop", 0.9), ("negative", labels.SILENCE, "stop")),  # ends 0.5 s before `yes`' 50 ms margin
    (5.0, row("no", 0.8), ("substitution", "yes", "no")),  # `yes` wholly inside, `no` wins
    (4.9, row("right", 0.51, "yes", 0.3), ("substitution", "yes", "right")),  # runner-up right: still wrong
    (5.1, row("yes", 0.9), None),  # the right keyword wins
    (5.2, row("no", 0.4), None),  # under min_score
    (2.5, row("no", 0.49), None),  # a negative under min_score
    (2.6, row(labels.SILENCE, 0.5, "no", 0.45), None),  # silence wins over a keyword above min_score
    (2.7, row(labels.UNKNOWN, 0.5, "no", 0.45), None),  # unknown wins
    (4.5, row("no", 0.9), None),  # `yes` only partly inside (its end at 5.8 > 5.5)
    (4.3, row("no", 0.9), None),  # ends at 5.3: inside `yes`' 50 ms margin, touching it
    (5.9, row("no", 0.9), ("negative", labels.SILENCE, "no")),  # starts 0.1 s after `yes` ends: past its margin
    (8.0, row("left", 0.9), None),  # two keywords inside
]


def test_classify_windows_keeps_negatives_and_substitutions_only():
    starts = np.array([c[0] for c in CASES])
    probs = np.stack([c[1] for c in CASES])
    got = mine.classify_windows(starts, EVENTS, probs, min_score=0.5)
    want = [(t, *expected) for t, _, expected in CASES if expected is not None]
    assert [(w.start_s, w.kind, w.label, w.fired) for w in got] == want
    assert len(want) == 9
    for w in got:
        i = [c[0] for c in CASES].index(w.start_s)
        assert w.score == pytest.approx(CASES[i][1][labels.LABELS.index(w.fired)])


def test_classify_windows_margin_around_keywords():
    # `yes` sounds 5.3-5.8 s; windows [t, t+1) count as touching it within 50 ms on either side
    yes = [kw("yes", 5.0, 5.3, 5.8)]
    p = row("no", 0.9)[None]
    for t, touching in [(4.24, False), (4.26, True), (5.74, True), (5.86, False)]:
        got = mine.classify_windows(np.array([t]), yes, p, min_score=0.5)
        assert (got == []) == touching, (t, got)
        if not touching:
            assert got[0].kind == "negative" and got[0].label == labels.SILENCE


def test_classify_windows_with_a_lower_min_score():
    starts = np.array([5.2, 2.5])
    probs = np.stack([row("no", 0.4), row("no", 0.49)])
    got = mine.classify_windows(starts, EVENTS, probs, min_score=0.3)
    assert [(w.start_s, w.kind, w.label) for w in got] == [(5.2, "substitution", "yes"),
                                                           (2.5, "negative", labels.SILENCE)]
    assert mine.classify_windows(starts, EVENTS, probs, min_score=0.5) == []


# --------------------------------------------------------------------------- suppress, window_starts

def W(t, score):
    return mine.Window(t, "negative", labels.SILENCE, "no", score)


def test_suppress_keeps_the_highest_score_and_drops_its_neighbours():
    wins = [W(0.0, 0.6), W(0.2, 0.9), W(0.45, 0.5), W(0.5, 0.4), W(1.0, 0.7), W(1.25, 0.95), W(3.0, 0.1)]
    kept = mine.suppress(wins, 0.3)
    # by score: 1.25 (0.95), 0.2 (0.9); 1.0 is 0.25 from 1.25: dropped; 0.0 and 0.45 within 0.3 of 0.2:
    # dropped; 0.5 is exactly 0.3 from 0.2 and 0.75 from 1.25: kept; 3.0 is alone
    assert [(w.start_s, w.score) for w in kept] == [(0.2, 0.9), (0.5, 0.4), (1.25, 0.95), (3.0, 0.1)]
    assert mine.suppress(wins, 0.0) == sorted(wins, key=lambda w: w.start_s)
    assert [w.start_s for w in mine.suppress(wins, 10.0)] == [1.25]
    assert mine.suppress([], 0.3) == []


def test_window_starts_cover_the_stream_in_hops():
    np.testing.assert_allclose(mine.window_starts(3.0, 500), [0.0, 0.5, 1.0, 1.5, 2.0])
    starts = mine.window_starts(31.9, 50)
    # every window lies in the stream (in samples, as they are cut) and the last one reaches its end
    last = int(round(starts[-1] * features.SAMPLE_RATE)) + features.CLIP_SAMPLES
    assert starts[0] == 0.0 and last <= round(31.9 * features.SAMPLE_RATE) < last + 0.05 * features.SAMPLE_RATE
    np.testing.assert_allclose(np.diff(starts), 0.05)


# --------------------------------------------------------------------------- the CLI end to end

def _cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kws_tf.mine", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def _one_error_line(out, *fragments):
    assert out.returncode == 1, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and out.stderr.strip().splitlines()[-1] == errors[0], out.stderr[-3000:]
    for f in fragments:
        assert f in errors[0], errors[0]


def snapshot(root) -> dict:
    root = pathlib.Path(root)
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory, synth_folder):
    """Two epochs on the generated folder: a model that still fires on noise and confuses words."""
    from kws_tf.train import run_training

    model_dir = tmp_path_factory.mktemp("mine") / "weak"
    run_training(quick_run_config(synth_folder, epochs=2), model_dir, verbose="quiet", log=lambda m: None)
    return model_dir


MINE_ARGS = ("--minutes=0.5", "--snr=20", "--min_score=0.05")


@pytest.fixture(scope="module")
def mined(weak_model, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mined") / "hard"
    out = _cli(f"--model_dir={weak_model}", f"--out={out_dir}", *MINE_ARGS)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and f"--extra_train_dir={out_dir}" in out.stdout
    return out_dir


def _rebuilt_stream(synth_folder, seed=0, minutes=0.5, snr=20.0):
    """The stream mine builds (same functions, same seeds): the ground truth to check its clips by."""
    from kws_tf import stream

    clips = stream.speech_commands_clips(synth_folder, split="train", validation_percent=10.0, test_percent=10.0)
    noise, names = stream.load_noise_folder(synth_folder / labels.BACKGROUND_NOISE_DIR)
    items = stream.plan_items(clips, np.random.default_rng(seed), minutes, reuse=True)
    return stream.build_stream(items, noise, snr, np.random.default_rng(seed + 1), noise_names=names)


def test_cli_writes_exactly_the_clips_of_its_manifest(mined, weak_model, synth_folder):
    manifest = json.loads((mined / mine.MANIFEST).read_text())
    files = {str(p.relative_to(mined)) for p in mined.rglob("*") if p.is_file()} - {mine.MANIFEST}
    listed = [c["file"] for c in manifest["clips"]]
    assert len(listed) == len(set(listed)) and set(listed) == files
    assert len(files) >= 3, "a two-epoch model should fire somewhere in 30 s of stream"
    assert not list(mined.parent.glob(".*tmp*"))  # no temporary folder left beside it
    assert manifest["model_dir"] == str(weak_model.resolve())
    assert manifest["min_score"] == 0.05 and manifest["minutes"] == 0.5
    assert [s["snr_db"] for s in manifest["streams"]] == [20.0]
    kinds = {c["kind"] for c in manifest["clips"]}
    assert "negative" in kinds and kinds <= {"negative", "substitution"}
    counts = {lab: 0 for lab in labels.LABELS}
    for c in manifest["clips"]:
        folder, name = c["file"].split("/")
        counts[folder] += 1
        assert folder in labels.LABELS and name.startswith(f"{c['kind']}_snr20_") and name.endswith(".wav")
        assert c["score"] >= 0.05 and c["fired"] in KW
        if c["kind"] == "negative":
            assert folder in (labels.SILENCE, labels.UNKNOWN)
        else:
            assert folder in KW and folder != c["fired"]
        info = sf.info(str(mined / c["file"]))
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (16000, 16000, 1, "PCM_16")
    assert manifest["counts"] == counts
    assert sum(s["negative"] + s["substitution"] for s in manifest["streams"]) == len(listed)
    # kept windows are at least --min_gap_ms (300 ms) apart
    starts = sorted(c["start_s"] for c in manifest["clips"])
    assert np.all(np.diff(starts) >= 0.3 - 1e-6)


def test_cli_clips_are_the_stream_windows_they_claim(mined, synth_folder):
    manifest = json.loads((mined / mine.MANIFEST).read_text())
    s = _rebuilt_stream(synth_folder)
    assert s.duration_s == pytest.approx(manifest["streams"][0]["duration_s"])
    assert len(s.keywords) == manifest["streams"][0]["keywords"]
    for c in manifest["clips"]:
        t0 = c["start_s"]
        s0 = int(round(t0 * features.SAMPLE_RATE))
        pcm, _ = sf.read(str(mined / c["file"]), dtype="int16")
        np.testing.assert_array_equal(pcm, s.pcm[s0:s0 + features.CLIP_SAMPLES])
        t1 = t0 + 1.0
        near = [e for e in s.keywords if e.onset_s - 0.05 < t1 and e.end_s + 0.05 > t0]
        if c["kind"] == "negative":
            assert near == [], (c, near)
        else:
            assert len(near) == 1 and near[0].label == c["file"].split("/")[0]
            assert t0 <= near[0].onset_s and near[0].end_s <= t1


def test_cli_refuses_to_overwrite_without_the_flag(mined, weak_model):
    before = snapshot(mined)
    out = _cli(f"--model_dir={weak_model}", f"--out={mined}", *MINE_ARGS)
    _one_error_line(out, "not empty", "--overwrite")
    assert snapshot(mined) == before


def test_cli_never_overwrites_a_folder_it_did_not_write(weak_model, tmp_path):
    out_dir = tmp_path / "mine_here"
    (out_dir / "yes").mkdir(parents=True)
    (out_dir / "yes" / "mine.wav").write_bytes(b"the user's own file")
    (out_dir / "notes.txt").write_text("keep me\n")
    before = snapshot(out_dir)
    out = _cli(f"--model_dir={weak_model}", f"--out={out_dir}", *MINE_ARGS, "--overwrite")
    _one_error_line(out, "did not write", mine.MANIFEST)
    assert snapshot(out_dir) == before


def test_overwrite_replaces_an_earlier_mining_entirely(mined, weak_model, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(mined, again)
    first = json.loads((again / mine.MANIFEST).read_text())
    (again / labels.SILENCE).mkdir(exist_ok=True)
    stray = again / labels.SILENCE / "negative_snr20_99999999.wav"
    stray.write_bytes(b"a file the manifest does not list")  # e.g. a user's: never deleted
    with pytest.raises(mine.MineError, match="does not list"):
        mine.mine(weak_model, again, minutes=0.5, snrs=[20.0], min_score=0.3, overwrite=True, log=lambda m: None)
    assert stray.read_bytes() == b"a file the manifest does not list"
    stray.unlink()
    manifest = mine.mine(weak_model, again, minutes=0.5, snrs=[20.0], min_score=0.3, overwrite=True, log=lambda m: None)
    files = {str(p.relative_to(again)) for p in again.rglob("*") if p.is_file()} - {mine.MANIFEST}
    assert files == {c["file"] for c in manifest["clips"]}  # nothing of the earlier mining is left
    assert json.loads((again / mine.MANIFEST).read_text()) == json.loads(json.dumps(manifest))
    assert all(c["score"] >= 0.3 for c in manifest["clips"])
    # greedy suppression decides the windows scoring >= 0.3 before any lower one: the first mining's
    # clips scoring >= 0.3 are exactly this one's
    assert {c["file"] for c in first["clips"] if c["score"] >= 0.3} == files


def test_mine_refuses_bad_arguments(weak_model, tmp_path):
    for kwargs, what in [(dict(min_score=0.0), "--min_score"), (dict(minutes=0), "--minutes"),
                         (dict(max_clips=0), "--max_clips")]:
        with pytest.raises(mine.MineError, match=what):
            mine.mine(weak_model, tmp_path / "x", log=lambda m: None, **kwargs)
    with pytest.raises(mine.MineError, match="twice"):
        mine.mine(weak_model, tmp_path / "x", snrs=[20.0, 20.0], log=lambda m: None)
    with pytest.raises(mine.MineError, match="does not exist"):
        mine.mine(tmp_path / "no_model", tmp_path / "x", log=lambda m: None)
    assert not (tmp_path / "x").exists()
