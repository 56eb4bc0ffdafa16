"""Reading DICOM files safely: every failure becomes a `DicomError` naming the file (docs/method.md §2).

pydicom is forgiving by design: a file cut short mid-header still parses, the last element
just holds fewer bytes than its declared length. We check for that here so that a truncated
file is reported as truncated rather than as "missing tag X" further down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from mama_core.errors import DicomError

# Pixel-data-like elements never shown in the tag panel (PS3.5 §8 / PS3.6 group 7FE0).
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_MAX_SHOWN_CHARS = 200


def read_dataset(
    path: str | Path,
    *,
    stop_before_pixels: bool = False,
    specific_tags: list[Any] | None = None,
    defer_size: int | None = None,
) -> Dataset:
    """dcmread with the engine's error contract: missing, not DICOM, corrupt and truncated
    files all raise `DicomError(reason, path)`. Elements larger than `defer_size` are not
    read, only checked to fit inside the file."""
    p = Path(path)
    if not p.exists():
        raise DicomError("file not found", p)
    if p.is_dir():
        raise DicomError("is a folder, not a DICOM file", p)
    try:
        # One handle for pydicom and the meta-block check (a folder scan opens each file once).
        # pydicom keeps the file's name, so deferred elements and pixel data are re-read from it
        # after the handle is closed, exactly as when it is given the path.
        with open(p, "rb") as fh:
            ds = pydicom.dcmread(
                fh, stop_before_pixels=stop_before_pixels, specific_tags=specific_tags, defer_size=defer_size
            )
            second = _second_meta_block(fh)
            size = os.fstat(fh.fileno()).st_size
    except InvalidDicomError as exc:
        raise DicomError("not a DICOM file (no 'DICM' prefix / file meta information)", p) from exc
    except Exception as exc:  # pydicom raises many kinds on corrupt input; all mean "unreadable"
        raise DicomError(f"unreadable DICOM, truncated or corrupt ({type(exc).__name__}: {exc})", p) from exc
    if second:
        raise DicomError(f"two conflicting file-meta blocks: {second}; the file was written twice over "
                         "itself or concatenated, so its encoding cannot be trusted", p)
    if _cut_short(ds, size) or _cut_short(getattr(ds, "file_meta", None) or Dataset(), size):
        raise DicomError("truncated file: an element holds fewer bytes than its declared length", p)
    if specific_tags is None and len(ds) == 0:
        raise DicomError("no data elements after the file meta information (empty or truncated file)", p)
    return ds


def _second_meta_block(fh: BinaryIO) -> str:
    """A description when group 0002 starts again right after the file meta information its
    group length announces (PS3.10 7.1: one block, then the data set); '' otherwise."""
    fh.seek(0)
    head = fh.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return ""  # no preamble or no group length first: pydicom has judged the meta already
    end = 144 + int.from_bytes(head[140:144], "little")
    fh.seek(end)
    tag = fh.read(4)
    if len(tag) == 4 and int.from_bytes(tag[:2], "little") == 0x0002:
        element = int.from_bytes(tag[2:], "little")
        return f"a second group 0002 starts at byte {end} (element (0002,{element:04X}))"
    return ""


def read_header(path: str | Path) -> Dataset:
    """The header only (no pixel data is read); same errors as `read_dataset`."""
    return read_dataset(path, stop_before_pixels=True)


def _cut_short(ds: Dataset, file_size: int) -> bool:
    """True when a top-level element still in raw form holds fewer bytes than it declared
    (what pydicom leaves behind when the file ends early), or when a deferred element's
    declared extent runs past the end of the file."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if not isinstance(raw, RawDataElement) or raw.length == _UNDEFINED_LENGTH:
            continue  # already converted, or undefined length (checked by its decoder)
        if raw.value is None:
            if raw.value_tell is not None and raw.value_tell + raw.length > file_size:
                return True
        elif len(raw.value) < raw.length:
            return True
    return False


def tags_for_display(path: str | Path) -> list[tuple[str, str, str]]:
    """(tag, name, value) rows for the desktop's tag panel: file meta then the dataset, with
    sequence items indented by '> ' per level; pixel data is skipped. Image files (PNG,
    JPEG, TIFF, PGM) have no tags: their rows describe the file instead."""
    from mama_core.images import is_image_file

    if is_image_file(path):
        return _image_file_rows(Path(path))
    ds = read_header(path)
    rows: list[tuple[str, str, str]] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _walk(meta, 0, rows)
    _walk(ds, 0, rows)
    return rows


def _image_file_rows(path: Path) -> list[tuple[str, str, str]]:
    from mama_core.images import probe

    info = probe(path)
    return [
        ("", "File format", info.format),
        ("", "Rows", str(info.shape[0])),
        ("", "Columns", str(info.shape[1])),
        ("", "Pages / frames", str(info.frames)),
        ("", "Pixel spacing", "unknown (image files carry none)"),
    ]


def _walk(ds: Dataset, depth: int, rows: list[tuple[str, str, str]]) -> None:
    indent = "> " * depth
    for tag in list(ds.keys()):
        if int(tag) in _PIXEL_TAGS:
            continue
        elem = _element(ds, tag)
        if elem is None:
            rows.append((_tag_text(tag), f"{indent}(unreadable element)", ""))
            continue
        rows.append((_tag_text(tag), indent + (elem.name or "Unknown"), _value_text(elem)))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value, start=1):
                rows.append(("", f"{indent}> Item {i}", ""))
                _walk(item, depth + 2, rows)


def _element(ds: Dataset, tag: Any) -> DataElement | None:
    try:
        return ds[tag]
    except Exception:  # an element whose value cannot be converted: show it as unreadable
        return None


def _tag_text(tag: Any) -> str:
    t = int(tag)
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


def _value_text(elem: DataElement) -> str:
    value = elem.value
    if elem.VR == "SQ":
        return f"<{len(value)} item(s)>"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 1] + "…"
