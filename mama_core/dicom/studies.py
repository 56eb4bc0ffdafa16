"""Folders of DICOM and image files -> studies keyed by view (docs/data.md).

Only headers are read (`stop_before_pixels`, `specific_tags`; image files are opened and
verified, not decoded), so scanning a folder of hundreds of mammograms takes well under a
second. Nothing in a folder is fatal and nothing is dropped silently: files that are not
mammograms or are unreadable are reported with a reason, images whose side or view cannot
be decided go to the study's `unplaced` list, and a study's `problems` say what a reader
would want to know before trusting the hanging (missing views, duplicates, raw FOR
PROCESSING images, synthesized or unplaced images).

Grouping: StudyInstanceUID first; where each image carries its own UID (CBIS-DDSM and
other research exports) or none, patient + date (+ accession); image files by folder and
the exam part of their names. Earlier studies of the same patient become `priors`.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom.dataset import Dataset

from mama_core.dicom import fields
from mama_core.dicom.io import read_dataset
from mama_core.dicom.overrides import check_overrides
from mama_core.dicom.placement import Decision, not_a_2d_mammogram, place_dataset, place_file_name
from mama_core.dicom.types import STANDARD_KEYS, Study
from mama_core.errors import DicomError, MamaError
from mama_core.images import file_exam, is_image_file, probe
from mama_core.images.names import cbis_ddsm_id
from mama_core.logging_setup import note_folder_parts, note_identifiers

FOR_PROCESSING = "FOR PROCESSING"
_DEFER_BYTES = 4096  # header values are small; anything larger (pixel data) is skipped
_DICM_OFFSET = 128  # PS3.10 7.1: 128-byte preamble, then the 4 bytes 'DICM'

SkipReport = list[tuple[Path, str]]
GroupKey = tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    """What grouping and hanging need from one file."""

    path: Path
    group: GroupKey  # files with equal keys form one study (before singleton merging)
    group_uid: str  # the study's id when this key is the group
    group_rule: str
    patient_id: str | None  # normalised where a dataset rule applies (CBIS-DDSM 'P_00173')
    date: str | None
    accession: str | None
    intent: str | None
    decision: Decision

    @property
    def key(self) -> str | None:
        return self.decision.key


class _NotMammogram(Exception):
    """A readable file that is not a 2D mammogram; the message is the reason."""


# ---- one file ---------------------------------------------------------------------------


def _summarise(path: Path) -> _Entry:
    if is_image_file(path):
        return _summarise_image_file(path)
    try:
        return _summarise_header(path)
    except (MamaError, MemoryError, _NotMammogram):
        raise
    except Exception as exc:  # pydicom converts elements lazily: a corrupt one fails on first use
        raise DicomError(f"corrupt data element ({type(exc).__name__}: {exc})", path) from exc


def _summarise_image_file(path: Path) -> _Entry:
    info = probe(path)
    if info.frames > 1:
        raise _NotMammogram(f"multi-page image ({info.frames} pages, tomosynthesis or a stack): not a 2D view")
    exam = file_exam(path)
    decision = place_file_name(path, exam.rule)
    return _Entry(path, ("file", *exam.key), exam.uid, exam.rule, exam.patient_id, None, None, None, decision)


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
    elif _is_encapsulated(ds) and not _ends_with_delimiter(path):
        raise DicomError("truncated file: compressed pixel data has no end (sequence delimiter missing)", path)
    note_patient(ds)
    reason = not_a_2d_mammogram(ds) or _cbis_roi(ds)
    if reason:
        raise _NotMammogram(reason)
    return _entry(path, ds)


def _cbis_roi(ds: Dataset) -> str | None:
    cbis = cbis_ddsm_id(fields.text(ds, "PatientID"))
    if cbis is not None and cbis.group("roi"):
        return "CBIS-DDSM ROI mask or cropped lesion (not a full mammogram; read by the CBIS-DDSM dataset reader)"
    return None


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


def _is_encapsulated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        return bool(uid is not None and uid.is_transfer_syntax and uid.is_encapsulated)
    except (AttributeError, ValueError):
        return False


def _ends_with_delimiter(path: Path) -> bool:
    """Encapsulated pixel data ends with the Sequence Delimitation Item (FFFE,E0DD) of
    length 0 (PS3.5 A.4), normally the file's last 8 bytes; a Data Set Trailing Padding
    element may follow, so the file's tail is searched. This catches a file cut inside its
    compressed pixels without decoding them."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - _TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return False
    return any(d in tail for d in _DELIMITERS)


_TAIL_BYTES = 65536
_DELIMITERS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")


def _entry(path: Path, ds: Dataset) -> _Entry:
    patient = fields.text(ds, "PatientID")
    date = fields.study_date(ds)
    accession = fields.text(ds, "AccessionNumber")
    study_uid = fields.text(ds, "StudyInstanceUID")
    cbis = cbis_ddsm_id(patient)
    if cbis is not None:
        # CBIS-DDSM gives every image its own PatientID and StudyInstanceUID; the patient
        # is the P_nnnnn part. Each DDSM case is one exam and the dates in the files were
        # set at conversion (2016-17, not when the films were taken), so the patient alone
        # groups: dates must not split a case or make one series a "prior" of another.
        patient = cbis.group("patient").upper()
        group, uid, rule = ("cbis", patient), patient, "patient (CBIS-DDSM)"
    elif study_uid:
        group, uid, rule = ("uid", study_uid), study_uid, "StudyInstanceUID"
    elif patient:
        group, uid, rule = (("patient", patient, date or "", accession or ""), _opaque_id(patient, date, accession),
                            "patient + date + accession (no StudyInstanceUID)")
    else:
        group, uid, rule = ("folder", str(path.parent.resolve())), path.parent.name or "folder", \
            "folder (no StudyInstanceUID or PatientID)"
    return _Entry(path, group, uid, rule, patient, date, accession, fields.presentation_intent(ds),
                  place_dataset(ds, path, rule))


def _opaque_id(*parts: str | None) -> str:
    """A stable study id for files without a StudyInstanceUID that does not spell out the
    patient's identifiers."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8")).hexdigest()
    return f"study-{digest[:16]}"


# ---- scanning ---------------------------------------------------------------------------


def find_studies(folder: str | Path, report: SkipReport | None = None) -> list[Study]:
    """All mammography studies under `folder` (recursive: DICOM and PNG/JPEG/TIFF/PGM files),
    sorted by date then UID, with `priors` linked within the scan.

    `report`, when given, collects `(path, reason)` for every file that is not in a study:
    not DICOM, not a mammogram (with why), unreadable. Unreadable DICOM and image files also
    appear in the `problems` of the studies whose images share their folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DicomError("not a folder" if root.exists() else "folder not found", root)
    check_overrides()
    entries: list[_Entry] = []
    unreadable: SkipReport = []
    for path in _candidate_files(root):
        note_folder_parts(root, path)  # sites often name study folders after the patient
        entry = _scan_one(path, report, unreadable)
        if entry is not None:
            entries.append(entry)
    groups = _merge_singletons(_join_nameless_files(_by_group(entries)))
    studies = [_build_study(uid, rule, group) for uid, rule, group in _unique_uids(groups)]
    _attach_unreadable(studies, unreadable)
    link_priors(studies)
    return sorted(studies, key=lambda s: (s.date is None, s.date or "", s.uid))


def _candidate_files(root: Path) -> list[Path]:
    """Every regular file, hidden ones (.DS_Store, ._ resource forks) excluded. Linked
    folders are followed (archives are often assembled from links), each real folder once,
    so a link loop cannot hang the scan."""
    seen: set[str] = set()
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder) / f for f in files if not f.startswith("."))
    return sorted(p for p in found if p.is_file())


def _scan_one(path: Path, report: SkipReport | None, unreadable: SkipReport) -> _Entry | None:
    try:
        return _summarise(path)
    except _NotMammogram as why:
        _note(report, path, str(why))
    except MamaError as err:
        _note(report, path, err.reason)
        if is_image_file(path) or _has_dicm_prefix(path):
            unreadable.append((path, err.reason))
    return None


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


# ---- grouping ---------------------------------------------------------------------------


@dataclass
class _Group:
    uid: str
    rule: str
    entries: list[_Entry]


def _by_group(entries: list[_Entry]) -> dict[GroupKey, _Group]:
    groups: dict[GroupKey, _Group] = {}
    for entry in entries:
        group = groups.setdefault(entry.group, _Group(entry.group_uid, entry.group_rule, []))
        group.entries.append(entry)
    return groups


def _join_nameless_files(groups: dict[GroupKey, _Group]) -> dict[GroupKey, _Group]:
    """Image files whose names give no side or view (exam '') join the one exam of their
    folder when there is exactly one, so they show in that study's unplaced strip."""
    exams: dict[str, list[GroupKey]] = defaultdict(list)
    for key in groups:
        if key[0] == "file" and key[2]:
            exams[key[1]].append(key)
    for key in [k for k in groups if k[0] == "file" and not k[2]]:
        if len(exams.get(key[1], ())) == 1:
            groups[exams[key[1]][0]].entries.extend(groups.pop(key).entries)
    return groups


def _merge_singletons(groups: dict[GroupKey, _Group]) -> list[_Group]:
    """Exports that give every image its own StudyInstanceUID leave one-image 'studies':
    two or more of them with the same patient and date (and accession, when given) are one
    exam. Studies that really hold several images are never merged."""
    buckets: dict[tuple[str, str, str], list[_Group]] = defaultdict(list)
    for key, group in groups.items():
        [entry, *more] = group.entries
        if key[0] == "uid" and not more and entry.patient_id and entry.date:
            buckets[(entry.patient_id, entry.date, entry.accession or "")].append(group)
    merged_ids = set()
    out = []
    for (patient, date, accession), singles in buckets.items():
        if len(singles) < 2:
            continue
        merged_ids.update(id(g) for g in singles)
        # The study is named after its first image's UID: ids made from the PatientID or
        # accession would carry identifiers into logs and file names.
        out.append(_Group(min(g.uid for g in singles), "patient + date + accession (one StudyInstanceUID per image)",
                          [g.entries[0] for g in singles]))
    out.extend(g for g in groups.values() if id(g) not in merged_ids)
    return out


def _unique_uids(groups: list[_Group]) -> list[tuple[str, str, list[_Entry]]]:
    """Readable ids made from names can collide (two folders both called 'images'):
    suffix later ones so every study keeps its own id."""
    seen: set[str] = set()
    out = []
    for group in sorted(groups, key=lambda g: (g.uid, str(min(e.path for e in g.entries)))):
        uid, n = group.uid, 2
        while uid in seen:
            uid, n = f"{group.uid}~{n}", n + 1
        seen.add(uid)
        out.append((uid, group.rule, group.entries))
    return out


def link_priors(studies: list[Study]) -> None:
    """Each study's `priors`: the same patient's studies of earlier dates, newest first."""
    by_patient: dict[str, list[Study]] = defaultdict(list)
    for study in studies:
        if study.patient_id and study.date:
            by_patient[study.patient_id].append(study)
    for group in by_patient.values():
        for study in group:
            earlier = [s for s in group if s.date < study.date]
            study.priors = [s.uid for s in sorted(earlier, key=lambda s: (s.date, s.uid), reverse=True)]


# ---- one study --------------------------------------------------------------------------


def _build_study(uid: str, rule: str, entries: list[_Entry]) -> Study:
    entries = sorted(entries, key=lambda e: str(e.path))
    study = Study(
        uid=uid,
        patient_id=next((e.patient_id for e in entries if e.patient_id), None),
        date=next((e.date for e in entries if e.date), None),
    )
    _check_patient(study, entries)
    for entry in entries:
        study.placements[entry.path] = replace(entry.decision.placement, group_rule=rule)
        if entry.key is None:
            _report_unplaced(study, entry)
    placed = [e for e in entries if e.key is not None]
    conventional = {e.key for e in placed if e.decision.tag != "SYNTH"}
    presentation = {_slot(e, conventional) for e in placed if e.intent != FOR_PROCESSING}
    for entry in placed:
        _place(study, entry, _slot(entry, conventional), presentation)
    study.problems.extend(f"missing {k}" for k in STANDARD_KEYS if k not in study.images)
    return study


def _slot(entry: _Entry, conventional: set[str | None]) -> str:
    """A synthesized 2D image takes its view's slot only when no conventional image of that
    view exists (DBT-only screening); otherwise it is kept as an extra."""
    key = entry.key
    assert key is not None
    plain = entry.decision.placement.key
    if entry.decision.tag == "SYNTH" and plain not in conventional:
        return plain
    return key


def _report_unplaced(study: Study, entry: _Entry) -> None:
    """An image whose side or view is unknown is not hung by guesswork: it goes to the
    'unplaced' strip, where the reader can place it by hand."""
    study.unplaced.append(entry.path)
    p = entry.decision.placement
    study.problems.append(
        f"{entry.path}: unknown laterality/view (laterality={p.laterality}, view={p.view}); "
        "unplaced: set its side and view by hand"
    )


def _place(study: Study, entry: _Entry, key: str, presentation_keys: set[str]) -> None:
    """Put one image under its key. A raw FOR PROCESSING image gives way to a FOR
    PRESENTATION one of the same key; a second image of a key is kept as 'KEY#2' so that
    nothing the user holds silently disappears."""
    if entry.decision.tag == "SYNTH" and key in STANDARD_KEYS:
        study.problems.append(f"{key}: synthesized 2D image (no conventional image of this view): {entry.path}")
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


def _attach_unreadable(studies: list[Study], unreadable: SkipReport) -> None:
    """An unreadable file has no study; blame the studies sharing its folder."""
    folders: dict[Path, set[str]] = defaultdict(set)
    for study in studies:
        for path in study.placements:
            folders[path.parent].add(study.uid)
    by_uid = {s.uid: s for s in studies}
    for path, reason in unreadable:
        for uid in sorted(folders.get(path.parent, ())):
            by_uid[uid].problems.append(f"unreadable file {path}: {reason}")


# ---- one study from a path --------------------------------------------------------------


def load_study(path: str | Path) -> Study:
    """A study from a study folder (exactly one study inside) or from a single file (a
    study holding just that image)."""
    p = Path(path)
    if p.is_file():
        try:
            entry = _summarise(p)
        except _NotMammogram as why:
            raise DicomError(str(why), p) from None
        return _build_study(entry.group_uid, entry.group_rule, [entry])
    studies = find_studies(p)
    if not studies:
        raise DicomError("no mammography study found in this folder", p)
    if len(studies) > 1:
        raise DicomError(f"folder holds {len(studies)} studies; open one study folder or use find_studies", p)
    return studies[0]
