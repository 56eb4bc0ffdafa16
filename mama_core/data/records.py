"""The record every reader produces, and strict parsing of label cells.

Readers are strict where captions are tolerant: a label that cannot be read is a
DataError naming the file, the column, the value and the row, so that a bad table is
fixed once instead of silently training on wrong labels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mama_core.captions import birads_category, density_category, is_missing
from mama_core.data.tables import Row
from mama_core.errors import DataError


@dataclass
class ImageRecord:
    """One image with what the captions and the evaluation need (docs/architecture.md)."""

    path: Path  # DICOM file
    patient_id: str
    study_id: str  # StudyInstanceUID or EMBED acc_anon
    laterality: str | None  # 'L' | 'R'
    view: str | None  # 'CC' | 'MLO' | ...
    meta: dict[str, object]  # EMBED-named caption fields (see captions.py)
    birads: int | None = None  # 0-6 (EMBED asses A=0 N=1 B=2 P=3 S=4 M=5 K=6)
    density: int | None = None  # 1-4
    cancer: int | None = None  # 0/1


def view_key(laterality: str | None, view: str | None) -> str | None:
    """'L' + 'CC' -> 'LCC' (the key `Study.images` uses); None when either is unknown."""
    return f"{laterality}{view}" if laterality and view else None


def laterality_value(value: object) -> str:
    """'L'/'R'/'left'/'right' (any case) -> 'L'/'R'; raises ValueError otherwise."""
    text = str(value).strip().upper()
    if text in ("L", "LEFT"):
        return "L"
    if text in ("R", "RIGHT"):
        return "R"
    raise ValueError(f"{value!r} is not a laterality (L or R)")


def cancer_value(value: object) -> int:
    """0/1 (also 0.0/1.0, true/false, yes/no) -> 0/1; raises ValueError otherwise."""
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true", "yes", "y"):
        return 1
    if text in ("0", "0.0", "false", "no", "n"):
        return 0
    raise ValueError(f"{value!r} is not 0 or 1")


def view_value(value: object) -> str:
    """View position as an upper-case code ('cc' -> 'CC'); never fails."""
    return str(value).strip().upper()


def _birads(value: object) -> int:
    result = birads_category(value)
    assert result is not None  # parse_cell filters missing values first
    return result


def _density(value: object) -> int:
    result = density_category(value)
    assert result is not None
    return result


PARSERS: dict[str, Callable[[object], object]] = {
    "birads": _birads,
    "density": _density,
    "cancer": cancer_value,
    "laterality": laterality_value,
    "view": view_value,
}


def parse_cell(row: Row, column: str, kind: str, path: Path) -> object | None:
    """Parse row[column] as `kind` (a PARSERS key); missing -> None; bad -> DataError
    like "tissueden='x' is not 1-4 (row 17)"."""
    value, error = _parse(kind, row.get(column))
    if error is not None:
        raise DataError(f"{column}={error} (row {row.line})", path=path, field=column)
    return value


@functools.lru_cache(maxsize=4096)
def _parse(kind: str, raw: str) -> tuple[object | None, str | None]:
    """(value, None) or (None, error text). Cached: label columns hold few distinct
    values, and EMBED tables have hundreds of thousands of rows."""
    if is_missing(raw):
        return None, None
    try:
        return PARSERS[kind](raw), None
    except ValueError as exc:
        return None, str(exc)


def first_present(row: Row, columns: tuple[str, ...]) -> str | None:
    """The first of `columns` that the row has a non-missing value for."""
    for column in columns:
        if not is_missing(row.get(column)):
            return column
    return None
