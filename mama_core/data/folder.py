"""A folder of DICOM or image files with no tables -> ImageRecords, and label CSVs.

Studies are found by `mama_core.dicom.find_studies` (grouped and placed by the rules in
docs/data.md, keyed 'RCC', 'LCC', ...); side and view come from each image's placement
(manual overrides included), and the caption meta gets what DICOM headers add (age,
procedure description). Unplaced images have no side or view and are left out. No labels
come from headers: a labels CSV may add them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pydicom

from mama_core.data.records import ImageRecord, first_present, parse_cell, view_key
from mama_core.data.tables import Row, iter_rows, read_header
from mama_core.errors import DataError

log = logging.getLogger(__name__)

_HEADER_TAGS = ["PatientAge", "StudyDescription"]


def load_dicom_folder(folder: str | Path) -> list[ImageRecord]:
    """One record per image of every study under `folder` (labels left None)."""
    from mama_core.dicom import find_studies  # lazy: the DICOM package is heavier

    folder = Path(folder)
    records = []
    for study in find_studies(folder):
        for key, path in study.images.items():
            if "-" in key:  # 'LCC-SPOT', 'LCC-MAG', 'LCC-SYNTH': not the view it names
                continue
            records.append(_record(study, key, Path(path)))
    if not records:
        raise DataError("no tables (metadata.csv + clinical.csv, train.csv) and no DICOM or image files "
                        "(PNG, JPEG, TIFF, PGM) with a known side and view found", path=folder)
    return records


def _record(study, key: str, path: Path) -> ImageRecord:
    from mama_core.images import is_image_file

    header = None if is_image_file(path) else _header(path)
    placement = study.placements.get(path)
    laterality = placement.laterality if placement is not None else None
    view = placement.view if placement is not None else None
    meta: dict[str, object] = {}
    for name, value in (("ImageLateralityFinal", laterality), ("ViewPosition", view),
                        ("age_at_study", dicom_age_years(_header_text(header, "PatientAge"))),
                        ("StudyDescription", _header_text(header, "StudyDescription"))):
        if value is not None:
            meta[name] = value
    return ImageRecord(path=path, patient_id=study.patient_id or study.uid, study_id=study.uid,
                       laterality=laterality if laterality in ("L", "R") else None,
                       view=view.upper() if view else None, meta=meta)


def _header(path: Path) -> pydicom.Dataset | None:
    """The few header fields the caption meta needs; None when unreadable (the study
    finder already read the file, so a failure here only costs the meta)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except Exception as exc:  # pydicom raises many types for damaged files
        log.warning("%s: header not readable for caption meta: %s", path, exc)
        return None


def _header_text(header: pydicom.Dataset | None, *keywords: str) -> str | None:
    for keyword in keywords:
        value = getattr(header, keyword, None) if header is not None else None
        if value not in (None, ""):
            return str(value).strip()
    return None


def dicom_age_years(age: str | None) -> int | None:
    """DICOM Age String (PS3.5 §6.2 'AS': nnnD/W/M/Y) -> whole years; None if absent/odd."""
    if not age or not re.fullmatch(r"\d{3}[DWMY]", age):
        return None
    number, unit = int(age[:3]), age[3]
    per_year = {"D": 365.25, "W": 52.18, "M": 12, "Y": 1}[unit]
    return int(number // per_year)


# ---------------------------------------------------------------- labels CSV

_STUDY_COLUMNS = ("study_id", "StudyInstanceUID")
_KEY_COLUMNS = ("view_key", "key")
_LABEL_COLUMNS = {"birads": ("birads", "asses"), "density": ("density", "tissueden"), "cancer": ("cancer",)}
_CAPTION_KEY = {"birads": "asses", "density": "tissueden"}


def apply_labels(records: list[ImageRecord], labels_csv: str | Path) -> list[ImageRecord]:
    """Fill birads/density/cancer from a labels CSV, in place (records returned).

    Columns: `study_id` or `StudyInstanceUID`; optionally a view key (`view_key` or `key`:
    'LCC' for one image, 'L' for one side; or `laterality` + `view` columns); and any of
    birads/asses, density/tissueden, cancer.  A row without a key labels the whole study;
    the most specific row wins."""
    table = _read_labels(Path(labels_csv))
    for record in records:
        row = _labels_for(table, record)
        if row is not None:
            _overlay(record, row)
    return records


def _read_labels(path: Path) -> dict[tuple[str, str | None], dict[str, object]]:
    header = read_header(path)
    study_column = next((c for c in _STUDY_COLUMNS if c in header), None)
    if study_column is None:
        raise DataError("missing required column(s): study_id (or StudyInstanceUID)", path=path)
    optional = (*_KEY_COLUMNS, "laterality", "view", *[c for cols in _LABEL_COLUMNS.values() for c in cols])
    table: dict[tuple[str, str | None], dict[str, object]] = {}
    for row in iter_rows(path, (study_column,), optional):
        key = (row.get(study_column), _row_key(row, path))
        if key in table:
            raise DataError(f"duplicate labels for study {key[0]} key {key[1]} (row {row.line})", path=path)
        table[key] = _row_labels(row, path)
    return table


def _row_key(row: Row, path: Path) -> str | None:
    key_column = first_present(row, _KEY_COLUMNS)
    if key_column is not None:
        return row.get(key_column).upper()
    raw_view = (row.get("view") or "").strip().upper()
    if not row.get("laterality") and raw_view[:1] in ("L", "R") and len(raw_view) > 2:
        return raw_view  # a full view key such as 'LCC' in the `view` column (simple label CSVs)
    laterality = parse_cell(row, "laterality", "laterality", path)
    view = parse_cell(row, "view", "view", path)
    return view_key(laterality, view) or laterality


def _row_labels(row: Row, path: Path) -> dict[str, object]:
    labels: dict[str, object] = {}
    for name, columns in _LABEL_COLUMNS.items():
        column = first_present(row, columns)
        if column is not None:
            labels[name] = parse_cell(row, column, name, path)
    return labels


def _labels_for(table: dict, record: ImageRecord) -> dict[str, object] | None:
    for key in (view_key(record.laterality, record.view), record.laterality, None):
        if (record.study_id, key) in table:
            return table[(record.study_id, key)]
    return None


def _overlay(record: ImageRecord, labels: dict[str, object]) -> None:
    for name, value in labels.items():
        setattr(record, name, value)
        if name in _CAPTION_KEY:
            record.meta[_CAPTION_KEY[name]] = value
