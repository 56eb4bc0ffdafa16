"""Local cases in: records with a label for the task, a patient-level split, a fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mama_core.data import load_records, split_by_patient
from mama_core.errors import DataError
from mama_core.finetune.config import FinetuneConfig

# Class values as stored in heads/<task>.json (inference/heads.py): index i <-> CLASSES[i].
CLASSES: dict[str, list[int]] = {"birads": list(range(7)), "density": [1, 2, 3, 4], "cancer": [0, 1]}


def label_index(record: Any, task: str) -> int | None:
    """The record's class index for the task (density 1-4 -> 0-3), None when unlabelled."""
    value = getattr(record, task)
    return None if value is None else CLASSES[task].index(int(value))


@dataclass
class LocalData:
    source: str
    train: list  # ImageRecords
    val: list
    n_unlabelled: int
    fingerprint: str

    def labels(self, split: str, task: str) -> np.ndarray:
        return np.array([label_index(r, task) for r in getattr(self, split)], dtype=np.int64)


def fingerprint(records: Sequence[Any]) -> str:
    """sha256 over the sorted (path, size, mtime, labels) of the records used, so a model's
    registry entry says exactly which local data it was fitted to."""
    rows = []
    for r in records:
        st = os.stat(r.path)
        rows.append([str(Path(r.path).resolve()), st.st_size, st.st_mtime_ns, r.birads, r.density, r.cancer])
    payload = json.dumps(sorted(rows), separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def prepare(data: str | Path | Sequence[Any], labels: str | Path | None, cfg: FinetuneConfig) -> LocalData:
    """Load (or take) records, keep those labelled for the task, split by patient."""
    records = list(data) if isinstance(data, (list, tuple)) else load_records(data, labels=labels)
    source = str(data) if not isinstance(data, (list, tuple)) else "records"
    labelled = [r for r in records if label_index(r, cfg.task) is not None]
    if len(labelled) < 4:
        raise DataError(f"only {len(labelled)} image(s) carry a {cfg.task} label; fine-tuning needs more "
                        "(give labels with --labels or enter them in the app)", path=source, field=cfg.task)
    splits = split_by_patient(labelled, (1 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=cfg.seed)
    train, val = splits["train"], splits["val"]
    if not train or not val:
        patients = len({r.patient_id for r in labelled})
        raise DataError(f"{patients} patient(s) cannot be split into training and validation; add cases",
                        path=source, field="patient_id")
    _check_classes(train, cfg.task, source)
    return LocalData(source, train, val, len(records) - len(labelled), fingerprint(labelled))


def _check_classes(train: list, task: str, source: str) -> None:
    present = {label_index(r, task) for r in train}
    if len(present) < 2:
        raise DataError(f"the training split holds a single {task} class ({CLASSES[task][present.pop()]}); "
                        "a classifier needs at least two", path=source, field=task)


def subsample_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a class-stratified `fraction` of the samples, at least one per class present
    (the evaluation protocol's 1 % / 10 % / 100 % of the training split)."""
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(len(idx) * fraction)))
        keep.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(keep))


def class_counts(y: np.ndarray, task: str) -> dict[str, int]:
    return {str(c): int(np.sum(y == i)) for i, c in enumerate(CLASSES[task])}
