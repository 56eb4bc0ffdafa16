"""INbreast: `AllDICOMs/<FileID>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm`, `AllXML/<FileID>.xml`
(OsiriX ROI exports, Apple property lists) and `INbreast.csv` (';'-separated).

The CSV gives side, view (CC / MLO, and one 'FB'), ACR density 1-4 (one blank) and BI-RADS
as text (1 .. 6 with 4a/4b/4c).  Patient ID is 'removed' in the CSV: the file-name hash is the
patient.  ROIs: `Point_px` is a list of "(x, y)" strings, x = column, y = row of the stored
pixel array; one-point ROIs are single calcifications.  ROI names are spelt many ways
(Mass, Calcification(s), Cluster, Distortion, Asymmetry/Assymetry, Spiculated Region, ...).
"""

from __future__ import annotations

import ast
import logging
import plistlib
import re
from dataclasses import dataclass
from pathlib import Path
from xml.parsers.expat import ExpatError

from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import Row, iter_rows, sniff_delimiter
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, Lesion, box_around, file_key, require_folder
from mama_core.errors import DataError

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"^(\d+)_([^_]+)_MG_([LR])_([A-Z]+)_ANON\.dcm$", re.IGNORECASE)
CSV_REQUIRED = ("File Name", "Laterality", "View")
CSV_OPTIONAL = ("Acquisition date", "ACR", "Bi-Rads")
POINT_RADIUS_PX = 4.0  # drawn size of a one-point ROI (a single calcification)

_KINDS = {"mass": "mass", "spiculated region": "mass", "espiculated region": "mass",
          "calcification": "calcification", "calcifications": "calcification", "cluster": "calcification",
          "distortion": "distortion", "asymmetry": "asymmetry", "assymetry": "asymmetry"}


@dataclass
class _Image:
    path: Path
    file_id: str
    patient: str
    side: str
    view: str


def _dicoms(folder: Path) -> dict[str, _Image]:
    images = {}
    for path in sorted((folder / "AllDICOMs").glob("*.dcm")):
        match = FILE_NAME.match(path.name)
        if match is None:
            log.warning("%s: name is not <FileID>_<hash>_MG_<side>_<view>_ANON.dcm; skipped", path.name)
            continue
        file_id, patient, side, view = match.groups()
        view = view.upper()
        images[file_id] = _Image(path, file_id, patient, side.upper(), "MLO" if view == "ML" else view)
    return images


def _birads(row: Row, path: Path) -> int | None:
    """'4a' / '4b' / '4c' are subdivisions of category 4."""
    raw = row.get("Bi-Rads").strip().lower().rstrip("abc")
    row.values["Bi-Rads"] = raw
    return parse_cell(row, "Bi-Rads", "birads", path)


def parse_point(text: str, path: Path) -> tuple[float, float]:
    try:
        x, y = ast.literal_eval(text.strip())
        return float(x), float(y)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise DataError(f"Point_px entry {text!r} is not '(x, y)'", path=path) from exc


def read_rois(xml_path: Path) -> list[Lesion]:
    """The ROIs of one INbreast XML file (an Apple plist) as lesions."""
    try:
        with open(xml_path, "rb") as handle:
            document = plistlib.load(handle)
    except (plistlib.InvalidFileException, ExpatError, ValueError, OSError) as exc:
        raise DataError(f"not a readable ROI property list ({type(exc).__name__}: {exc})", path=xml_path) from exc
    lesions = []
    for image in document.get("Images", []) if isinstance(document, dict) else []:
        rois = image.get("ROIs", [])
        if image.get("NumberOfROIs") not in (None, len(rois)):
            log.info("%s: NumberOfROIs says %s, %d listed (the listed ones are used)", xml_path.name,
                     image.get("NumberOfROIs"), len(rois))
        for roi in rois:
            lesion = _roi_lesion(roi, xml_path)
            if lesion is not None:
                lesions.append(lesion)
    return lesions


def _roi_lesion(roi: dict, xml_path: Path) -> Lesion | None:
    points = [parse_point(p, xml_path) for p in roi.get("Point_px", [])]
    if not points:
        return None
    name = str(roi.get("Name", "")).strip()
    kind = _KINDS.get(name.lower(), "other")
    if len(points) == 1:
        x, y = points[0]
        return Lesion(kind=kind, box=box_around(points, POINT_RADIUS_PX), label=name,
                      circle=(x, y, POINT_RADIUS_PX))
    return Lesion(kind=kind, box=box_around(points), label=name, polygon=tuple(points))


class INbreast(DatasetAdapter):
    info = DatasetInfo(
        name="inbreast",
        title="INbreast",
        layout="AllDICOMs/<FileID>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm + AllXML/<FileID>.xml + INbreast.csv (';')",
        labels="birads (Bi-Rads, 4a/4b/4c -> 4), density (ACR 1-4); no pathology",
        lesions="XML ROI contours (Point_px): mass, calcification (one-point ROIs as circles), distortion, asymmetry",
    )


    def detect(self, folder: Path) -> float:
        if (folder / "AllDICOMs").is_dir() and ((folder / "AllXML").is_dir() or (folder / "INbreast.csv").is_file()):
            return 1.0
        return 0.6 if (folder / "INbreast.csv").is_file() else 0.0

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        images = _dicoms(folder)
        if not images:
            raise DataError("no INbreast DICOMs in AllDICOMs/", path=folder)
        table = folder / "INbreast.csv"
        rows = {}
        if table.is_file():
            for row in iter_rows(table, CSV_REQUIRED, CSV_OPTIONAL, delimiter=sniff_delimiter(table)):
                rows[row.get("File Name")] = row
        return [_record(image, rows.get(file_id), table) for file_id, image in images.items()]

    def _all(self, folder: Path) -> dict[Path, list[Lesion]]:
        key = Path(folder).absolute()  # cheap: looked up on every lesions() call
        if key not in self._cache:
            found = {}
            for file_id, image in _dicoms(folder).items():
                xml = folder / "AllXML" / f"{file_id}.xml"
                if xml.is_file():
                    try:
                        found[file_key(image.path)] = read_rois(xml)
                    except DataError as exc:  # one bad XML file costs that image's outlines only
                        log.warning("%s", exc)
            self._cache[key] = found
        return self._cache[key]

    def annotated_images(self, folder: Path) -> list[Path]:
        return [path for path, lesions in self._all(require_folder(folder)).items() if lesions]

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        return list(self._all(require_folder(folder)).get(file_key(image), []))


def _record(image: _Image, row: Row | None, table: Path) -> ImageRecord:
    side, view = image.side, image.view
    birads = density = None
    study = image.patient
    if row is not None:
        side = parse_cell(row, "Laterality", "laterality", table) or side
        view = (row.get("View") or view).upper()
        birads = _birads(row, table)
        density = parse_cell(row, "ACR", "density", table)
        if row.get("Acquisition date"):
            study = f"{image.patient}_{row.get('Acquisition date')}"
    meta: dict[str, object] = {"ImageLateralityFinal": side, "ViewPosition": view}
    if birads is not None:
        meta["asses"] = birads
    if density is not None:
        meta["tissueden"] = density
    return ImageRecord(path=image.path, patient_id=image.patient, study_id=study, laterality=side, view=view,
                       meta=meta, birads=birads, density=density)
