"""RSNA Screening Mammography `train.csv` / `test.csv` -> ImageRecords (docs/datasets.md).

Kaggle layout: `train.csv` next to `train_images/<patient_id>/<image_id>.dcm`.  RSNA has
no exam identifier (one screening exam per patient), so the study id is the patient id.
Labels: `cancer` 0/1, `density` A-D (-> 1-4), `BIRADS` 0-2 where given (site 2 leaves
density blank and BIRADS 0 or blank); the test table has no `cancer` column, so it is
optional.  Views are as written (CC, MLO, and the odd AT, LM, ML, LMO).  No lesion boxes.
"""

from __future__ import annotations

from pathlib import Path

from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import Row, iter_rows, read_header
from mama_core.errors import DataError

RSNA_REQUIRED = ("patient_id", "image_id", "laterality", "view")
RSNA_OPTIONAL = ("cancer", "age", "density", "BIRADS")


def find_table(folder: Path) -> Path | None:
    """`train.csv` (labelled) or else `test.csv` of a Kaggle download, if it has RSNA columns."""
    for name in ("train.csv", "test.csv"):
        table = folder / name
        if table.is_file():
            try:
                header = set(read_header(table))
            except DataError:
                continue
            if set(RSNA_REQUIRED) <= header:
                return table
    return None


def default_image_root(csv_path: Path) -> Path:
    """`<folder>/<stem>_images` (Kaggle's train_images/test_images) if present, else the folder."""
    candidate = csv_path.parent / f"{csv_path.stem}_images"
    return candidate if candidate.is_dir() else csv_path.parent


def load_rsna(train_csv: str | Path, image_root: str | Path | None = None) -> list[ImageRecord]:
    """One record per row; image path `<image_root>/<patient_id>/<image_id>.dcm`."""
    path = Path(train_csv)
    root = Path(image_root) if image_root is not None else default_image_root(path)
    return [_record(row, path, root) for row in iter_rows(path, RSNA_REQUIRED, RSNA_OPTIONAL)]


def _record(row: Row, path: Path, root: Path) -> ImageRecord:
    patient = row.get("patient_id")
    laterality = parse_cell(row, "laterality", "laterality", path)
    view = parse_cell(row, "view", "view", path)
    density = parse_cell(row, "density", "density", path)
    birads = parse_cell(row, "BIRADS", "birads", path)
    meta: dict[str, object] = {}
    for key, value in (("ImageLateralityFinal", laterality), ("ViewPosition", view),
                       ("age_at_study", row.get("age") or None), ("tissueden", density), ("asses", birads)):
        if value is not None:
            meta[key] = value
    return ImageRecord(
        path=root / patient / f"{row.get('image_id')}.dcm",
        patient_id=patient,
        study_id=patient,
        laterality=laterality,
        view=view,
        meta=meta,
        birads=birads,
        density=density,
        cancer=parse_cell(row, "cancer", "cancer", path),
    )
