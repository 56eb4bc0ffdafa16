"""The comparison report: the new model against the current active model, on the same
held-out (validation) cases, with the paper's metrics (`mama_core.evaluation.metrics`),
95 % bootstrap intervals for every metric and for the differences, and a verdict that
refuses to name a winner when the held-out set cannot support one (docs/finetuning.md,
"How the comparison decides").

Rules (`judge`):
- the held-out set must hold at least two classes, and every class present at least
  MIN_PER_CLASS images; otherwise no winner, in words, and activation is not recommended;
- otherwise the new model wins only when the 95 % paired-bootstrap interval of the
  balanced-accuracy difference lies wholly above 0 (the active model wins when it lies
  wholly below); an interval spanning 0 reads "no clear difference".
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mama_core.evaluation.metrics import _point_values, compute_metrics
from mama_core.finetune.data import CLASSES, class_counts

HELD_OUT_NOTE = ("held-out cases = the validation split (patients never seen in training); it also chose "
                 "the early-stopping point, so the new model's numbers are slightly optimistic")
MIN_PER_CLASS = 5  # held-out images each class present needs before a comparison may name a winner
# Paired resamples for the intervals: 200 keep a fine-tuning run's comparison to about a second
# on a CPU (each resample runs scikit-learn's metrics for both models); the percentile interval
# of 200 resamples is coarse in its last digit, which is not the digit that decides anything here.
N_BOOT = 200
LEVEL = 0.95


def metrics(y: np.ndarray, probs: np.ndarray):
    """`evaluation.metrics.compute_metrics`, quiet about classes a small split lacks (the
    report lists them under `absent_classes`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compute_metrics(y, probs)


def balanced_accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    return metrics(y, probs).balanced_accuracy


def _side(y: np.ndarray, probs: np.ndarray, method: str, model: str, ci: dict) -> dict[str, Any]:
    return {**metrics(y, probs).to_json(), "ci95": ci, "method": method, "model": model}


def paired_bootstrap(y: np.ndarray, new: np.ndarray, old: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                     level: float = LEVEL) -> tuple[dict, dict, dict]:
    """Percentile intervals (new, old, new - old) per metric from the same resamples of the
    cases for both models (paired), so the difference's interval reflects the difference,
    not two separate spreads.  Resamples where a metric is undefined are skipped for it."""
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}, "delta": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            a, b = _point_values(y[idx], new[idx]), _point_values(y[idx], old[idx])
            for name, values in (("new", a), ("old", b), ("delta", {k: a[k] - b[k] for k in a.keys() & b.keys()})):
                for k, v in values.items():
                    draws[name].setdefault(k, []).append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = tuple({k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws[n].items()}
                for n in ("new", "old", "delta"))
    return out  # type: ignore[return-value]


def judge(counts: dict[str, int], delta_ci: list[float] | None, min_per_class: int = MIN_PER_CLASS) -> dict[str, Any]:
    """The verdict: {"winner": "new" | "active" | None, "conclusive", "activate_recommended", "reasons": [...]}."""
    present = {c: n for c, n in counts.items() if n > 0}
    absent = [c for c, n in counts.items() if n == 0]
    reasons = []
    if len(present) < 2:
        only = next(iter(present), "?")
        reasons.append(f"the held-out set holds a single class ({only}, {sum(present.values())} images): "
                       "balanced accuracy and AUC cannot tell the models apart on it, so this comparison says "
                       "nothing about which model is better")
    small = {c: n for c, n in present.items() if n < min_per_class}
    if small:
        listed = ", ".join(f"class {c}: {n}" for c, n in small.items())
        reasons.append(f"fewer than {min_per_class} held-out images in some classes ({listed}): too few to "
                       "compare on")
    if reasons:
        if absent:
            reasons.append(f"classes {', '.join(absent)} are absent from the held-out set")
        return {"winner": None, "conclusive": False, "activate_recommended": False, "reasons": reasons,
                "min_per_class": min_per_class}
    if delta_ci is None or delta_ci[0] <= 0 <= delta_ci[1]:
        span = "" if delta_ci is None else f" ({delta_ci[0]:+.3f} to {delta_ci[1]:+.3f})"
        reasons.append(f"no clear difference: the 95 % interval of the balanced-accuracy difference{span} "
                       "includes 0")
        winner = None
    else:
        winner = "new" if delta_ci[0] > 0 else "active"
        reasons.append(f"the {'new' if winner == 'new' else 'current active'} model is better: the 95 % interval of "
                       f"the balanced-accuracy difference ({delta_ci[0]:+.3f} to {delta_ci[1]:+.3f}) excludes 0")
    if absent:
        reasons.append(f"classes {', '.join(absent)} are absent from the held-out set: the comparison says "
                       "nothing about them")
    return {"winner": winner, "conclusive": True, "activate_recommended": winner == "new", "reasons": reasons,
            "min_per_class": min_per_class}


def comparison_report(task: str, mode: str, y: np.ndarray, new_probs: np.ndarray, new_method: str,
                      baseline_probs: np.ndarray, baseline_method: str, baseline_model: str,
                      n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """A JSON-ready dict: metrics of both models with 95 % intervals (`ci95`), deltas with
    paired intervals, per-class counts of the held-out set and the verdict."""
    y = np.asarray(y, dtype=int)
    new_probs, baseline_probs = np.asarray(new_probs, dtype=np.float64), np.asarray(baseline_probs, dtype=np.float64)
    ci_new, ci_old, delta_ci = paired_bootstrap(y, new_probs, baseline_probs, n_boot, seed) if n_boot else ({}, {}, {})
    new = _side(y, new_probs, new_method, "new", ci_new)
    baseline = _side(y, baseline_probs, baseline_method, baseline_model, ci_old)
    counts = class_counts(y, task)
    verdict = judge(counts, delta_ci.get("balanced_accuracy"))
    return {
        "task": task, "mode": mode, "classes": CLASSES[task], "n_cases": int(len(y)),
        "class_counts": counts,
        "new": new, "baseline": baseline,
        "delta_balanced_accuracy": new["balanced_accuracy"] - baseline["balanced_accuracy"],
        "delta_auc": (new["auc"] - baseline["auc"]) if new["auc"] is not None and baseline["auc"] is not None else None,
        "delta_ci95": delta_ci,
        "verdict": verdict,
        "note": HELD_OUT_NOTE,
    }


def summary_line(report: dict[str, Any]) -> str:
    new, old = report["new"], report["baseline"]
    auc = lambda m: "n/a" if m["auc"] is None else f"{m['auc']:.3f}"  # noqa: E731
    line = (f"{report['task']} on {report['n_cases']} held-out images {_counts(report)}: new bACC "
            f"{_with_ci(new, 'balanced_accuracy')} AUC {auc(new)} vs active ({old['method']}) bACC "
            f"{_with_ci(old, 'balanced_accuracy')} AUC {auc(old)}")
    verdict = report.get("verdict")
    if verdict:
        line += (". " + ("No winner: " if verdict["winner"] is None else "") + "; ".join(verdict["reasons"]))
    return line


def _counts(report: dict[str, Any]) -> str:
    return "(" + ", ".join(f"class {c}: {n}" for c, n in report.get("class_counts", {}).items()) + ")"


def _with_ci(side: dict[str, Any], key: str) -> str:
    ci = (side.get("ci95") or {}).get(key)
    return f"{side[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
