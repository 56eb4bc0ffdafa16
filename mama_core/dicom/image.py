"""`read_image(path) -> MammoImage`: one DICOM file to display/model-ready pixels (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from mama_core.dicom import fields
from mama_core.dicom.io import read_dataset
from mama_core.dicom.pixels import chest_wall_on_right, decode_first_frame, to_unit_range
from mama_core.dicom.studies import note_patient
from mama_core.dicom.types import MammoImage
from mama_core.errors import DicomError

# Modalities whose files carry no image (PS3.3 C.7.3.1.1.1 defined terms).
_NON_IMAGE_MODALITIES = {"SR", "KO", "PR", "DOC", "REG", "SEG", "RTSTRUCT", "RTPLAN", "AU", "ECG"}
_PIXEL_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010), little / big endian


def read_image(path: str | Path) -> MammoImage:
    """Read a DICOM image: first frame, Modality LUT -> VOI -> polarity -> [0, 1], mirrored so
    the chest wall sits at column 0 (mammograms; other modalities keep their stored layout)."""
    p = Path(path)
    ds = read_dataset(p)
    try:
        return _image_from(ds, p)
    except (DicomError, MemoryError):
        raise
    except Exception as exc:  # pydicom converts elements lazily: a corrupt one fails on first use
        raise DicomError(f"corrupt data element ({type(exc).__name__}: {exc})", p) from exc


def _image_from(ds: Dataset, p: Path) -> MammoImage:
    _require_pixels(ds, p)
    stored = decode_first_frame(ds, p)
    try:
        pixels = to_unit_range(stored, ds)
    except Exception as exc:  # a malformed LUT or rescale value
        raise DicomError(f"grey-level transform failed ({type(exc).__name__}: {exc})", p) from exc
    flipped = is_mammogram(ds) and chest_wall_on_right(ds, pixels)
    if flipped:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    return _assemble(ds, p, pixels, flipped)


def is_mammogram(ds: Dataset) -> bool:
    """Chest-wall orientation only means something for MG; a file without Modality gets the
    benefit of the doubt since this is a mammography workstation."""
    return fields.modality(ds) in (None, "MG")


def _assemble(ds: Dataset, path: Path, pixels: np.ndarray, flipped: bool) -> MammoImage:
    note_patient(ds)
    return MammoImage(
        pixels=pixels,
        laterality=fields.laterality(ds),
        view=fields.view(ds),
        pixel_spacing_mm=fields.pixel_spacing_mm(ds),
        presentation_intent=fields.presentation_intent(ds),
        study_uid=fields.text(ds, "StudyInstanceUID"),
        patient_id=fields.text(ds, "PatientID"),
        study_date=fields.study_date(ds),
        flipped=bool(flipped),
        source=path,
        patient_age=fields.patient_age(ds),
        modality=fields.modality(ds),
    )


def _require_pixels(ds: Dataset, path: Path) -> None:
    """Distinguish a non-image object, a file cut before its pixels, and a plain image
    header without pixel data, so the message tells the user what they have."""
    if "PixelData" in ds:
        return
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomError("float pixel data is not a supported mammogram encoding", path)
    kind = _non_image_kind(ds)
    if kind:
        raise DicomError(f"not an image ({kind})", path)
    if _file_mentions_pixel_data(path):
        raise DicomError("truncated file: pixel data element is cut short", path)
    raise DicomError("no pixel data", path)


def _non_image_kind(ds: Dataset) -> str | None:
    modality = fields.modality(ds)
    sop = ds.get("SOPClassUID")
    name = getattr(sop, "name", "") or ""
    if modality in _NON_IMAGE_MODALITIES or "SR" in name.split() or "Report" in name:
        return name or f"modality {modality}"
    return None


def _file_mentions_pixel_data(path: Path) -> bool:
    """Only on the error path: does the file contain the (7FE0,0010) tag that pydicom
    dropped because the element ended early?"""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return any(tag in data for tag in _PIXEL_TAG_BYTES)
