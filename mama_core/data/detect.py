"""`load_records`: pick the reader for whatever the user points at (docs/architecture.md,
docs/datasets.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from mama_core.data.folder import apply_labels, load_dicom_folder
from mama_core.data.generic import load_generic
from mama_core.data.records import ImageRecord
from mama_core.data.rsna import RSNA_REQUIRED, load_rsna
from mama_core.data.tables import read_header
from mama_core.errors import DataError

log = logging.getLogger(__name__)


def load_records(path: str | Path, labels: str | Path | None = None) -> list[ImageRecord]:
    """Records from a public dataset's root folder as downloaded (EMBED, CBIS-DDSM, VinDr-Mammo,
    RSNA, CMMD, INbreast, mini-MIAS: `mama_core.datasets` detects which), an RSNA train.csv,
    a generic CSV with a `path` column, or else a plain DICOM folder.

    `labels` (a CSV keyed by study_id / StudyInstanceUID, optionally a view key) adds
    birads/density/cancer labels; it is meant for DICOM folders but works for any source."""
    path = Path(path)
    if not path.exists():
        raise DataError("not found", path=path)
    records = _load_folder(path) if path.is_dir() else _load_table(path)
    if labels is not None:
        apply_labels(records, labels)
    return records


def _load_folder(folder: Path) -> list[ImageRecord]:
    from mama_core.datasets import detect_dataset  # lazy: the adapters import this package

    found = detect_dataset(folder)
    if found is not None:
        log.info("%s: read as %s", folder, found.adapter.info.title)
        return found.adapter.load(folder)
    if (folder / "train.csv").is_file():
        return load_rsna(folder / "train.csv")
    return load_dicom_folder(folder)


def _load_table(path: Path) -> list[ImageRecord]:
    header = set(read_header(path))
    if set(RSNA_REQUIRED) <= header or (path.name.lower() == "train.csv" and "path" not in header):
        return load_rsna(path)
    if "path" in header:
        return load_generic(path)
    raise DataError(
        "not a known table: expected RSNA columns (" + ", ".join(RSNA_REQUIRED) + ") or a generic 'path' column; "
        "for a public dataset give its folder, not one of its tables (`mama datasets` lists the layouts)",
        path=path,
    )
