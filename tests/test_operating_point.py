"""The curve and the operating point (issue 9): kws_tf.operating_point, the export step's
settings in kws_settings.h and in the twin. Tone 'words' (tests/synth.py) planted in streams."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest

from kws_tf import codegen, features, labels, operating_point as op, simulate, stream

from test_simulate import _tone_clips, export_for_twin


@pytest.fixture(scope="module")
def step_model(trained_model_dir, synth_folder, tmp_path_factory):
    path = export_for_twin(trained_model_dir, synth_folder, tmp_path_factory.mktemp("op_export"))
    return simulate.load_exported(path.parent / "model_step_int8.tflite")


@pytest.fixture(scope="module")
def planted():
    """~70 s: every keyword 3 times, 'bed' (unknown) and silences, no added noise."""
    rng = np.random.default_rng(11)
    items = [(pcm, w, n) for w, v in _tone_clips().items() for pcm, n in v]
    items = [items[i] for i in rng.permutation(len(items))]
    return stream.build_stream(items, None, None, rng, gap_s=(1.0, 1.5), speech_dbfs=None)


@pytest.fixture(scope="module")
def trace(step_model, planted):
    return op.record(step_model, planted.pcm)


GRID = {"detection_threshold": tuple(range(100, 256, 10)) + (255,), "average_window_ms": (200, 500),
        "suppression_ms": (1000,), "minimum_count": (3,)}


def test_replay_gives_exactly_the_twin_detections(step_model, planted, trace):
    tr, dets = trace
    assert op.replay(tr, {}) == dets  # the record run used the device defaults
    for settings in ({"detection_threshold": 230, "average_window_ms": 300},
                     {"detection_threshold": 150, "suppression_ms": 1500, "minimum_count": 5}):
        twin = simulate.DeviceTwin(step_model, recognizer=settings)
        assert op.replay(tr, settings) == twin.run(planted.pcm)
        twin.close()


def test_planted_keywords_give_expected_hits_and_false_alarms(planted, trace):
    tr, _ = trace
    p = op.evaluate(tr, planted.events, planted.duration_s, {"detection_threshold": 180})
    assert p["keywords"] == 30
    assert p["hit_rate"] >= 0.8 and p["false_alarms"] <= 1, p
    assert p["false_alarms_per_hour"] == pytest.approx(p["false_alarms"] * 3600 / planted.duration_s)
    # Nothing reaches a threshold of 256 (impossible) ... and at 255 at most what 180 gave.
    top = op.evaluate(tr, planted.events, planted.duration_s, {"detection_threshold": 255})
    assert top["hits"] <= p["hits"] and top["false_alarms"] <= p["false_alarms"]
    # Noise only: no detection at the default threshold.
    quiet = stream.build_stream([(np.zeros(features.SAMPLE_RATE, np.int16), labels.SILENCE)] * 8,
                                [np.random.default_rng(0).normal(0, 300, 10 * features.SAMPLE_RATE).astype(np.int16)],
                                10.0, np.random.default_rng(1), speech_dbfs=-26.0)
    assert quiet.keywords == []


def test_sweep_is_monotone_in_the_threshold(planted, trace):
    tr, _ = trace
    points = op.sweep(tr, planted.events, planted.duration_s, GRID)
    assert len(points) == len(op.expand_grid(GRID))
    assert op.monotone_violations(points) == []
    for window in GRID["average_window_ms"]:
        ps = sorted((p for p in points if p["average_window_ms"] == window), key=lambda p: p["detection_threshold"])
        fas = [p["false_alarms"] for p in ps]
        dets = [p["hits"] + p["false_alarms"] for p in ps]
        assert fas == sorted(fas, reverse=True), fas
        assert dets == sorted(dets, reverse=True), dets
    # The frontier is a DET curve: false alarms up, hit rate strictly up.
    f = op.frontier(points)
    assert [p["false_alarms_per_hour"] for p in f] == sorted(p["false_alarms_per_hour"] for p in f)
    assert all(a["hit_rate"] < b["hit_rate"] for a, b in zip(f, f[1:]))


def _pt(thr, hit, fa, window=500, delay=0.5):
    return {"detection_threshold": thr, "average_window_ms": window, "suppression_ms": 1000, "minimum_count": 3,
            "hit_rate": hit, "false_alarms_per_hour": fa, "delay_median_s": delay, "delay_p95_s": delay}


def test_choose_is_what_the_sweep_says(planted, trace):
    pts = [_pt(150, 0.95, 30.0), _pt(200, 0.92, 4.0), _pt(220, 0.90, 2.0), _pt(225, 0.90, 1.0), _pt(230, 0.80, 0.0), _pt(255, 0.0, 0.0)]
    c = op.choose(pts, 2.0)
    assert (c["detection_threshold"], c["meets_target"]) == (225, True)  # hit-rate tie: fewer false alarms
    assert op.choose(pts, 5.0)["detection_threshold"] == 200
    assert op.choose(pts, 0.0)["detection_threshold"] == 230
    worse = op.choose([_pt(150, 0.9, 30.0), _pt(200, 0.5, 10.0)], 2.0)
    assert (worse["detection_threshold"], worse["meets_target"]) == (200, False)
    # On a real sweep: the best hit rate among the points at or under the target.
    tr, _ = trace
    points = op.sweep(tr, planted.events, planted.duration_s, GRID)
    for target in (0.0, 60.0, 1e9):
        c = op.choose(points, target)
        ok = [p for p in points if p["false_alarms_per_hour"] <= target]
        assert c["hit_rate"] == max(p["hit_rate"] for p in ok)
        assert c["false_alarms_per_hour"] <= target
        assert c in [{**p, "target_fa_per_hour": target, "meets_target": True} for p in ok]


def test_outputs_table_and_plot(planted, trace, tmp_path):
    tr, _ = trace
    points = op.sweep(tr, planted.events, planted.duration_s, GRID)
    curves = {"20": {"operating_point": op.choose(points, 2.0), "points": points}}
    md = op.markdown_table(curves)
    assert "**operating point**" in md and md.count("\n") >= 4
    op.det_plot(curves, tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"


def test_budget_table_and_side_by_side_plot(planted, trace, tmp_path):
    """benchmarks/det_table.py: the best hit rate within a budget is the operating point `choose`
    gives for that target, with or without the temperatures; and the side-by-side plot draws."""
    from kws_tf import plots

    spec = importlib.util.spec_from_file_location("det_table", pathlib.Path(__file__).parents[1] / "benchmarks"
                                                  / "det_table.py")
    det_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(det_table)
    tr, _ = trace
    points = op.sweep(tr, planted.events, planted.duration_s, GRID, temperatures=(1.0, 3.0))
    for budget in (0.0, 30.0, 1e9):
        ok = [p for p in points if p["false_alarms_per_hour"] <= budget]
        got = det_table.best_within(points, budget)
        assert got["hit_rate"] == op.choose(points, budget)["hit_rate"] == max(p["hit_rate"] for p in ok)
        plain = det_table.best_within(points, budget, (1.0,))
        assert plain["score_temperature"] == 1.0
        assert plain["hit_rate"] == max(p["hit_rate"] for p in ok if p["score_temperature"] == 1.0)
    curve = {"snr": {"20": {"points": points, "duration_s": planted.duration_s, "keywords": 1}}}
    rows = det_table.rows("m", curve, [30.0])
    assert len(rows) == 1 and rows[0].startswith("| m | 20 dB |")
    plots.det_compare({"a": curve, "b": curve}, tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


def test_header_carries_the_settings_and_d_macros_win():
    base = dict(normalization=features.Normalization(np.zeros(32), np.ones(32)), input_scale=0.1, input_zero_point=0)
    none = codegen.render_frontend_header(**base)
    assert "kHasRecognizerSettings = false" in none and "#define KWS_DETECTION_THRESHOLD" not in none
    text = codegen.render_frontend_header(**base, recognizer={"detection_threshold": 231, "average_window_ms": 300,
                                                                "suppression_ms": 1500, "minimum_count": 3},
                                          recognizer_note="source: calibrated")
    assert "#ifndef KWS_DETECTION_THRESHOLD\n#define KWS_DETECTION_THRESHOLD 231\n#endif" in text
    assert "#define KWS_AVERAGE_WINDOW_MS 300" in text and "#define KWS_SUPPRESSION_MS 1500" in text
    assert "c.recognizer.detection_threshold = KWS_DETECTION_THRESHOLD;" in text
    with pytest.raises(ValueError):
        codegen.render_frontend_header(**base, recognizer={"detection_threshold": 300})
    with pytest.raises(ValueError):
        codegen.render_frontend_header(**base, recognizer={"threshold": 3})


def test_export_settings_reach_header_and_twin(step_model, planted, tmp_path, monkeypatch):
    # The export step with a stubbed calibration result; then its files as export writes them.
    chosen = {"detection_threshold": 235, "average_window_ms": 300, "suppression_ms": 1500, "minimum_count": 3}
    monkeypatch.setattr(op, "calibrate", lambda *a, **k: {"source": "calibrated", "settings": dict(chosen),
                                                          "expected": None, "note": "stub", "stream": {}})
    rec = op.export_step(step_model.model_bytes, step_model.normalization, step_model.labels,
                         step_model.step_delay_frames, {}, {"overrides": {"minimum_count": 4}}, log=lambda m: None)
    assert rec["settings"] == {**chosen, "minimum_count": 4} and rec["overrides"] == {"minimum_count": 4}
    folder = tmp_path / "exp"
    shutil.copytree(step_model.path.parent, folder)
    report = json.loads((folder / "export_report.json").read_text())
    report["recognizer"] = rec
    (folder / "export_report.json").write_text(json.dumps(report))
    loaded = simulate.load_exported(folder / "model_step_int8.tflite")
    assert loaded.recognizer == rec["settings"]
    twin = simulate.DeviceTwin(loaded)
    assert {k: twin.recognizer_config[k] for k in op.SETTINGS} == rec["settings"]
    twin.close()
    twin = simulate.DeviceTwin(loaded, recognizer={"detection_threshold": 190})  # flags still override
    assert twin.recognizer_config["detection_threshold"] == 190
    assert twin.recognizer_config["average_window_ms"] == 300
    twin.close()
    assert op.read_exported_settings(folder) == rec["settings"]


def test_calibrate_on_too_few_clips_keeps_the_defaults(step_model, synth_folder):
    from kws_tf import native

    out = op.calibrate(step_model, {"data": {"path": str(synth_folder), "validation_percent": 20.0,
                                             "test_percent": 0.0}}, minutes=1.0, log=lambda m: None)
    assert out["source"] == "device_defaults" and "fewer than" in out["note"] or "no keyword" in out["note"]
    assert out["settings"] == {k: v for k, v in native.recognizer_defaults().items() if k in op.SETTINGS}


def test_calibrate_chooses_from_its_sweep(step_model, monkeypatch):
    """A tone 'data set' big enough for a stream: calibrate's answer is choose(sweep) on that stream."""
    clips = {w: v * 6 for w, v in _tone_clips(per_class=3).items()}
    monkeypatch.setattr(stream, "speech_commands_clips", lambda *a, **k: clips)
    out = op.calibrate(step_model, {"data": {"path": "."}}, target_fa_per_hour=60.0, minutes=1.5,
                       grid=GRID, min_keywords=10, log=lambda m: None)
    assert out["source"] == "calibrated", out["note"]
    assert out["expected"]["false_alarms_per_hour"] <= 60.0
    assert out["stream"]["fa_resolution_per_hour"] == pytest.approx(3600 / out["stream"]["duration_s"])
    # the score temperature is chosen with the settings, among the ones tried
    assert out["stream"]["temperatures_tried"] == list(op.DEFAULT_TEMPERATURES)
    assert out["score_temperature"] == out["expected"]["score_temperature"] in op.DEFAULT_TEMPERATURES
    assert out["alternatives"] == {}  # no listed budget above 60/h
    tight = op.calibrate(step_model, {"data": {"path": "."}}, target_fa_per_hour=2.0, minutes=1.5,
                         grid=GRID, min_keywords=10, log=lambda m: None)
    alt = tight["alternatives"]
    assert list(alt) == ["5", "10", "30", "60"]
    rates = [tight["expected"]["hit_rate"]] + [a["hit_rate"] for a in alt.values()]
    assert rates == sorted(rates)  # a larger budget never buys fewer hits
    assert all(a["false_alarms_per_hour"] <= float(b) + 1e-9 for b, a in alt.items() if a["meets_target"])


def test_temperature_rescoring_equals_a_twin_run_at_that_temperature(step_model, planted, trace):
    tr, _ = trace
    assert tr.temperature == 1.0
    hot = tr.with_temperature(3.0)
    direct, dets = op.record(step_model, planted.pcm, temperature=3.0)
    assert np.array_equal(hot.scores, direct.scores) and direct.temperature == 3.0
    assert op.replay(hot, {}) == dets
    twin = simulate.DeviceTwin(step_model, temperature=3.0, recognizer={"detection_threshold": 120})
    assert op.replay(hot, {"detection_threshold": 120}) == twin.run(planted.pcm)
    twin.close()
    # the winner stays (up to ties in the uint8 rounding); a confident winner's score only drops
    assert np.mean(hot.scores.argmax(1) == tr.scores.argmax(1)) > 0.99
    confident = tr.scores.max(1) >= 200
    assert confident.sum() > 100
    assert np.all(hot.scores.max(1)[confident] <= tr.scores.max(1)[confident])
    assert hot.scores.max(1)[confident].mean() < tr.scores.max(1)[confident].mean() - 20
    points = op.sweep(tr, planted.events, planted.duration_s, GRID, temperatures=(1.0, 3.0))
    assert {p["score_temperature"] for p in points} == {1.0, 3.0}
    assert len(points) == 2 * len(op.expand_grid(GRID))


def test_header_and_twin_carry_the_score_temperature(step_model, tmp_path, monkeypatch):
    base = dict(normalization=features.Normalization(np.zeros(32), np.ones(32)), input_scale=0.1, input_zero_point=0)
    text = codegen.render_frontend_header(**base, recognizer={"detection_threshold": 200, "score_temperature": 3.0})
    assert "#ifndef KWS_SCORE_TEMPERATURE\n#define KWS_SCORE_TEMPERATURE 3.0f\n#endif" in text
    assert "c.output.temperature = KWS_SCORE_TEMPERATURE;" in text
    for bad in (0.0, -1.0, "3"):
        with pytest.raises(ValueError):
            codegen.render_frontend_header(**base, recognizer={"score_temperature": bad})
    # export_step: a user's temperature wins and is the only one calibrated for
    seen = {}

    def fake_calibrate(*a, **k):
        seen.update(k)
        return {"source": "calibrated", "settings": {"detection_threshold": 200}, "score_temperature": 4.0,
                "expected": None, "note": "stub", "stream": {}}

    monkeypatch.setattr(op, "calibrate", fake_calibrate)
    rec = op.export_step(step_model.model_bytes, step_model.normalization, step_model.labels,
                         step_model.step_delay_frames, {}, {"overrides": {"score_temperature": 2.5}}, log=lambda m: None)
    assert seen["temperatures"] == [2.5]
    assert rec["score_temperature"] == 2.5 and rec["overrides"] == {"score_temperature": 2.5}
    assert "score temperature 2.5" in op.header_note(rec)
    folder = tmp_path / "exp"
    shutil.copytree(step_model.path.parent, folder)
    report = json.loads((folder / "export_report.json").read_text())
    report["recognizer"] = rec
    (folder / "export_report.json").write_text(json.dumps(report))
    loaded = simulate.load_exported(folder / "model_step_int8.tflite")
    assert loaded.score_temperature == 2.5 and op.read_exported_temperature(folder) == 2.5
    twin = simulate.DeviceTwin(loaded)
    assert twin.temperature == 2.5 and twin.app.config.output_temperature == 2.5
    twin.close()
    with pytest.raises(ValueError):
        op.export_step(step_model.model_bytes, step_model.normalization, step_model.labels,
                       step_model.step_delay_frames, {}, {"overrides": {"score_temperature": 0}}, log=lambda m: None)
