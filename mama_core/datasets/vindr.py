"""VinDr-Mammo (PhysioNet 1.0.0): `images/<study_id>/<image_id>.dicom` and two tables.

`breast-level_annotations.csv` gives one row per image (BI-RADS and density of the breast);
`finding_annotations.csv` one row per finding box (and a 'No Finding' row per clean image),
repeating the breast-level labels, so either table alone yields the records.  Boxes are
x = column, y = row in the stored pixel array; a few run past the image edges and are clipped.
VinDr has no pathology, so `cancer` stays unknown, and no patient id: the study is the patient.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import Row, iter_rows
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, Lesion, clip_box, require_folder
from mama_core.errors import DataError


BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
IMAGE_COLUMNS = ("study_id", "image_id", "laterality", "view_position")
LABEL_COLUMNS = ("series_id", "breast_birads", "breast_density", "split")
BOX_COLUMNS = ("height", "width", "finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax")

_KINDS = {
    "mass": "mass", "suspicious calcification": "calcification", "focal asymmetry": "asymmetry",
    "asymmetry": "asymmetry", "global asymmetry": "asymmetry", "architectural distortion": "distortion",
}


@dataclass
class _Tables:
    rows: dict[str, Row]  # image_id -> breast-level row
    boxes: dict[str, list[Lesion]]  # image_id -> its findings (the file name is <image_id>.dicom)
    paths: dict[str, Path]


def _strip_prefix(row: Row, column: str, prefix: str) -> None:
    """'BI-RADS 4' -> '4', 'DENSITY C' -> 'C' (in place, so the shared parsers apply)."""
    value = row.values.get(column, "")
    if value.upper().startswith(prefix):
        row.values[column] = value[len(prefix):].strip()


def categories(raw: str, path: Path, line: int) -> list[str]:
    """`['Mass', 'Suspicious Calcification']` (a Python list literal) -> its strings."""
    try:
        value = ast.literal_eval(raw) if raw.strip() else []
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"finding_categories={raw!r} is not a list literal (row {line})", path=path) from exc
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in value]


def _lesions(row: Row, path: Path) -> list[Lesion]:
    if not row.get("xmin"):
        return []
    try:
        box = tuple(float(row.get(c)) for c in ("xmin", "ymin", "xmax", "ymax"))
        width = int(float(row.get("width"))) if row.get("width") else None
        height = int(float(row.get("height"))) if row.get("height") else None
    except ValueError as exc:
        raise DataError(f"box or size not a number (row {row.line}): {exc}", path=path) from exc
    box = clip_box(box, width, height)
    if box[0] > box[2] or box[1] > box[3]:
        raise DataError(f"box {box} has xmin > xmax or ymin > ymax (row {row.line})", path=path)
    names = categories(row.get("finding_categories"), path, row.line)
    label = ", ".join(names) + (f" ({row.get('finding_birads')})" if row.get("finding_birads") else "")
    kinds = list(dict.fromkeys(_KINDS.get(n.strip().lower(), "other") for n in names if n != "No Finding")) or ["other"]
    # A box with several categories counts for each (a mass with calcifications is both).
    return [Lesion(kind=kind, box=box, label=label) for kind in kinds]


class VinDrMammo(DatasetAdapter):
    info = DatasetInfo(
        name="vindr-mammo",
        title="VinDr-Mammo (PhysioNet)",
        layout="images/<study_id>/<image_id>.dicom + breast-level_annotations.csv and/or finding_annotations.csv",
        labels="birads (breast_birads), density (breast_density A-D); no pathology, no patient id",
        lesions="finding boxes xmin,ymin,xmax,ymax (mass, calcification, asymmetry, distortion, other)",
    )


    def detect(self, folder: Path) -> float:
        return 1.0 if (folder / FINDING_CSV).is_file() or (folder / BREAST_CSV).is_file() else 0.0

    def _read(self, folder: Path) -> _Tables:
        key = Path(folder).absolute()  # cheap: looked up on every lesions() call
        if key in self._cache:
            return self._cache[key]
        rows: dict[str, Row] = {}
        boxes: dict[str, list[Lesion]] = defaultdict(list)
        paths: dict[str, Path] = {}
        breast, finding = folder / BREAST_CSV, folder / FINDING_CSV
        if breast.is_file():
            for row in iter_rows(breast, IMAGE_COLUMNS, LABEL_COLUMNS):
                rows.setdefault(row.get("image_id"), row)
        if finding.is_file():
            for row in iter_rows(finding, IMAGE_COLUMNS, (*LABEL_COLUMNS, *BOX_COLUMNS)):
                image_id = row.get("image_id")
                rows.setdefault(image_id, row)  # a finding-only download still lists every image
                boxes[image_id] += _lesions(row, finding)
        if not rows:
            raise DataError(f"no rows in {BREAST_CSV} / {FINDING_CSV}", path=folder)
        for image_id, row in rows.items():
            paths.setdefault(image_id, folder / "images" / row.get("study_id") / f"{image_id}.dicom")
        self._cache[key] = _Tables(rows=rows, boxes=dict(boxes), paths=paths)
        return self._cache[key]

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        tables = self._read(folder)
        source = folder / (BREAST_CSV if (folder / BREAST_CSV).is_file() else FINDING_CSV)
        return [_record(row, tables.paths[image_id], source) for image_id, row in tables.rows.items()]

    def annotated_images(self, folder: Path) -> list[Path]:
        tables = self._read(require_folder(folder))
        return [tables.paths[image_id] for image_id, found in tables.boxes.items() if found]

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        return list(self._read(require_folder(folder)).boxes.get(Path(image).stem, []))


def _record(row: Row, path: Path, table: Path) -> ImageRecord:
    _strip_prefix(row, "breast_birads", "BI-RADS")
    _strip_prefix(row, "breast_density", "DENSITY")
    laterality = parse_cell(row, "laterality", "laterality", table)
    view = parse_cell(row, "view_position", "view", table)
    birads = parse_cell(row, "breast_birads", "birads", table)
    density = parse_cell(row, "breast_density", "density", table)
    meta: dict[str, object] = {"ImageLateralityFinal": laterality, "ViewPosition": view}
    if birads is not None:
        meta["asses"] = birads
    if density is not None:
        meta["tissueden"] = density
    study = row.get("study_id")
    return ImageRecord(path=path, patient_id=study, study_id=study, laterality=laterality, view=view,
                       meta={k: v for k, v in meta.items() if v is not None}, birads=birads, density=density)
