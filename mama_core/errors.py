"""The few exceptions the engine raises. Each names the file or field at fault (docs/method.md §8.7)."""

from __future__ import annotations

from pathlib import Path


class MamaError(Exception):
    """Base class: every failure the engine reports to a user is one of these.

    `path` is the file (or directory) at fault when there is one; the message always
    includes it so that a log line alone tells the user what to look at.
    """

    def __init__(self, reason: str, path: str | Path | None = None, field: str | None = None):
        self.reason = reason
        self.path = Path(path) if path is not None else None
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        what = f"[{self.field}] " if self.field else ""
        return f"{where}{what}{self.reason}"


class DicomError(MamaError):
    """A DICOM file could not be read or is not a usable image."""


class DataError(MamaError):
    """A table (CSV) or a data folder is missing, malformed or inconsistent."""


class ConfigError(MamaError):
    """A configuration value is invalid."""


class ModelError(MamaError):
    """A model directory or checkpoint is missing, malformed, or unsafe to load."""


class RegistryError(MamaError):
    """A model-registry operation is not allowed or failed."""


class ImageFileError(MamaError):
    """An image file (PNG, JPEG, TIFF, PGM) could not be read or is not a usable image."""
