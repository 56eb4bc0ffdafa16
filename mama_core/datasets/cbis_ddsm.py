"""CBIS-DDSM (TCIA) as downloaded: the NBIA DICOM tree and the four case-description CSVs.

Facts used (docs/datasets.md has the whole list and sources):
  - every series folder is named after its Subject ID, which is also the DICOM PatientID:
    `Mass-Test_P_00173_LEFT_CC` for a full mammogram, the same plus `_<abnormality id>` for
    the crop + ROI-mask series of one abnormality;
  - the CSV path columns name UID folders and `00000N.dcm` files that exist on no disk, so
    files are found by Subject ID (folder name, else PatientID) and masks told from crops
    by size (the mask is on the full image's grid, the crop is small);
  - one CSV row per abnormality per view; `breast_density` (mass) vs `breast density` (calc),
    0 seen where 1-4 is meant; the last path column holds a newline inside quotes.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mama_core.data.records import ImageRecord, parse_cell
from mama_core.data.tables import iter_rows
from mama_core.datasets.base import DatasetAdapter, DatasetInfo, Lesion, require_folder
from mama_core.errors import DataError

log = logging.getLogger(__name__)

SUBJECT = re.compile(r"^(Mass|Calc)-(Training|Test)_(P_\d{5})_(LEFT|RIGHT)_(CC|MLO)(?:_(\d+))?$")
CSV_NAME = re.compile(r"^(mass|calc)_case_description_(train|test)_set\.csv$", re.IGNORECASE)
REQUIRED = ("patient_id", "left or right breast", "image view", "abnormality id", "abnormality type", "pathology")
OPTIONAL = ("breast_density", "breast density", "assessment", "mass shape", "mass margins", "calc type",
            "calc distribution", "subtlety", "image file path")
_SCAN_DEPTH = 4  # <root>/<manifest-...>/CBIS-DDSM/<Subject>

# CBIS words -> the EMBED codes the captions know (resources/templates/captions.yaml); words
# without an EMBED code are kept as hyphenated lower-case text.
_MASS_SHAPE = {"ROUND": "R", "OVAL": "O", "IRREGULAR": "X", "LOBULATED": "L", "ARCHITECTURAL_DISTORTION": "Q",
               "ASYMMETRIC_BREAST_TISSUE": "A", "FOCAL_ASYMMETRIC_DENSITY": "A"}
_CALC_TYPE = {"PLEOMORPHIC": "P", "AMORPHOUS": "A", "FINE_LINEAR_BRANCHING": "F", "PUNCTATE": "R",
              "ROUND_AND_REGULAR": "R", "COARSE": "C"}
_CALC_DISTRIBUTION = {"CLUSTERED": "G", "SEGMENTAL": "S", "LINEAR": "L", "REGIONAL": "R",
                      "DIFFUSELY_DISTRIBUTED": "D"}


@dataclass
class _Abnormality:
    subject: str  # full-image Subject ID
    number: int
    kind: str  # 'mass' | 'calcification'
    label: str


@dataclass
class _Case:
    """What the CSVs say about one full image."""

    birads: int | None = None
    density: int | None = None
    cancer: int | None = None
    meta: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    abnormalities: list[_Abnormality] = field(default_factory=list)


@dataclass
class _Index:
    full: dict[str, Path]  # Subject ID -> full-mammogram file
    rois: dict[str, list[Path]]  # '<Subject>_<n>' -> crop and mask files
    cases: dict[str, _Case]  # Subject ID -> CSV facts
    lesion_cache: dict[str, list[Lesion]] = field(default_factory=dict)  # by Subject ID


def _codes(value: str, table: dict[str, str]) -> list[str]:
    parts = [p for p in value.strip().upper().split("-") if p and p not in ("NA", "N/A")]
    return [table.get(p, p.lower().replace("_", "-")) for p in dict.fromkeys(parts)]


def _density(row, path: Path) -> int | None:
    column = "breast_density" if row.get("breast_density") else "breast density"
    if row.get(column).strip() in ("0", ""):
        return None  # 0 appears in a few calc-test rows: not a BI-RADS composition class
    return parse_cell(row, column, "density", path)


def _subject(row, table_kind: str, split: str) -> str:
    """Full-image Subject ID of a row: the first part of `image file path`, else rebuilt
    (the older 11-column release has no path columns)."""
    first = row.get("image file path").replace("\\", "/").split("/")[0].strip()
    if SUBJECT.match(first):
        return first
    prefix = "Mass" if table_kind == "mass" else "Calc"
    return (f"{prefix}-{'Training' if split == 'train' else 'Test'}_{row.get('patient_id')}_"
            f"{row.get('left or right breast').upper()}_{row.get('image view').upper()}")


def read_cases(folder: Path) -> dict[str, _Case]:
    """Every description CSV in `folder` -> facts per full image."""
    cases: dict[str, _Case] = defaultdict(_Case)
    for csv_path in sorted(p for p in folder.iterdir() if CSV_NAME.match(p.name)):
        kind, split = CSV_NAME.match(csv_path.name).groups()
        for row in iter_rows(csv_path, REQUIRED, OPTIONAL):
            subject = _subject(row, kind.lower(), split.lower())
            _add_row(cases[subject], row, csv_path)
            cases[subject].abnormalities.append(_abnormality(row, subject, csv_path))
    return dict(cases)


def _abnormality(row, subject: str, path: Path) -> _Abnormality:
    lesion_kind = "mass" if row.get("abnormality type").lower() == "mass" else "calcification"
    details = [row.get(c) for c in ("mass shape", "mass margins", "calc type", "calc distribution")
               if row.get(c) and row.get(c).upper() not in ("NA", "N/A")]
    label = " ".join([row.get("abnormality type"), row.get("pathology"), *details])
    try:
        number = int(float(row.get("abnormality id") or 1))
    except ValueError as exc:
        raise DataError(f"abnormality id={row.get('abnormality id')!r} is not a number (row {row.line})",
                        path=path, field="abnormality id") from exc
    return _Abnormality(subject, number, lesion_kind, label)


def _add_row(case: _Case, row, path: Path) -> None:
    birads = parse_cell(row, "assessment", "birads", path)
    if birads is not None:
        case.birads = birads if case.birads is None else max(case.birads, birads)
    case.density = _density(row, path) or case.density
    pathology = row.get("pathology").upper()
    if pathology not in ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"):
        raise DataError(f"pathology={row.get('pathology')!r} is not MALIGNANT/BENIGN/BENIGN_WITHOUT_CALLBACK "
                        f"(row {row.line})", path=path, field="pathology")
    case.cancer = max(case.cancer or 0, int(pathology == "MALIGNANT"))
    for column, key, table in (("mass shape", "massshape", _MASS_SHAPE), ("calc type", "calcfind", _CALC_TYPE),
                               ("calc distribution", "calcdistri", _CALC_DISTRIBUTION)):
        if row.get(column):
            case.meta[key].update(_codes(row.get(column), table))


def _scan(root: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """DICOM files by Subject ID: from the nearest folder named like one, else the header."""
    full: dict[str, Path] = {}
    rois: dict[str, list[Path]] = defaultdict(list)
    for path in _dicom_files(root):
        subject = _subject_of(path, root)
        if subject is None:
            continue
        match = SUBJECT.match(subject)
        if match.group(6) is None:
            full.setdefault(subject, path)  # a Subject holds one full image
        else:
            rois[subject].append(path)
    return full, dict(rois)


def _dicom_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(".dcm") and not f.startswith(".")]
    return found


def _subject_of(path: Path, root: Path | str) -> str | None:
    for parent in path.relative_to(root).parents:
        if parent.name and SUBJECT.match(parent.name):
            return parent.name
    return _header_subject(path)


def _header_subject(path: Path) -> str | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception as exc:  # pydicom raises many types for damaged files
        log.warning("%s: not readable as DICOM (%s)", path, type(exc).__name__)
        return None
    value = str(ds.get("PatientID", "")).strip()
    return value if SUBJECT.match(value) else None


def _looks_like_root(folder: Path) -> float:
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return 0.0
    if any(CSV_NAME.match(n) for n in names):
        return 1.0
    if any(SUBJECT.match(n) for n in names) or "CBIS-DDSM" in names:
        return 0.9
    sample = _first_dicom(folder)  # files copied out of their folders keep the Subject ID as PatientID
    return 0.8 if sample is not None and _header_subject(sample) is not None else 0.0


_PROBE_SUBFOLDERS = 16  # detection stays cheap in a folder with many subfolders (a home folder)


def _first_dicom(folder: Path, depth: int = 2) -> Path | None:
    """The first `.dcm` file (sorted) in `folder` or in its first few subfolders."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        if entry.is_file() and entry.name.lower().endswith(".dcm") and not entry.name.startswith("."):
            return Path(entry.path)
    if depth > 1:
        folders = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
        for entry in folders[:_PROBE_SUBFOLDERS]:
            found = _first_dicom(Path(entry.path), depth - 1)
            if found is not None:
                return found
    return None


class CbisDdsm(DatasetAdapter):
    info = DatasetInfo(
        name="cbis-ddsm",
        title="CBIS-DDSM (TCIA)",
        layout="NBIA tree <Subject ID>/.../*.dcm (Subject = Mass-Test_P_00173_LEFT_CC[_n]) and "
               "{mass,calc}_case_description_{train,test}_set.csv in the same folder",
        labels="birads (assessment, highest per image), density (breast_density 1-4), cancer (pathology MALIGNANT)",
        lesions="mass / calcification boxes from the ROI mask DICOMs (non-zero extent)",
    )


    def detect(self, folder: Path) -> float:
        return _looks_like_root(folder)

    def _index(self, folder: Path) -> _Index:
        key = Path(folder).absolute()  # cheap: looked up on every lesions() call
        if key not in self._cache:
            full, rois = _scan(folder)
            self._cache[key] = _Index(full=full, rois=rois, cases=read_cases(folder))
        return self._cache[key]

    def load(self, folder: Path) -> list[ImageRecord]:
        folder = require_folder(folder)
        index = self._index(folder)
        if not index.full:
            raise DataError("no CBIS-DDSM full mammograms found (folders or PatientIDs like "
                            "Mass-Test_P_00173_LEFT_CC)", path=folder)
        listed = set(index.cases)
        missing = listed - set(index.full)
        if missing:
            log.info("%d CBIS-DDSM images listed in the CSVs are not on disk", len(missing))
        return [self._record(subject, path, index.cases.get(subject)) for subject, path in sorted(index.full.items())]

    @staticmethod
    def _record(subject: str, path: Path, case: _Case | None) -> ImageRecord:
        _, _, patient, side, view, _ = SUBJECT.match(subject).groups()
        laterality = side[0]
        meta: dict[str, object] = {"ImageLateralityFinal": laterality, "ViewPosition": view}
        if case is None:
            return ImageRecord(path=path, patient_id=patient, study_id=patient, laterality=laterality, view=view, meta=meta)
        meta.update({key: ",".join(sorted(values)) for key, values in case.meta.items() if values})
        if case.density is not None:
            meta["tissueden"] = case.density
        if case.birads is not None:
            meta["asses"] = case.birads
        # CBIS has no exam id: one patient's images form one exam (docs/datasets.md).
        return ImageRecord(path=path, patient_id=patient, study_id=patient, laterality=laterality, view=view,
                           meta=meta, birads=case.birads, density=case.density, cancer=case.cancer)

    def annotated_images(self, folder: Path) -> list[Path]:
        index = self._index(require_folder(folder))
        return [index.full[s] for s, case in sorted(index.cases.items())
                if s in index.full and any(f"{s}_{a.number}" in index.rois for a in case.abnormalities)]

    def lesions(self, folder: Path, image: Path) -> list[Lesion]:
        index = self._index(require_folder(folder))
        subject = _subject_of(Path(image).absolute(), Path(image).absolute().anchor)
        if subject is None or subject not in index.full:
            return []
        if subject not in index.lesion_cache:
            case = index.cases.get(subject)
            found = [] if case is None else [les for a in case.abnormalities
                                             if (les := _mask_lesion(a, index.rois.get(f"{subject}_{a.number}", []), image))]
            index.lesion_cache[subject] = found
        return index.lesion_cache[subject]


def _mask_lesion(abnormality: _Abnormality, files: list[Path], image: Path) -> Lesion | None:
    """The abnormality's box from its ROI mask; None (logged) when no mask is on disk."""
    import pydicom

    if not files:
        return None
    sizes = {}
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
            sizes[path] = int(ds.Rows) * int(ds.Columns)
        except Exception as exc:  # a damaged file costs this lesion only
            log.warning("%s: unreadable ROI file (%s)", path, type(exc).__name__)
    if not sizes:
        return None
    mask_path = max(sizes, key=sizes.get)  # the mask is on the full image's grid; crops are small
    try:
        mask = pydicom.dcmread(mask_path).pixel_array
        full = pydicom.dcmread(image, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
    except Exception as exc:
        log.warning("%s: ROI mask not decodable (%s)", mask_path, type(exc).__name__)
        return None
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        log.warning("%s: ROI mask is empty", mask_path)
        return None
    # Some masks are not on the full image's grid (docs/datasets.md): scale to it.
    sy, sx = int(full.Rows) / mask.shape[0], int(full.Columns) / mask.shape[1]
    box = (cols.min() * sx, rows.min() * sy, (cols.max() + 1) * sx, (rows.max() + 1) * sy)
    label = abnormality.label + ("" if (sx, sy) == (1.0, 1.0) else " (mask resized to the image)")
    return Lesion(kind=abnormality.kind, box=tuple(float(v) for v in box), label=label, mask_path=mask_path)
