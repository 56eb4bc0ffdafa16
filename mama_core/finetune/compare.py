"""The comparison report: the new model against the current active model, on the same
held-out (validation) cases, with the paper's metrics (`mama_core.evaluation.metrics`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mama_core.evaluation.metrics import compute_metrics
from mama_core.finetune.data import CLASSES, class_counts

HELD_OUT_NOTE = ("held-out cases = the validation split (patients never seen in training); it also chose "
                 "the early-stopping point, so the new model's numbers are slightly optimistic")


def metrics(y: np.ndarray, probs: np.ndarray):
    """`evaluation.metrics.compute_metrics`, quiet about classes a small split lacks (the
    report lists them under `absent_classes`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compute_metrics(y, probs)


def balanced_accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    return metrics(y, probs).balanced_accuracy


def _side(y: np.ndarray, probs: np.ndarray, method: str, model: str) -> dict[str, Any]:
    return {**metrics(y, probs).to_json(), "method": method, "model": model}


def comparison_report(task: str, mode: str, y: np.ndarray, new_probs: np.ndarray, new_method: str,
                      baseline_probs: np.ndarray, baseline_method: str, baseline_model: str) -> dict[str, Any]:
    """A JSON-ready dict: metrics of both models, deltas, case and class counts."""
    new = _side(y, new_probs, new_method, "new")
    baseline = _side(y, baseline_probs, baseline_method, baseline_model)
    return {
        "task": task, "mode": mode, "classes": CLASSES[task], "n_cases": int(len(y)),
        "class_counts": class_counts(y, task),
        "new": new, "baseline": baseline,
        "delta_balanced_accuracy": new["balanced_accuracy"] - baseline["balanced_accuracy"],
        "delta_auc": (new["auc"] - baseline["auc"]) if new["auc"] is not None and baseline["auc"] is not None else None,
        "note": HELD_OUT_NOTE,
    }


def summary_line(report: dict[str, Any]) -> str:
    new, old = report["new"], report["baseline"]
    auc = lambda m: "n/a" if m["auc"] is None else f"{m['auc']:.3f}"  # noqa: E731
    return (f"{report['task']} on {report['n_cases']} held-out images: new bACC {new['balanced_accuracy']:.3f} "
            f"AUC {auc(new)} vs active ({old['method']}) bACC {old['balanced_accuracy']:.3f} AUC {auc(old)}")
