"""Per-file manual placement: the reader's own side and view for an image, kept in the user's
data dir and used by every command (studies, predict, query, index, train, eval).

An override wins over every header, dataset or file-name rule (docs/data.md). Files are
keyed by their resolved absolute path, so the same file reached through another relative
path keeps its placement; a moved file loses it (there is no identity that survives a move
for image files, which carry no UID).
"""

from __future__ import annotations

import json
from pathlib import Path

from mama_core import fs
from mama_core.errors import ConfigError
from mama_core.paths import user_data_dir

FILE_NAME = "placement_overrides.json"
_FORMAT = 1

# (path of the JSON, its mtime_ns) -> table; re-read only when the file changed.
_cache: dict[str, tuple[int, dict[str, dict[str, str | None]]]] = {}


def overrides_file() -> Path:
    return user_data_dir() / FILE_NAME


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _validate(path: Path, laterality: str | None, view: str | None) -> tuple[str | None, str | None]:
    from mama_core.dicom.fields import KNOWN_VIEWS

    side = laterality.strip().upper() if laterality else None
    if side is not None and side not in ("L", "R"):
        raise ConfigError(f"laterality must be 'L' or 'R', not {laterality!r}", path, field="laterality")
    shown = view.strip().upper() if view else None
    if shown is not None and shown not in KNOWN_VIEWS:
        raise ConfigError(f"view must be one of {', '.join(sorted(KNOWN_VIEWS))}, not {view!r}", path, field="view")
    return side, shown


def _load() -> dict[str, dict[str, str | None]]:
    file = overrides_file()
    try:
        mtime = file.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    cached = _cache.get(str(file))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        table = data["files"]
        if not isinstance(table, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"placement overrides file is unreadable ({exc}); fix or delete it", file) from exc
    _cache[str(file)] = (mtime, table)
    return table


def _save(table: dict[str, dict[str, str | None]]) -> None:
    file = overrides_file()
    try:  # readers never see a half-written table
        fs.write_json(file, {"format": _FORMAT, "files": table}, indent=1, sort_keys=True)
    except OSError as exc:
        raise ConfigError(f"could not save placement overrides: {exc.strerror or exc}", file) from exc
    _cache.pop(str(file), None)


def set_override(path: Path, laterality: str | None, view: str | None) -> None:
    """Place `path` by hand: `laterality` 'L'/'R', `view` 'CC', 'MLO', ... (None keeps what
    the rules decide for that part)."""
    side, shown = _validate(Path(path), laterality, view)
    table = dict(_load())
    table[_key(path)] = {"laterality": side, "view": shown}
    _save(table)


def set_overrides_from_table(table_csv: Path) -> int:
    """Place many files at once from a CSV with columns `path` (absolute, or relative to
    the CSV's folder), `laterality` and `view` (either may be empty). Every row is checked
    before anything is saved; returns the number of files placed."""
    from mama_core.data.tables import iter_rows

    table_csv = Path(table_csv)
    placed: dict[str, dict[str, str | None]] = {}
    for row in iter_rows(table_csv, ("path",), ("laterality", "view")):
        target = Path(row.get("path"))
        target = target if target.is_absolute() else table_csv.parent / target
        try:
            side, shown = _validate(target, row.get("laterality") or None, row.get("view") or None)
        except ConfigError as exc:
            raise ConfigError(f"row {row.line}: {exc.reason}", table_csv, field=exc.field) from None
        placed[_key(target)] = {"laterality": side, "view": shown}
    table = dict(_load())
    table.update(placed)
    _save(table)
    return len(placed)


def clear_override(path: Path) -> None:
    """Forget the manual placement of `path` (no-op when there is none)."""
    table = dict(_load())
    if table.pop(_key(path), None) is not None:
        _save(table)


def check_overrides() -> None:
    """Raise `ConfigError` naming the overrides file when it is damaged (callers scanning a
    folder check once up front, so one bad file is not reported against every image)."""
    _load()


def get_override(path: Path) -> tuple[str | None, str | None] | None:
    """(laterality, view) set by hand for `path`, or None."""
    entry = _load().get(_key(path))
    if entry is None:
        return None
    return entry.get("laterality"), entry.get("view")
