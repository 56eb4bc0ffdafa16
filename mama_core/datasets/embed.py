"""EMBED (Emory, AWS Open Data) and the synthetic sets `mama demo-data` writes in its layout.

Tables: `metadata.csv` + `clinical.csv` (our demo sets, and renamed copies), or the release's
`EMBED_OpenData_metadata[_reduced].csv` + `EMBED_OpenData_clinical[_reduced].csv` in the folder
or its `tables/` subfolder; image paths in the metadata resolve against the folder.
The join and the labels are `mama_core.data.embed.load_embed`'s.

Lesions: a demo set's `ground_truth.json` (exact boxes of the drawn lesions, stored pixels);
otherwise the metadata's `ROI_coords` (radiologist ROIs turned into rectangles by Emory; their
kind is not recorded per ROI, so they are 'other').  Which pixel frame the AWS release's
ROI_coords use is not documented; they are taken as stored pixels (docs/datasets.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mama_core.data.embed import load_embed, read_roi_boxes
from mama_core.data.records import ImageRecord
from mama_core.datasets.base import LESION_KINDS, DatasetAdapter, DatasetInfo, Lesion, file_key, require_folder
from mama_core.errors import DataError

GROUND_TRUTH = "ground_truth.json"
_RELEASE_NAMES = ("EMBED_OpenData_{}.csv", "EMBED_OpenData_{}_reduced.csv")


@dataclass
class _Tables:
    metadata: Path
    clinical: Path


def find_tables(folder: Path) -> _Tables | None:
    """The metadata + clinical tables of an EMBED-style folder, or None."""
    if (folder / "metadata.csv").is_file() and (folder / "clinical.csv").is_file():
        return _Tables(folder / "metadata.csv", folder / "clinical.csv")
    for where in (folder, folder / "tables"):
        for pattern in _RELEASE_NAMES:
            metadata, clinical = where / pattern.format("metadata"), where / pattern.format("clinical")
            if metadata.is_file() and clinical.is_file():
                return _Tables(metadata, clinical)
    return None


def read_ground_truth(folder: Path) -> list[dict]:
    """The entries of a demo set's ground_truth.json (DataError when unreadable)."""
    path = folder / GROUND_TRUTH
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError("no ground_truth.json", path) from exc
    except ValueError as exc:
        raise DataError(f"unreadable ground truth: {exc}", path) from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "path" in e for e in entries):
        raise DataError("ground truth must be a list of image entries with a 'path'", path)
    return entries


def _truth_lesions(folder: Path) -> dict[Path, list[Lesion]]:
    found: dict[Path, list[Lesion]] = {}
    for entry in read_ground_truth(folder):
        lesions = []
        for item in entry.get("lesions", []):
            kind = item.get("type", "other")
            label = " ".join(str(v) for v in (item.get("type"), item.get("shape")) if v)
            lesions.append(Lesion(kind=kind if kind in LESION_KINDS else "other",
                                  box=tuple(float(v) for v in item["bbox"]), label=label))
        found[file_key(folder / entry["path"])] = lesions
    return found


class Embed(DatasetAdapter):
    info = DatasetInfo(
        name="embed",
        title="EMBED (Emory) / `mama demo-data` sets",
        layout="metadata.csv + clinical.csv, or EMBED_OpenData_{metadata,clinical}[_reduced].csv (here or in tables/)",
        labels="birads (asses), density (tissueden), cancer (where a column gives it); caption fields",
        lesions="demo sets: ground_truth.json boxes; EMBED: ROI_coords rectangles (kind 'other')",
    )


    def detect(self, folder: Path) -> float:
        return 1.0 if find_tables(folder) is not None else 0.0

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        tables = find_tables(folder)
        if tables is None:
            raise DataError("no EMBED tables (metadata.csv + clinical.csv or EMBED_OpenData_*.csv)", path=folder)
        return load_embed(tables.metadata, tables.clinical, image_root=folder)

    def _all(self, folder: Path) -> dict[Path, list[Lesion]]:
        key = Path(folder).absolute()  # cheap: looked up on every lesions() call
        if key not in self._cache:
            if (folder / GROUND_TRUTH).is_file():
                self._cache[key] = _truth_lesions(folder)
            else:
                tables = find_tables(folder)
                boxes = read_roi_boxes(tables.metadata, image_root=folder) if tables else {}
                self._cache[key] = {file_key(path): [Lesion(kind="other", box=box, label="EMBED ROI") for box in found]
                                      for path, found in boxes.items()}
        return self._cache[key]

    def annotated_images(self, folder: Path) -> list[Path]:
        return [path for path, lesions in self._all(require_folder(folder)).items() if lesions]

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        return list(self._all(require_folder(folder)).get(file_key(image), []))
