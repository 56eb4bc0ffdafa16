"""Patient-level splits: no patient's images in two splits (no leakage between the
views or exams of one woman)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from mama_core.data.records import ImageRecord
from mama_core.errors import ConfigError

SPLIT_NAMES = ("train", "val", "test")


def split_by_patient(
    records: Sequence[ImageRecord], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, list[ImageRecord]]:
    """Assign whole patients to train/val/test in the given fractions (of patients).

    Deterministic for a seed whatever the order of `records`: patients are sorted
    before the seeded shuffle.  Records keep their input order inside each split."""
    counts = _split_sizes(len({r.patient_id for r in records}), fractions)
    patients = sorted({r.patient_id for r in records})
    random.Random(seed).shuffle(patients)
    assignment: dict[str, str] = {}
    start = 0
    for name, count in zip(SPLIT_NAMES, counts):
        assignment.update((p, name) for p in patients[start : start + count])
        start += count
    splits: dict[str, list[ImageRecord]] = {name: [] for name in SPLIT_NAMES}
    for record in records:
        splits[assignment[record.patient_id]].append(record)
    return splits


def _split_sizes(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Patients per split: round train and val, test takes the rest (so sizes sum to n)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"fractions={tuple(fractions)} must be three non-negative numbers summing to 1", field="fractions")
    n_train = round(fractions[0] * n)
    n_val = min(round(fractions[1] * n), n - n_train)
    return [n_train, n_val, n - n_train - n_val]
