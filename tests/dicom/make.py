"""Tiny synthetic MG files for the DICOM tests, written with pydicom (proper file meta).

Real mammograms cannot ship with the tests, so the mammography-specific tags (laterality,
view codes, orientation, presentation intent) come from here; pixel pipelines are also
checked against real CR/MR/CT files from pydicom-data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
VIEW_SCT = {"CC": "399162004", "MLO": "399368009", "ML": "399260004", "LM": "399352003", "XCCL": "399192008"}

ROWS, COLS = 64, 48


def breast(rows: int = ROWS, cols: int = COLS, chest_wall: str = "left", top: int = 3000) -> np.ndarray:
    """A half-disc of bright 'tissue' pressed against one side edge, dark background.
    Values are what a MONOCHROME2 image would store (high = dense)."""
    r, c = np.mgrid[0:rows, 0:cols]
    depth = c if chest_wall == "left" else cols - 1 - c
    radius = np.sqrt(((r - rows / 2) / (rows / 2)) ** 2 + (depth / (0.8 * cols)) ** 2)
    tissue = np.clip(1.0 - radius, 0.0, 1.0)
    return (100 + tissue * (top - 100)).astype(np.uint16)


def mg(
    *,
    laterality: str | None = "L",
    view: str | None = "CC",
    study_uid: str | None = None,
    patient_id: str = "PAT1",
    date: str = "20240105",
    intent: str | None = "FOR PRESENTATION",
    pixels: np.ndarray | None = None,
    bits: int = 12,
    photometric: str = "MONOCHROME2",
    orientation: list[str] | None = None,
    **extra: Any,
) -> Dataset:
    """An MG dataset. `laterality`/`view` go to ImageLaterality/ViewPosition (None leaves
    them out); `extra` sets any other keyword (None deletes it)."""
    ds = Dataset()
    processing = intent == "FOR PROCESSING"
    ds.SOPClassUID = MG_PROCESSING if processing else MG_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.PatientID = patient_id
    ds.PatientName = "Test^Synthetic"
    ds.StudyDate = date
    ds.PatientAge = "052Y"
    if laterality is not None:
        ds.ImageLaterality = laterality
    if view is not None:
        ds.ViewPosition = view
    if intent is not None:
        ds.PresentationIntentType = intent
    if orientation is not None:
        ds.PatientOrientation = orientation
    _set_pixels(ds, breast() if pixels is None else pixels, bits, photometric)
    return set_tags(ds, **extra)


def set_tags(ds: Dataset, **tags: Any) -> Dataset:
    """Set each keyword to its value; None removes the element."""
    for key, value in tags.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, bits: int, photometric: str) -> None:
    frames = pixels if pixels.ndim == 3 else pixels[None]
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    if pixels.ndim == 3:
        ds.NumberOfFrames = int(frames.shape[0])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames.astype("<u2")).tobytes()


def view_code(view: str) -> Sequence:
    item = Dataset()
    item.CodeValue = VIEW_SCT[view]
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = view
    return Sequence([item])


def frame_laterality(side: str, shared: bool = True) -> dict[str, Sequence]:
    """FrameLaterality inside FrameAnatomySequence of the shared or first per-frame group."""
    anatomy = Dataset()
    anatomy.FrameLaterality = side
    group = Dataset()
    group.FrameAnatomySequence = Sequence([anatomy])
    key = "SharedFunctionalGroupsSequence" if shared else "PerFrameFunctionalGroupsSequence"
    return {key: Sequence([group])}


def write(ds: Dataset, path: str | Path, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """Save with a proper file meta (128-byte preamble, 'DICM', group 0002)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", MG_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def four_views(folder: Path, study_uid: str | None = None, **common: Any) -> dict[str, Path]:
    """RCC, LCC, RMLO, LMLO of one study in `folder`."""
    uid = study_uid or generate_uid()
    out = {}
    for side in "RL":
        for view in ("CC", "MLO"):
            out[side + view] = write(mg(laterality=side, view=view, study_uid=uid, **common), folder / f"{side}{view}.dcm")
    return out
