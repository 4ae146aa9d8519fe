"""Export's accuracy test (kws_tf.export_checks.accuracy_check): int8 as accurate as float passes,
clearly worse is refused with advice the next run cannot refuse with the same words, small sets warn."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf import export_checks
from kws_tf.export_io import ExportError


def _preds(n: int, both: int, float_only: int, int8_only: int, seed: int = 0):
    """Labels and predictions for n clips: `both` right for both models, `float_only` right only
    for float, `int8_only` right only for int8, the rest wrong for both (in different ways)."""
    assert both + float_only + int8_only <= n
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 12, n)
    wrong = (y + 1 + rng.integers(0, 11, n)) % 12
    f, i = wrong.copy(), wrong.copy()  # both wrong by default, the same way
    f[:both + float_only] = y[:both + float_only]
    i[:both] = y[:both]
    s = both + float_only
    i[s:s + int8_only] = y[s:s + int8_only]
    perm = rng.permutation(n)
    return f[perm], i[perm], y[perm]


def test_counts_and_drop():
    f, i, y = _preds(692, 590, 2, 6)
    c = export_checks.accuracy_check(f, i, y, 0.5)
    assert (c["clips"], c["float_only_right"], c["int8_only_right"]) == (692, 2, 6)
    assert c["accuracy_drop_points"] == pytest.approx(100 * (2 - 6) / 692)
    assert c["accuracy_drop_points"] == pytest.approx(100 * (c["float_accuracy"] - c["int8_accuracy"]))
    assert c["drop_lower_points"] < c["accuracy_drop_points"] < c["drop_upper_points"]
    assert c["passed"] and not c["small_set"] and c["warning"] is None


@pytest.mark.parametrize("float_only,int8_only", [(0, 0), (2, 6), (6, 6), (4, 1), (8, 4)])
def test_int8_as_accurate_as_float_passes(float_only, int8_only):
    """The real-subset models' pattern (98.7 % agreement, int8 >= float) and ties pass."""
    f, i, y = _preds(692, 580, float_only, int8_only)
    c = export_checks.accuracy_check(f, i, y, 0.5)
    assert c["passed"], export_checks.check_line(c)
    assert export_checks._gate_thresholds("PTQ int8 model", f, i, y, 0.0, 0.5)["passed"]


def test_clearly_worse_is_refused_with_advice_that_works():
    f, i, y = _preds(692, 560, 25, 5)  # 2.9 points lost
    c = export_checks.accuracy_check(f, i, y, 0.5)
    assert not c["passed"] and c["drop_lower_points"] > 0.5
    with pytest.raises(ExportError) as info:
        export_checks._gate_thresholds("PTQ int8 model", f, i, y, 0.0, 0.5)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("PTQ int8 model: accuracy")
    assert "post-training quantisation loses accuracy" in msg and "--qat_epochs=10" in msg
    accept = msg.rsplit("--max_accuracy_drop=", 1)[1]
    assert float(accept) >= c["drop_lower_points"]
    # following the advice passes: the same predictions with the named tolerance
    assert export_checks._gate_thresholds("PTQ int8 model", f, i, y, 0.0, float(accept))["passed"]
    # a tolerance of 100 points turns the test off
    assert export_checks.accuracy_check(f, i, y, 100.0)["passed"]


def test_qat_refusal_never_suggests_qat_again():
    f, i_ptq, y = _preds(692, 560, 25, 5, seed=1)
    ptq = export_checks.accuracy_check(f, i_ptq, y, 0.5)
    f2, i_qat, y2 = _preds(692, 555, 30, 5, seed=1)
    assert np.array_equal(f, f2) and np.array_equal(y, y2)
    with pytest.raises(ExportError) as info:
        export_checks._gate_thresholds("QAT int8 model", f, i_qat, y, 0.0, 0.5, qat_epochs=10, ptq_check=ptq)
    msg = str(info.value)
    assert "\n" not in msg and "--qat_epochs=10" not in msg and "quantisation-aware training did not recover" in msg
    accept = msg.rsplit("--max_accuracy_drop=", 1)[1]
    assert "--qat_epochs=0 --max_accuracy_drop=" in msg
    assert export_checks._gate_thresholds("PTQ int8 model", f, i_ptq, y, 0.0, float(accept))["passed"]
    # when the post-training model passes, the advice is to use it
    ok = export_checks.accuracy_check(f, f, y, 0.5)
    with pytest.raises(ExportError, match=r"the post-training model passes this test: rerun with --qat_epochs=0$"):
        export_checks._gate_thresholds("QAT int8 model", f, i_qat, y, 0.0, 0.5, qat_epochs=10, ptq_check=ok)


def test_min_agreement_is_opt_in():
    f, i, y = _preds(692, 580, 2, 6)  # 98.8 % agreement, int8 more accurate
    assert export_checks._gate_thresholds("PTQ int8 model", f, i, y, 0.0, 0.5)["agreement"] < 0.99
    with pytest.raises(ExportError, match=r"below --min_agreement=0.99 \(an opt-in check.*leave --min_agreement out"):
        export_checks._gate_thresholds("PTQ int8 model", f, i, y, 0.99, 0.5)


def test_small_sets_warn():
    f, i, y = _preds(30, 25, 0, 0)
    c = export_checks.accuracy_check(f, i, y, 0.5)
    assert c["passed"] and c["small_set"] and "only 30 evaluation clips" in c["warning"]
    # a large set whose bound still allows a big loss (many discordant clips) warns too
    f, i, y = _preds(400, 200, 60, 60)
    c = export_checks.accuracy_check(f, i, y, 0.5)
    assert c["passed"] and c["drop_upper_points"] > export_checks.SMALL_SET_UPPER_POINTS
    assert "cannot rule out an int8 loss" in c["warning"]
