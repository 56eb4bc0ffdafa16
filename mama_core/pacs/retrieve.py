"""Retrieving a study (and the same patient's priors) into the local study cache.

`retrieve_study` is a generator of `RetrieveProgress` reports that honours a stop flag between
files, like every long job of the engine. Only mammography series are fetched (MG; RG/DX/CR/
OT/SC only when the series or the image says breast); files already in the cache are not
fetched again, so running it again after a cancel or a failure resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from mama_core.optim import StopFlag, should_stop
from mama_core.pacs.connect import open_connection
from mama_core.pacs.nodes import PacsNode
from mama_core.pacs.storage import instance_path, save_instance, study_folder, sweep_partials
from mama_core.pacs.types import InstanceInfo, PacsError, StudyInfo, StudyQuery, is_mammogram_dataset

log = logging.getLogger(__name__)


@dataclass
class RetrieveProgress:
    study_uid: str
    folder: Path
    done: int  # instances handled (fetched, already local, or not a mammogram)
    total: int
    fetched: int = 0
    already_local: int = 0
    not_mammogram: int = 0
    finished: bool = False
    cancelled: bool = False  # the stop flag ended the retrieve (one word for every job: mama_core.optim)

    def to_json(self) -> dict:
        return {"study_uid": self.study_uid, "folder": str(self.folder), "done": self.done, "total": self.total,
                "fetched": self.fetched, "already_local": self.already_local,
                "not_mammogram": self.not_mammogram, "finished": self.finished, "cancelled": self.cancelled}


def mammography_instances(conn, study_uid: str) -> list[InstanceInfo]:
    """The study's instances in mammography series (see module docstring)."""
    out: list[InstanceInfo] = []
    for series in conn.series(study_uid):
        if series.mammography() is False:
            continue
        out.extend(conn.instances(study_uid, series))
    return out


def _fetch_one(conn, study_uid: str, item: InstanceInfo, folder: Path) -> bool:
    """Fetch one instance into `folder`; False when it turned out not to be a mammogram."""
    kept: list[Path] = []

    def sink(ds: Dataset) -> None:
        if item.check_image and not is_mammogram_dataset(ds):
            return
        kept.append(save_instance(folder, ds))

    conn.fetch(study_uid, item, sink)
    return bool(kept)


def retrieve_study(node: PacsNode, study_uid: str, stop: StopFlag = None, root: Path | None = None,
                   connection=None) -> Iterator[RetrieveProgress]:
    """Fetch a study's mammography instances into `study_folder(node.name, study_uid)`.

    Yields a report before the first file and after each one; the last has `finished` (or
    `cancelled`) set. A server failure raises PacsError after the files fetched so far are
    safely on disk (each file is written atomically), so calling again resumes."""
    folder = study_folder(node.name, study_uid, root)
    sweep_partials(folder)
    conn = connection or open_connection(node)
    try:
        items = mammography_instances(conn, study_uid)
        if not items:
            raise PacsError(f"study {study_uid} holds no mammography images on this server", "protocol", node.name)
        report = RetrieveProgress(study_uid, folder, 0, len(items))
        yield report
        for item in items:
            if should_stop(stop):
                report.cancelled = True
                yield report
                return
            if instance_path(folder, item.sop_uid).is_file():
                report.already_local += 1
            elif _fetch_one(conn, study_uid, item, folder):
                report.fetched += 1
            else:
                report.not_mammogram += 1
            report.done += 1
            yield report
        report.finished = True
        yield report
    finally:
        if connection is None:
            conn.close()


def find_priors(conn, study: StudyInfo) -> list[StudyInfo]:
    """Earlier mammography studies of the same patient, newest first."""
    if not study.patient_id:
        return []
    found = conn.find_studies(StudyQuery(patient_id=study.patient_id, modality="MG"))
    earlier = [s for s in found if s.study_uid != study.study_uid and (s.date or "") < (study.date or "99999999")]
    return sorted(earlier, key=lambda s: s.date or "", reverse=True)


@dataclass
class StudyRetrieval:
    """What `get_study` fetched: the study's folder and one folder per prior fetched."""

    study: StudyInfo
    folder: Path
    priors: list[tuple[StudyInfo, Path]] = field(default_factory=list)
    cancelled: bool = False  # the stop flag ended the retrieve (one word for every job: mama_core.optim)

    def to_json(self) -> dict:
        return {"study_uid": self.study.study_uid, "folder": str(self.folder), "date": self.study.date,
                "priors": [{"study_uid": s.study_uid, "date": s.date, "folder": str(f)} for s, f in self.priors],
                "cancelled": self.cancelled}


def lookup_study(conn, study_uid: str) -> StudyInfo:
    found = conn.find_studies(StudyQuery(study_uid=study_uid, modality=None))
    if not found:
        raise PacsError(f"no study {study_uid} on this server", "protocol")
    return found[0]


def get_study(node: PacsNode, study_uid: str, priors: bool | None = None, stop: StopFlag = None,
              root: Path | None = None, progress: Callable[[RetrieveProgress], None] | None = None) -> StudyRetrieval:
    """Fetch a study and, when `priors` (default: the `auto_priors` setting), its priors."""
    if priors is None:
        from mama_core.pacs.nodes import load_settings

        priors = load_settings().auto_priors
    with open_connection(node) as conn:
        study = lookup_study(conn, study_uid)
        wanted = [study] + (find_priors(conn, study) if priors else [])
        result = StudyRetrieval(study, study_folder(node.name, study_uid, root))
        for info in wanted:
            last = None
            for last in retrieve_study(node, info.study_uid, stop=stop, root=root, connection=conn):
                if progress is not None:
                    progress(last)
            if last is not None and last.cancelled:
                result.cancelled = True
                break
            if info is not study:
                result.priors.append((info, last.folder))
    return result
