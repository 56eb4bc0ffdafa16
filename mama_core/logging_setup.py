"""Privacy-preserving logging: patient identifiers never reach a log file.

Log files (the desktop's rotating log in `user_log_dir()`, crash reports written by its
exception hook) end up attached to bug reports, so they must not carry patient names or
IDs. Messages are written by many modules and often quote a path or an exception text
that holds an identifier; rather than trust every call site, the file handler carries a
`RedactingFilter` that replaces every *known* identifier by `redact(value)`:

- identifiers are learnt as the engine reads them (`note_identifiers` is called by
  `mama_core.dicom` with PatientID, PatientName and its components, AccessionNumber, and
  the sub-folder names of scanned study folders, which sites often name after patients);
- `redact(value)` is the first 10 hex digits of SHA-256 over a per-installation random
  salt and the value: stable within one installation (log lines about the same patient can
  be correlated) but not reversible by a dictionary of IDs without the salt.

Limitation (docs/reliability.md): an identifier the engine never read (a folder name of a
file that was never scanned) is not known and is not redacted.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import secrets
import threading
from pathlib import Path

SALT_FILE = "log-salt"
LOG_FILE = "mama.log"
_MIN_LENGTH = 3  # shorter values ("L", "CC", "1") would shred ordinary log text
_MAX_KNOWN = 200_000  # bound memory on huge archives; the oldest values stay known

_lock = threading.Lock()
_known: set[str] = set()
_ordered: list[str] | None = None  # longest first, rebuilt when `_known` grows
_salt: bytes | None = None


def _load_salt() -> bytes:
    """Per-installation salt in user_config_dir (created on first use); MAMA_LOG_SALT
    overrides it. A salt that cannot be stored lives for this process only."""
    env = os.environ.get("MAMA_LOG_SALT")
    if env:
        return env.encode()
    from mama_core.paths import user_config_dir

    try:
        path = user_config_dir() / SALT_FILE
        if path.is_file():
            data = path.read_bytes().strip()
            if data:
                return data
        data = secrets.token_hex(16).encode()
        path.write_bytes(data)
        return data
    except OSError:
        return secrets.token_hex(16).encode()


def redact(value: object) -> str:
    """A short salted hash standing in for an identifier in logs: 10 hex digits of
    sha256(salt + value)."""
    global _salt
    if _salt is None:
        _salt = _load_salt()
    return hashlib.sha256(_salt + str(value).encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _candidates(value: object) -> list[str]:
    """The value itself and, for a DICOM person name 'FAMILY^GIVEN^MIDDLE', each part."""
    text = str(value).strip()
    parts = [text, *(p.strip() for p in text.replace("=", "^").split("^"))]
    return [p for p in parts if len(p) >= _MIN_LENGTH]


def note_identifiers(*values: object) -> None:
    """Remember identifiers so log files carry `redact(value)` instead of them."""
    global _ordered
    fresh = {c for v in values if v not in (None, "") for c in _candidates(v)} - _known
    if not fresh:
        return
    with _lock:
        room = _MAX_KNOWN - len(_known)
        if room <= 0:
            return
        _known.update(list(fresh)[:room])
        _ordered = None


def note_folder_parts(root: Path, path: Path) -> None:
    """Sub-folder names between a scanned root and a file (e.g. '12345_DOE_JANE/')."""
    try:
        parts = Path(path).parent.relative_to(root).parts
    except ValueError:
        return
    note_identifiers(*parts)


def known_identifiers() -> list[str]:
    global _ordered
    with _lock:
        if _ordered is None:
            _ordered = sorted(_known, key=len, reverse=True)
        return _ordered


def forget_identifiers() -> None:
    """Clear the learnt identifiers (tests)."""
    global _ordered
    with _lock:
        _known.clear()
        _ordered = None


def scrub(text: str) -> str:
    """`text` with every known identifier replaced by `<id:HASH>`."""
    for value in known_identifiers():
        if value in text:
            text = text.replace(value, f"<id:{redact(value)}>")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback text with `scrub` before it is written.

    The record is changed in place (message formatted, args cleared, exc_text filled) so
    every handler after this one sees the scrubbed text too."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log it raw rather than lose it
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def file_handler(log_file: Path, level: int = logging.INFO) -> logging.Handler:
    """A rotating UTF-8 file handler with the redacting filter attached."""
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.setLevel(level)
    handler.addFilter(RedactingFilter())
    return handler


def configure_file_logging(name: str = LOG_FILE, level: int = logging.INFO) -> Path:
    """Attach a redacting rotating file handler for `user_log_dir()/name` to the root
    logger (once per file) and return the log file's path."""
    from mama_core.paths import user_log_dir

    log_file = user_log_dir() / name
    root = logging.getLogger()
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    for h in root.handlers:
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == log_file.resolve():
            return log_file
    root.addHandler(file_handler(log_file, level))
    return log_file
