"""Shared synthetic data sets: generated once per module at a small size."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mama_core.synthetic import generate_studies

SMALL_ROWS = 256


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_truth(root: Path) -> list[dict]:
    return json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """Ten small studies of seed 0 (several masses, calcifications and normals)."""
    root = tmp_path_factory.mktemp("synthetic_small")
    summary = generate_studies(root, 10, seed=0, rows=SMALL_ROWS)
    return root, summary
