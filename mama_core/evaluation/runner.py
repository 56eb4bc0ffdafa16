"""`evaluate`: the paper's evaluation protocol over local data (docs/method.md §1.10).

Data: any source `mama_core.data.load_records` reads (EMBED folder, RSNA train.csv, a
synthetic demo folder, a DICOM folder + labels CSV), split by patient into
train/val/test.  Zero-shot uses the test split only; linear probe and fine-tuning train on
the train split (a class-stratified `fraction` of it) and report on the test split.
Both train through the fine-tuning engine (`mama_core.finetune`: one config class, one
probe loop, one encoder loop), without validation or early stopping: a fixed number of
steps, the last state kept, as in the paper's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mama_core.config import Config, choice, in_interval, non_negative_int, positive_int
from mama_core.errors import ConfigError, DataError
from mama_core.evaluation.features import FeatureStore
from mama_core.evaluation.metrics import compute_metrics
from mama_core.evaluation.zero_shot import zero_shot_probs
from mama_core.finetune.config import TASK_CLASSES, FinetuneConfig
from mama_core.finetune.data import CLASSES, label_index, subsample_fraction

MODES = ("zero-shot", "linear-probe", "finetune")
# The protocol's steps (paper probe recipe: 1000 steps, 100 warm-up) and the engine's mode for each row.
PROTOCOL_STEPS = {"linear-probe": 1000, "finetune": 200}
ENGINE_MODE = {"linear-probe": "linear-probe", "finetune": "full"}


@dataclass
class EvalConfig(Config):
    """One evaluation run of the paper's protocol (docs/method.md §1.10)."""

    tasks: list[str] = field(default_factory=lambda: ["birads", "density"], metadata={
        "help": "tasks to evaluate: birads | density | cancer"})
    mode: str = field(default="zero-shot", metadata={"help": "zero-shot | linear-probe | finetune"})
    fraction: float = field(default=1.0, metadata={
        "help": "class-stratified share of the training split the probe / fine-tuning sees (paper: 0.01, 0.1, 1)"})
    split: tuple[float, float, float] = field(default=(0.7, 0.1, 0.2), metadata={
        "help": "patient-level (train, validation, test) shares; validation fits the temperature"})
    seed: int = field(default=0, metadata={"help": "seed of the split, the subsample and training"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95 % intervals (0 = none)"})
    with_metadata: bool = field(default=False, metadata={
        "help": "zero-shot prompts prefixed with the image's own metadata"})
    keep_predictions: bool = field(default=False, metadata={
        "help": "results carry the predictions (paths, labels, probabilities) for reports"})
    steps: int | None = field(default=None, metadata={
        "help": "optimiser steps of the probe / fine-tuning; null = the protocol's (probe 1000, fine-tuning 200)"})
    batch_size: int | None = field(default=None, metadata={
        "help": "images per step; null = the fine-tuning engine's default for the mode"})

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASK_CLASSES]
        if bad or not self.tasks:
            raise ConfigError(f"unknown task(s) {bad}; expected some of {sorted(TASK_CLASSES)}", field="tasks")
        choice(self.mode, MODES, "mode")
        in_interval(self.fraction, "fraction", 0.0, 1.0, closed_low=False, closed_high=True)
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"must be three non-negative shares summing to 1, got {self.split!r}", field="split")
        non_negative_int(self.n_boot, "n_boot")
        for key in ("steps", "batch_size"):
            if getattr(self, key) is not None:
                positive_int(getattr(self, key), key)

    def tuning(self, task: str, device: Any = None) -> FinetuneConfig:
        """The fine-tuning engine's config for this protocol row (linear probe or full fine-tuning)."""
        if self.mode == "zero-shot":
            raise ConfigError("zero-shot trains nothing", field="mode")
        return FinetuneConfig(task=task, mode=ENGINE_MODE[self.mode], seed=self.seed, batch_size=self.batch_size,
                              max_steps=self.steps or PROTOCOL_STEPS[self.mode],
                              device=None if device is None else str(device))


def labelled(records: Sequence[Any], task: str) -> tuple[list[Any], np.ndarray]:
    """The records labelled for the task and their class indices (BI-RADS 0-6, density 1-4 -> 0-3, cancer 0/1)."""
    keep = [r for r in records if label_index(r, task) is not None]
    return keep, np.array([label_index(r, task) for r in keep], dtype=np.int64)


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
    paths = [r.path for r in test + val]
    if cfg.mode == "zero-shot":
        probs = zero_shot_probs(predictor, store.global_features(paths), test + val, task, cfg.with_metadata)
    elif not train:
        raise DataError(f"no labelled training images for task '{task}'", field=task)
    else:
        keep = subsample_fraction(y_train, cfg.fraction, cfg.seed)
        train, y_train = [train[i] for i in keep], y_train[keep]
        probe = _fit_eval_probe(store.global_features([r.path for r in train]), y_train, task, cfg)
        if cfg.mode == "linear-probe":
            probs = probe.probabilities(torch.from_numpy(store.global_features(paths)))
        else:
            probs = _finetune_probs(predictor, probe, train, y_train, test + val, task, cfg)
    return probs[: len(test)], (probs[len(test):] if val else None)


def _fit_eval_probe(features: np.ndarray, labels: np.ndarray, task: str, cfg: EvalConfig):
    """The linear-probe row's head, or the fine-tuning row's starting head (LP-FT, as local fine-tuning)."""
    from mama_core.finetune.probe import fit_probe

    tuning = cfg.tuning(task)
    return fit_probe(features, labels, tuning if cfg.mode == "linear-probe" else tuning.initial_probe(), CLASSES[task])


def _finetune_probs(predictor: Any, probe: Any, train: list, y_train: np.ndarray, records: list, task: str,
                    cfg: EvalConfig) -> np.ndarray:
    """Train a copy of the vision encoder with the probe's head through the engine's encoder
    loop (every step, no validation); probabilities of `records` from the trained copy."""
    import copy

    from mama_core.finetune.encoder import train_encoder
    from mama_core.finetune.features import extract_global, image_cache
    from mama_core.finetune.probe import run_to_end

    tuning = cfg.tuning(task, predictor.device)
    with predictor._lock:
        model = copy.deepcopy(predictor.model)  # the predictor's own weights never change
    cache, device = image_cache(model), predictor.device
    head, _ = run_to_end(train_encoder(model, probe, train, y_train, None, None, cache, device, tuning))
    raw = torch.cat([f for _, f in extract_global(model, records, cache, device, 16, tuning.bf16)])
    return head.probabilities(raw)


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


def load_eval_records(data: str | Path, labels: str | Path | None = None) -> list[Any]:
    from mama_core.data import load_records

    records = load_records(data, labels)
    if not records:
        raise DataError("no images found", path=data)
    return records
