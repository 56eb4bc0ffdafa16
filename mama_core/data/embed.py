"""EMBED tables -> ImageRecords (docs/datasets.md "EMBED").

EMBED ships two tables: `metadata` (one row per DICOM image) and `clinical` (one row per
finding of an exam, with its side and BI-RADS assessment).  They join on `acc_anon`.
Rules implemented here:
  - only 2D images are kept (`FinalImageType == '2D'`; C-View and ROI images dropped);
  - a finding row applies to an image when its `side` is the image laterality or 'B';
  - among the applicable rows the highest BI-RADS category number wins (per image);
  - density is per exam: the largest non-missing `tissueden` of the exam's rows;
  - an image whose exam has no clinical rows is kept without labels.
"""

from __future__ import annotations

import ast
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mama_core.captions import CAPTION_KEYS, is_missing
from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import Row, iter_rows, read_header, require_columns
from mama_core.errors import DataError

log = logging.getLogger(__name__)

METADATA_REQUIRED = ("acc_anon", "anon_dicom_path", "ImageLateralityFinal", "FinalImageType")
CLINICAL_REQUIRED = ("acc_anon", "side")
PATIENT_FIELDS = ("RACE_DESC", "ETHNIC_GROUP_DESC", "age_at_study")
FINDING_FIELDS = ("asses", "massshape", "massdens", "calcfind", "calcdistri")
# EMBED codes male patients' exams as tissueden 5; it is no BI-RADS composition class.
_EMBED_MALE_DENSITY = ("5", "5.0")


@dataclass
class _Finding:
    """One clinical row, parsed once."""

    side: str
    birads: int | None
    density: int | None
    cancer: int | None
    fields: dict[str, str]


def load_embed(metadata_csv: str | Path, clinical_csv: str | Path, image_root: str | Path | None = None) -> list[ImageRecord]:
    """Join EMBED metadata and clinical tables into one record per 2D image.

    Relative `anon_dicom_path`s resolve against `image_root` (default: the folder of the
    metadata table); absolute ones that do not exist here are re-rooted under it."""
    metadata_csv, clinical_csv = Path(metadata_csv), Path(clinical_csv)
    meta_header = read_header(metadata_csv)
    require_columns(metadata_csv, meta_header, METADATA_REQUIRED)
    clinical_header = read_header(clinical_csv)
    require_columns(clinical_csv, clinical_header, CLINICAL_REQUIRED)
    if "empi_anon" not in meta_header and "empi_anon" not in clinical_header:
        raise DataError("missing required column(s): empi_anon (in neither table)", path=metadata_csv)
    exams, patients = _read_clinical(clinical_csv)
    resolver = PathResolver(Path(image_root) if image_root is not None else metadata_csv.parent)
    records = []
    for row in iter_rows(metadata_csv, METADATA_REQUIRED, ("empi_anon", "cancer", *CAPTION_KEYS)):
        if row.get("FinalImageType") != "2D":
            continue
        records.append(_record(row, metadata_csv, exams, patients, resolver))
    return records


def _read_clinical(path: Path) -> tuple[dict[str, list[_Finding]], dict[str, str]]:
    """Clinical rows grouped by exam (acc_anon), and exam -> patient (empi_anon)."""
    optional = ("empi_anon", "tissueden", "cancer", "desc", "StudyDescription", *PATIENT_FIELDS, *FINDING_FIELDS)
    exams: dict[str, list[_Finding]] = defaultdict(list)
    patients: dict[str, str] = {}
    for row in iter_rows(path, CLINICAL_REQUIRED, optional):
        exam = row.get("acc_anon")
        exams[exam].append(_finding(row, path))
        if row.get("empi_anon"):
            patients.setdefault(exam, row.get("empi_anon"))
    return exams, patients


def _finding(row: Row, path: Path) -> _Finding:
    density = None
    if row.get("tissueden") not in _EMBED_MALE_DENSITY:
        density = parse_cell(row, "tissueden", "density", path)
    fields = {k: v for k, v in row.values.items() if k in (*PATIENT_FIELDS, *FINDING_FIELDS) and v}
    description = row.get("StudyDescription") or row.get("desc")
    if description:
        fields["StudyDescription"] = description
    return _Finding(
        side=row.get("side").upper(),
        birads=parse_cell(row, "asses", "birads", path),
        density=density,
        cancer=parse_cell(row, "cancer", "cancer", path),
        fields=fields,
    )


def choose_finding(findings: list[_Finding], laterality: str | None) -> _Finding | None:
    """The finding row that labels an image: side matches or is 'B'; highest BI-RADS wins
    (ties: the first row in file order; rows without BI-RADS rank lowest)."""
    applicable = [f for f in findings if f.side == "B" or (laterality is not None and f.side == laterality)]
    if not applicable:
        return None
    return max(applicable, key=lambda f: -1 if f.birads is None else f.birads)


def _exam_density(findings: list[_Finding]) -> int | None:
    values = [f.density for f in findings if f.density is not None]
    return max(values) if values else None


def _record(row: Row, path: Path, exams: dict, patients: dict, resolver: "PathResolver") -> ImageRecord:
    exam = row.get("acc_anon")
    findings = exams.get(exam, [])
    laterality = parse_cell(row, "ImageLateralityFinal", "laterality", path)
    view = parse_cell(row, "ViewPosition", "view", path)
    chosen = choose_finding(findings, laterality)
    density = _exam_density(findings)
    meta = _merged_meta(row, findings, chosen, density)
    if laterality is not None:
        meta["ImageLateralityFinal"] = laterality
    if view is not None:
        meta["ViewPosition"] = view
    cancer = parse_cell(row, "cancer", "cancer", path)
    if cancer is None and chosen is not None:
        cancer = chosen.cancer
    patient = row.get("empi_anon") or patients.get(exam) or exam
    return ImageRecord(
        path=resolver(row.get("anon_dicom_path")),
        patient_id=patient,
        study_id=exam,
        laterality=laterality,
        view=view,
        meta=meta,
        birads=chosen.birads if chosen is not None else None,
        density=density,
        cancer=cancer,
    )


def _merged_meta(row: Row, findings: list[_Finding], chosen: _Finding | None, density: int | None) -> dict[str, object]:
    """Caption fields: the image row's, then the chosen finding's (patient fields from
    any row of the exam when no finding applies), then the exam density."""
    meta: dict[str, object] = {k: v for k, v in row.values.items() if k in CAPTION_KEYS and not is_missing(v)}
    source = chosen if chosen is not None else (findings[0] if findings else None)
    if source is not None:
        for key, value in source.fields.items():
            if key in FINDING_FIELDS and source is not chosen:
                continue  # a finding of the other breast does not describe this image
            if key == "StudyDescription" and "StudyDescription" in meta:
                continue
            meta[key] = value
    meta.pop("tissueden", None)
    if density is not None:
        meta["tissueden"] = density
    return meta


class PathResolver:
    """Turn a table's image path into a path on this machine.

    Relative paths join `root`.  Absolute paths that exist are kept.  Absolute paths
    from another machine (EMBED lists its original mount points) are re-rooted: the
    longest tail of the path that exists under `root` is used, and the number of
    leading parts dropped is remembered so later rows cost a single stat.  When no
    tail has been found for the first `give_up_after` such paths the table's
    images are taken to be elsewhere and paths are kept as written (a later read
    names the file)."""

    def __init__(self, root: Path, give_up_after: int = 1000):
        self.root = root
        self.drop: int | None = None
        self.misses = 0
        self.give_up_after = give_up_after

    def __call__(self, raw: str) -> Path:
        path = Path(raw)
        if not path.is_absolute():
            return self.root / path
        if self.drop is None and self.misses >= self.give_up_after:
            return path
        if path.exists():
            return path
        return self._reroot(path)

    def _reroot(self, path: Path) -> Path:
        parts = path.parts[1:]  # without the anchor ('/' or 'C:\\')
        order = list(range(len(parts)))
        if self.drop is not None and self.drop < len(parts):
            order.insert(0, self.drop)
        for drop in order:
            candidate = self.root.joinpath(*parts[drop:])
            if candidate.exists():
                self.drop = drop
                return candidate
        self.misses += 1
        if self.misses == self.give_up_after and self.drop is None:
            log.warning("image paths not found under %s; keeping them as written", self.root)
        return path


def parse_roi_coords(raw: str, path: Path, line: int) -> list[tuple[float, float, float, float]]:
    """EMBED `ROI_coords` -> boxes as (x0, y0, x1, y1).

    The cell is a Python tuple literal of 4-tuples written row first, `((ymin, xmin, ymax,
    xmax),)`; `()` or an empty cell means no ROI."""
    if is_missing(raw) or not raw.strip():
        return []
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"ROI_coords={raw!r} is not a tuple of (ymin, xmin, ymax, xmax) (row {line})", path=path) from exc
    if value and not isinstance(value[0], (tuple, list)):
        value = (value,)  # a single ROI written without the outer tuple
    boxes = []
    for roi in value:
        if len(roi) != 4:
            raise DataError(f"ROI_coords={raw!r}: an ROI needs 4 numbers (row {line})", path=path)
        ymin, xmin, ymax, xmax = (float(v) for v in roi)
        boxes.append((min(xmin, xmax), min(ymin, ymax), max(xmin, xmax), max(ymin, ymax)))
    return boxes


def read_roi_boxes(metadata_csv: str | Path, image_root: str | Path | None = None) -> dict[Path, list[tuple[float, float, float, float]]]:
    """Image path -> its `ROI_coords` boxes, for the 2D images that have any (paths resolved
    like `load_embed` resolves them). Empty when the table has no ROI_coords column."""
    metadata_csv = Path(metadata_csv)
    if "ROI_coords" not in read_header(metadata_csv):
        return {}
    resolver = PathResolver(Path(image_root) if image_root is not None else metadata_csv.parent)
    boxes: dict[Path, list[tuple[float, float, float, float]]] = {}
    for row in iter_rows(metadata_csv, ("anon_dicom_path", "ROI_coords"), ("FinalImageType",)):
        if row.get("FinalImageType", "2D") != "2D":
            continue
        found = parse_roi_coords(row.get("ROI_coords"), metadata_csv, row.line)
        if found:
            boxes.setdefault(resolver(row.get("anon_dicom_path")), []).extend(found)
    return boxes
