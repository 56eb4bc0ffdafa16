"""The one way the project writes files and folders that must never be seen half-written.

- `write_bytes` / `write_text` / `write_json` / `write_with`: data goes to a unique temporary
  name in the target's own folder (`tempfile.mkstemp`, so two writers never share one), the
  file is fsynced, `os.replace`d over the target, and the folder is fsynced so the rename
  itself survives a power cut. A reader sees the old file or the new one, never a mix.
- `publish_dir`: a folder is filled under a hidden staging name, every file and the folder
  are fsynced, then one rename makes it visible.
- `remove_tree`: a folder is renamed out of sight first (one atomic step), then removed, so
  a crash mid-delete leaves hidden debris rather than a half-deleted folder that looks real.
- Scratch names are `.<kind>-<pid>-<random>...` (kind: tmp, staging, trash);
  `sweep_orphans` removes those whose writing process is gone.

Fault points (tests only): with `MAMA_FAULT_POINT=<name>` the process SIGKILLs itself at
the write named `<name>`, after part of the data is on disk and before the rename, having
first appended `<name>` to the file `MAMA_FAULT_MARKER` (when set) so a test can prove the
kill landed inside the write and not before or after it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

FAULT_ENV = "MAMA_FAULT_POINT"
FAULT_MARKER_ENV = "MAMA_FAULT_MARKER"
SCRATCH_KINDS = ("tmp", "staging", "trash")


# --------------------------------------------------------------------------- fault points


def fault_point(name: str | None, partial: Path | None = None) -> None:
    """Kill this process here when `MAMA_FAULT_POINT` names this point (a test hook; a no-op
    otherwise). `partial`: a file that is cut to half its length first — what a kill in the
    middle of a writer we do not control (numpy, safetensors, torch) would leave."""
    if not name or os.environ.get(FAULT_ENV) != name:
        return
    if partial is not None and partial.is_file():
        os.truncate(partial, partial.stat().st_size // 2)
    marker = os.environ.get(FAULT_MARKER_ENV)
    if marker:
        with open(marker, "a", encoding="utf-8") as fh:
            fh.write(f"{name} {os.getpid()}\n")
            fh.flush()
            os.fsync(fh.fileno())
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


# --------------------------------------------------------------------------- durability


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename is still atomic
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every folder (deepest first)."""
    folders = [root]
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in reversed(folders):
        fsync_dir(folder)


def scratch_name(kind: str, name: str = "") -> str:
    """A hidden, unique name that `sweep_orphans` recognises: `.<kind>-<pid>-<random>-<name>`."""
    return f".{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}"


# --------------------------------------------------------------------------- files


def write_with(target: str | Path, write: Callable[[Path], None], fault: str | None = None,
               mode: int = 0o644) -> Path:
    """Atomically create or replace `target` with what `write(tmp_path)` writes there; the
    file gets `mode` (0o600 for files that hold secrets) before it becomes visible."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{target.name}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fault_point(fault, partial=tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def write_bytes(target: str | Path, data: bytes, fault: str | None = None, mode: int = 0o644) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            half = len(data) // 2
            fh.write(data[:half])
            fh.flush()
            fault_point(fault)  # half the data is in the temporary file
            fh.write(data[half:])

    return write_with(target, write, mode=mode)


def write_text(target: str | Path, text: str, fault: str | None = None) -> Path:
    return write_bytes(target, text.encode("utf-8"), fault)


def write_json(target: str | Path, data: Any, fault: str | None = None, **dump_options: Any) -> Path:
    return write_text(target, json.dumps(data, **dump_options), fault)


# --------------------------------------------------------------------------- folders


@contextmanager
def staging_dir(parent: str | Path, name: str = "") -> Iterator[Path]:
    """A fresh hidden folder in `parent` (same file system as the final place); removed when
    the block raises. Publish it with `publish_dir` inside the block."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / scratch_name("staging", name)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, onerror=_make_writable)
        raise


def publish_dir(staging: Path, final: str | Path, fault: str | None = None, replace: bool = False) -> Path:
    """Make the filled `staging` folder visible as `final` with one rename, after fsyncing
    everything in it. `replace=True` first moves an existing `final` aside (atomic delete);
    otherwise an existing `final` is an error (FileExistsError)."""
    final = Path(final)
    fault_point(fault)  # the staging folder is written but not yet durable nor visible
    fsync_tree(staging)
    if final.exists():
        if not replace:
            raise FileExistsError(f"{final} already exists")
        remove_tree(final)
    os.replace(staging, final)
    fsync_dir(final.parent)
    return final


def remove_tree(path: str | Path) -> None:
    """Delete a folder so that no reader ever sees it half-deleted: rename it to a hidden
    scratch name (atomic), make that durable, then remove it. A missing folder is fine."""
    path = Path(path)
    trash = path.parent / scratch_name("trash", path.name)
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
    shutil.rmtree(trash, onerror=_make_writable)


def _make_writable(func, path, _exc_info) -> None:
    # Read-only files (immutable registry versions) block removal on Windows.
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
    func(path)


def sweep_orphans(folder: str | Path, prefix: str | None = None, spare_own: bool = False) -> None:
    """Remove the scratch entries in `folder` whose writing process is gone (killed mid-write).

    `prefix` None: this module's `.tmp-/.staging-/.trash-<pid>-*` names; otherwise entries
    named `<prefix>-<pid>-*`. Those of other live processes are left alone, and this
    process's own too when `spare_own`."""
    folder = Path(folder)
    prefixes = [f".{kind}" for kind in SCRATCH_KINDS] if prefix is None else [prefix]
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p in prefixes) + r")-(\d+)-")
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        pid = int(match.group(1))
        gone = not spare_own if pid == os.getpid() else not _process_alive(pid)
        if not gone:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_make_writable)
        else:
            entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # Windows: an unknown pid
        return False
    return True
