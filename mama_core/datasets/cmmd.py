"""CMMD, the Chinese Mammography Database (TCIA): `CMMD/<ID1>/<date>/<series>/1-N.dcm` and the
clinical table `CMMD_clinicaldata_revision.xlsx` (columns ID1, LeftRight, Age, number,
abnormality, classification, subtype; one row per labelled breast).

Side and view come from each file's header (ImageLaterality; the view only in
ViewCodeSequence), never from the file number: `1-1` is not always CC.  Labels join on
(ID1, side): a breast without a row is left unlabelled (loaders that call it 'normal' are
assuming).  No lesion annotations.  The .xlsx is read with openpyxl; a CSV export of the same
table (',' or ';') works too.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import Row, iter_rows, sniff_delimiter
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, require_folder
from mama_core.errors import DataError

log = logging.getLogger(__name__)

PATIENT = re.compile(r"^D[12]-\d{4}$")
TABLE_STEM = "CMMD_clinicaldata_revision"
REQUIRED = ("ID1", "LeftRight", "classification")
OPTIONAL = ("Age", "abnormality", "subtype")


@dataclass
class _Breast:
    cancer: int
    age: str
    abnormality: str


def find_table(folder: Path) -> Path | None:
    for suffix in (".csv", ".xlsx"):
        candidate = folder / f"{TABLE_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _xlsx_rows(path: Path) -> list[Row]:
    """Rows of the first sheet as `Row`s (header = first row)."""
    import openpyxl  # here, not at the top: 90 ms of imports every desktop loading worker would pay

    try:
        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
        cells = [["" if v is None else str(v).strip() for v in row] for row in sheet.iter_rows(values_only=True)]
    except Exception as exc:  # openpyxl raises zip/XML errors of many kinds
        raise DataError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})", path=path) from exc
    if not cells:
        raise DataError("empty workbook", path=path)
    header = cells[0]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"missing required column(s): {', '.join(missing)}", path=path)
    return [Row(n, dict(zip(header, values))) for n, values in enumerate(cells[1:], start=2) if any(values)]


def read_labels(table: Path) -> dict[tuple[str, str], _Breast]:
    """(ID1, 'L'/'R') -> label of that breast."""
    if table.suffix.lower() == ".xlsx":
        rows = _xlsx_rows(table)
    else:
        rows = list(iter_rows(table, REQUIRED, OPTIONAL, delimiter=sniff_delimiter(table)))
    labels: dict[tuple[str, str], _Breast] = {}
    for row in rows:
        side = parse_cell(row, "LeftRight", "laterality", table)
        verdict = row.get("classification").strip().lower()
        if verdict not in ("benign", "malignant"):
            raise DataError(f"classification={row.get('classification')!r} is not Benign/Malignant (row {row.line})",
                            path=table, field="classification")
        labels[(row.get("ID1"), side)] = _Breast(int(verdict == "malignant"), row.get("Age"), row.get("abnormality"))
    return labels


def _patient_folders(folder: Path) -> list[Path]:
    """`<root>/CMMD/D1-0001` (TCIA download) or `<root>/D1-0001`."""
    base = folder / "CMMD" if (folder / "CMMD").is_dir() else folder
    return sorted(p for p in base.iterdir() if p.is_dir() and PATIENT.match(p.name))


class Cmmd(DatasetAdapter):
    info = DatasetInfo(
        name="cmmd",
        title="CMMD (TCIA)",
        layout="CMMD/<ID1>/<date>/<series>/1-N.dcm + CMMD_clinicaldata_revision.xlsx (or .csv)",
        labels="cancer per breast (classification Malignant/Benign; unlabelled breasts stay unknown); age",
        lesions="none (breast-level labels only)",
    )

    def detect(self, folder: Path) -> float:
        if find_table(folder) is not None:
            return 1.0
        base = folder / "CMMD" if (folder / "CMMD").is_dir() else folder
        try:
            names = [e.name for e in os.scandir(base) if e.is_dir()]
        except OSError:
            return 0.0
        return 0.8 if any(PATIENT.match(n) for n in names) else 0.0

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        table = find_table(folder)
        labels = read_labels(table) if table is not None else {}
        if table is None:
            log.warning("no %s.xlsx/.csv beside the CMMD images: images load without labels", TABLE_STEM)
        records = []
        for patient in _patient_folders(folder):
            for path in sorted(patient.rglob("*.dcm")):
                record = _record(path, patient.name, labels)
                if record is not None:
                    records.append(record)
        if not records:
            raise DataError("no CMMD images (CMMD/D1-0001/.../1-1.dcm)", path=folder)
        return records


def _record(path: Path, patient: str, labels: dict[tuple[str, str], _Breast]) -> ImageRecord | None:
    import pydicom

    from mama_core.dicom import fields

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # one damaged file must not hide the rest of the set
        log.warning("%s: not readable as DICOM (%s)", path, type(exc).__name__)
        return None
    side, view = fields.laterality(ds), fields.view(ds)
    breast = labels.get((patient, side)) if side else None
    meta: dict[str, object] = {k: v for k, v in (("ImageLateralityFinal", side), ("ViewPosition", view)) if v}
    if breast is not None and breast.age:
        meta["age_at_study"] = breast.age
    study = str(ds.get("StudyInstanceUID", "") or patient)
    return ImageRecord(path=path, patient_id=patient, study_id=study, laterality=side, view=view, meta=meta,
                       cancer=breast.cancer if breast is not None else None)
