"""`evaluate`: the paper's evaluation protocol over local data (docs/method.md §1.10).

Data: any source `mama_core.data.load_records` reads (EMBED folder, RSNA train.csv, a
synthetic demo folder, a DICOM folder + labels CSV), split by patient into
train/val/test.  Zero-shot uses the test split only; linear probe and fine-tuning train on
the train split (a class-stratified `fraction` of it) and report on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mama_core.errors import ConfigError, DataError
from mama_core.evaluation.features import FeatureStore
from mama_core.evaluation.finetune import FinetuneConfig, finetune_and_predict
from mama_core.evaluation.linear_probe import LinearProbe, ProbeConfig, train_linear_probe
from mama_core.evaluation.metrics import compute_metrics
from mama_core.evaluation.zero_shot import zero_shot_probs

TASK_CLASSES = {"birads": 7, "density": 4, "cancer": 2}
MODES = ("zero-shot", "linear-probe", "finetune")


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=lambda: ["birads", "density"])
    mode: str = "zero-shot"
    fraction: float = 1.0
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 0
    n_boot: int = 1000
    with_metadata: bool = False  # zero-shot prompts prefixed with the image's own metadata
    keep_predictions: bool = False  # results carry "predictions" (paths, labels, probs) for reports
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASK_CLASSES]
        if bad or not self.tasks:
            raise ConfigError(f"unknown task(s) {bad}; expected some of {sorted(TASK_CLASSES)}", field="tasks")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; expected one of {MODES}", field="mode")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}", field="fraction")
        self.probe.fraction = self.finetune.fraction = self.fraction
        self.probe.seed = self.finetune.seed = self.seed


def task_label(record: Any, task: str) -> int | None:
    """Class index: BI-RADS 0-6 as is, density 1-4 -> 0-3, cancer 0/1."""
    value = getattr(record, task)
    if value is None:
        return None
    return int(value) - 1 if task == "density" else int(value)


def labelled(records: Sequence[Any], task: str) -> tuple[list[Any], np.ndarray]:
    keep = [r for r in records if task_label(r, task) is not None]
    return keep, np.array([task_label(r, task) for r in keep], dtype=int)


def evaluate(predictor: Any, records: Sequence[Any], cfg: EvalConfig, store: FeatureStore | None = None) -> list[dict]:
    """One result dict per task: {"task", "mode", "fraction", "model", "n_train", "n_test",
    "metrics": Metrics.to_json(), "notes": [...]}."""
    from mama_core.data import split_by_patient

    splits = split_by_patient(list(records), cfg.split, cfg.seed)
    store = store or FeatureStore(predictor)
    return [_evaluate_task(predictor, splits, task, cfg, store) for task in cfg.tasks]


def _evaluate_task(predictor: Any, splits: dict, task: str, cfg: EvalConfig, store: FeatureStore) -> dict:
    test, y_test = labelled(splits["test"], task)
    if not test:
        raise DataError(f"no labelled test images for task '{task}' (check the data's labels)", field=task)
    train, y_train = labelled(splits["train"], task)
    val, y_val = labelled(splits.get("val", []), task)
    probs, val_probs = _probabilities(predictor, task, cfg, store, train, y_train, test, val)
    metrics = compute_metrics(y_test, probs, n_boot=cfg.n_boot, seed=cfg.seed)
    counts = {str(c): int(np.sum(y_test == c)) for c in range(TASK_CLASSES[task])}
    result = {
        "task": task, "mode": cfg.mode, "fraction": cfg.fraction if cfg.mode != "zero-shot" else None,
        "model": predictor.name, "model_fingerprint": predictor.fingerprint,
        "n_train": len(train) if cfg.mode != "zero-shot" else 0, "n_test": len(test),
        "class_counts": counts,
        "metrics": metrics.to_json(), "notes": _notes(metrics, task) + _count_notes(counts),
        "calibration": _calibration(y_test, probs, y_val, val_probs, [r.patient_id for r in test], cfg.seed),
        **({"notice": predictor.notice} if getattr(predictor, "notice", None) else {}),
    }
    if cfg.keep_predictions:
        result["predictions"] = {"paths": [str(r.path) for r in test], "y_true": y_test.tolist(),
                                 "probs": np.asarray(probs).tolist()}
    return result


def _probabilities(predictor, task, cfg, store, train, y_train, test, val) -> tuple[np.ndarray, np.ndarray | None]:
    """Uncalibrated class probabilities of the test images and (when there is a validation
    split) of the validation images, on which the temperature is fitted."""
    n_classes = TASK_CLASSES[task]
    paths = [r.path for r in test + val]
    if cfg.mode == "zero-shot":
        probs = zero_shot_probs(predictor, store.global_features(paths), test + val, task, cfg.with_metadata)
    elif not train:
        raise DataError(f"no labelled training images for task '{task}'", field=task)
    elif cfg.mode == "linear-probe":
        probe = train_linear_probe(store.global_features([r.path for r in train]), y_train, n_classes, cfg.probe)
        probs = probe.predict_proba(store.global_features(paths))
    else:
        probs = finetune_and_predict(predictor, [r.path for r in train], y_train, paths, n_classes, cfg.finetune)
    return probs[: len(test)], (probs[len(test):] if val else None)


def _calibration(y_test, probs, y_val, val_probs, test_groups, seed: int) -> dict:
    """Temperature scaling (docs/inference.md "Calibrated probabilities"): fitted on the
    validation split and measured on the test split; without a validation split (e.g.
    --split all-test) cross-fitted over two patient-disjoint halves of the test split."""
    from mama_core.evaluation.calibration import calibration_report, cross_fitted_report

    if val_probs is not None and len(y_val) >= 2:
        return calibration_report(y_val, val_probs, y_test, probs)
    return cross_fitted_report(y_test, probs, test_groups, seed)


def _count_notes(counts: dict[str, int]) -> list[str]:
    """The same rule as the fine-tune comparison (finetune.compare.MIN_PER_CLASS), in words."""
    from mama_core.finetune.compare import MIN_PER_CLASS

    present = {c: n for c, n in counts.items() if n}
    if len(present) < 2:
        return [f"the test split holds a single class ({', '.join(present)}): these numbers say nothing about "
                "telling classes apart; no conclusion should be drawn from them"]
    small = [f"class {c}: {n}" for c, n in present.items() if n < MIN_PER_CLASS]
    if small:
        return [f"fewer than {MIN_PER_CLASS} test images in some classes ({', '.join(small)}): too few to compare "
                "models on; read the intervals, not the point estimates"]
    return []


def _notes(metrics: Any, task: str) -> list[str]:
    notes = []
    if metrics.absent_classes and metrics.auc is not None:
        notes.append(f"macro AUC over present classes {metrics.auc_classes}; classes {metrics.absent_classes} "
                     "have no positive (or no negative) test images and were left out")
    if metrics.auc is None:
        notes.append("AUC undefined: the test split holds a single class")
    return notes


def probe_head_from(probe: LinearProbe, task: str):
    """A trained linear probe as a model-directory probe head (see inference.heads)."""
    from mama_core.inference.heads import ProbeHead

    return ProbeHead(task=task, classes=probe.classes, weight=probe.weight, bias=probe.bias,
                     mean=probe.mean, std=probe.std, feature="image_global")


def load_eval_records(data: str | Path, labels: str | Path | None = None) -> list[Any]:
    from mama_core.data import load_records

    records = load_records(data, labels)
    if not records:
        raise DataError("no images found", path=data)
    return records
