"""A plain CSV, one row per image -> ImageRecords.

Required: `path` (relative paths resolve against image_root, default the CSV's folder).
Optional: patient_id, study_id, laterality, view, birads, density, cancer, and any of the
EMBED caption columns (StudyDescription, RACE_DESC, ..., asses, tissueden, ...), which go
into `meta` as they are.  Labels given only as EMBED columns (asses, tissueden) count as
labels; labels given only under the plain names are copied into meta for the caption.
"""

from __future__ import annotations

from pathlib import Path

from mama_core.captions import CAPTION_KEYS, is_missing
from mama_core.data.records import ImageRecord, first_present, parse_cell
from mama_core.data.tables import Row, iter_rows

GENERIC_REQUIRED = ("path",)
GENERIC_OPTIONAL = ("patient_id", "study_id", "laterality", "view", "birads", "density", "cancer", *CAPTION_KEYS)
# label -> (columns tried in order, parser kind, caption key)
_LABELS = {
    "laterality": (("laterality", "ImageLateralityFinal"), "laterality", "ImageLateralityFinal"),
    "view": (("view", "ViewPosition"), "view", "ViewPosition"),
    "birads": (("birads", "asses"), "birads", "asses"),
    "density": (("density", "tissueden"), "density", "tissueden"),
}


def load_generic(csv_path: str | Path, image_root: str | Path | None = None) -> list[ImageRecord]:
    path = Path(csv_path)
    root = Path(image_root) if image_root is not None else path.parent
    return [_record(row, path, root) for row in iter_rows(path, GENERIC_REQUIRED, GENERIC_OPTIONAL)]


def _record(row: Row, path: Path, root: Path) -> ImageRecord:
    image = Path(row.get("path"))
    image = image if image.is_absolute() else root / image
    meta: dict[str, object] = {k: v for k, v in row.values.items() if k in CAPTION_KEYS and not is_missing(v)}
    labels = {name: _label(row, path, meta, *spec) for name, spec in _LABELS.items()}
    study = row.get("study_id") or image.parent.name
    return ImageRecord(
        path=image,
        patient_id=row.get("patient_id") or study,
        study_id=study,
        meta=meta,
        cancer=parse_cell(row, "cancer", "cancer", path),
        **labels,
    )


def _label(row: Row, path: Path, meta: dict[str, object], columns: tuple[str, ...], kind: str, caption_key: str):
    """Parse the first present column of a label; mirror it into meta when meta lacks it."""
    column = first_present(row, columns)
    if column is None:
        return None
    value = parse_cell(row, column, kind, path)
    meta.setdefault(caption_key, value)
    return value
