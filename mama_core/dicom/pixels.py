"""Stored values -> [0, 1] float, bright = dense, chest wall at column 0 (docs/method.md §2).

The grayscale pipeline is the one in PS3.3 C.11 / PS3.4 N.2.1.1: Modality LUT (C.11.1),
VOI LUT or window (C.11.2), then the Presentation LUT step, which for a mammogram is
the MONOCHROME1 / INVERSE polarity flip (C.11.6). pydicom implements the first two; we
only choose the output range that maps each result onto [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder, pixel_array

from mama_core.errors import DicomError

# Refuse to decode anything declaring more samples than this: a corrupt Rows/Columns/
# NumberOfFrames would otherwise ask numpy for terabytes.
MAX_DECLARED_SAMPLES = 1_000_000_000

_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


# ---- decoding ---------------------------------------------------------------------------


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def check_geometry(ds: Dataset, path: Path) -> None:
    """Rows/Columns present and positive, one grey sample per pixel, sane total size."""
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if rows <= 0 or cols <= 0:
        raise DicomError(f"image has no size (Rows={rows}, Columns={cols})", path, field="Rows")
    frames = max(1, _int(ds, "NumberOfFrames", 1))
    samples = max(1, _int(ds, "SamplesPerPixel", 1))
    if rows * cols * frames * samples > MAX_DECLARED_SAMPLES:
        raise DicomError(
            f"declared image size {rows}x{cols}x{frames} frame(s) x{samples} is too large to decode", path
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if samples != 1 or photometric not in _GREYSCALE:
        raise DicomError(
            f"not a greyscale image (PhotometricInterpretation {photometric or 'missing'})",
            path, field="PhotometricInterpretation",
        )


def _check_decoder(ds: Dataset, path: Path) -> None:
    """A clear error up front when no installed plugin can decode the transfer syntax."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        raise DicomError("no transfer syntax in the file meta information", path, field="TransferSyntaxUID")
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DicomError(f"unsupported transfer syntax {uid.name} ({uid}): no pixel decoder exists", path) from None
    if not decoder.is_available:
        raise DicomError(
            f"unsupported transfer syntax {uid.name} ({uid}): no decoder installed (pylibjpeg plugins)", path
        )


def decode_first_frame(ds: Dataset, path: Path) -> np.ndarray:
    """The stored values of frame 0 as [Rows, Columns] (multi-frame files: first frame only)."""
    check_geometry(ds, path)
    _check_decoder(ds, path)
    try:
        arr = pixel_array(ds, index=0)
    except Exception as exc:  # decoders raise many kinds on corrupt data; all mean "cannot decode"
        message = str(exc)
        if "less than expected" in message:
            raise DicomError(f"truncated pixel data ({message})", path) from exc
        raise DicomError(f"pixel data could not be decoded ({type(exc).__name__}: {message})", path) from exc
    if arr.ndim != 2:
        raise DicomError(f"decoded pixel data has shape {arr.shape}, expected 2-D", path)
    return arr


# ---- grey-level pipeline ----------------------------------------------------------------


def to_unit_range(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values -> float32 [0, 1], bright = dense."""
    values = apply_modality_lut(stored, ds)  # PS3.3 C.11.1
    if not np.isfinite(values).all():  # e.g. RescaleSlope 'nan' or 1e308 (found by fuzzing)
        raise ValueError("RescaleSlope/RescaleIntercept give non-finite values")
    out, low, high = _apply_voi(values, ds)
    if high == low:
        unit = np.zeros(out.shape, dtype=np.float64)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            unit = (np.asarray(out, dtype=np.float64) - low) / (high - low)
    if not np.isfinite(unit).all():
        raise ValueError("the VOI transform gives non-finite values")
    np.clip(unit, 0.0, 1.0, out=unit)
    if inverts(ds):
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _apply_voi(values: np.ndarray, ds: Dataset) -> tuple[np.ndarray, float, float]:
    """VOI transform (PS3.3 C.11.2) and the (low, high) of its output range.

    A VOI LUT Sequence wins over a window when both exist (pydicom's default and the
    usual vendor intent); the first item/window is used when several are offered. With no
    VOI at all, the modality-LUT output's own min-max is the range.
    """
    if ds.get("VOILUTSequence"):
        return apply_voi(_as_lut_index(values), ds, index=0), 0.0, float(voi_lut_max(ds))
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            low, high = _window_output_range(ds)
            out = apply_windowing(values, ds, index=0)
            if np.isfinite([low, high]).all() and np.isfinite(out).all():
                return out, low, high
        except (ValueError, TypeError, IndexError):
            pass  # an unusable window (width < 1, unknown function): fall back to min-max
        # ... and so does a window whose values are not finite ('nan', 'inf')
    return values, float(np.min(values)), float(np.max(values))


def _as_lut_index(values: np.ndarray) -> np.ndarray:
    """LUTs are indexed by integers; a rescale leaves float64 holding whole numbers."""
    if np.issubdtype(values.dtype, np.integer):
        return values
    return np.rint(values).astype(np.int64)


def voi_lut_max(ds: Dataset) -> int:
    """Top of the VOI LUT output range: 2^n - 1 with n the LUT Descriptor's third value
    (PS3.3 C.11.2.1.1). Some writers declare 16 bits for a 12-bit LUT, which would leave
    the image four stops too dark; so when the largest entry needs fewer bits than declared,
    that smaller bit depth sets the range (a pragmatic reading, not in the standard)."""
    item = ds.VOILUTSequence[0]
    descriptor = [int(v) for v in item.LUTDescriptor]
    entries = descriptor[0] or 2**16  # 0 means 65536 entries (C.11.2.1.1)
    # Every LUT entry, read back through pydicom (which handles US and OW encodings).
    table = apply_voi(np.arange(descriptor[1], descriptor[1] + entries, dtype=np.int64), ds, index=0)
    bits = min(descriptor[2], max(1, int(np.max(table)).bit_length()))
    return 2**bits - 1


def _window_output_range(ds: Dataset) -> tuple[float, float]:
    """(y_min, y_max) that pydicom's windowing maps to, found by pushing values far below
    and far above any window through it (LINEAR, LINEAR_EXACT and SIGMOID all saturate)."""
    with np.errstate(over="ignore"):
        ends = apply_windowing(np.array([-1e30, 1e30]), ds, index=0)
    return float(ends[0]), float(ends[1])


def inverts(ds: Dataset) -> bool:
    """Whether low output values are dense (white) and must be flipped.

    MONOCHROME1 means "minimum value is white" (PS3.3 C.7.6.3.1.2). PresentationLUTShape
    INVERSE says the same thing: the DX and MG image modules (C.8.11.1, C.8.11.7) require
    INVERSE exactly when the image is MONOCHROME1, so when both are present they describe
    one inversion, not two that cancel. Either alone also inverts.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    shape = str(ds.get("PresentationLUTShape", "")).upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


# ---- orientation ------------------------------------------------------------------------


def chest_wall_on_right(ds: Dataset, pixels: np.ndarray) -> bool:
    """True when the chest wall is at the right edge, so the image must be mirrored to put it
    at column 0. PatientOrientation, then FieldOfViewHorizontalFlip, then image content."""
    for rule in (_from_patient_orientation, _from_field_of_view):
        decided = rule(ds)
        if decided is not None:
            return decided
    return _from_intensity(pixels)


def chest_wall_on_right_from_pixels(pixels: np.ndarray) -> bool:
    """For files without orientation attributes (image files): the content decides."""
    return _from_intensity(pixels)


def _from_patient_orientation(ds: Dataset) -> bool | None:
    """PatientOrientation's first value is the direction of increasing column index (PS3.3
    C.7.6.1.1.1). 'A': columns run toward the nipple, so the chest wall (posterior) is at
    column 0. 'P': it is at the right edge."""
    value = ds.get("PatientOrientation")
    if not value or isinstance(value, str):
        first = str(value or "").split("\\")[0]
    else:
        first = str(value[0])
    first = first.upper()
    if "A" in first and "P" not in first:
        return False
    if "P" in first and "A" not in first:
        return True
    return None


def _from_field_of_view(ds: Dataset) -> bool | None:
    """FieldOfViewHorizontalFlip (PS3.3 C.8.11.4) after FieldOfViewRotation, relative to the
    detector. We assume the detector's native frame has the chest wall at column 0 (the
    chest-wall edge of a mammography detector is fixed), so a net horizontal mirror puts it
    on the right. 90/270 degree rotations move it to a row edge: undecided."""
    flip = str(ds.get("FieldOfViewHorizontalFlip", "")).upper()
    if flip not in ("YES", "NO"):
        return None
    rotation = _int(ds, "FieldOfViewRotation", 0) % 360
    if rotation not in (0, 180):
        return None
    return (flip == "YES") != (rotation == 180)


def _from_intensity(pixels: np.ndarray) -> bool:
    """The breast is pressed against the detector's chest-wall edge, so that edge holds
    tissue along its length while the nipple side fades into background. Compare the mean
    brightness of thin strips at the two side edges; ties keep the image as stored."""
    width = pixels.shape[1]
    strip = max(1, width // 20)
    left = float(pixels[:, :strip].mean())
    right = float(pixels[:, width - strip :].mean())
    return right > left + 1e-6
