"""Hit rate against false alarms per hour, and the recogniser operating point for a target.

The model runs over a stream ONCE, through the device twin (`kws_tf.simulate.DeviceTwin`:
the board's C++ front-end + the TFLM model, the step model once per 10 ms hop), and every
result the board's recogniser would see is recorded: its 0..255 scores (the C++ output
scaling) and the audio time it is given (`ScoreTrace`). The recogniser settings are then
swept by replaying only the recogniser (the real C++ `kws::Recognizer` through
`kws_tf.native`, one C call per stream and setting) for each setting; `replay` gives exactly
the detections of a full twin run with the same settings (tests/test_operating_point.py).
The trace also keeps the int8 model outputs, so the score temperature (scores =
softmax(logits / T), `kws::OutputQuantization::temperature`) is swept too without running
the model again (`ScoreTrace.with_temperature`).

    trace = record(model, stream.pcm)                       # one twin run
    points = sweep(trace, stream.events, stream.duration_s, temperatures=(1, 2, 3, 4))
    op = choose(points, target_fa_per_hour=2.0)              # the operating point

`choose` picks, among the swept points with false alarms per hour <= target, the one with
the highest hit rate (ties: fewer false alarms, then the shorter median delay, then the
lower threshold, the longer window, the temperature nearer 1). A stream of M minutes
resolves false alarms in steps of 60/M per hour: a target below that step means "no false
alarm on this stream".

`calibrate` is the export step: a stream of the run's VALIDATION speakers (`run_config.json`
data folder and split, 20 minutes by default with the clips reused, background noise at
`snr_db`, seed 1000 so it is another arrangement than the streaming benchmark's seed 0),
recorded once and swept over settings and temperatures; it returns the chosen settings,
the temperature, what they gave and what larger budgets would give, or the device
defaults with a note when the data cannot make a stream.

Smoothing notes for the step model (one result per 10 ms): the recogniser keeps at most
`Recognizer::kMaxResults` = 64 results, so an `average_window_ms` above 640 ms averages
the last 64 results only; `minimum_count` only matters right after a reset (the window
always holds more results than that in a running stream), so the default grid keeps it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pathlib

import numpy as np

from kws_tf import features, labels as labels_lib
from kws_tf.exported_model import RECOGNIZER_SETTINGS as SETTINGS  # the recogniser settings export may choose

DEFAULT_TARGET_FA_PER_HOUR = 2.0
# Export's calibration stream: long enough that one false alarm is 3/h, and another arrangement of the
# validation clips than benchmarks/streaming.py's (seed 0), which it would otherwise share a stretch with.
DEFAULT_CALIBRATION_MINUTES = 20.0
DEFAULT_CALIBRATION_SEED = 1000
ALTERNATIVE_BUDGETS = (5.0, 10.0, 30.0, 60.0)  # false alarms/h whose best hit rates the export also reports
LOW_HIT_RATE = 0.5  # below this at the target, export's log lists what the other budgets give

# The sweep: thresholds from 60 in steps of 5, every one from 240 (confident models saturate), four averaging windows
# (the longest the 64-result limit allows at 10 ms), the core's suppression and a longer one.
DEFAULT_GRID = {
    "detection_threshold": tuple(range(60, 240, 5)) + tuple(range(240, 256)),
    "average_window_ms": (200, 300, 500, 640),
    "suppression_ms": (1000, 1500),
    "minimum_count": (3,),
}
# Score temperatures export tries (softmax(logits / T) on the device, kws::OutputQuantization): a
# model trained with cross-entropy scores its confident mistakes 255 like its hits, and a
# threshold cannot part them; T > 1 spreads them out again (BENCHMARKS.md section 7.3).
DEFAULT_TEMPERATURES = (1.0, 2.0, 3.0, 4.0)


@dataclasses.dataclass
class ScoreTrace:
    """What the recogniser is given over one twin run: `scores` [N, classes] uint8 and
    `times_ms` [N] (audio time since the start, as the board passes it). `outputs` [N, classes]
    int8 are the model outputs they came from (with `output` = (scale, zero point, is_logits,
    temperature)), so `with_temperature` can re-score them as the device would at another
    score temperature without running the model again."""

    times_ms: np.ndarray
    scores: np.ndarray
    labels: tuple
    silence_index: int
    unknown_index: int
    duration_s: float
    outputs: np.ndarray | None = None
    output: tuple | None = None

    def __post_init__(self):
        self.times_ms = np.ascontiguousarray(self.times_ms, np.uint32)
        self.scores = np.ascontiguousarray(self.scores, np.uint8)

    def __len__(self):
        return int(self.times_ms.shape[0])

    @property
    def temperature(self) -> float:
        return float(self.output[3]) if self.output else 1.0

    def with_temperature(self, temperature: float) -> "ScoreTrace":
        """The same run scored at `temperature` (the C++ output scaling)."""
        from kws_tf import native

        if self.outputs is None or self.output is None:
            raise ValueError("this trace kept no model outputs to re-score")
        scale, zero_point, is_logits, _ = self.output
        scores = native.scores_from_output(self.outputs, scale, zero_point, is_logits, temperature)
        return dataclasses.replace(self, scores=scores, output=(scale, zero_point, is_logits, float(temperature)))


def record(model, pcm, tail_ms: int = 1000, period_frames: int | None = None,
           recognizer: dict | None = None, temperature: float | None = None) -> tuple[ScoreTrace, list]:
    """One twin run over `pcm` (`DeviceTwin.run`, same tail) -> (trace, the run's detections with
    `recognizer` settings and score `temperature`, default the export's). The trace holds every
    result the app handed its recogniser."""
    from kws_tf import native, simulate

    twin = simulate.DeviceTwin(model, period_frames=period_frames, recognizer=recognizer, temperature=temperature)
    outputs = []
    inner = twin.app._run_fn

    def run_fn(x):
        out = np.asarray(inner(x)).reshape(-1)
        outputs.append((twin.app.counters["audio_ms"], out.astype(np.int8, copy=True)))
        return out

    twin.app._run_fn = run_fn
    try:
        dets = twin.run(pcm, tail_ms=tail_ms)
        if twin.counters["invoke_errors"]:
            raise simulate.SimulateError(f"{twin.counters['invoke_errors']} model invocations failed")
        # Warm-up runs (a step model's first NUM_FRAMES + delay frames) skip the recogniser;
        # it got the last `recognitions` results, at the audio time of their run.
        recognized = twin.counters["recognitions"]
        rc = twin.recognizer_config
        temp = twin.temperature
    finally:
        twin.close()
    keep = outputs[len(outputs) - recognized:] if recognized else []
    raw = np.stack([o for _, o in keep]) if keep else np.zeros((0, len(model.labels)), np.int8)
    output = (model.output_scale, model.output_zero_point, model.output_is_logits, temp)
    scores = native.scores_from_output(raw, *output)
    times = np.array([t for t, _ in keep], np.uint32)
    total = np.asarray(pcm).shape[0] / features.SAMPLE_RATE
    trace = ScoreTrace(times, scores, tuple(model.labels), int(rc.get("silence_index", -1)),
                       int(rc.get("unknown_index", -1)), total, raw, output)
    return trace, dets


def replay(trace: ScoreTrace, settings: dict | None = None) -> list:
    """The C++ recogniser over the recorded results with `settings` -> [simulate.Detection]."""
    from kws_tf import native, simulate

    cfg = {k: int(v) for k, v in (settings or {}).items() if v is not None}
    cfg.update(num_classes=trace.scores.shape[1], silence_index=trace.silence_index,
               unknown_index=trace.unknown_index)
    rec = native.NativeRecognizer(**cfg)
    try:
        return [simulate.Detection(t / 1000.0, trace.labels[label], int(score))
                for label, score, t in rec.replay(trace.scores, trace.times_ms)]
    finally:
        rec.close()


def expand_grid(grid: dict | None = None, base: dict | None = None) -> list:
    """Every combination of `grid` (missing keys: `base`, else the device defaults)."""
    from kws_tf import native

    defaults = {k: v for k, v in native.recognizer_defaults().items() if k in SETTINGS}
    defaults.update({k: v for k, v in (base or {}).items() if k in SETTINGS and v is not None})
    grid = dict(grid or DEFAULT_GRID)
    axes = [(k, tuple(grid.get(k, (defaults[k],)))) for k in SETTINGS]
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def evaluate(trace: ScoreTrace, events: list, duration_s: float, settings: dict, tolerance_s: float = 1.0) -> dict:
    """One point: the settings (and the trace's score temperature) and what they give on the stream."""
    from kws_tf import stream

    s = stream.score_detections(replay(trace, settings), events, duration_s, tolerance_s=tolerance_s)
    return {**{k: int(v) for k, v in settings.items()}, "score_temperature": trace.temperature,
            "hit_rate": s["hit_rate"], "false_alarms_per_hour": s["false_alarms_per_hour"],
            "hits": s["hits"], "keywords": s["keywords"], "false_alarms": s["false_alarms"],
            "false_alarm_breakdown": s["false_alarm_breakdown"],
            "delay_median_s": s["delay_from_end_s"]["median"], "delay_p95_s": s["delay_from_end_s"]["p95"]}


def sweep(trace: ScoreTrace, events: list, duration_s: float, grid: dict | None = None,
          tolerance_s: float = 1.0, base: dict | None = None, temperatures=None) -> list:
    """`evaluate` for every setting of `expand_grid(grid, base)`, at each score temperature of
    `temperatures` (None: the trace's own)."""
    traces = [trace] if not temperatures else [trace.with_temperature(t) for t in temperatures]
    settings = expand_grid(grid, base)
    return [evaluate(tr, events, duration_s, s, tolerance_s) for tr in traces for s in settings]


def _rank(p: dict):
    return (-(p["hit_rate"] or 0.0), p["false_alarms_per_hour"],
            p["delay_median_s"] if p["delay_median_s"] is not None else math.inf,
            p["detection_threshold"], -p["average_window_ms"], p["suppression_ms"], p["minimum_count"],
            abs(math.log(p.get("score_temperature", 1.0))))


def choose(points: list, target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR) -> dict:
    """The operating point: highest hit rate with false alarms/h <= target (see the module doc);
    when no point meets the target, the point with the fewest false alarms (`meets_target` False)."""
    if not points:
        raise ValueError("no sweep points")
    ok = [p for p in points if p["false_alarms_per_hour"] <= target_fa_per_hour + 1e-9]
    if ok:
        best = min(ok, key=_rank)
        return {**best, "target_fa_per_hour": float(target_fa_per_hour), "meets_target": True}
    best = min(points, key=lambda p: (p["false_alarms_per_hour"],) + _rank(p))
    return {**best, "target_fa_per_hour": float(target_fa_per_hour), "meets_target": False}


def frontier(points: list) -> list:
    """The DET curve: points no other point beats (as many false alarms or fewer and a higher
    hit rate), by false alarms per hour ascending; one point per false-alarm level."""
    best = {}
    for p in points:
        fa = round(p["false_alarms_per_hour"], 6)
        if fa not in best or _rank(p) < _rank(best[fa]):
            best[fa] = p
    out, top = [], -1.0
    for fa in sorted(best):
        p = best[fa]
        if (p["hit_rate"] or 0.0) > top:
            out.append(p)
            top = p["hit_rate"] or 0.0
    return out


def monotone_violations(points: list) -> list:
    """Pairs where, all else equal, a HIGHER threshold gave MORE false alarms. The recogniser can do
    this only by re-arming (a score dipping under the higher threshold and rising again later than
    `suppression_ms`); each is listed so a curve can be read with that in mind."""
    groups = {}
    for p in points:
        key = tuple(p[k] for k in SETTINGS if k != "detection_threshold") + (p.get("score_temperature", 1.0),)
        groups.setdefault(key, []).append(p)
    bad = []
    for key, ps in groups.items():
        ps = sorted(ps, key=lambda p: p["detection_threshold"])
        for lo, hi in zip(ps, ps[1:]):
            if hi["false_alarms"] > lo["false_alarms"]:
                bad.append({"settings": dict(zip([k for k in SETTINGS if k != "detection_threshold"]
                                                 + ["score_temperature"], key)),
                            "thresholds": [lo["detection_threshold"], hi["detection_threshold"]],
                            "false_alarms": [lo["false_alarms"], hi["false_alarms"]]})
    return bad


def settings_of(point: dict) -> dict:
    """The recogniser's (integer) settings of a point; its score temperature is `point["score_temperature"]`."""
    return {k: int(point[k]) for k in SETTINGS}


# --------------------------------------------------------------------------- output

def _pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def _s(x):
    return "-" if x is None else f"{x:.2f}"


def markdown_table(curves: dict, max_rows: int = 14, base_label: str = "device defaults") -> str:
    """`curves`: {"<dB>": {"operating_point": ..., "points": [...], "defaults": point}} -> Markdown;
    `base_label` names the "defaults" row (the settings the twin ran with)."""
    lines = ["| SNR | score T | threshold | window ms | suppression ms | hit rate | false alarms / h | "
             "delay median / p95 s | |", "|---|---|---|---|---|---|---|---|---|"]
    for snr, c in curves.items():
        rows = frontier(c["points"])
        if len(rows) > max_rows:
            idx = np.unique(np.linspace(0, len(rows) - 1, max_rows).round().astype(int))
            rows = [rows[i] for i in idx]
        op = c["operating_point"]
        extra = [(base_label, c.get("defaults")), ("**operating point**", op)]
        for p, note in [(r, "") for r in rows] + [(p, n) for n, p in extra if p]:
            lines.append(f"| {snr} dB | {p.get('score_temperature', 1.0):g} | {p['detection_threshold']} | "
                         f"{p['average_window_ms']} | {p['suppression_ms']} | "
                         f"{_pct(p['hit_rate'])} | {p['false_alarms_per_hour']:.1f} | "
                         f"{_s(p['delay_median_s'])} / {_s(p['delay_p95_s'])} | {note} |")
    return "\n".join(lines) + "\n"


def det_plot(curves: dict, path, title: str = "") -> None:
    """DET-style PNG: false alarms per hour (x, symlog) against miss rate (y), the frontier of the
    sweep per SNR, the operating point marked."""
    from kws_tf import plots

    plots.det_curves(curves, path, title=title)


# --------------------------------------------------------------------------- export step

def validation_streams_source(run_config: dict, data_dir=None) -> dict:
    """Where export's calibration stream comes from: the run's data folder (or `data_dir`), the
    VALIDATION split of its percentages, and its noise folder."""
    data = run_config.get("data", {}) if isinstance(run_config, dict) else {}
    folder = data_dir or data.get("path")
    noise = data.get("noise_dir")
    if noise is None and folder:
        cand = pathlib.Path(folder) / labels_lib.BACKGROUND_NOISE_DIR
        noise = str(cand) if cand.is_dir() else None
    return {"folder": folder, "noise_dir": noise, "split": "validation",
            "validation_percent": float(data.get("validation_percent", 10.0)),
            "test_percent": float(data.get("test_percent", 10.0))}


def calibrate(model, run_config: dict, target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR,
              snr_db: float = 20.0, minutes: float = DEFAULT_CALIBRATION_MINUTES, seed: int = DEFAULT_CALIBRATION_SEED,
              data_dir=None,
              grid: dict | None = None, min_keywords: int = 100, temperatures=DEFAULT_TEMPERATURES, log=print) -> dict:
    """The export step (module doc). Returns {"settings", "score_temperature", "source", "expected":
    point or None, "note", "stream": {...}}; `source` is "calibrated" or "device_defaults". The
    score temperature is chosen with the settings, among `temperatures` (None: the model's own)."""
    import time

    from kws_tf import native, stream

    t0 = time.perf_counter()
    defaults = {k: v for k, v in native.recognizer_defaults().items() if k in SETTINGS}
    src = validation_streams_source(run_config, data_dir)
    desc = {**src, "snr_db": snr_db, "minutes": minutes, "seed": seed, "target_fa_per_hour": target_fa_per_hour,
            "clips_reused": True}

    def fallback(note):
        log(f"operating point: {note}; the device defaults are kept")
        return {"source": "device_defaults", "settings": defaults, "score_temperature": 1.0, "expected": None,
                "note": note, "stream": desc}

    folder = src["folder"]
    if not folder or not pathlib.Path(folder).is_dir():
        return fallback(f"no data folder to build validation streams from ({folder!r})")
    clips = stream.speech_commands_clips(folder, split="validation", validation_percent=src["validation_percent"],
                                         test_percent=src["test_percent"])
    noise, names = ([], [])
    if src["noise_dir"] and pathlib.Path(src["noise_dir"]).is_dir():
        noise, names = stream.load_noise_folder(src["noise_dir"])
    distinct = sum(len(v) for w, v in clips.items() if w in labels_lib.KEYWORDS)
    if distinct < min_keywords:  # a stream repeating a handful of clips would calibrate on those alone
        return fallback(f"the validation clips of {folder} hold {distinct} keyword clips (fewer than {min_keywords})")
    rng = np.random.default_rng(seed)
    try:
        items = stream.plan_items(clips, rng, minutes, reuse=True)
    except ValueError as e:
        return fallback(f"validation clips of {folder}: {e}")
    n_kw = sum(1 for it in items if labels_lib.LABELS[labels_lib.label_index(it[1])] in labels_lib.KEYWORDS)
    snr = snr_db if noise else None
    s = stream.build_stream(items, noise, snr, np.random.default_rng(seed + 1), noise_names=names)
    trace, _ = record(model, s.pcm, temperature=1.0)
    points = sweep(trace, s.events, s.duration_s, grid, temperatures=temperatures)
    op = choose(points, target_fa_per_hour)
    default_point = evaluate(trace, s.events, s.duration_s, defaults)  # the plain softmax, core defaults
    desc.update(snr_db=snr, duration_s=s.duration_s, keywords=n_kw, distinct_keyword_clips=distinct,
                noise_sources=s.noise_sources,
                fa_resolution_per_hour=3600.0 / s.duration_s, settings_tried=len(points),
                temperatures_tried=list(temperatures or [trace.temperature]),
                seconds=time.perf_counter() - t0)
    note = (f"{s.duration_s / 60:.1f} min of validation speakers at "
            f"{'no added noise' if snr is None else f'{snr:g} dB SNR'}, {n_kw} keywords ({distinct} distinct clips, "
            f"seed {seed}); one false alarm = "
            f"{3600.0 / s.duration_s:.1f}/h")
    if not op["meets_target"]:
        note += f"; no setting reached {target_fa_per_hour:g} false alarms/h: the fewest false alarms chosen"
    # what other budgets would buy on the same stream, so a user can choose with numbers in hand
    alternatives = {f"{b:g}": {k: choose(points, b)[k] for k in ("hit_rate", "false_alarms_per_hour", "meets_target",
                                                                 "detection_threshold", "score_temperature")}
                    for b in ALTERNATIVE_BUDGETS if b > target_fa_per_hour}
    log(f"operating point: score temperature {op['score_temperature']:g}, threshold {op['detection_threshold']}, "
        f"window {op['average_window_ms']} ms, "
        f"suppression {op['suppression_ms']} ms: hit rate {_pct(op['hit_rate'])} at "
        f"{op['false_alarms_per_hour']:.1f} false alarms/h (target {target_fa_per_hour:g}; {note}; "
        f"device defaults: {_pct(default_point['hit_rate'])} at {default_point['false_alarms_per_hour']:.1f}/h)")
    if (op["hit_rate"] or 0.0) < LOW_HIT_RATE and alternatives:
        log(f"warning: at {target_fa_per_hour:g} false alarms/h this model catches {_pct(op['hit_rate'])} of the "
            "keywords of this stream; other budgets: "
            + ", ".join(f"{_pct(a['hit_rate'])} at <= {b}/h" for b, a in alternatives.items())
            + " (choose with --target_fa_per_hour)")
    if not op["meets_target"]:
        log(f"warning: no recogniser setting reaches {target_fa_per_hour:g} false alarms/h on this stream; the "
            f"fewest false alarms cost hit rate ({_pct(op['hit_rate'])} vs {_pct(default_point['hit_rate'])} with "
            "the device defaults): choose with --target_fa_per_hour, --detection_threshold or --nooperating_point")
    return {"source": "calibrated", "settings": settings_of(op), "score_temperature": op["score_temperature"],
            "expected": op, "device_defaults": default_point, "alternatives": alternatives, "note": note,
            "stream": desc}


def read_exported_temperature(folder) -> float:
    """The score temperature an export chose (`export_report.json["recognizer"]["score_temperature"]`), else 1."""
    from kws_tf.exported_model import _exported_temperature

    try:
        return _exported_temperature(json.loads((pathlib.Path(folder) / "export_report.json").read_text()))
    except (OSError, ValueError):
        return 1.0


def read_exported_settings(folder) -> dict | None:
    """The recogniser settings an export chose (`export_report.json["recognizer"]["settings"]`), or None."""
    path = pathlib.Path(folder) / "export_report.json"
    try:
        rec = json.loads(path.read_text()).get("recognizer")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("settings"), dict):
        return None
    return {k: int(v) for k, v in rec["settings"].items() if k in SETTINGS}


def model_from_bytes(model_bytes: bytes, normalization, labels, delay_frames: int | None = None):
    """A `simulate.ExportedModel` for flatbuffer bytes not yet written to an export folder (the export
    step): written with its constants to a temporary folder and loaded as the twin loads exports."""
    import tempfile

    from kws_tf import simulate

    with tempfile.TemporaryDirectory(prefix="kws_op_") as tmp:
        folder = pathlib.Path(tmp)
        name = "model_step_int8.tflite" if delay_frames is not None else "model_int8.tflite"
        (folder / name).write_bytes(model_bytes)
        (folder / "normalization.json").write_text(json.dumps(normalization.to_dict()))
        report = {"labels": list(labels)}
        if delay_frames is not None:
            report["step_model"] = {"delay_frames": int(delay_frames)}
        (folder / "export_report.json").write_text(json.dumps(report))
        return simulate.load_exported(folder / name)


def export_step(model_bytes: bytes, normalization, labels, delay_frames: int | None, run_config: dict,
                options: dict | None = None, log=print) -> dict:
    """kws_tf.export's operating-point step on the model the board runs by default (the step model
    when there is one). `options`: {"enabled" (True), "target_fa_per_hour" (2), "snr_db" (20),
    "minutes" (20), "seed" (1000), "temperatures" (DEFAULT_TEMPERATURES), "overrides": {setting: value}}
    -> the report's "recognizer" entry: {"source", "settings", "score_temperature", "expected", "note",
    "stream", "overrides"}; user overrides (recogniser settings and "score_temperature") win over
    the calibrated (or default) values and are listed; a temperature override is then the only
    temperature calibrated for."""
    from kws_tf import native

    o = dict(options or {})
    raw = o.get("overrides") or {}
    overrides = {k: int(v) for k, v in raw.items() if k in SETTINGS and v is not None}
    temperature = raw.get("score_temperature")
    if temperature is not None and not float(temperature) > 0:
        raise ValueError(f"the score temperature must be > 0 (got {temperature})")
    temperatures = [float(temperature)] if temperature is not None else o.get("temperatures", DEFAULT_TEMPERATURES)
    if not o.get("enabled", True):
        defaults = {k: v for k, v in native.recognizer_defaults().items() if k in SETTINGS}
        out = {"source": "device_defaults", "settings": defaults, "score_temperature": 1.0, "expected": None,
               "note": "operating point not calibrated (--nooperating_point)", "stream": None}
    else:
        model = model_from_bytes(model_bytes, normalization, labels, delay_frames)
        out = calibrate(model, run_config, target_fa_per_hour=float(o.get("target_fa_per_hour",
                                                                          DEFAULT_TARGET_FA_PER_HOUR)),
                        snr_db=float(o.get("snr_db", 20.0)),
                        minutes=float(o.get("minutes", DEFAULT_CALIBRATION_MINUTES)),
                        seed=int(o.get("seed", DEFAULT_CALIBRATION_SEED)), data_dir=o.get("data_dir"),
                        temperatures=temperatures, log=log)
    if temperature is not None:
        out["score_temperature"] = float(temperature)
        overrides["score_temperature"] = float(temperature)
    if overrides:
        out["settings"] = {**out["settings"], **{k: v for k, v in overrides.items() if k in SETTINGS}}
        out["note"] = f"{out['note']}; overridden at export: {overrides} (the expected figures are for the chosen point)"
        log(f"operating point: overridden at export: {overrides}")
    out["overrides"] = overrides
    return out


def header_note(rec: dict) -> str:
    """Comment lines for kws_settings.h describing where the recogniser settings come from."""
    exp = rec.get("expected")
    lines = [f"source: {rec.get('source')}; {rec.get('note', '')}",
             f"score temperature {rec.get('score_temperature', 1.0):g}: scores = softmax(logits / T)"]
    if exp:
        lines.append(f"expected on that stream: hit rate {_pct(exp['hit_rate'])} at "
                     f"{exp['false_alarms_per_hour']:.1f} false alarms/h (target {exp['target_fa_per_hour']:g}/h)")
    return "\n".join(lines)
