"""EMBED-style tables and the ground-truth file for a synthetic data set.

`metadata.csv` has one row per image and `clinical.csv` one row per finding (plus a negative
row for each side without one), joined on `acc_anon`; under the EMBED rule (a row applies
when its side equals the image laterality or is 'B'; the highest BI-RADS wins) every image
gets its side's BI-RADS.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mama_core.errors import DataError
from mama_core.synthetic.render import RenderedView
from mama_core.synthetic.spec import ASSES_LETTER, SIDES, Finding, StudySpec

METADATA_COLUMNS = (
    "empi_anon", "acc_anon", "anon_dicom_path", "StudyDescription", "SeriesDescription", "FinalImageType",
    "ImageLateralityFinal", "ViewPosition", "StudyInstanceUID", "SOPInstanceUID", "Rows", "Columns",
    "study_date_anon",
)
# `massmargin`, `cancer` and `study_date_anon` are extra EMBED-style columns beyond the
# brief's list (the EMBED reader takes an optional `cancer` column).
CLINICAL_COLUMNS = (
    "empi_anon", "acc_anon", "desc", "side", "asses", "tissueden", "massshape", "massmargin", "massdens",
    "calcfind", "calcdistri", "cancer", "RACE_DESC", "ETHNIC_GROUP_DESC", "age_at_study", "study_date_anon",
)


def image_path(spec: StudySpec, key: str) -> str:
    """Path of an image relative to the data-set folder (POSIX separators)."""
    return f"{spec.folder}/{key}.dcm"


def metadata_row(spec: StudySpec, view: RenderedView) -> dict[str, object]:
    rows, cols = view.pixels.shape
    return {
        "empi_anon": spec.patient_id, "acc_anon": spec.accession, "anon_dicom_path": image_path(spec, view.key),
        "StudyDescription": spec.description, "SeriesDescription": f"{view.key[0]} {view.key[1:]}",
        "FinalImageType": "2D", "ImageLateralityFinal": view.key[0], "ViewPosition": view.key[1:],
        "StudyInstanceUID": spec.study_uid, "SOPInstanceUID": spec.sop_uid(view.key), "Rows": rows,
        "Columns": cols, "study_date_anon": spec.iso_date,
    }


def _clinical_base(spec: StudySpec, side: str, birads: int) -> dict[str, object]:
    row: dict[str, object] = {c: "" for c in CLINICAL_COLUMNS}
    row.update({
        "empi_anon": spec.patient_id, "acc_anon": spec.accession, "desc": spec.description, "side": side,
        "asses": ASSES_LETTER[birads], "tissueden": spec.density, "cancer": 0, "RACE_DESC": spec.race,
        "ETHNIC_GROUP_DESC": spec.ethnicity, "age_at_study": spec.age, "study_date_anon": spec.iso_date,
    })
    return row


def _finding_row(spec: StudySpec, f: Finding) -> dict[str, object]:
    row = _clinical_base(spec, f.side, f.birads)
    row.update({"massshape": f.massshape, "massmargin": f.massmargin, "massdens": f.massdens,
                "calcfind": f.calcfind, "calcdistri": f.calcdistri, "cancer": f.cancer})
    return row


def clinical_rows(spec: StudySpec) -> list[dict[str, object]]:
    """A single 'B' negative row for a normal study; otherwise one row per finding and a
    negative row for a side without findings."""
    if not spec.findings:
        return [_clinical_base(spec, "B", 1)]
    rows = [_finding_row(spec, f) for f in spec.findings]
    rows += [_clinical_base(spec, s, 1) for s in SIDES if not spec.side_findings(s)]
    return rows


def truth_entry(spec: StudySpec, view: RenderedView) -> dict[str, object]:
    return {
        "path": image_path(spec, view.key), "study_uid": spec.study_uid, "view": view.key,
        "density": spec.density, "birads": spec.side_birads(view.key[0]),
        "lesions": [
            {"type": b.kind, "bbox": list(b.box), "shape": b.shape, "finding": b.finding,
             "size_mm": round(b.size_mm, 2)}
            for b in view.lesions
        ],
    }


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise DataError(f"cannot write table: {exc.strerror or exc}", path=path) from exc


def write_json(path: Path, entries: list[dict[str, object]]) -> None:
    try:
        path.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write ground truth: {exc.strerror or exc}", path=path) from exc
