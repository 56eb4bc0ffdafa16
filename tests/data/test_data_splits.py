"""Patient-level splits: deterministic, disjoint, complete."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mama_core.data import ImageRecord, split_by_patient
from mama_core.errors import ConfigError


def _records(patients: int = 50, images: int = 4) -> list[ImageRecord]:
    return [
        ImageRecord(Path(f"{p}/{i}.dcm"), f"P{p:03d}", f"S{p}", "L", "CC", {})
        for p in range(patients)
        for i in range(images)
    ]


def _patients(records):
    return {r.patient_id for r in records}


def test_disjoint_complete_and_sized():
    records = _records()
    splits = split_by_patient(records)
    assert set(splits) == {"train", "val", "test"}
    train, val, test = (_patients(splits[k]) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert sum(len(v) for v in splits.values()) == len(records)
    assert (len(train), len(val), len(test)) == (35, 5, 10)


def test_deterministic_for_a_seed_and_independent_of_order():
    records = _records()
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    a = split_by_patient(records, seed=3)
    b = split_by_patient(shuffled, seed=3)
    assert all(_patients(a[k]) == _patients(b[k]) for k in a)
    c = split_by_patient(records, seed=4)
    assert _patients(a["test"]) != _patients(c["test"])


def test_records_keep_their_order_inside_a_split():
    records = _records(10, 3)
    split = split_by_patient(records)["train"]
    assert split == [r for r in records if r in split]


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(ConfigError):
        split_by_patient(_records(), fractions=fractions)


def test_tiny_sets():
    assert split_by_patient([]) == {"train": [], "val": [], "test": []}
    one = split_by_patient(_records(1, 2))
    assert len(one["train"]) == 2
