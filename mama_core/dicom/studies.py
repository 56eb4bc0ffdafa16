"""Folders of DICOM files -> studies keyed by view (DESIGN §2, §3 hanging protocol).

Only headers are read (`stop_before_pixels`, `specific_tags`), so scanning a folder of
hundreds of mammograms takes well under a second. Nothing in a folder is fatal: files
that are not DICOM, not MG, or unreadable are reported, and a study's `problems` say
what a reader would want to know before trusting the hanging (missing views, duplicates,
raw FOR PROCESSING images, images whose side or view could not be determined).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from mama_core.dicom import fields
from mama_core.dicom.io import read_dataset
from mama_core.dicom.types import STANDARD_KEYS, Study, view_key
from mama_core.errors import DicomError
from mama_core.logging_setup import note_folder_parts, note_identifiers

FOR_PROCESSING = "FOR PROCESSING"
_DEFER_BYTES = 4096  # header values are small; anything larger (pixel data) is skipped
_DICM_OFFSET = 128  # PS3.10 7.1: 128-byte preamble, then the 4 bytes 'DICM'

SkipReport = list[tuple[Path, str]]


@dataclass(frozen=True)
class _Entry:
    """What grouping needs from one file's header."""

    path: Path
    study_uid: str | None
    patient_id: str | None
    date: str | None
    laterality: str | None
    view: str | None
    intent: str | None
    modality: str | None
    sop_class: str

    @property
    def key(self) -> str | None:
        return view_key(self.laterality, self.view)


def _summarise(path: Path) -> _Entry:
    try:
        return _summarise_header(path)
    except (DicomError, MemoryError):
        raise
    except Exception as exc:  # pydicom converts elements lazily: a corrupt one fails on first use
        raise DicomError(f"corrupt data element ({type(exc).__name__}: {exc})", path) from exc


def _summarise_header(path: Path) -> _Entry:
    ds = read_dataset(path, stop_before_pixels=True, specific_tags=fields.STUDY_TAGS)
    if not ds.get("StudyInstanceUID") or not ds.get("Modality"):
        # Rare path: re-read the whole header so one cut short is reported as truncated
        # rather than as a missing tag (specific_tags hides the damaged element).
        ds = read_dataset(path, stop_before_pixels=True)
    if _is_native(ds):
        # Uncompressed pixel data has a declared length: ask for it deferred, so pydicom
        # records where it lies and seeks past it, and `read_dataset` checks it fits in the
        # file. Compressed data (undefined length) would have to be read through: skipped.
        read_dataset(path, specific_tags=["PixelData"], defer_size=_DEFER_BYTES)
    return _entry(path, ds)


def note_patient(ds: Dataset) -> None:
    """Tell the log redactor this file's patient identifiers (docs/reliability.md §4)."""
    for keyword in ("PatientID", "PatientName", "AccessionNumber"):
        try:
            note_identifiers(fields.text(ds, keyword))
        except Exception:  # a damaged value: reading goes on; there is nothing to redact
            continue


def _is_native(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        # Deflated files are inflated in memory, so offsets there do not match the file size.
        return bool(uid is not None and uid.is_transfer_syntax and not (uid.is_encapsulated or uid.is_deflated))
    except (AttributeError, ValueError):
        return False


def _entry(path: Path, ds: Dataset) -> _Entry:
    sop = ds.get("SOPClassUID")
    note_patient(ds)
    return _Entry(
        path=path,
        study_uid=fields.text(ds, "StudyInstanceUID"),
        patient_id=fields.text(ds, "PatientID"),
        date=fields.study_date(ds),
        laterality=fields.laterality(ds),
        view=fields.view(ds),
        intent=fields.presentation_intent(ds),
        modality=fields.modality(ds),
        sop_class=(getattr(sop, "name", "") or str(sop or "")),
    )


def _skip_reason(entry: _Entry) -> str | None:
    """Why a readable file is not a mammogram we can hang, or None when it is one."""
    is_mg = entry.modality == "MG" or (entry.modality is None and "Mammography" in entry.sop_class)
    if not is_mg:
        return f"modality {entry.modality or 'missing'} is not MG"
    if not entry.study_uid:
        return "no StudyInstanceUID"
    return None


# ---- scanning ---------------------------------------------------------------------------


def find_studies(folder: str | Path, report: SkipReport | None = None) -> list[Study]:
    """All MG studies under `folder` (recursive), sorted by date then UID.

    `report`, when given, collects `(path, reason)` for every file that was skipped: not
    DICOM, not MG, unreadable. Unreadable DICOM files also appear in the `problems` of the
    studies whose images share their folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DicomError("not a folder" if root.exists() else "folder not found", root)
    entries: list[_Entry] = []
    unreadable: SkipReport = []
    for path in _candidate_files(root):
        note_folder_parts(root, path)  # sites often name study folders after the patient
        entry = _scan_one(path, report, unreadable)
        if entry is not None:
            entries.append(entry)
    studies = [_build_study(uid, group) for uid, group in _by_study(entries).items()]
    _attach_unreadable(studies, entries, unreadable)
    return sorted(studies, key=lambda s: (s.date is None, s.date or "", s.uid))


def _candidate_files(root: Path) -> list[Path]:
    """Every regular file, hidden ones (.DS_Store, ._ resource forks) excluded."""
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _scan_one(path: Path, report: SkipReport | None, unreadable: SkipReport) -> _Entry | None:
    try:
        entry = _summarise(path)
    except DicomError as err:
        _note(report, path, err.reason)
        if _has_dicm_prefix(path):
            unreadable.append((path, err.reason))
        return None
    reason = _skip_reason(entry)
    if reason:
        _note(report, path, reason)
        return None
    return entry


def _note(report: SkipReport | None, path: Path, reason: str) -> None:
    if report is not None:
        report.append((path, reason))


def _has_dicm_prefix(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(_DICM_OFFSET)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _by_study(entries: list[_Entry]) -> dict[str, list[_Entry]]:
    groups: dict[str, list[_Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.study_uid or ""].append(entry)
    return groups


# ---- one study --------------------------------------------------------------------------


def _build_study(uid: str, entries: list[_Entry]) -> Study:
    entries = sorted(entries, key=lambda e: str(e.path))
    study = Study(
        uid=uid,
        patient_id=next((e.patient_id for e in entries if e.patient_id), None),
        date=next((e.date for e in entries if e.date), None),
    )
    _check_patient(study, entries)
    for entry in entries:
        if entry.key is None:
            _report_unknown(study, entry)
    placed = [e for e in entries if e.key is not None]
    presentation = {e.key for e in placed if e.intent != FOR_PROCESSING}
    for entry in placed:
        _place(study, entry, presentation)
    study.problems.extend(f"missing {k}" for k in STANDARD_KEYS if k not in study.images)
    return study


def _report_unknown(study: Study, entry: _Entry) -> None:
    """An image whose side or view is unknown cannot be hung; say so rather than guess."""
    study.problems.append(
        f"{entry.path}: unknown laterality/view (laterality={entry.laterality}, view={entry.view}); not placed"
    )


def _place(study: Study, entry: _Entry, presentation_keys: set[str | None]) -> None:
    """Put one image under its key. A raw FOR PROCESSING image gives way to a FOR
    PRESENTATION one of the same key (DESIGN §2); a second image of a key is kept as
    'KEY#2' so that nothing the user holds silently disappears."""
    key = entry.key
    assert key is not None
    if entry.intent == FOR_PROCESSING:
        if key in presentation_keys:
            study.problems.append(f"{key}: skipped FOR PROCESSING image {entry.path} (a FOR PRESENTATION image exists)")
            return
        study.problems.append(f"{key}: only a FOR PROCESSING (raw) image is available: {entry.path}")
    if key in study.images:
        n = 2
        while f"{key}#{n}" in study.images:
            n += 1
        study.problems.append(f"duplicate {key}: {entry.path} kept as {key}#{n} (first: {study.images[key]})")
        key = f"{key}#{n}"
    study.images[key] = entry.path


def _check_patient(study: Study, entries: list[_Entry]) -> None:
    ids = sorted({e.patient_id for e in entries if e.patient_id})
    if len(ids) > 1:
        study.problems.append(f"files of this study disagree on PatientID: {', '.join(ids)}")


def _attach_unreadable(studies: list[Study], entries: list[_Entry], unreadable: SkipReport) -> None:
    """An unreadable DICOM file has no study UID; blame the studies sharing its folder."""
    folders: dict[Path, set[str]] = defaultdict(set)
    for entry in entries:
        folders[entry.path.parent].add(entry.study_uid or "")
    by_uid = {s.uid: s for s in studies}
    for path, reason in unreadable:
        for uid in sorted(folders.get(path.parent, ())):
            by_uid[uid].problems.append(f"unreadable file {path}: {reason}")


# ---- one study from a path --------------------------------------------------------------


def load_study(path: str | Path) -> Study:
    """A study from a study folder (exactly one MG study inside) or from a single file (a
    study holding just that image)."""
    p = Path(path)
    if p.is_file():
        entry = _summarise(p)
        return _build_study(entry.study_uid or str(p), [entry])
    studies = find_studies(p)
    if not studies:
        raise DicomError("no mammography study found in this folder", p)
    if len(studies) > 1:
        raise DicomError(f"folder holds {len(studies)} studies; open one study folder or use find_studies", p)
    return studies[0]
