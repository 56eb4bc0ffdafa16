"""Fixture writers for the dataset-adapter tests: tables in each dataset's exact column layout
(docs/datasets.md), and small DICOM / PGM / XML files made with pydicom, Pillow and plistlib."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_csv(path: Path, header: list[str] | str, rows: list[list[object]], delimiter: str = ",",
              lineterminator: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(header, str):
        header = header.split(delimiter)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_dicom(path: Path, pixels: np.ndarray, **tags: object) -> Path:
    """A minimal single-frame MONOCHROME2 image (Secondary Capture unless SOPClassUID given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sop_class = str(tags.pop("SOPClassUID", SecondaryCaptureImageStorage))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "MG"
    pixels = np.ascontiguousarray(pixels)
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def breast_image(rows: int, cols: int, chest_wall_left: bool = True) -> np.ndarray:
    """A bright breast-like ramp against black air, chest wall on the given side (so the
    engine's content-based orientation rule has something to decide on)."""
    ramp = np.linspace(3000, 200, cols, dtype=np.float32)
    image = np.tile(ramp, (rows, 1))
    image[:, int(cols * 0.7):] = 0
    return (image if chest_wall_left else image[:, ::-1]).astype(np.uint16)
