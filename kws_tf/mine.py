"""Hard-negative mining from streams of TRAINING speakers (issue 9).

    python -m kws_tf.mine --model_dir=runs/NAME --out=mined/NAME [--minutes=20] [--snr=20,10]
        [--hop_ms=50] [--min_score=0.5] [--max_clips=1000] [--seed=0] [--overwrite]

A trained model (float, as trained) scores every 1 s window, `--hop_ms` apart, of long streams
built as the streaming benchmark builds them (`kws_tf.stream`: keywords, unknown words and
noise-only gaps over the real background noise at each `--snr`), but from the clips of the
run's TRAINING speakers only, so nothing of the validation speakers leaks into training. Two
kinds of window are kept when a keyword class scores at least `--min_score`:

  negative      the window overlaps no keyword (word bounds +- 50 ms): what the model fires on
                is an unknown word (labelled `_unknown_`) or noise (`_silence_`)
  substitution  a keyword lies wholly inside the window and another keyword wins: labelled
                with the keyword that is there

Windows closer than `--min_gap_ms` to a higher-scoring kept one of the same stream are dropped
(one clip per false alarm, not twenty shifted copies); the highest `--max_clips` scores stay.
The output is a Speech Commands-layout folder (`<label>/<kind>_snr<dB>_<ms>.wav`) with
`manifest.json`; `python -m kws_tf.train --extra_train_dir=FOLDER` adds its clips to training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import sys

import numpy as np

from kws_tf import features, labels as labels_lib

MANIFEST = "manifest.json"
KEYWORD_MARGIN_S = 0.05  # a window this close to a keyword's energy bounds counts as touching it
UNKNOWN_OVERLAP_S = 0.1  # an unknown word inside the window for at least this long makes it `_unknown_`


class MineError(ValueError):
    """Mining cannot run; one line for the user."""


@dataclasses.dataclass(frozen=True)
class Window:
    start_s: float
    kind: str  # "negative" | "substitution"
    label: str  # the class the clip is trained as
    fired: str  # the keyword the model chose
    score: float  # its probability


def classify_windows(starts_s: np.ndarray, events: list, probs: np.ndarray, min_score: float) -> list:
    """The mined windows of one stream: `starts_s` [N] window starts, `probs` [N, classes] the
    model's scores for those windows, `events` the stream's ground truth (`kws_tf.stream.Event`)."""
    kw_idx = [labels_lib.LABELS.index(k) for k in labels_lib.KEYWORDS]
    keywords = [e for e in events if e.is_keyword]
    unknowns = [e for e in events if e.label == labels_lib.UNKNOWN]
    out = []
    for i, t0 in enumerate(starts_s.tolist()):
        t1 = t0 + features.CLIP_SAMPLES / features.SAMPLE_RATE
        p = probs[i]
        best = kw_idx[int(np.argmax(p[kw_idx]))]
        score = float(p[best])
        if score < min_score or int(np.argmax(p)) != best:
            continue
        fired = labels_lib.LABELS[best]
        touching = [e for e in keywords if e.onset_s - KEYWORD_MARGIN_S < t1 and e.end_s + KEYWORD_MARGIN_S > t0]
        if not touching:
            heard = any(min(t1, e.end_s) - max(t0, e.onset_s) >= UNKNOWN_OVERLAP_S for e in unknowns)
            out.append(Window(t0, "negative", labels_lib.UNKNOWN if heard else labels_lib.SILENCE, fired, score))
            continue
        inside = [e for e in touching if e.onset_s >= t0 and e.end_s <= t1]
        if len(touching) == 1 and len(inside) == 1 and inside[0].label != fired:
            out.append(Window(t0, "substitution", inside[0].label, fired, score))
    return out


def suppress(windows: list, min_gap_s: float) -> list:
    """Greedy non-maximum suppression in time: highest score first, drop any within `min_gap_s`."""
    kept = []
    for w in sorted(windows, key=lambda w: -w.score):
        if all(abs(w.start_s - k.start_s) >= min_gap_s for k in kept):
            kept.append(w)
    return sorted(kept, key=lambda w: w.start_s)


def window_starts(duration_s: float, hop_ms: float) -> np.ndarray:
    clip_s = features.CLIP_SAMPLES / features.SAMPLE_RATE
    return np.arange(0.0, max(duration_s - clip_s, 0.0) + 1e-9, hop_ms / 1000.0)


def score_windows(net, normalization, pcm: np.ndarray, starts_s: np.ndarray, batch: int = 1024, log=None) -> np.ndarray:
    """Softmax scores [N, classes] of the float model on the 1 s windows of `pcm` at `starts_s`."""
    import tensorflow as tf

    from kws_tf import data

    out = []
    idx = (starts_s * features.SAMPLE_RATE).round().astype(np.int64)
    for b in range(0, len(idx), batch):
        clips = np.stack([pcm[s:s + features.CLIP_SAMPLES] for s in idx[b:b + batch]])
        x = data.clean_features(data.AudioSet(clips, np.zeros(len(clips), np.int32)), normalization)
        out.append(tf.nn.softmax(net.predict(x, batch_size=256, verbose=0), axis=-1).numpy())
        if log and (b // batch) % 10 == 9:
            log(f"      {b + len(clips)}/{len(idx)} windows")
    return np.concatenate(out) if out else np.zeros((0, labels_lib.NUM_CLASSES), np.float32)


def training_clips_source(run_config: dict, data_dir=None) -> dict:
    """The run's data folder and split percentages, and its noise folder (mining needs a folder source)."""
    src = run_config.get("data", {})
    folder = data_dir or (src.get("path") if src.get("kind") == "folder" else None)
    if not folder:
        raise MineError("the run was trained on tfds; mining needs its clips as a Speech Commands folder: pass --data_dir")
    if not pathlib.Path(folder).is_dir():
        raise MineError(f"data folder {folder} does not exist (pass --data_dir if it moved)")
    noise = src.get("noise_dir") or str(pathlib.Path(folder) / labels_lib.BACKGROUND_NOISE_DIR)
    return {"folder": str(folder), "noise_dir": noise, "validation_percent": float(src.get("validation_percent", 10.0)),
            "test_percent": float(src.get("test_percent", 10.0))}


def _check_out(out: pathlib.Path, overwrite: bool) -> None:
    """Refuse an --out that is a file, or that holds anything but an earlier mining (with --overwrite)."""
    if out.exists() and not out.is_dir():
        raise MineError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise MineError(f"--out {out} is not empty; pass --overwrite to replace an earlier mining there")
        try:
            listed = {c["file"] for c in json.loads((out / MANIFEST).read_text())["clips"]}
        except (OSError, ValueError, KeyError, TypeError):
            raise MineError(f"--out {out} holds files that kws_tf.mine did not write (no readable {MANIFEST}); "
                            "choose another --out") from None
        present = {str(f.relative_to(out)) for f in out.rglob("*") if f.is_file()} - {MANIFEST}
        foreign = sorted(present - listed)
        if foreign:
            raise MineError(f"--out {out} holds {len(foreign)} file(s) its {MANIFEST} does not list (e.g. "
                            f"{foreign[0]}); they are not replaced: move them or choose another --out")


def mine(model_dir, out, minutes: float = 20.0, snrs=(20.0, 10.0), hop_ms: float = 50.0, min_score: float = 0.5,
         min_gap_ms: float = 300.0, max_clips: int = 1000, seed: int = 0, data_dir=None, overwrite: bool = False,
         log=print) -> dict:
    """Mine `model_dir`'s false alarms into the folder `out`; returns the manifest."""
    from kws_tf import stream
    from kws_tf.audio_io import write_wav
    from kws_tf.export_io import ExportError, load_trained

    if minutes <= 0 or hop_ms <= 0 or not 0.0 < min_score <= 1.0 or max_clips < 1 or min_gap_ms < 0:
        raise MineError("--minutes and --hop_ms must be > 0, --min_score in (0, 1], --max_clips >= 1, --min_gap_ms >= 0")
    if len(set(snrs)) != len(list(snrs)):
        raise MineError(f"--snr lists a level twice ({', '.join('clean' if x is None else f'{x:g}' for x in snrs)}); "
                        "give each once (longer streams: --minutes)")
    out = pathlib.Path(out)
    _check_out(out, overwrite)
    try:
        trained = load_trained(model_dir)
    except ExportError as e:
        raise MineError(str(e)) from None
    if trained.normalization.frontend not in ("mfcc", "logmel"):
        raise MineError(f"mining scores 1 s windows of audio features; the {trained.normalization.frontend} "
                        "front-end is not supported")
    src = training_clips_source(trained.run_config, data_dir)
    clips = stream.speech_commands_clips(src["folder"], split="train", validation_percent=src["validation_percent"],
                                         test_percent=src["test_percent"])
    if not any(clips.get(k) for k in labels_lib.KEYWORDS):
        raise MineError(f"no keyword clips of training speakers in {src['folder']}")
    noise, names = stream.load_noise_folder(src["noise_dir"]) if pathlib.Path(src["noise_dir"]).is_dir() else ([], [])
    if not noise and any(s is not None for s in snrs):
        raise MineError(f"no background noise wavs in {src['noise_dir']}")
    n_train = sum(len(v) for v in clips.values())
    log(f"mining {model_dir}: {n_train} clips of training speakers, {minutes:g} min per SNR "
        f"({', '.join('clean' if s is None else f'{s:g} dB' for s in snrs)}), windows every {hop_ms:g} ms")
    items = stream.plan_items(clips, np.random.default_rng(seed), minutes, reuse=True)
    found, pcms, streams = [], {}, []
    for snr in snrs:
        tag = "clean" if snr is None else f"snr{snr:g}"
        try:
            s = stream.build_stream(items, noise, snr, np.random.default_rng(seed + 1), noise_names=names)
        except ValueError as e:  # e.g. noise recordings too short to make a track of
            raise MineError(f"cannot build a stream from {src['noise_dir']}: {e}") from None
        starts = window_starts(s.duration_s, hop_ms)
        log(f"  {tag}: {s.duration_s / 60:.1f} min, {len(s.keywords)} keywords, {len(starts)} windows")
        probs = score_windows(trained.net, trained.normalization, s.pcm, starts, log=log)
        wins = suppress(classify_windows(starts, s.events, probs, min_score), min_gap_ms / 1000.0)
        counts = {k: sum(1 for w in wins if w.kind == k) for k in ("negative", "substitution")}
        log(f"  {tag}: {counts['negative']} negative and {counts['substitution']} substitution windows "
            f"scoring >= {min_score:g}")
        found += [(tag, w) for w in wins]
        pcms[tag] = s.pcm
        streams.append({"tag": tag, "snr_db": snr, "duration_s": s.duration_s, "keywords": len(s.keywords),
                        "windows": int(len(starts)), **counts})
    found.sort(key=lambda tw: -tw[1].score)
    kept = found[:max_clips]
    if len(found) > max_clips:
        log(f"  keeping the {max_clips} highest-scoring of {len(found)} windows (--max_clips)")
    manifest = {
        "model_dir": str(pathlib.Path(model_dir).resolve()), "data_folder": src["folder"], "speakers": "train split",
        "split": {"validation_percent": src["validation_percent"], "test_percent": src["test_percent"]},
        "noise_dir": src["noise_dir"], "minutes": minutes, "hop_ms": hop_ms, "min_score": min_score,
        "min_gap_ms": min_gap_ms, "max_clips": max_clips, "seed": seed, "streams": streams,
        "counts": {lab: sum(1 for _, w in kept if w.label == lab) for lab in labels_lib.LABELS},
        "clips": [],
    }
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for tag, w in sorted(kept, key=lambda tw: (tw[0], tw[1].start_s)):
            name = f"{w.label}/{w.kind}_{tag}_{int(round(w.start_s * 1000)):08d}.wav"
            (tmp / w.label).mkdir(exist_ok=True)
            s0 = int(round(w.start_s * features.SAMPLE_RATE))
            write_wav(tmp / name, pcms[tag][s0:s0 + features.CLIP_SAMPLES])
            manifest["clips"].append({"file": name, "kind": w.kind, "fired": w.fired, "score": round(w.score, 4),
                                      "stream": tag, "start_s": round(w.start_s, 3)})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)  # _check_out: empty, or an earlier mining (its manifest) with --overwrite
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except OSError as e:
        raise MineError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {len(kept)} clips to {out} ({', '.join(f'{k} {v}' for k, v in manifest['counts'].items() if v)}); "
        f"train with --extra_train_dir={out}")
    return manifest


def define_flags():
    from absl import flags

    flags.DEFINE_string("model_dir", None, "A finished kws_tf.train run whose false alarms are mined.")
    flags.DEFINE_string("out", None, "Output folder (Speech Commands layout + manifest.json).")
    flags.DEFINE_string("data_dir", None, "The run's data folder, if it moved (its TRAINING speakers are used).")
    flags.DEFINE_float("minutes", 20.0, "Stream length per SNR (minutes).")
    flags.DEFINE_list("snr", ["20", "10"], "Background-noise SNRs in dB ('clean': none).")
    flags.DEFINE_float("hop_ms", 50.0, "Window hop (ms).")
    flags.DEFINE_float("min_score", 0.5, "Keep windows where a keyword scores at least this (softmax).")
    flags.DEFINE_float("min_gap_ms", 300.0, "At most one kept window per this span of a stream.")
    flags.DEFINE_integer("max_clips", 1000, "Keep at most this many windows (highest scores).")
    flags.DEFINE_integer("seed", 0, "Stream seed.")
    flags.DEFINE_bool("overwrite", False, "Replace an earlier mining in --out (never a folder mine did not write).")


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.model_dir or not FLAGS.out:
        sys.exit("error: --model_dir and --out are required")
    try:
        snrs = [None if s.strip().lower() in ("clean", "none") else float(s) for s in FLAGS.snr]
    except ValueError:
        sys.exit(f"error: --snr must be numbers in dB or 'clean' (got {','.join(FLAGS.snr)})")
    try:
        mine(FLAGS.model_dir, FLAGS.out, FLAGS.minutes, snrs, FLAGS.hop_ms, FLAGS.min_score, FLAGS.min_gap_ms,
             FLAGS.max_clips, FLAGS.seed, FLAGS.data_dir, FLAGS.overwrite, log=lambda m: print(m, flush=True))
    except MineError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    from absl import app

    from kws_tf import cli_env

    cli_env.start()
    define_flags()
    app.run(main)
