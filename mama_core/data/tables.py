"""CSV reading shared by the table readers: streaming, column checks, clear errors.

The csv module (not pandas) keeps the dependency list short and streams: EMBED metadata
tables run to ~500k rows and ~100 columns, so rows are reduced to the columns a reader
asks for as they are read, never held whole.

Encoding: files are read as UTF-8 (a byte-order mark is accepted: Excel writes one).
A file that is not valid UTF-8 is refused with a DataError rather than decoded as
latin-1, because a silent mis-decoding would change free-text fields (race, ethnicity,
procedure) that end up verbatim in the training captions; re-saving as UTF-8 is a
one-step fix for the user.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from mama_core.errors import DataError


class Row:
    """One data row reduced to the wanted columns; `line` is its line in the file
    (the header is line 1, so this is also the spreadsheet row number)."""

    __slots__ = ("line", "values")  # hundreds of thousands of these are made per table

    def __init__(self, line: int, values: dict[str, str]):
        self.line = line
        self.values = values

    def get(self, column: str, default: str = "") -> str:
        return self.values.get(column, default)


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    """The column names of a CSV file (whitespace stripped)."""
    with _open(path) as handle:
        try:
            header = next(csv.reader(handle, delimiter=delimiter), None)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, None) from exc
        except csv.Error as exc:
            raise DataError(f"malformed CSV header: {exc}", path=path) from exc
    if not header:
        raise DataError("empty file: no header row", path=path)
    return [name.strip() for name in header]


def require_columns(path: Path, header: Iterable[str], required: Iterable[str]) -> None:
    """DataError naming every required column the file lacks."""
    present = set(header)
    missing = [c for c in required if c not in present]
    if missing:
        raise DataError(f"missing required column(s): {', '.join(missing)}", path=path)


def iter_rows(path: Path, required: Iterable[str], optional: Iterable[str] = (), delimiter: str = ",") -> Iterator[Row]:
    """Rows of a CSV as `Row`s holding only the required + present optional columns.

    The header is checked before the first row is yielded; wrong files fail at once.
    `delimiter` is ',' except for tables written the European way (INbreast.csv uses ';')."""
    required = list(required)
    header = read_header(path, delimiter)
    require_columns(path, header, required)
    wanted = [c for c in dict.fromkeys([*required, *optional]) if c in header]
    index = [(c, header.index(c)) for c in wanted]
    return _rows(path, index, len(header), delimiter)


def sniff_delimiter(path: Path) -> str:
    """';' when the header line splits on it into more cells than on ',' (tables saved by a
    spreadsheet in a locale that uses the decimal comma), else ','."""
    with _open(path) as handle:
        try:
            first = handle.readline()
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, 1) from exc
    return ";" if first.count(";") > first.count(",") else ","


def _rows(path: Path, index: list[tuple[str, int]], width: int, delimiter: str = ",") -> Iterator[Row]:
    with _open(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            next(reader, None)  # header, already checked
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue  # blank line
                if len(cells) < width:  # trailing empty cells cut off by some writers
                    cells += [""] * (width - len(cells))
                yield Row(reader.line_num, {c: cells[i].strip() for c, i in index})
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, reader.line_num + 1) from exc
        except csv.Error as exc:
            raise DataError(f"malformed CSV near row {reader.line_num}: {exc}", path=path) from exc


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"cannot open: {exc.strerror}", path=path) from exc


def _not_utf8(path: Path, line: int | None) -> DataError:
    # Text is decoded in blocks, so the row is approximate.
    where = f" (near row {line})" if line is not None else ""
    return DataError(f"not UTF-8 text{where}; save the table as UTF-8 CSV", path=path)
