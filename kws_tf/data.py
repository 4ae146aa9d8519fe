"""Data sources (tfds `speech_commands` or a Speech Commands folder) and the tf.data pipeline.

Both sources give the same thing: a `Dataset` of decoded 1 s int16 clips per split,
labelled in `labels.LABELS` order, plus a pool of background noise for mixing.
Decoded audio is kept in memory (the whole v0.02 train split is ~2.7 GB as int16),
so every epoch only pays for augmentation and MFCC, not for decoding.

Training batches are deterministic functions of (seed, epoch, batch index): the
order is a seeded permutation per epoch and augmentation uses stateless random
ops, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import socket
import threading

import numpy as np

from kws_tf import augment, features, labels
from kws_tf.audio_io import AudioError, ReadStats, read_wav


class DataError(ValueError):
    """The data cannot be used; the message is one line meant for the user."""


@dataclasses.dataclass
class AudioSet:
    """Decoded clips `[N, CLIP_SAMPLES]` int16 and their class indices `[N]`."""

    audio: np.ndarray
    labels: np.ndarray
    names: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return int(self.labels.shape[0])

    def class_counts(self) -> dict:
        return {labels.LABELS[i]: int((self.labels == i).sum()) for i in range(labels.NUM_CLASSES)}

    def subset(self, idx) -> "AudioSet":
        idx = np.asarray(idx)
        names = [self.names[i] for i in idx] if self.names else []
        return AudioSet(self.audio[idx], self.labels[idx], names)


@dataclasses.dataclass
class Dataset:
    train: AudioSet
    validation: AudioSet
    test: AudioSet | None
    noise: list  # 1-D int16 arrays of background noise
    source: str


def _stack(clips: list, label_ids: list, names: list) -> AudioSet:
    if not clips:
        return AudioSet(np.zeros((0, features.CLIP_SAMPLES), np.int16), np.zeros((0,), np.int32), [])
    audio = np.stack([features.fix_length(c) for c in clips]).astype(np.int16)
    return AudioSet(audio, np.asarray(label_ids, np.int32), list(names))


# --------------------------------------------------------------------------- folder source

def speaker_of(path: str | os.PathLike) -> str:
    """Speaker id from a Speech Commands file name.

    `<speaker>_nohash_<n>.wav` and `<word>_<speaker>_nohash_<n>.wav` (the `_unknown_`
    folder of the test set) both give `<speaker>`; other names are their own speaker.
    """
    stem = pathlib.Path(path).stem
    if "_nohash_" in stem:
        return stem.split("_nohash_")[0].split("_")[-1]
    return stem


def split_of(speaker: str, validation_percent: float, test_percent: float) -> str:
    """Deterministic split by a hash of the speaker id, so a speaker stays in one split."""
    bucket = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16) % 10000 / 100.0
    if bucket < validation_percent:
        return "validation"
    if bucket < validation_percent + test_percent:
        return "test"
    return "train"


def _read_list(path: pathlib.Path) -> set:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def load_folder(
    data_dir: str,
    validation_percent: float = 10.0,
    test_percent: float = 10.0,
    noise_dir: str | None = None,
    max_per_class: int | None = None,
    log=print,
) -> Dataset:
    """A folder in the Speech Commands layout -> `Dataset`.

    One sub-folder per word; `_background_noise_/` (optional) feeds noise mixing and,
    when there is no `_silence_/` folder, 1 s silence clips cut from it. With
    `validation_list.txt` / `testing_list.txt` those define the splits; otherwise the
    split is by a hash of the speaker id (`split_of`).
    """
    root = pathlib.Path(data_dir)
    if root.exists() and not root.is_dir():
        raise DataError(f"data folder {data_dir} is a file, not a folder (give the folder that holds one folder per word)")
    if not root.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    word_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name != labels.BACKGROUND_NOISE_DIR)
    if not word_dirs:
        raise DataError(f"data folder {data_dir} has no word sub-folders (expected the Speech Commands layout: one folder per word)")
    val_list = root / "validation_list.txt"
    test_list = root / "testing_list.txt"
    lists = None
    if val_list.exists() or test_list.exists():
        lists = (_read_list(val_list) if val_list.exists() else set(),
                 _read_list(test_list) if test_list.exists() else set())

    stats = ReadStats()

    def split_for(f: pathlib.Path, rel: str) -> str:
        if lists is not None:
            return "validation" if rel in lists[0] else "test" if rel in lists[1] else "train"
        return split_of(speaker_of(f), validation_percent, test_percent)

    parts = _read_word_dirs(data_dir, word_dirs, split_for, max_per_class, stats, log)

    noise = load_noise(noise_dir or root / labels.BACKGROUND_NOISE_DIR, stats)
    has_silence_dir = (root / labels.SILENCE).is_dir()
    if noise and not has_silence_dir:
        _add_silence_from_noise(noise, parts, validation_percent, test_percent)
    _warn_missing_words(root, word_dirs, has_silence_dir or bool(noise), log)

    if stats.read == 0:
        raise DataError(f"no usable wav in {data_dir} ({stats.summary()})")
    if stats.resampled or stats.downmixed or stats.skipped:
        log(f"warning: {stats.summary()}")
    ds = Dataset(
        train=_stack(*parts["train"]),
        validation=_stack(*parts["validation"]),
        test=_stack(*parts["test"]) if parts["test"][0] else None,
        noise=noise,
        source=f"folder:{root}",
    )
    if len(ds.train) == 0:
        raise DataError(f"data folder {data_dir} gave no training clips (all {stats.read} went to validation/test)")
    log(f"clips: train {len(ds.train)}, validation {len(ds.validation)}, test {len(ds.test) if ds.test else 0}; "
        f"noise recordings: {len(noise)}")
    return ds


def _read_word_dirs(data_dir, word_dirs: list, split_for, max_per_class: int | None, stats: ReadStats,
                    log) -> dict:
    """Decode every wav of `word_dirs` (labelled by folder name) into {split: (clips, labels, names)};
    `split_for(path, "word/file.wav")` names the split; unreadable wavs are counted in `stats`."""
    parts = {s: ([], [], []) for s in ("train", "validation", "test")}
    total = sum(1 for d in word_dirs for _ in d.glob("*.wav"))
    if total == 0:
        raise DataError(f"data folder {data_dir} holds no .wav files in its word folders")
    log(f"reading {total} wav files from {data_dir} ...")
    done = 0
    for d in word_dirs:
        label = labels.label_index(d.name)
        files = sorted(d.glob("*.wav"))
        if max_per_class:
            files = files[:max_per_class]
        for f in files:
            done += 1
            if done % 5000 == 0:
                log(f"  {done}/{total}")
            rel = f"{d.name}/{f.name}"
            try:
                pcm = read_wav(f, stats)
            except AudioError as e:
                stats.skip(rel, str(e))
                continue
            split = split_for(f, rel)
            parts[split][0].append(pcm)
            parts[split][1].append(label)
            parts[split][2].append(rel)
    return parts


def load_extra_train(data_dir, log=print) -> AudioSet:
    """Every clip of a Speech Commands-layout folder as TRAINING clips (e.g. `kws_tf.mine`'s
    hard negatives; a folder per class, no split, no silence cut from noise)."""
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DataError(f"extra training folder {data_dir} does not exist or is not a folder")
    word_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name != labels.BACKGROUND_NOISE_DIR)
    stats = ReadStats()
    parts = _read_word_dirs(data_dir, word_dirs, lambda f, rel: "train", None, stats, log)
    if stats.skipped:
        log(f"warning: {stats.summary()}")
    out = _stack(*parts["train"])
    log(f"extra training clips from {data_dir}: {_counts_text({k: v for k, v in out.class_counts().items() if v})}")
    return out


def with_extra_train(ds: Dataset, extra: AudioSet) -> Dataset:
    """`ds` with `extra` appended to its training clips (the source names both)."""
    train = AudioSet(np.concatenate([ds.train.audio, extra.audio]), np.concatenate([ds.train.labels, extra.labels]),
                     list(ds.train.names) + list(extra.names))
    return dataclasses.replace(ds, train=train)


def _warn_missing_words(root: pathlib.Path, word_dirs: list, has_silence_source: bool, log) -> None:
    """Warn (with counts) about keyword folders that are absent or hold no wav, and a missing silence source."""
    present = {d.name: sum(1 for _ in d.glob("*.wav")) for d in word_dirs}
    missing = [w for w in labels.KEYWORDS if w not in present]
    empty = [w for w, n in present.items() if n == 0 and w != labels.SILENCE]
    if missing:
        log(f"warning: {root} has no folder for {len(missing)} keyword(s): {', '.join(missing)}")
    if empty:
        log(f"warning: {len(empty)} word folder(s) of {root} hold no .wav file: {', '.join(empty)}")
    if not has_silence_source:
        log(f"warning: {root} has no silence source (neither a {labels.SILENCE}/ folder with clips nor "
            f"{labels.BACKGROUND_NOISE_DIR}/ wavs): the {labels.SILENCE} class has no clips")
    elif labels.SILENCE in present and present[labels.SILENCE] == 0:
        log(f"warning: {root / labels.SILENCE} holds no .wav file: the {labels.SILENCE} class has no clips")


MIN_VALIDATION_CLIPS = 10 * labels.NUM_CLASSES  # fewer makes validation accuracy (and the best epoch) noise
FEW_TRAINING_CLIPS = 5


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def check_splits(ds: Dataset, log=print) -> None:
    """Refuse data that cannot train every class; warn (with counts) about thin splits.

    DataError when a class has no training clip or there is no validation clip at all."""
    train = ds.train.class_counts()
    absent = [k for k, v in train.items() if v == 0]
    if absent:
        raise DataError(f"no training clip for class(es) {', '.join(absent)} (training clips per class: "
                        f"{_counts_text(train)}); every class needs at least one: add clips"
                        + (f", or a {labels.SILENCE}/ folder or {labels.BACKGROUND_NOISE_DIR}/ wavs"
                           if labels.SILENCE in absent else ""))
    if len(ds.validation) == 0:
        raise DataError("the data has no validation clips; use more speakers or set the split percentages")
    few = {k: v for k, v in train.items() if v < FEW_TRAINING_CLIPS}
    if few:
        log(f"warning: few training clips for {len(few)} class(es): {_counts_text(few)}")
    val = ds.validation.class_counts()
    no_val = [k for k, v in val.items() if v == 0]
    if len(ds.validation) < MIN_VALIDATION_CLIPS or no_val:
        log(f"warning: the validation split has only {len(ds.validation)} clip(s)"
            + (f", none for {', '.join(no_val)}" if no_val else "")
            + f" (per class: {_counts_text(val)}); validation accuracy and the best-epoch choice will be noisy")


def load_noise(noise_dir, stats: ReadStats | None = None) -> list:
    """All wavs of a background-noise folder as int16 arrays (empty list if absent)."""
    p = pathlib.Path(noise_dir) if noise_dir else None
    if p is None or not p.is_dir():
        return []
    out = []
    for f in sorted(p.glob("*.wav")):
        try:
            out.append(read_wav(f, stats))
        except AudioError as e:
            if stats is not None:
                stats.skip(f.name, str(e))
    return out


def _add_silence_from_noise(noise: list, parts: dict, validation_percent: float, test_percent: float):
    """Cut the noise recordings into 1 s `_silence_` clips, split by chunk name like speakers."""
    silence = labels.LABELS.index(labels.SILENCE)
    for n, rec in enumerate(noise):
        for k in range(len(rec) // features.CLIP_SAMPLES):
            name = f"{labels.BACKGROUND_NOISE_DIR}/{n}_{k}"
            split = split_of(name, validation_percent, test_percent)
            parts[split][0].append(rec[k * features.CLIP_SAMPLES:(k + 1) * features.CLIP_SAMPLES])
            parts[split][1].append(silence)
            parts[split][2].append(name)


# --------------------------------------------------------------------------- tfds source

TFDS_NAME = "speech_commands"
TFDS_ARCHIVES = ("speech_commands_v0.02.tar.gz", "speech_commands_test_set_v0.02.tar.gz")
DOWNLOAD_HOST = ("download.tensorflow.org", 80)  # where tfds fetches the archives (http)
PROBE_ENV = "KWS_DOWNLOAD_PROBE"  # "host:port" to probe instead (tests point it at a closed port)
PROBE_TIMEOUT_S = 5.0


def probe_host(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to host:port opens within `timeout` s, else why not.

    Name resolution has no timeout of its own, so the whole attempt runs in a thread."""
    result = {}

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = str(e) or type(e).__name__

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if result.get("ok"):
        return None
    return result.get("error", f"no answer within {timeout:g} s")


def _probe_target() -> tuple:
    spec = os.environ.get(PROBE_ENV)
    if not spec:
        return DOWNLOAD_HOST
    host, _, port = spec.rpartition(":")
    return host.strip("[]"), int(port)


def _tfds_split(builder_ds, label_names: list) -> AudioSet:
    mapping = np.asarray([labels.label_index(n) for n in label_names], np.int32)
    clips, ids = [], []
    for ex in builder_ds.as_numpy_iterator():
        clips.append(np.asarray(ex["audio"]).astype(np.int16).reshape(-1))
        ids.append(int(mapping[int(ex["label"])]))
    return _stack(clips, ids, [])


def load_tfds(tfds_data_dir: str | None = None, download: bool = True, log=print) -> Dataset:
    """tfds `speech_commands` -> `Dataset`; noise for mixing comes from its `_silence_` clips."""
    import tensorflow_datasets as tfds

    manual = os.path.join(tfds_data_dir or os.path.expanduser("~/tensorflow_datasets"), "downloads", "manual")
    offline_hint = (f"offline, place {' and '.join(TFDS_ARCHIVES)} in {manual}, "
                    f"or use --data_dir with an extracted Speech Commands folder")
    manual_archives = [os.path.join(manual, a) for a in TFDS_ARCHIVES if os.path.isfile(os.path.join(manual, a))]
    try:
        builder = tfds.builder(TFDS_NAME, data_dir=tfds_data_dir)
        # tfds retries an unreachable host for minutes; probe it first, unless nothing needs
        # downloading (prepared, or both archives in the manual folder) or tfds is mocked (tests)
        real_tfds = getattr(type(builder).download_and_prepare, "__module__", "").startswith("tensorflow_datasets.core")
        if download and real_tfds and len(manual_archives) < len(TFDS_ARCHIVES) and not builder.is_prepared():
            host, port = _probe_target()
            why = probe_host(host, port)
            if why:
                raise DataError(f"tfds {TFDS_NAME} must be downloaded, but {host}:{port} cannot be reached ({why}); "
                                + offline_hint)
        if download:
            builder.download_and_prepare()
        info = builder.info
        label_names = info.features["label"].names
        log(f"tfds {TFDS_NAME}: reading train/validation/test ...")
        splits = {s: _tfds_split(builder.as_dataset(split=s), label_names) for s in ("train", "validation", "test")}
    except DataError:
        raise
    except Exception as e:  # network errors come in many types from tfds
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if manual_archives and (len(manual_archives) == len(TFDS_ARCHIVES) or "Checksum" in type(e).__name__):
            raise DataError(
                f"tfds {TFDS_NAME} could not be prepared from {', '.join(manual_archives)}: corrupt or incomplete "
                f"archive(s) ({type(e).__name__}: {first}); delete them and download them again"
            ) from None
        raise DataError(f"tfds {TFDS_NAME} could not be prepared ({type(e).__name__}: {first}); {offline_hint}") from None
    silence = labels.LABELS.index(labels.SILENCE)
    train = splits["train"]
    noise = [np.concatenate(list(train.audio[train.labels == silence]))] if (train.labels == silence).any() else []
    ds = Dataset(splits["train"], splits["validation"], splits["test"], noise, source=f"tfds:{TFDS_NAME}")
    log(f"clips: train {len(ds.train)}, validation {len(ds.validation)}, test {len(ds.test)}")
    return ds


# --------------------------------------------------------------------------- pipeline

def clean_features(audio_set: AudioSet, normalization: features.Normalization | None = None,
                   batch_size: int = 256, frontend: str | None = None) -> np.ndarray:
    """Front-end features `[N, 1, steps, dim]` of un-augmented clips (optionally normalised), in batches.

    The front-end (`kws_tf.frontends`) is `frontend`, else the normalisation's, else MFCC.
    """
    import tensorflow as tf

    from kws_tf import frontends

    name = frontend or (normalization.frontend if normalization is not None else "mfcc")
    if normalization is not None:
        normalization.require(name)
    fe = frontends.get(name)
    out = []
    for start in range(0, len(audio_set), batch_size):
        pcm = audio_set.audio[start:start + batch_size]
        x = fe.tf(tf.constant(pcm, tf.float32) * features.PCM_SCALE)
        if normalization is not None and fe.normalized:
            x = normalization.apply_tf(x)
        out.append(x.numpy()[:, None])
    if not out:
        return np.zeros((0,) + fe.input_shape, np.float32)
    return np.concatenate(out)


def compute_normalization(train: AudioSet, max_clips: int = 4000, seed: int = 0,
                          frontend: str = "mfcc") -> features.Normalization:
    """Per-coefficient statistics from clean training features (a fixed random subset);
    identity statistics for a front-end that is not normalised (`FrontEnd.normalized`)."""
    from kws_tf import frontends

    if not frontends.get(frontend).normalized:
        return features.Normalization.identity(frontend)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(train))[:max_clips]
    return features.Normalization.from_features(clean_features(train.subset(np.sort(idx)), frontend=frontend),
                                                frontend=frontend)


def eval_dataset(audio_set: AudioSet, normalization: features.Normalization, batch_size: int, targets=None):
    """Un-augmented, normalised features as a batched tf.data.Dataset of (x, y); `targets`
    (x, y) -> (x, y') rewrites each batch's labels (distillation packs the teachers' scores)."""
    import tensorflow as tf

    x = clean_features(audio_set, normalization)
    ds = tf.data.Dataset.from_tensor_slices((x, audio_set.labels)).batch(batch_size)
    if targets is not None:
        ds = ds.map(targets)
    return ds.prefetch(2)


def train_dataset(
    audio_set: AudioSet,
    normalization: features.Normalization,
    aug: augment.AugmentConfig,
    noise: list,
    batch_size: int,
    seed: int,
    first_epoch: int,
    last_epoch: int,
    targets=None,
):
    """Augmented, normalised training batches for epochs [first_epoch, last_epoch).

    Yields exactly `steps_per_epoch(len(audio_set), batch_size)` batches per epoch. `targets`
    (x, y) -> (x, y') rewrites each batch's labels after augmentation (see `eval_dataset`).
    """
    import tensorflow as tf

    n = len(audio_set)
    steps = steps_per_epoch(n, batch_size)
    audio, ids = audio_set.audio, audio_set.labels

    def batches():
        for epoch in range(first_epoch, last_epoch):
            order = np.random.default_rng([seed, epoch]).permutation(n)
            for b in range(steps):
                idx = np.sort(order[b * batch_size:(b + 1) * batch_size])
                yield audio[idx], ids[idx], np.asarray([seed, epoch * steps + b], np.int64)

    sig = (
        tf.TensorSpec((None, features.CLIP_SAMPLES), tf.int16),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((2,), tf.int64),
    )
    from kws_tf import frontends

    noise_pool = augment.noise_pool(noise)
    fe = frontends.get(normalization.frontend)
    mean, inv_std = normalization.mean_f32(), normalization.inv_std_f32()

    def to_features(pcm, y, batch_seed):
        wave = tf.cast(pcm, tf.float32) * features.PCM_SCALE
        wave = augment.augment_batch(wave, batch_seed, aug, noise_pool)
        x = fe.tf(wave)
        if fe.normalized:
            x = (x - mean) * inv_std
        if fe.spec_augment:
            x = augment.spec_augment(x, batch_seed, aug)
        return (x[:, None], y) if targets is None else targets(x[:, None], y)

    ds = tf.data.Dataset.from_generator(batches, output_signature=sig)
    return ds.map(to_features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))
