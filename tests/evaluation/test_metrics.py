"""Metrics against hand-computed values; bootstrap intervals; linear probe learning."""

import numpy as np
import pytest

import torch

from mama_core.errors import ConfigError
from mama_core.evaluation import EvalConfig
from mama_core.evaluation.metrics import compute_metrics
from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.data import subsample_fraction
from mama_core.finetune.probe import fit_probe
from mama_core.evaluation.tables import markdown_table


def test_binary_metrics_match_hand_computation():
    y = np.array([0, 0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.2, 0.8, 0.4])  # predictions: 0 1 0 1 0
    m = compute_metrics(y, np.stack([1 - p1, p1], axis=1))
    # recall class0 = 2/3, class1 = 1/2 -> bACC = 7/12
    assert m.balanced_accuracy == pytest.approx(7 / 12)
    # positive scores {0.8, 0.4} vs negatives {0.1, 0.6, 0.2}: pairs won 3 + 2 = 5 of 6
    assert m.auc == pytest.approx(5 / 6)
    assert m.sensitivity == pytest.approx(0.5)
    assert m.specificity == pytest.approx(2 / 3)
    assert m.confusion == [[2, 1], [1, 1]]


def test_multiclass_auc_over_present_classes_only():
    # 4 classes, class 3 never appears in the labels.
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.2, 0.5, 0.2, 0.1],
        [0.5, 0.3, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.3, 0.2, 0.4, 0.1],
    ])
    m = compute_metrics(y, probs)
    assert m.absent_classes == [3] and m.auc_classes == [0, 1, 2]
    # class 0 scores: pos {0.7, 0.4}, neg {0.2, 0.5, 0.1, 0.3}: wins 4 + 3 = 7/8
    # class 1 scores: pos {0.5, 0.3}, neg {0.1, 0.3, 0.1, 0.2}: 4 + (3 + 0.5 tie) = 7.5/8
    # class 2 scores: pos {0.7, 0.4}, neg {0.1, 0.2, 0.2, 0.1}: 8/8
    assert m.auc == pytest.approx((7 / 8 + 7.5 / 8 + 1.0) / 3)
    # predictions 0 0 1 0 2 2: recalls 1, 1/2, 1 -> bACC over present classes
    assert m.balanced_accuracy == pytest.approx((1 + 0.5 + 1) / 3)
    assert m.sensitivity is None


def test_bootstrap_interval_contains_point_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    m = compute_metrics(y, probs, n_boot=200, seed=3)
    for key in ("balanced_accuracy", "auc"):
        lo, hi = m.ci[key]
        assert lo <= getattr(m, key) <= hi and lo < hi
    assert compute_metrics(y, probs, n_boot=200, seed=3).ci == m.ci


def test_linear_probe_learns_separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    labels = np.repeat(np.arange(3), [60, 30, 10])  # imbalanced on purpose
    feats = centres[labels] + rng.normal(size=(100, 16)) * 0.5 + 7.0
    probe = fit_probe(feats, labels, FinetuneConfig(task="density", max_steps=300, warmup_steps=20), [0, 1, 2])
    probs = probe.probabilities(torch.from_numpy(feats.astype(np.float32)))
    assert np.allclose(probs.sum(axis=1), 1)
    assert compute_metrics(labels, probs).balanced_accuracy == 1.0


def test_untrained_probe_is_not_separable_by_accident():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(90, 8))
    labels = rng.integers(0, 3, 90)  # random labels: nothing to learn on held-out data
    probe = fit_probe(feats[:60], labels[:60], FinetuneConfig(task="density", max_steps=200, warmup_steps=10), [0, 1, 2])
    probs = probe.probabilities(torch.from_numpy(feats[60:].astype(np.float32)))
    assert compute_metrics(labels[60:], probs).balanced_accuracy < 0.8


def test_fraction_subsample_keeps_every_class():
    labels = np.array([0] * 500 + [1] * 20 + [2] * 3)
    idx = subsample_fraction(labels, 0.01, seed=0)
    assert set(labels[idx]) == {0, 1, 2} and len(idx) == 5 + 1 + 1
    with pytest.raises(ConfigError):
        EvalConfig(mode="linear-probe", fraction=0.0)


def test_markdown_table_has_paper_reference_rows():
    res = [{"task": "birads", "mode": "zero-shot", "fraction": None, "notes": [],
            "metrics": {"balanced_accuracy": 0.25, "auc": 0.6, "ci95": {"auc": [0.5, 0.7]}}}]
    table = markdown_table(res, "mine")
    assert "| mine | zero-shot | 25.00 | 60.00 [50.0, 70.0] |" in table
    assert "| MaMA (paper) | zero-shot | 31.04 | 74.83 |" in table
