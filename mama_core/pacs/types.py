"""What the PACS layer hands back: studies found, instances to fetch, and its one error type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from mama_core.errors import MamaError
from mama_core.logging_setup import note_identifiers

# Stages a connection goes through, in order; a failure names the one that failed.
STAGES = ("config", "dns", "tcp", "tls", "auth", "association", "protocol")

# Modalities under which a 2D mammogram may be filed (docs/pacs.md): MG always; the
# others only when the series or the image says it is a breast image.
MAMMO_MODALITY = "MG"
MAYBE_MAMMO_MODALITIES = ("RG", "DX", "CR", "OT", "SC")
MAMMO_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # - For Processing
}
MAMMO_VIEW_POSITIONS = {"CC", "MLO", "ML", "LM", "XCCL", "XCCM", "FB", "SIO", "LMO", "AT", "CV"}


class PacsError(MamaError):
    """A PACS operation failed; `stage` says where (one of STAGES), `node` which server."""

    def __init__(self, reason: str, stage: str = "protocol", node: str | None = None):
        self.stage = stage
        self.node = node
        self.detail = reason
        prefix = f"PACS {node}: " if node else "PACS: "
        super().__init__(f"{prefix}{stage}: {reason}", field=None)


@dataclass
class StudyQuery:
    """Search keys. `date` is 'YYYYMMDD', 'YYYYMMDD-YYYYMMDD', 'YYYYMMDD-' or '-YYYYMMDD'."""

    patient_id: str | None = None
    date: str | None = None
    accession: str | None = None
    modality: str | None = "MG"
    study_uid: str | None = None
    limit: int = 200

    def __post_init__(self) -> None:
        if self.date and not re.match(r"^(\d{8})?-?(\d{8})?$", self.date):
            raise PacsError(f"date {self.date!r}: use YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)", "config")
        if self.modality:
            self.modality = self.modality.upper()

    def keys(self) -> dict[str, str]:
        """The attribute keyword -> matching value pairs both protocols send."""
        out = {"PatientID": self.patient_id, "StudyDate": self.date, "AccessionNumber": self.accession,
               "ModalitiesInStudy": self.modality, "StudyInstanceUID": self.study_uid}
        return {k: v for k, v in out.items() if v}


@dataclass
class StudyInfo:
    study_uid: str
    patient_id: str | None
    patient_name: str | None
    date: str | None
    accession: str | None
    description: str | None
    modalities: list[str] = field(default_factory=list)
    n_images: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> "StudyInfo":
        def text(keyword: str) -> str | None:
            value = ds.get(keyword)
            return str(value).strip() or None if value not in (None, "") else None

        modalities = ds.get("ModalitiesInStudy") or []
        modalities = [str(m) for m in (modalities if isinstance(modalities, (list, tuple)) or hasattr(modalities, "__iter__")
                                       and not isinstance(modalities, str) else [modalities])]
        n = ds.get("NumberOfStudyRelatedInstances")
        info = cls(study_uid=text("StudyInstanceUID") or "", patient_id=text("PatientID"),
                   patient_name=text("PatientName"), date=text("StudyDate"), accession=text("AccessionNumber"),
                   description=text("StudyDescription"), modalities=modalities,
                   n_images=int(n) if n not in (None, "") else None)
        note_identifiers(info.patient_id, info.patient_name, info.accession)
        return info

    def to_json(self) -> dict:
        return {"study_uid": self.study_uid, "patient": {"id": self.patient_id, "name": self.patient_name},
                "date": self.date, "accession": self.accession, "description": self.description,
                "modalities": self.modalities, "images": self.n_images}


@dataclass(frozen=True)
class SeriesInfo:
    series_uid: str
    modality: str | None
    body_part: str | None
    n_images: int | None

    def mammography(self) -> bool | None:
        """True: keep; False: skip; None: cannot tell from the series, look at each image."""
        modality = (self.modality or "").upper()
        if modality == MAMMO_MODALITY:
            return True
        if modality not in MAYBE_MAMMO_MODALITIES:
            return False
        return True if (self.body_part or "").upper() == "BREAST" else None


@dataclass(frozen=True)
class InstanceInfo:
    series_uid: str
    sop_uid: str
    check_image: bool = False  # the series did not say it is a mammogram: check the image


def is_mammogram_dataset(ds: Dataset) -> bool:
    """For series that do not say so: the image's SOP class, body part or view says mammogram."""
    if str(ds.get("SOPClassUID", "")) in MAMMO_SOP_CLASSES or str(ds.get("Modality", "")).upper() == "MG":
        return True
    if str(ds.get("BodyPartExamined", "")).upper() == "BREAST":
        return True
    return str(ds.get("ViewPosition", "")).upper() in MAMMO_VIEW_POSITIONS


@dataclass
class ConnectionReport:
    """Outcome of `check_connection`: ok, or the stage that failed and why, in plain words."""

    node: str
    ok: bool
    stage: str
    message: str
    seconds: float

    def to_json(self) -> dict:
        return {"node": self.node, "ok": self.ok, "stage": self.stage, "message": self.message,
                "seconds": round(self.seconds, 3)}
