"""The comparison's verdict (mama_core.finetune.compare): intervals for every metric, and no
winner from a held-out set that cannot support one."""

from __future__ import annotations

import numpy as np

from mama_core.finetune.compare import MIN_PER_CLASS, comparison_report, judge, summary_line


def _probs(y, right, n_classes=4, seed=0):
    """One-hot-ish predictions, correct on a `right` share of the cases."""
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(y)) < right, y, (y + 1) % n_classes)
    p = np.full((len(y), n_classes), 0.1 / (n_classes - 1))
    p[np.arange(len(y)), pred] = 0.9
    return p


def test_single_class_held_out_is_refused_in_words():
    y = np.ones(8, dtype=int)  # density 2 only, like the demo folder's held-out patients
    report = comparison_report("density", "linear-probe", y, _probs(y, 1.0), "probe", _probs(y, 1.0), "zero-shot",
                               "v0001", n_boot=50)
    verdict = report["verdict"]
    assert verdict["winner"] is None and not verdict["activate_recommended"] and not verdict["conclusive"]
    assert "single class" in verdict["reasons"][0] and "says nothing" in verdict["reasons"][0]
    assert report["class_counts"] == {"1": 0, "2": 8, "3": 0, "4": 0}
    assert "No winner" in summary_line(report)


def test_too_few_per_class_is_refused():
    v = judge({"1": 20, "2": MIN_PER_CLASS - 1}, [0.1, 0.3])
    assert v["winner"] is None and "fewer than" in v["reasons"][0]


def test_clear_win_is_named_with_intervals():
    y = np.repeat(np.arange(4), 30)
    report = comparison_report("density", "linear-probe", y, _probs(y, 0.95), "probe", _probs(y, 0.4, seed=1),
                               "zero-shot", "v0001", n_boot=100)
    assert report["verdict"]["winner"] == "new" and report["verdict"]["activate_recommended"]
    for side in ("new", "baseline"):
        assert set(report[side]["ci95"]) >= {"balanced_accuracy", "auc"}
    lo, hi = report["delta_ci95"]["balanced_accuracy"]
    assert 0 < lo <= report["delta_balanced_accuracy"] <= hi


def test_tie_is_no_winner():
    y = np.repeat(np.arange(4), 30)
    same = _probs(y, 0.7)
    v = comparison_report("density", "linear-probe", y, same, "probe", same, "probe", "v1", n_boot=50)["verdict"]
    assert v["conclusive"] and v["winner"] is None and "no clear difference" in v["reasons"][0]
