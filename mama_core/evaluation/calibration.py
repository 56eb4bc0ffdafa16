"""Probability calibration: expected calibration error, reliability bins, temperature scaling.

A classifier is calibrated when, among the images it gives confidence ~p, a share ~p is
right.  The zero-shot logit scale (1/tau of the contrastive loss, paper eq. (2)) is chosen
to make the training loss work, not to make probabilities honest, and a probe trained on
a handful of images is over-confident; temperature scaling (one scalar T per head,
softmax(z / T), fitted by minimising the negative log-likelihood on held-out labelled
images) fixes the overall confidence level without changing any argmax, so accuracy, bACC
and AUC are untouched (docs/inference.md "Calibrated probabilities").

Conventions used throughout:
- `y_true`: int labels [N] in 0..C-1; `probs`: class probabilities [N, C] (rows sum to 1).
- The *top-label* (confidence) view: confidence = max_k p_k, correct = (argmax == y).
- Bins split [0, 1] into `n_bins` equal-width intervals (lower-open, upper-closed, the
  first one closed), the usual ECE definition (Guo et al. 2017, "On Calibration of Modern
  Neural Networks").
- Logits may be given as log-probabilities: softmax is invariant to adding a constant per
  row, so softmax(log p / T) is the same family as softmax(z / T).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

DEFAULT_BINS = 10
# Search range for T: a fit at either end says the scores carry (almost) no information
# or the held-out set was too small.
T_BOUNDS = (0.05, 100.0)


@dataclass
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram (top-label confidence).

    `edges` has n_bins + 1 entries; the other arrays have n_bins.  Empty bins have
    count 0 and NaN confidence/accuracy (a plot skips them)."""

    edges: np.ndarray  # [n_bins + 1] bin edges in [0, 1]
    confidence: np.ndarray  # [n_bins] mean top-label confidence in the bin
    accuracy: np.ndarray  # [n_bins] share of correct top-label predictions in the bin
    count: np.ndarray  # [n_bins] number of samples in the bin

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def ece(self) -> float:
        """Expected calibration error: sum over bins of (count / N) * |accuracy - confidence|."""
        used = self.count > 0
        if not used.any():
            return float("nan")
        gap = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(self.count[used] / self.n * gap))

    def to_json(self) -> dict:
        def clean(a):
            return [None if not np.isfinite(v) else float(v) for v in a]

        return {"edges": [float(e) for e in self.edges], "confidence": clean(self.confidence),
                "accuracy": clean(self.accuracy), "count": [int(c) for c in self.count]}


def _as_arrays(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"need probs [N, C] matching labels [N]; got {p.shape} and {y.shape}")
    if len(y) == 0:
        raise ValueError("no samples")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}")
    return y, p


def reliability_bins(y_true, probs, n_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Reliability-diagram statistics of top-label confidence.

    Args:
        y_true: int labels [N], values 0..C-1.
        probs: class probabilities [N, C].
        n_bins: number of equal-width confidence bins over [0, 1].

    Returns:
        ReliabilityBins(edges [n_bins+1], confidence [n_bins], accuracy [n_bins], count [n_bins]);
        `.ece()` gives the expected calibration error of exactly these bins.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y, p = _as_arrays(y_true, probs)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 joins bin 0.
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    mean_conf[count == 0] = np.nan
    acc[count == 0] = np.nan
    return ReliabilityBins(edges=edges, confidence=mean_conf, accuracy=acc, count=count)


def expected_calibration_error(y_true, probs, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label expected calibration error in [0, 1] (lower is better).

    ECE = sum_b (n_b / N) * |accuracy_b - confidence_b| over `n_bins` equal-width bins of the
    top-label confidence (see `reliability_bins`).  Args as in `reliability_bins`."""
    return reliability_bins(y_true, probs, n_bins).ece()


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-np.mean(log_softmax(logits / temperature, axis=1)[np.arange(len(y)), y]))


def fit_temperature(logits, y_true) -> float:
    """The temperature T > 0 minimising the mean negative log-likelihood of softmax(logits / T).

    Args:
        logits: [N, C] scores (or log-probabilities, see module notes) of held-out images.
        y_true: int labels [N].

    Returns:
        T (float, within T_BOUNDS).  T > 1 softens over-confident outputs, T < 1 sharpens.
        The fit is one-dimensional and convex in 1/T; it is done on log T (bounded scalar
        minimisation, scipy)."""
    y, z = _as_arrays(y_true, logits)
    lo, hi = np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])
    res = minimize_scalar(lambda log_t: _nll(z, y, float(np.exp(log_t))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """softmax(logits / T) row-wise: [N, C] (or [C]) probabilities."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64)
    return softmax(z / float(temperature), axis=-1)


def probs_to_logits(probs) -> np.ndarray:
    """log p, clipped away from 0: logits of the same softmax (see module notes)."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))


def calibration_summary(y_true, probs_before, probs_after, n_bins: int = DEFAULT_BINS) -> dict:
    """{"ece_before", "ece_after", "n", "bins_before", "bins_after"} for reports and JSON."""
    before, after = reliability_bins(y_true, probs_before, n_bins), reliability_bins(y_true, probs_after, n_bins)
    return {"n": before.n, "n_bins": n_bins, "ece_before": before.ece(), "ece_after": after.ece(),
            "bins_before": before.to_json(), "bins_after": after.to_json()}


def plot_reliability(bins: dict[str, ReliabilityBins], path: str | Path, title: str = "Reliability") -> Path:
    """Write a reliability diagram PNG (matplotlib, no display needed): one curve per entry
    of `bins` (e.g. {"before": ..., "after": ...}), accuracy against mean confidence per
    non-empty bin, with the diagonal of perfect calibration."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no GUI backend

    fig = Figure(figsize=(4.2, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for label, b in bins.items():
        used = b.count > 0
        ax.plot(b.confidence[used], b.accuracy[used], marker="o", label=f"{label} (ECE {b.ece():.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


# --------------------------------------------------------------------------- stored with a model

TEMPERATURE_FILE = "temperature.json"
TEMPERATURE_FORMAT = 1


def head_identity(model_dir: str | Path, task: str) -> str | None:
    """sha256 of heads/<task>.safetensors (None: the task is zero-shot).  A temperature is
    only valid for the exact head it was fitted to; a replaced head makes it stale."""
    import hashlib

    f = Path(model_dir) / "heads" / f"{task}.safetensors"
    return hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None


def load_temperatures(model_dir: str | Path) -> dict[str, dict]:
    """task -> {"temperature", "method", "head_sha256", "n", "ece_before", "ece_after", ...};
    {} when the model directory has no temperature.json."""
    import json

    from mama_core.errors import ModelError

    path = Path(model_dir) / TEMPERATURE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        tasks = data["tasks"]
        for entry in tasks.values():
            if not float(entry["temperature"]) > 0:
                raise ValueError("temperature must be > 0")
        return {str(t): dict(e) for t, e in tasks.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"unreadable temperature calibration: {exc}", path=path) from None


def save_temperatures(model_dir: str | Path, entries: dict[str, dict]) -> Path:
    """Merge `entries` (task -> entry as in `load_temperatures`) into temperature.json."""
    import json

    from mama_core.errors import ModelError

    path = Path(model_dir) / TEMPERATURE_FILE
    tasks = {**load_temperatures(model_dir), **entries}
    try:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"format": TEMPERATURE_FORMAT, "tasks": tasks}, indent=2))
        tmp.replace(path)
    except OSError as exc:
        raise ModelError(f"cannot write temperature calibration ({exc}); the model directory may be read-only",
                         path=path) from None
    return path


def valid_temperature(entry: dict | None, model_dir: str | Path, task: str) -> float | None:
    """The stored temperature when it fits the task's current head (or zero-shot), else None."""
    if not entry:
        return None
    sha = head_identity(model_dir, task)
    method = "probe" if sha else "zero-shot"
    if entry.get("method") != method or (sha and entry.get("head_sha256") != sha):
        return None
    return float(entry["temperature"])


def temperature_entry(y_true, probs, task: str, model_dir: str | Path, source: str = "",
                      n_bins: int = DEFAULT_BINS) -> dict:
    """Fit T on held-out labelled probabilities and describe it for temperature.json."""
    sha = head_identity(model_dir, task)
    t = fit_temperature(probs_to_logits(probs), y_true)
    after = apply_temperature(probs_to_logits(probs), t)
    return {"temperature": t, "method": "probe" if sha else "zero-shot", "head_sha256": sha,
            "n": int(len(np.asarray(y_true))), "ece_before": expected_calibration_error(y_true, probs, n_bins),
            "ece_after_on_fit_data": expected_calibration_error(y_true, after, n_bins), "source": source}


# --------------------------------------------------------------------------- evaluation reports


def calibration_report(y_fit, probs_fit, y_eval, probs_eval, n_bins: int = DEFAULT_BINS) -> dict:
    """Fit T on (y_fit, probs_fit), apply it to probs_eval and compare ECE on y_eval.

    Returns {"method": "temperature", "fitted_on": "validation split", "temperature",
    "n_fit", "ece_before", "ece_after", "n", "n_bins", "bins_before", "bins_after"}."""
    t = fit_temperature(probs_to_logits(probs_fit), y_fit)
    after = apply_temperature(probs_to_logits(probs_eval), t)
    return {"method": "temperature", "fitted_on": "validation split", "temperature": t,
            "n_fit": int(len(np.asarray(y_fit))), **calibration_summary(y_eval, probs_eval, after, n_bins)}


def cross_fitted_report(y, probs, groups, seed: int = 0, n_bins: int = DEFAULT_BINS) -> dict:
    """No separate fitting split: two halves by group (patient), each calibrated with the T
    fitted on the other, so no image is calibrated by a temperature that saw it."""
    y = np.asarray(y, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    names = sorted(set(groups))
    if len(names) < 2:
        return {"method": "temperature", "fitted_on": None, "temperature": None,
                "note": "one patient only: nothing held out to fit a temperature on",
                **calibration_summary(y, probs, probs, n_bins)}
    order = np.random.default_rng(seed).permutation(len(names))
    half = {names[i] for i in order[: len(names) // 2]}
    a = np.array([g in half for g in groups])
    after = np.empty_like(probs)
    temps = []
    for fit, apply in ((a, ~a), (~a, a)):
        temps.append(fit_temperature(probs_to_logits(probs[fit]), y[fit]))
        after[apply] = apply_temperature(probs_to_logits(probs[apply]), temps[-1])
    return {"method": "temperature", "fitted_on": "cross-fitted halves of the test split (by patient)",
            "temperature": float(np.exp(np.mean(np.log(temps)))), "temperatures": temps,
            **calibration_summary(y, probs, after, n_bins)}


def ece_line(task: str, report: dict) -> str:
    """'ECE before and after calibration' as `mama eval` prints it."""
    t = report.get("temperature")
    how = f"temperature {t:.3f} fitted on the {report['fitted_on']}" if t is not None else report.get("note", "")
    return (f"{task}: ECE before calibration {report['ece_before']:.3f}, after calibration {report['ece_after']:.3f} "
            f"({report['n']} test images, {report['n_bins']} bins; {how})")
