"""`read_image(path) -> MammoImage`: one DICOM or image file (PNG, JPEG, TIFF, PGM) to
display/model-ready pixels (docs/data.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from mama_core.dicom import fields
from mama_core.dicom.io import read_dataset
from mama_core.dicom.pixels import chest_wall_on_right, chest_wall_on_right_from_pixels, decode_first_frame, to_unit_range
from mama_core.dicom.placement import not_a_2d_mammogram, place_dataset, place_file_name
from mama_core.dicom.studies import note_patient
from mama_core.dicom.types import MammoImage
from mama_core.errors import DicomError
from mama_core.images import file_exam, is_image_file, read_pixels

# Modalities whose files carry no image (PS3.3 C.7.3.1.1.1 defined terms).
_NON_IMAGE_MODALITIES = {"SR", "KO", "PR", "DOC", "REG", "SEG", "RTSTRUCT", "RTPLAN", "AU", "ECG"}
_PIXEL_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010), little / big endian


def read_image(path: str | Path) -> MammoImage:
    """Read a DICOM image: first frame, Modality LUT -> VOI -> polarity -> [0, 1], mirrored so
    the chest wall sits at column 0 (mammograms; other modalities keep their stored layout).
    Image files (by suffix) are decoded by Pillow/tifffile: see `mama_core.images`."""
    p = Path(path)
    if is_image_file(p):
        return read_image_file(p)
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


def read_image_file(p: Path) -> MammoImage:
    """A PNG/JPEG/TIFF/PGM mammogram: side and view from the file name (or a manual
    override), spacing unknown, chest wall found from the content (some datasets ship
    images already mirrored)."""
    pixels = read_pixels(p)
    flipped = chest_wall_on_right_from_pixels(pixels)
    if flipped:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    exam = file_exam(p)
    placement = place_file_name(p, exam.rule).placement
    return MammoImage(
        pixels=pixels, laterality=placement.laterality, view=placement.view, pixel_spacing_mm=None,
        presentation_intent=None, study_uid=exam.uid, patient_id=exam.patient_id, study_date=None,
        flipped=bool(flipped), source=p, placement=placement,
    )


def is_mammogram(ds: Dataset) -> bool:
    """Chest-wall orientation only means something for mammograms (any modality whose
    header says so, docs/data.md); a file without Modality gets the benefit of the doubt
    since this is a mammography workstation."""
    return fields.modality(ds) in (None, "MG") or not_a_2d_mammogram(ds) is None


def _assemble(ds: Dataset, path: Path, pixels: np.ndarray, flipped: bool) -> MammoImage:
    note_patient(ds)
    placement = place_dataset(ds, path).placement
    return MammoImage(
        pixels=pixels,
        laterality=placement.laterality,
        view=placement.view,
        pixel_spacing_mm=fields.pixel_spacing_mm(ds),
        presentation_intent=fields.presentation_intent(ds),
        study_uid=fields.text(ds, "StudyInstanceUID"),
        patient_id=fields.text(ds, "PatientID"),
        study_date=fields.study_date(ds),
        flipped=bool(flipped),
        source=path,
        patient_age=fields.patient_age(ds),
        modality=fields.modality(ds),
        placement=placement,
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
