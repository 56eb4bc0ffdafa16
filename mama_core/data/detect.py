"""`load_records`: pick the reader for whatever the user points at (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

from mama_core.data.embed import load_embed
from mama_core.data.folder import apply_labels, load_dicom_folder
from mama_core.data.generic import load_generic
from mama_core.data.records import ImageRecord
from mama_core.data.rsna import RSNA_REQUIRED, load_rsna
from mama_core.data.tables import read_header
from mama_core.errors import DataError


def load_records(path: str | Path, labels: str | Path | None = None) -> list[ImageRecord]:
    """Records from an EMBED folder (metadata.csv + clinical.csv), an RSNA train.csv (or a
    folder holding one), a generic CSV with a `path` column, or a plain DICOM folder.

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
    metadata, clinical = folder / "metadata.csv", folder / "clinical.csv"
    if metadata.is_file() and clinical.is_file():
        return load_embed(metadata, clinical, image_root=folder)
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
        "not a known table: expected RSNA columns (" + ", ".join(RSNA_REQUIRED) + ") or a generic 'path' column",
        path=path,
    )
