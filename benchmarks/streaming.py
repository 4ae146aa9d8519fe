"""Streaming benchmark: the device twin on a long stream of real speech over real background noise.

    python benchmarks/streaming.py [--export export/real_c32] [--model EXPORT_DIR|PATH.tflite] [--minutes 10]
        [--snr 20 10] [--data_dir FOLDER] [--noise_dir FOLDER] [--run_config runs/real_c32/run_config.json]
        [--json out.json] [--save_dir DIR] [--detection_threshold S] [--period_frames N] [--tolerance_s 1.0]
        [--seed 0] [--no_sweep] [--target_fa_per_hour 2] [--curve_prefix runs/det_NAME]
        [--score_temperature T [T ...]]

The curve (issue 9): the model runs over each stream ONCE (the twin), the recogniser's inputs
are recorded, and the real C++ recogniser is replayed for every setting of a grid (detection
threshold x averaging window x suppression; `kws_tf.operating_point`), giving hit rate against
false alarms per hour: a Markdown table (`<curve_prefix>.md`), a DET-style PNG
(`<curve_prefix>.png`, false alarms/h against miss rate, one curve per SNR) and a JSON
(`<curve_prefix>.json`: {"snr": {"<dB>": {"operating_point": {hit_rate, false_alarms_per_hour,
delay_median_s, delay_p95_s, settings...}, "points": [...], "frontier": [...]}}}), the operating
point being the highest hit rate at <= --target_fa_per_hour on that stream. The twin runs at the
export's score temperature (`export_report.json["recognizer"]["score_temperature"]`, else 1);
`--score_temperature` adds temperatures the sweep re-scores the same run at.

Model: `--model` names a .tflite in an export folder: `model_step_int8.tflite` (the per-frame
step model: one run per 10 ms hop, as the board's default build) or `model_int8.tflite` (the
windowed model every `--period_frames` frames). Without `--model`, the export folder's step
model when it has one, else its windowed model.

Stream: with `--data_dir`, EVERY clip of that Speech Commands-layout folder (e.g. speakers the
model never saw) and its `_background_noise_` (or `--noise_dir`); by default, clips of
`$KWS_REAL_DATA/sc_v2_test_dev` spoken by the VALIDATION speakers of the
real-subset split (`kws_tf.data.split_of(speaker_of(path), validation_percent, test_percent)`,
percentages read from the model's run_config.json: the model never trained on them), laid
end to end with 1.0-2.0 s gaps: ~60 % keywords (cycling through the ten), ~25 % unknown words,
the rest noise-only gaps; every word is scaled to -26 dBFS active level and the background
noise (`$KWS_REAL_DATA/background_noise`, random segments of the six recordings) is set to the
stated SNR (see `kws_tf.stream`). The same layout is used at every SNR, only the noise level
changes. Because the clips come from the official Speech Commands test split, these figures
are not comparable to published Speech Commands results.

Detection: `kws_tf.simulate.DeviceTwin` (the board's C++ front-end + recogniser around the
real TFLM interpreter; the step model through `kws_tf.tflm.StepRunner`), with the recogniser
settings the export chose (`export_report.json["recognizer"]`, else the device defaults)
unless overridden by the flags. A step model's detections come `delay_frames` hops later than the
windowed model's (its look-ahead), which the delay figures include. Scoring: `kws_tf.stream.
score_detections` (hit = same label within [onset - 0.1 s, end + tolerance]; every other
detection is a false alarm; delays measured from the word's energy end and onset).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _split_percentages(run_config: pathlib.Path | None) -> tuple[float, float, str]:
    if run_config and run_config.is_file():
        data = json.loads(run_config.read_text()).get("data", {})
        return float(data.get("validation_percent", 20.0)), float(data.get("test_percent", 0.0)), str(run_config)
    return 20.0, 0.0, "default (no run_config.json found)"


def default_model(export: pathlib.Path) -> pathlib.Path:
    """The export folder's step model when it has one (the board's default), else its windowed model."""
    step = export / "model_step_int8.tflite"
    return step if step.is_file() else export / "model_int8.tflite"


def _fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", default=str(ROOT / "export" / "real_c32"),
                   help="export folder; its step model is used when it has one (see --model)")
    p.add_argument("--model", default=None,
                   help="an export folder (its step model if present) or a .tflite in one: model_step_int8.tflite "
                        "or model_int8.tflite (default: the --export folder's step model, else its model_int8.tflite)")
    p.add_argument("--data_dir", default=None,
                   help="Speech Commands-layout folder; every clip is used (default: the validation speakers of "
                        "$KWS_REAL_DATA/sc_v2_test_dev)")
    p.add_argument("--noise_dir", default=None,
                   help="background noise wavs (default: <data_dir>/_background_noise_ if present, else "
                        "$KWS_REAL_DATA/background_noise)")
    p.add_argument("--no_sweep", action="store_true", help="only the twin run, no recogniser sweep")
    p.add_argument("--target_fa_per_hour", type=float, default=2.0,
                   help="the operating point: highest hit rate at this many false alarms per hour or fewer")
    p.add_argument("--curve_prefix", default=None,
                   help="table/PNG/JSON of the sweep: PREFIX.md/.png/.json (default: runs/det_<export name>)")
    p.add_argument("--run_config", default=None,
                   help="run_config.json of the model's training run (default: runs/<export name>/run_config.json)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--snr", nargs="+", default=["20", "10"], help="SNRs in dB ('clean': no added noise)")
    p.add_argument("--speech_dbfs", type=float, default=-26.0)
    p.add_argument("--tolerance_s", type=float, default=1.0)
    p.add_argument("--period_frames", type=int, default=None)
    for name in ("average_window_ms", "detection_threshold", "suppression_ms", "minimum_count"):
        p.add_argument(f"--{name}", type=int, default=None)
    p.add_argument("--score_temperature", type=float, nargs="+", default=None,
                   help="score temperatures to sweep (scores = softmax(logits / T)), besides the export's own; the "
                        "twin run always uses the export's (export_report.json, else 1), as the device does")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="results JSON (default: runs/streaming_<export name>.json)")
    p.add_argument("--save_dir", default=None, help="also write each stream's wav and ground truth here")
    args = p.parse_args()

    from kws_tf import simulate, stream

    from kws_tf import operating_point

    data = os.environ.get("KWS_REAL_DATA")
    if args.data_dir is None and (not data or not (pathlib.Path(data) / "sc_v2_test_dev").is_dir()):
        sys.exit("error: set KWS_REAL_DATA to the shared real-audio folder (with sc_v2_test_dev/) or give --data_dir")
    data = pathlib.Path(data) if data else None
    model_path = pathlib.Path(args.model) if args.model else default_model(pathlib.Path(args.export))
    if model_path.is_dir():
        model_path = default_model(model_path)
    if args.run_config is None and (model_path.parent / "export_report.json").is_file():
        try:
            md = json.loads((model_path.parent / "export_report.json").read_text()).get("model_dir")
        except ValueError:
            md = None
        if md and (pathlib.Path(md) / "run_config.json").is_file():
            args.run_config = str(pathlib.Path(md) / "run_config.json")
    name = model_path.parent.name
    run_config = pathlib.Path(args.run_config) if args.run_config else ROOT / "runs" / name / "run_config.json"
    try:
        model = simulate.load_exported(model_path)
    except simulate.SimulateError as e:
        sys.exit(f"error: {e}")
    if model.is_step and args.period_frames not in (None, 1):
        sys.exit("error: --period_frames applies to the windowed model; the step model runs on every frame")
    val_pct, test_pct, split_source = _split_percentages(run_config)
    snrs = [None if s.lower() in ("clean", "inf", "none") else float(s) for s in args.snr]

    t0 = time.perf_counter()
    if args.data_dir:
        clips = stream.speech_commands_clips(args.data_dir)
        speakers = f"every clip of {args.data_dir}"
        own_noise = pathlib.Path(args.data_dir) / stream.labels_lib.BACKGROUND_NOISE_DIR
        noise_dir = args.noise_dir or (own_noise if own_noise.is_dir() else (data / "background_noise" if data else None))
    else:
        clips = stream.speech_commands_clips(data / "sc_v2_test_dev", split="validation",
                                             validation_percent=val_pct, test_percent=test_pct)
        speakers = f"validation split of split_of(speaker, {val_pct}, {test_pct}) ({split_source})"
        noise_dir = args.noise_dir or data / "background_noise"
    noise, noise_names = stream.load_noise_folder(noise_dir) if noise_dir else ([], [])
    if not noise and any(s is not None for s in snrs):
        sys.exit(f"error: no background noise wavs in {noise_dir}")
    rng = np.random.default_rng(args.seed)
    items = stream.plan_items(clips, rng, args.minutes, reuse=True)
    t_load = time.perf_counter() - t0
    n_clips = {w: len(v) for w, v in clips.items()}
    kind = (f"step model, every 10 ms hop, look-ahead {model.step_delay_frames} frames" if model.is_step
            else "windowed model")
    print(f"model {model_path} ({len(model.model_bytes)} bytes, {kind}); {speakers}: "
          f"{sum(v for w, v in n_clips.items() if w in stream.labels_lib.KEYWORDS)} keyword clips, "
          f"{sum(v for w, v in n_clips.items() if w not in stream.labels_lib.KEYWORDS)} other clips; "
          f"{len(items)} stream items", flush=True)

    if args.score_temperature and min(args.score_temperature) <= 0:
        sys.exit("error: --score_temperature values must be > 0")
    device_temperature = operating_point.read_exported_temperature(model_path.parent)
    temperatures = [device_temperature] + sorted(set(args.score_temperature or []) - {device_temperature})
    exported = operating_point.read_exported_settings(model_path.parent) or {}
    rec = {**exported, **{k: getattr(args, k) for k in operating_point.SETTINGS if getattr(args, k) is not None}}
    results = []
    curves = {}
    for snr in snrs:
        t1 = time.perf_counter()
        s = stream.build_stream(items, noise, snr, np.random.default_rng(args.seed + 1), speech_dbfs=args.speech_dbfs,
                                noise_names=noise_names)
        t_build = time.perf_counter() - t1
        t2 = time.perf_counter()
        trace, dets = operating_point.record(model, s.pcm, period_frames=args.period_frames, recognizer=rec,
                                             temperature=temperatures[0])
        t_twin = time.perf_counter() - t2
        twin = simulate.DeviceTwin(model, period_frames=args.period_frames, recognizer=rec, temperature=temperatures[0])
        score = stream.score_detections(dets, s.events, s.duration_s, tolerance_s=args.tolerance_s)
        label = "clean" if snr is None else f"{snr:g} dB"
        print(f"SNR {label:>6}: {s.duration_s / 60:.1f} min, {score['keywords']} keywords: hit rate "
              f"{100 * score['hit_rate']:.1f} %, false alarms {score['false_alarms']} "
              f"({score['false_alarms_per_hour']:.1f}/h; {score['false_alarm_breakdown']}), delay from word end "
              f"median {_fmt(score['delay_from_end_s']['median'])} s / p95 {_fmt(score['delay_from_end_s']['p95'])} s "
              f"(from onset: {_fmt(score['delay_from_onset_s']['median'])} / {_fmt(score['delay_from_onset_s']['p95'])} s); "
              f"twin {t_twin:.1f} s for {len(trace)} recogniser inputs", flush=True)
        label_key = "clean" if snr is None else f"{snr:g}"
        if not args.no_sweep:
            t3 = time.perf_counter()
            points = operating_point.sweep(trace, s.events, s.duration_s, tolerance_s=args.tolerance_s, base=rec,
                                           temperatures=temperatures)
            op = operating_point.choose(points, args.target_fa_per_hour)
            defaults = operating_point.evaluate(trace, s.events, s.duration_s,
                                                {k: v for k, v in twin.recognizer_config.items()
                                                 if k in operating_point.SETTINGS}, args.tolerance_s)
            curves[label_key] = {"operating_point": op, "twin_settings": defaults,
                                 "frontier": operating_point.frontier(points),
                                 "monotone_violations": operating_point.monotone_violations(points),
                                 "duration_s": s.duration_s, "keywords": score["keywords"],
                                 "fa_resolution_per_hour": 3600.0 / s.duration_s,
                                 "sweep_seconds": time.perf_counter() - t3, "points": points}
            print(f"  sweep of {len(points)} settings in {time.perf_counter() - t3:.1f} s: operating point for "
                  f"<= {args.target_fa_per_hour:g}/h: score temperature {op['score_temperature']:g}, threshold "
                  f"{op['detection_threshold']}, window "
                  f"{op['average_window_ms']} ms, suppression {op['suppression_ms']} ms: hit rate "
                  f"{100 * op['hit_rate']:.1f} %, {op['false_alarms_per_hour']:.1f} false alarms/h"
                  f"{'' if op['meets_target'] else ' (target not reached)'}", flush=True)
        results.append({
            "snr_db": snr, "duration_s": s.duration_s, "noise_sources": s.noise_sources,
            "recognizer_inputs": len(trace), "twin_seconds": t_twin, "build_seconds": t_build,
            "detections": [{"time_s": d.time_s, "label": d.label, "score": d.score} for d in dets],
            **{k: v for k, v in score.items()},
        })
        if args.save_dir:
            out = pathlib.Path(args.save_dir)
            out.mkdir(parents=True, exist_ok=True)
            from kws_tf.audio_io import write_wav

            tag = "clean" if snr is None else f"snr{snr:g}"
            write_wav(out / f"stream_{tag}.wav", s.pcm)
            (out / f"stream_{tag}_truth.json").write_text(json.dumps(s.truth_dict(), indent=1))
        twin_config = {"model_kind": model.kind, "period_frames": twin.period_frames, "score_temperature": twin.temperature,
                       "step_delay_frames": twin.delay_frames, **twin.recognizer_config}
        twin.close()

    total = time.perf_counter() - t0
    print(f"total {total:.1f} s (loading clips {t_load:.1f} s) on {os.cpu_count()} cores, {platform.machine()}")
    report = {
        "model": str(model_path), "model_kind": model.kind, "model_bytes": len(model.model_bytes),
        "data": (str(args.data_dir) if args.data_dir else
                 "sc_v2_test_dev (official Speech Commands v0.02 TEST clips; not a Speech Commands test figure)"),
        "speakers": speakers, "noise_dir": str(noise_dir),
        "minutes": args.minutes, "speech_dbfs": args.speech_dbfs, "seed": args.seed,
        "twin_config": twin_config, "tolerance_s": args.tolerance_s,
        "delay_definition": "detection time (audio time of the inference that fired) minus the word's energy end "
                            "(delay_from_end_s) or onset (delay_from_onset_s); words located by 20 ms frame energy "
                            "within 20 dB of the clip's loudest frame; a step model's detections include its "
                            "look-ahead (step_delay_frames x 10 ms)",
        "false_alarm_definition": "every detection that is not the first same-label detection within "
                                  "[onset - 0.1 s, end + tolerance] of a keyword; per hour of the whole stream",
        "results": results, "total_seconds": total,
        "machine": {"cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()},
    }
    suffix = "_step" if model.is_step else ""
    out_json = pathlib.Path(args.json) if args.json else ROOT / "runs" / f"streaming_{name}{suffix}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out_json}")
    if curves:
        prefix = pathlib.Path(args.curve_prefix) if args.curve_prefix else ROOT / "runs" / f"det_{name}{suffix}"
        prefix.parent.mkdir(parents=True, exist_ok=True)
        curve_json = {"model": str(model_path), "data": report["data"], "speakers": speakers,
                      "minutes": args.minutes, "seed": args.seed, "tolerance_s": args.tolerance_s,
                      "target_fa_per_hour": args.target_fa_per_hour, "grid": operating_point.DEFAULT_GRID,
                      "score_temperatures": temperatures,
                      "snr": curves}
        pathlib.Path(f"{prefix}.json").write_text(json.dumps(curve_json, indent=1) + "\n")
        base = ("settings the twin ran (the export's operating point" + (" + flags)" if rec != exported else ")")
                if exported else "device defaults" + (" + flags" if rec else ""))
        table = operating_point.markdown_table({k: {**v, "defaults": v["twin_settings"]} for k, v in curves.items()},
                                               base_label=base)
        pathlib.Path(f"{prefix}.md").write_text(table)
        operating_point.det_plot(curves, f"{prefix}.png", title=f"{name}{suffix}: {args.minutes:g} min per SNR")
        print(table)
        print(f"wrote {prefix}.json, {prefix}.md, {prefix}.png")


if __name__ == "__main__":
    main()
