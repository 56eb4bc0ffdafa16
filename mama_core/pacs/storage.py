"""Where retrieved studies land, and how a file gets there whole.

Layout: `user_cache_dir()/pacs/<node>/<StudyInstanceUID>/<SOPInstanceUID>.dcm` — UIDs only,
never a patient name or ID in a path. Every file is written to a hidden temporary file in the
same folder, fsynced and renamed over its final name, so a server that dies mid-transfer (or
a killed process) leaves either the whole file or none; stray temporaries from a killed
process are swept before the next retrieve into that folder.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from pydicom.dataset import Dataset

from mama_core import fs
from mama_core.errors import DataError

_UID_RE = re.compile(r"^[0-9.]{1,64}$")


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """`fs.write_bytes` (temp file in the same folder, fsync, rename), with a failure to write
    (disk full, read-only) as a DataError naming the file; the previous file is untouched."""
    try:
        return fs.write_bytes(path, data, fault="pacs.instance", mode=mode)
    except OSError as exc:
        raise DataError(f"cannot write: {exc.strerror or exc}", path=path) from None


def dataset_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 file (preamble, file meta, body)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def check_uid(uid: str, what: str = "UID") -> str:
    """UIDs become folder and file names: accept only what a UID may hold."""
    uid = str(uid).strip()
    if not _UID_RE.match(uid):
        raise DataError(f"not a valid DICOM UID: {uid!r}", field=what)
    return uid


def study_folder(node: str, study_uid: str, root: Path | None = None) -> Path:
    from mama_core.paths import user_cache_dir

    base = Path(root) if root is not None else user_cache_dir() / "pacs"
    return base / node / check_uid(study_uid, "StudyInstanceUID")


def instance_path(folder: Path, sop_uid: str) -> Path:
    return folder / f"{check_uid(sop_uid, 'SOPInstanceUID')}.dcm"


def save_instance(folder: Path, ds: Dataset) -> Path:
    """Store one retrieved instance atomically under its SOPInstanceUID."""
    return write_bytes_atomic(instance_path(folder, ds.SOPInstanceUID), dataset_bytes(ds))


def sweep_partials(folder: Path) -> None:
    """Delete temporaries a killed process left behind (those of live processes stay)."""
    fs.sweep_orphans(folder)