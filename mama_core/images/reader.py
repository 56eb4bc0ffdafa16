"""PNG / JPEG / TIFF / PGM mammograms -> the same `MammoImage` a DICOM file gives.

Decoding is Pillow's (tifffile's for TIFF, which also reads the 16-bit, float and tiled
variants Pillow does not). Grey levels: 8-bit files are divided by 255; 16-bit files by
the top of the smallest bit depth (10, 12, 14 or 16 bits) that holds their largest value,
since 12-bit detector values stored in 16-bit PNGs are common and would otherwise look
sixteen times too dark; float files are min-max scaled. Bright = dense is assumed (these
files are normally exported for display). Pixel spacing is unknown: None, never invented.
Many datasets mirror their images so both breasts face one way, so the chest wall is
found from the image content, never assumed from the side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mama_core.errors import ImageFileError

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".pnm"})
_TIFF = frozenset({".tif", ".tiff"})
_HIGH_BIT_DEPTHS = (10, 12, 14, 16)
MAX_PIXELS = 400_000_000  # refuse anything larger (a corrupt size field, a decompression bomb)


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


@dataclass(frozen=True)
class FileInfo:
    """What a folder scan needs from an image file without decoding its pixels."""

    path: Path
    format: str
    shape: tuple[int, ...]
    frames: int


def probe(path: str | Path) -> FileInfo:
    """Open the file's header and check its data is intact (PNG/JPEG: Pillow's verify walks
    the chunks and their checksums without decoding); `ImageFileError` when it is not."""
    p = _existing(path)
    if p.suffix.lower() in _TIFF:
        return _probe_tiff(p)
    Image = _pillow()
    try:
        with Image.open(p) as img:
            info = FileInfo(p, img.format or p.suffix, (img.height, img.width), getattr(img, "n_frames", 1))
            img.verify()
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ValueError) on bad files
        raise ImageFileError(f"not a readable image ({type(exc).__name__}: {exc})", p) from exc
    _check_size(p, info.shape)
    return info


def _probe_tiff(p: Path) -> FileInfo:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            page = tif.pages[0]
            return FileInfo(p, "TIFF", tuple(page.shape), len(tif.pages))
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error, ...
        raise ImageFileError(f"not a readable TIFF ({type(exc).__name__}: {exc})", p) from exc


def read_pixels(path: str | Path) -> np.ndarray:
    """Stored grey levels -> float32 [H, W] in [0, 1] (see the module notes)."""
    p = _existing(path)
    try:
        raw = _decode_tiff(p) if p.suffix.lower() in _TIFF else _decode_pillow(p)
    except ImageFileError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # decoders raise many kinds on corrupt data
        raise ImageFileError(f"pixel data could not be decoded ({type(exc).__name__}: {exc})", p) from exc
    return to_unit_range(_grey(raw, p), p)


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise ImageFileError("file not found", p)
    if p.is_dir():
        raise ImageFileError("is a folder, not an image file", p)
    return p


def _pillow():
    from PIL import Image

    return Image


def _check_size(p: Path, shape: tuple[int, ...]) -> None:
    if len(shape) < 2 or shape[0] <= 0 or shape[1] <= 0:
        raise ImageFileError(f"image has no size ({shape})", p)
    if int(np.prod(shape)) > MAX_PIXELS:
        raise ImageFileError(f"declared image size {shape} is too large to decode", p)


def _decode_pillow(p: Path) -> np.ndarray:
    Image = _pillow()
    with Image.open(p) as img:
        _check_size(p, (img.height, img.width))
        if img.mode in ("P", "PA", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "1"):
            img = img.convert("L")  # colour exports of a grey image: Pillow's luminance
        return np.asarray(img)


def _decode_tiff(p: Path) -> np.ndarray:
    """tifffile first (16-bit, float, tiled); Pillow when tifffile lacks the codec (LZW and
    deflate need the optional imagecodecs package, which Pillow does not)."""
    import tifffile

    with tifffile.TiffFile(p) as tif:
        _check_size(p, tuple(tif.pages[0].shape))
        try:
            return tif.pages[0].asarray()
        except Exception as exc:  # a codec tifffile cannot run here (or corrupt strips)
            first_error = exc
    try:
        return _decode_pillow(p)
    except Exception:
        raise ImageFileError(
            f"pixel data could not be decoded ({type(first_error).__name__}: {first_error})", p
        ) from first_error


def _grey(raw: np.ndarray, p: Path) -> np.ndarray:
    """One grey channel: colour or grey+alpha arrays (tifffile keeps them) are averaged."""
    arr = np.asarray(raw)
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        channels = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
        mean = channels.mean(axis=-1)
        # integers stay integers of the same width, so the bit-depth scaling below applies
        arr = mean if raw.dtype.kind == "f" else np.rint(mean).astype(raw.dtype)
    if arr.ndim != 2:
        raise ImageFileError(f"decoded image has shape {arr.shape}, expected a 2-D grey image", p)
    return arr


def to_unit_range(arr: np.ndarray, p: Path) -> np.ndarray:
    """Grey levels -> float32 [0, 1] by the file's bit depth (see the module notes)."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageFileError("image holds non-finite values", p)
    if arr.dtype.kind == "f" or values.min() < 0:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = 0.0, float(_top_of_range(int(values.max()), arr.dtype))
    if high <= low:
        return np.zeros(arr.shape, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _top_of_range(peak: int, dtype: np.dtype) -> int:
    if np.dtype(dtype).itemsize == 1 or peak <= 255:
        return 255
    bits = next((b for b in _HIGH_BIT_DEPTHS if peak < 2**b), max(16, peak.bit_length()))
    return 2**bits - 1
