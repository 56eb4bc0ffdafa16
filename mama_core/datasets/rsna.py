"""RSNA Screening Mammography (Kaggle): the reader is `mama_core.data.rsna`; this registers it."""

from __future__ import annotations

from pathlib import Path

from mama_core.data.records import ImageRecord
from mama_core.data.rsna import find_table, load_rsna
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, require_folder
from mama_core.errors import DataError


class Rsna(DatasetAdapter):
    info = DatasetInfo(
        name="rsna",
        title="RSNA Screening Mammography (Kaggle)",
        layout="train.csv (or test.csv) + train_images/<patient_id>/<image_id>.dcm",
        labels="cancer (0/1), density (A-D; blank at site 2), birads (BIRADS 0-2 where given)",
        lesions="none (breast-level labels only)",
    )

    def detect(self, folder: Path) -> float:
        return 1.0 if find_table(folder) is not None else 0.0

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        table = find_table(folder)
        if table is None:
            raise DataError("no train.csv / test.csv with RSNA columns", path=folder)
        return load_rsna(table)
