"""Classification metrics of the paper's Tables 1-3 (scikit-learn), with seeded bootstrap CIs.

Balanced accuracy and macro one-vs-rest AUC are the paper's headline numbers; sensitivity
and specificity are added for the binary (cancer) task.  A test split often lacks some
BI-RADS categories: AUC is then computed over the classes present (each needs positives
and negatives) and the result says which classes were left out, instead of failing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np


def _sk():
    """scikit-learn's metrics, imported on first use: the predictor imports this module, and
    reading studies (or the GPU suite on a bare machine) must not pay for or need scikit-learn."""
    import sklearn.metrics

    return sklearn.metrics


@dataclass
class Metrics:
    """Point estimates (fractions in [0, 1]) plus optional 95 % bootstrap intervals."""

    n: int
    balanced_accuracy: float
    auc: float | None
    auc_classes: list[int]  # classes the macro AUC averaged over
    absent_classes: list[int]  # classes left out of the AUC (no positives or no negatives)
    confusion: list[list[int]]
    sensitivity: float | None = None  # binary tasks only (class 1 = positive)
    specificity: float | None = None
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "balanced_accuracy": self.balanced_accuracy,
            "auc": self.auc,
            "auc_classes": self.auc_classes,
            "absent_classes": self.absent_classes,
            "confusion": self.confusion,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "ci95": {k: list(v) for k, v in self.ci.items()},
        }


def _check(y_true: np.ndarray, probs: np.ndarray) -> None:
    if probs.ndim != 2 or len(y_true) != len(probs):
        raise ValueError(f"need probs [N, C] matching labels [N]; got {probs.shape} and {y_true.shape}")
    if len(y_true) == 0:
        raise ValueError("no samples to evaluate")


def auc_over_present(y_true: np.ndarray, probs: np.ndarray) -> tuple[float | None, list[int], list[int]]:
    """Macro one-vs-rest AUC over classes with at least one positive and one negative.

    Returns (auc or None when no class qualifies, classes used, classes left out)."""
    n_classes = probs.shape[1]
    used, absent = [], []
    for c in range(n_classes):
        pos = int(np.sum(y_true == c))
        (used if 0 < pos < len(y_true) else absent).append(c)
    if not used:
        return None, used, absent
    if n_classes == 2:
        # Binary: the single AUC of the positive-class score (sklearn's convention).
        return float(_sk().roc_auc_score(y_true, probs[:, 1])), [0, 1], []
    aucs = [_sk().roc_auc_score((y_true == c).astype(int), probs[:, c]) for c in used]
    return float(np.mean(aucs)), used, absent


def sensitivity_specificity(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float | None, float | None]:
    """Binary: sensitivity = TP / (TP + FN), specificity = TN / (TN + FP); None when undefined."""
    tn, fp, fn, tp = _sk().confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    sens = float(tp / (tp + fn)) if tp + fn else None
    spec = float(tn / (tn + fp)) if tn + fp else None
    return sens, spec


def compute_metrics(y_true, probs, n_boot: int = 0, seed: int = 0) -> Metrics:
    """All metrics for labels [N] (ints 0..C-1) and class probabilities [N, C]."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    _check(y_true, probs)
    y_pred = probs.argmax(axis=1)
    auc, used, absent = auc_over_present(y_true, probs)
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected with absent classes; bACC then
        # averages the recalls of the classes present (sklearn's definition).
        warnings.simplefilter("ignore", UserWarning)
        bacc = float(_sk().balanced_accuracy_score(y_true, y_pred))
    m = Metrics(
        n=len(y_true),
        balanced_accuracy=bacc,
        auc=auc,
        auc_classes=used,
        absent_classes=absent,
        confusion=_sk().confusion_matrix(y_true, y_pred, labels=list(range(probs.shape[1]))).tolist(),
    )
    if probs.shape[1] == 2:
        m.sensitivity, m.specificity = sensitivity_specificity(y_true, y_pred)
    if n_boot > 0:
        m.ci = bootstrap_ci(y_true, probs, n_boot=n_boot, seed=seed)
    return m


def _point_values(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    y_pred = probs.argmax(axis=1)
    out = {"balanced_accuracy": float(_sk().balanced_accuracy_score(y_true, y_pred))}
    auc, _, _ = auc_over_present(y_true, probs)
    if auc is not None:
        out["auc"] = auc
    if probs.shape[1] == 2:
        sens, spec = sensitivity_specificity(y_true, y_pred)
        if sens is not None:
            out["sensitivity"] = sens
        if spec is not None:
            out["specificity"] = spec
    return out


def bootstrap_ci(y_true, probs, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap over samples (resampled with replacement, seeded).

    Resamples where a metric is undefined (e.g. a single class drawn) are skipped for that
    metric; balanced accuracy then averages over the classes present in the resample."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    with warnings.catch_warnings():
        # sklearn warns when a resample lacks a predicted class; that is expected here.
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            idx = rng.integers(0, len(y_true), len(y_true))
            for k, v in _point_values(y_true[idx], probs[idx]).items():
                samples.setdefault(k, []).append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for k, v in samples.items()}
