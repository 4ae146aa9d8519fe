"""Long test streams with ground truth, and scoring of a keyword spotter's detections on them.

Building (`build_stream`): 1 s clips (keywords, unknown words, and `_silence_` items that
leave a noise-only gap) are laid end to end with random gaps over a continuous background
noise track at a stated SNR. Each clip's word is located by energy (`word_bounds`); the
ground truth is a list of `Event`s with the word's onset and end in stream time.

SNR definition: `20·log10(rms(word) / rms(noise))`, where `rms(word)` is the RMS of the clip
between its energy onset and end (so silence inside the 1 s clip does not dilute it) and
`rms(noise)` the RMS of the whole noise track. With `speech_dbfs` set (default -26 dBFS),
every clip is scaled to that active level, so each word has exactly the stated SNR.

Scoring (`score_detections`): a detection of label L at time t is a *hit* if a keyword
event with label L, not yet hit, has `onset - early_s <= t <= end + tolerance_s`.
Everything else is a *false alarm*, broken down as: `substitution` (another keyword's
window), `duplicate` (the same event again), `on_unknown` (an unknown word's window) and
`on_background` (noise or silence). False alarms per hour use the whole stream duration.
Detection delay is reported from the word's end (`t - end`, the primary figure) and from
its onset (`t - onset`), for hits only.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from kws_tf import features, labels as labels_lib

SR = features.SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class Event:
    """One item placed in the stream. Times in seconds from the start of the stream."""

    label: str  # keyword, "_unknown_" (word given in `word`) or "_silence_"
    word: str
    start_s: float  # where the 1 s clip starts
    onset_s: float  # energy onset of the word
    end_s: float  # energy end of the word
    source: str = ""

    @property
    def is_keyword(self) -> bool:
        return self.label in labels_lib.KEYWORDS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Stream:
    pcm: np.ndarray  # int16 mono at 16 kHz
    events: list  # [Event], in time order
    snr_db: float | None  # None: no noise
    speech_dbfs: float | None
    noise_sources: list

    @property
    def duration_s(self) -> float:
        return self.pcm.shape[0] / SR

    @property
    def keywords(self) -> list:
        return [e for e in self.events if e.is_keyword]

    def truth_dict(self) -> dict:
        return {"duration_s": self.duration_s, "snr_db": self.snr_db, "speech_dbfs": self.speech_dbfs,
                "noise_sources": self.noise_sources, "events": [e.to_dict() for e in self.events]}


# --------------------------------------------------------------------------- building

def _to_float(pcm) -> np.ndarray:
    return features.pcm_to_float(np.asarray(pcm)).astype(np.float64)


def word_bounds(pcm, threshold_db: float = 20.0, frame: int = 320, hop: int = 160) -> tuple[float, float]:
    """(onset_s, end_s) of the word in a clip: first and last 20 ms frame whose energy is within
    `threshold_db` of the loudest frame. A clip of silence gives its whole length."""
    x = _to_float(pcm)
    if x.size < frame:
        return 0.0, x.size / SR
    starts = np.arange(0, x.size - frame + 1, hop)
    energy = np.array([np.mean(x[s:s + frame] ** 2) for s in starts]) + 1e-12
    db = 10 * np.log10(energy)
    active = np.flatnonzero(db >= db.max() - threshold_db)
    return float(starts[active[0]] / SR), float((starts[active[-1]] + frame) / SR)


def active_rms(pcm, bounds: tuple[float, float] | None = None) -> float:
    """RMS (float scale) of the clip between its word bounds."""
    x = _to_float(pcm)
    lo, hi = bounds or word_bounds(pcm)
    seg = x[int(lo * SR):max(int(hi * SR), int(lo * SR) + 1)]
    return float(np.sqrt(np.mean(seg ** 2))) if seg.size else 0.0


def noise_track(noise: list, num_samples: int, rng: np.random.Generator, segment_s: tuple = (5.0, 20.0),
                fade_s: float = 0.05) -> tuple[np.ndarray, list]:
    """A unit-RMS noise track of `num_samples` from random segments of the recordings in `noise`
    (each recording normalised to unit RMS first), joined with short crossfades."""
    recs = [_to_float(n) for n in noise if np.asarray(n).size > SR]
    if not recs:
        raise ValueError("noise recordings must be longer than 1 s")
    recs = [r / max(np.sqrt(np.mean(r ** 2)), 1e-9) for r in recs]
    fade = int(fade_s * SR)
    out = np.zeros(num_samples + fade)
    used = []
    pos = 0
    while pos < num_samples:
        k = int(rng.integers(len(recs)))
        r = recs[k]
        length = min(int(rng.uniform(*segment_s) * SR), r.size)
        start = int(rng.integers(0, r.size - length + 1))
        seg = r[start:start + length].copy()
        ramp = np.linspace(0.0, 1.0, min(fade, seg.size // 2))
        if pos > 0:
            seg[:ramp.size] *= ramp
        seg[seg.size - ramp.size:] *= ramp[::-1]
        end = min(pos + seg.size, out.size)
        out[pos:end] += seg[:end - pos]
        used.append(k)
        pos = end - ramp.size if end < out.size else end
    out = out[:num_samples]
    return out / max(np.sqrt(np.mean(out ** 2)), 1e-9), used


def build_stream(items: list, noise: list | None, snr_db: float | None, rng: np.random.Generator,
                 gap_s: tuple = (1.0, 2.0), lead_s: float = 1.5, tail_s: float = 1.5,
                 speech_dbfs: float | None = -26.0, noise_names: list | None = None) -> Stream:
    """Lay `items` `[(pcm int16, word, source)]` (or `(pcm, word)`) end to end over noise.

    Each item occupies its clip length; a `_silence_` item leaves that much noise only. Between
    items: a gap uniform in `gap_s`. `lead_s` of noise before the first item (the device waits
    1 s to fill its window). `noise=None` or `snr_db=None`: no background noise added.
    """
    placed = []
    pos = last_end = lead_s
    for item in items:
        pcm, word = item[0], item[1]
        source = item[2] if len(item) > 2 else ""
        pcm = np.asarray(pcm)
        placed.append((pos, pcm, word, source))
        last_end = pos + pcm.shape[0] / SR
        pos = last_end + float(rng.uniform(*gap_s))
    total = int(math.ceil((last_end + tail_s) * SR))
    speech = np.zeros(total)
    events = []
    target = 10 ** (speech_dbfs / 20) if speech_dbfs is not None else None
    levels = []
    for start_s, pcm, word, source in placed:
        label = labels_lib.LABELS[labels_lib.label_index(word)]
        if label == labels_lib.SILENCE:
            events.append(Event(label, word, start_s, start_s, start_s + pcm.shape[0] / SR, source))
            continue
        lo, hi = word_bounds(pcm)
        x = _to_float(pcm)
        level = active_rms(pcm, (lo, hi))
        if target is not None and level > 0:
            x = x * (target / level)
            level = target
        levels.append(level)
        s = int(round(start_s * SR))
        speech[s:s + x.size] += x[:total - s]
        events.append(Event(label, word, start_s, start_s + lo, start_s + hi, source))
    mix = speech
    used_names = []
    if noise and snr_db is not None:
        ref = target if target is not None else (float(np.median(levels)) if levels else 0.1)
        track, used = noise_track(noise, total, rng)
        mix = speech + track * ref / (10 ** (snr_db / 20))
        names = noise_names or [f"noise{i}" for i in range(len(noise))]
        used_names = sorted({names[k] for k in used})
    from kws_tf.audio_io import to_int16

    return Stream(to_int16(np.clip(mix, -1.0, 1.0)), events, snr_db if noise else None, speech_dbfs, used_names)


def plan_items(clips: dict, rng: np.random.Generator, minutes: float, keyword_fraction: float = 0.6,
               unknown_fraction: float = 0.25, mean_gap_s: float = 1.5, reuse: bool = False) -> list:
    """Draw items for a stream of about `minutes`: `clips` maps a word ("yes", ..., any unknown word,
    "_silence_") to a list of `(pcm, source)`; the rest of the items after keywords and unknowns are
    silence gaps. Keywords cycle through the keyword classes evenly. Each clip is used once unless
    `reuse` (then the stream may repeat clips when the supply runs out)."""
    n_items = int(math.ceil(minutes * 60 / (1.0 + mean_gap_s)))
    pools = {w: list(rng.permutation(len(v))) for w, v in clips.items()}
    kw_words = [w for w in labels_lib.KEYWORDS if clips.get(w)]
    unk_words = [w for w in clips if w not in labels_lib.KEYWORDS and w != labels_lib.SILENCE and clips[w]]
    if not kw_words:
        raise ValueError("no keyword clips to build a stream from")

    def take(word):
        if not pools[word]:
            if not reuse:
                return None
            pools[word] = list(rng.permutation(len(clips[word])))
        pcm, source = clips[word][pools[word].pop()]
        return pcm, word, source

    items = []
    kinds = rng.choice(3, size=n_items, p=[keyword_fraction, unknown_fraction,
                                           max(0.0, 1 - keyword_fraction - unknown_fraction)])
    kw_cycle = 0
    for kind in kinds:
        item = None
        if kind == 0:
            for _ in range(len(kw_words)):
                word = kw_words[kw_cycle % len(kw_words)]
                kw_cycle += 1
                item = take(word)
                if item:
                    break
        elif kind == 1 and unk_words:
            item = take(unk_words[int(rng.integers(len(unk_words)))])
        if item is None:
            item = (np.zeros(SR, np.int16), labels_lib.SILENCE, "")
        items.append(item)
    return items


def speech_commands_clips(folder, split: str | None = None, validation_percent: float = 20.0,
                          test_percent: float = 0.0, max_per_word: int | None = None) -> dict:
    """`{word: [(pcm, "word/file.wav")]}` from a Speech Commands folder. The `_unknown_` folder's
    files (`<word>_<speaker>_nohash_<n>.wav`) are keyed by their word. With `split`, only speakers of
    that split (`kws_tf.data.split_of(speaker_of(path), validation_percent, test_percent)`)."""
    from kws_tf.audio_io import AudioError, read_wav
    from kws_tf.data import speaker_of, split_of

    root = pathlib.Path(folder)
    out: dict = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != labels_lib.BACKGROUND_NOISE_DIR):
        for f in sorted(d.glob("*.wav")):
            if split is not None and split_of(speaker_of(f), validation_percent, test_percent) != split:
                continue
            word = d.name
            if d.name == labels_lib.UNKNOWN and "_nohash_" in f.stem and f.stem.count("_") >= 3:
                word = f.stem.split("_")[0]
            if max_per_word and len(out.get(word, [])) >= max_per_word:
                continue
            try:
                pcm = read_wav(f)
            except AudioError:
                continue
            out.setdefault(word, []).append((features.fix_length(pcm), f"{d.name}/{f.name}"))
    return out


def load_noise_folder(folder) -> tuple[list, list]:
    """(recordings int16, names) of the wavs in a background-noise folder."""
    from kws_tf.audio_io import AudioError, read_wav

    recs, names = [], []
    for f in sorted(pathlib.Path(folder).glob("*.wav")):
        try:
            recs.append(read_wav(f))
            names.append(f.name)
        except AudioError:
            continue
    return recs, names


# --------------------------------------------------------------------------- scoring

def _percentile(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def score_detections(detections: list, events: list, duration_s: float, tolerance_s: float = 1.0,
                     early_s: float = 0.1) -> dict:
    """Hit rate, false alarms (per hour of stream) and delays; see the module doc for the rules.

    `detections`: objects with `time_s` and `label` (e.g. `simulate.Detection`), or
    `(time_s, label)` pairs.
    """
    dets = sorted(((float(getattr(d, "time_s", d[0] if isinstance(d, tuple) else 0)),
                    str(getattr(d, "label", d[1] if isinstance(d, tuple) else ""))) for d in detections))
    keywords = [e for e in events if e.is_keyword]
    unknowns = [e for e in events if e.label == labels_lib.UNKNOWN]
    hit = [False] * len(keywords)
    delays_end, delays_onset = [], []
    counts = {"substitution": 0, "duplicate": 0, "on_unknown": 0, "on_background": 0}
    per_label = {k: {"keywords": 0, "hits": 0, "false_alarms": 0} for k in labels_lib.KEYWORDS}
    for e in keywords:
        per_label[e.label]["keywords"] += 1
    matches = []
    for t, label in dets:
        in_window = [i for i, e in enumerate(keywords) if e.onset_s - early_s <= t <= e.end_s + tolerance_s]
        same = [i for i in in_window if keywords[i].label == label]
        fresh = [i for i in same if not hit[i]]
        if fresh:
            i = fresh[0]
            hit[i] = True
            e = keywords[i]
            delays_end.append(t - e.end_s)
            delays_onset.append(t - e.onset_s)
            per_label[label]["hits"] += 1
            matches.append({"time_s": t, "label": label, "result": "hit", "event_onset_s": e.onset_s})
            continue
        if same:
            kind = "duplicate"
        elif in_window:
            kind = "substitution"
        elif any(e.onset_s - early_s <= t <= e.end_s + tolerance_s for e in unknowns):
            kind = "on_unknown"
        else:
            kind = "on_background"
        counts[kind] += 1
        if label in per_label:
            per_label[label]["false_alarms"] += 1
        matches.append({"time_s": t, "label": label, "result": kind})
    n_kw = len(keywords)
    n_hits = int(sum(hit))
    false_alarms = sum(counts.values())
    hours = duration_s / 3600.0
    return {
        "keywords": n_kw,
        "hits": n_hits,
        "misses": n_kw - n_hits,
        "hit_rate": n_hits / n_kw if n_kw else None,
        "detections": len(dets),
        "false_alarms": false_alarms,
        "false_alarm_breakdown": counts,
        "false_alarms_per_hour": false_alarms / hours if hours > 0 else None,
        "duration_s": duration_s,
        "delay_from_end_s": {"median": _percentile(delays_end, 50), "p95": _percentile(delays_end, 95),
                             "min": min(delays_end) if delays_end else None,
                             "max": max(delays_end) if delays_end else None},
        "delay_from_onset_s": {"median": _percentile(delays_onset, 50), "p95": _percentile(delays_onset, 95)},
        "tolerance": {"early_s": early_s, "after_end_s": tolerance_s,
                      "rule": "hit if onset - early_s <= t <= end + after_end_s and same label"},
        "per_label": per_label,
        "matches": matches,
    }
