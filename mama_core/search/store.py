"""The on-disk vector store of a search index: immutable segments, one atomic manifest.

Layout under `user_data_dir()/indexes/<name>/` (docs/inference.md, "Text search"):

    manifest.json      {"format", "name", "folder", "model": {"name", "fingerprint"},
                        "shape": {"dim", "grid": [gh, gw], "pool"}, "generation",
                        "segments": [{"id", "rows", "dead": [row, ...]}]}
    segments/<id>/     files.json   one record per row: path, size, mtime_ns, study_uid, view, folder
                       global.f32   [rows, D]     L2-normalised global embeddings (eq. 2 space)
                       local.i8     [rows, C, D]  pooled, re-normalised patch embeddings, int8
                       scale.f16    [rows, C]     per-cell dequantisation factor
                       content.u8   [rows, C]     1 = the cell covers image, 0 = padding only
    .lock              held (flock) by the one process that writes

Why this shape: a query must not read every image's patches (O(archive) I/O), so stage 1
reads only the global matrix and stage 2 memory-maps the local cells of a few hundred
candidates.  The local store is compact: cells are `pool x pool` patches (mean, then
L2-normalised again) with `pool` the smallest factor that keeps a row under
LOCAL_BUDGET_BYTES, stored as int8 with one scale per cell (symmetric quantisation; error
about 1e-3 in cosine).  Segments are written under a temporary name, fsynced, renamed and
only then listed by the manifest, which is replaced atomically; a crash at any point leaves
the previous manifest and every segment it lists intact.  Raw little-endian arrays and JSON
only: nothing is ever unpickled.
"""

from __future__ import annotations

import fcntl
import json
import math
import mmap
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mama_core import fs
from mama_core.errors import DataError

INDEX_FORMAT = 2
LOCAL_BUDGET_BYTES = 96_000  # int8 cells + scales per image; keeps a row under 100 KB on disk
ARRAYS = {"global": ("global.f32", np.float32), "local": ("local.i8", np.int8),
          "scale": ("scale.f16", np.float16), "content": ("content.u8", np.uint8)}


class IndexFormatError(DataError):
    """The index was written in another format version (rebuild it)."""


@dataclass(frozen=True)
class StoreShape:
    """Shapes of one index: embedding size, the model's patch grid, the pooling factor."""

    dim: int
    grid: tuple[int, int]
    pool: int

    def __post_init__(self) -> None:
        if self.dim < 1 or min(self.grid) < 1 or self.pool < 1:
            raise DataError(f"invalid index shape dim={self.dim} grid={self.grid} pool={self.pool}")

    @property
    def cell_grid(self) -> tuple[int, int]:
        return math.ceil(self.grid[0] / self.pool), math.ceil(self.grid[1] / self.pool)

    @property
    def cells(self) -> int:
        gh, gw = self.cell_grid
        return gh * gw

    def row_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"global": (self.dim,), "local": (self.cells, self.dim), "scale": (self.cells,),
                "content": (self.cells,)}

    def to_json(self) -> dict:
        return {"dim": self.dim, "grid": list(self.grid), "pool": self.pool}

    @classmethod
    def from_json(cls, data: dict) -> "StoreShape":
        return cls(int(data["dim"]), (int(data["grid"][0]), int(data["grid"][1])), int(data["pool"]))


def choose_shape(dim: int, grid: tuple[int, int], budget: int = LOCAL_BUDGET_BYTES) -> StoreShape:
    """The finest pooling whose int8 cells (+ fp16 scales) fit `budget` bytes per image."""
    pool = 1
    while StoreShape(dim, grid, pool).cells * (dim + 2) > budget and pool < max(grid):
        pool += 1
    return StoreShape(dim, tuple(grid), pool)


# --------------------------------------------------------------------------- compaction


def compact_patches(patches: np.ndarray, content: np.ndarray, shape: StoreShape) -> tuple[np.ndarray, ...]:
    """[n, P, D] L2-normalised patches + [n, P] content mask -> (int8 cells [n, C, D],
    scales [n, C] float16, cell content [n, C] uint8).  Padding patches never enter a cell.
    torch does the arithmetic: its pooling is multi-threaded and channels-last aware, which
    keeps the writer above 1,000 images/s at the paper's shapes."""
    import torch
    import torch.nn.functional as F

    n, (gh, gw), d, f = len(patches), shape.grid, shape.dim, shape.pool
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)).view(n, gh, gw, d)
        m = torch.from_numpy(np.ascontiguousarray(content, dtype=bool)).view(n, gh, gw)
        if not bool(m.all()):
            x = x * m[..., None]
        if f > 1:  # a cell's direction is its patches' sum (the mean's divisor cancels below)
            x = F.avg_pool2d(x.permute(0, 3, 1, 2), f, f, ceil_mode=True).permute(0, 2, 3, 1)
            m = F.max_pool2d(m[:, None].float(), f, f, ceil_mode=True)[:, 0] > 0
        x = x.reshape(n, -1, d)
        # A cell is a direction, like a patch: codes = round(127 x / max|x|) need no prior
        # normalisation, and scale = max|x| / (127 |x|) dequantises to the unit vector.
        peak = x.abs().amax(dim=-1).clamp_min(1e-12)
        codes = torch.round(x * (127.0 / peak)[..., None]).to(torch.int8)
        scale = peak / (127.0 * x.norm(dim=-1).clamp_min(1e-12))
        return codes.numpy(), scale.to(torch.float16).numpy(), m.reshape(n, -1).to(torch.uint8).numpy()


# --------------------------------------------------------------------------- manifest


def manifest_path(root: Path) -> Path:
    return root / "manifest.json"


def read_manifest(root: Path) -> dict:
    """The published manifest; DataError naming the file for anything unreadable or old."""
    path = manifest_path(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"corrupt index manifest: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise DataError("corrupt index manifest: not a JSON object", path=path)
    if data.get("format") != INDEX_FORMAT:
        raise IndexFormatError(f"index format {data.get('format')!r} is not this version's format {INDEX_FORMAT} "
                        f"(written by an older MaMA?); rebuild it with `mama index --rebuild --name {root.name}` "
                        "or `mama index FOLDER --rebuild`", path=path)
    return data


def write_manifest(root: Path, manifest: dict) -> None:
    """Publish `manifest` atomically (fsynced temp file, rename, fsynced folder). The fault
    point "index.manifest" kills the process with half the new manifest in the temp file."""
    try:
        fs.write_json(manifest_path(root), manifest, fault="index.manifest", indent=1)
    except OSError as exc:  # disk full / read-only: the previous manifest is untouched
        raise DataError(f"cannot write the index manifest: {exc.strerror or exc}", path=manifest_path(root)) from None


def _fault(point: str) -> None:
    """Crash-test hook (mama_core.fs fault points): MAMA_FAULT_POINT=index.<point> SIGKILLs this
    process at <point> ("segment-data": half-way through a segment's arrays, "segment-sealed":
    a segment renamed but not yet listed, "manifest": half-way through the new manifest's temp file, before the rename)."""
    fs.fault_point(f"index.{point}")


class WriterLock:
    """One writer per index (flock on `.lock`); readers never lock."""

    def __init__(self, root: Path):
        self.path = root / ".lock"
        self._fh: Any = None

    def __enter__(self) -> "WriterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise DataError("the index is being updated by another process; try again when it has finished",
                            path=self.path.parent) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def sweep_orphans(root: Path, manifest: dict | None) -> None:
    """Delete segments no manifest lists and dead writers' manifest temp files (left by a
    crash).  Only the lock holder calls this."""
    fs.sweep_orphans(root)
    listed = {s["id"] for s in (manifest or {}).get("segments", [])}
    seg_root = root / "segments"
    for p in seg_root.iterdir() if seg_root.is_dir() else []:
        if p.name not in listed:
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- segments


class SegmentWriter:
    """Appends rows to a staging segment; `seal()` makes it durable under its final name."""

    def __init__(self, root: Path, shape: StoreShape):
        self.root, self.shape = root, shape
        self.id = f"seg-{uuid.uuid4().hex[:16]}"
        self.tmp = root / "segments" / f".tmp-{self.id}"
        self.tmp.mkdir(parents=True)
        self.records: list[dict] = []
        self._files = {k: open(self.tmp / fname, "wb") for k, (fname, _) in ARRAYS.items()}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: list[dict], globals_: np.ndarray, patches: np.ndarray, content: np.ndarray) -> None:
        """Rows from encoder output: [n, D] global, [n, P, D] patches, [n, P] content mask."""
        codes, scale, cells = compact_patches(patches, content, self.shape)
        self.add_compact(records, {"global": globals_, "local": codes, "scale": scale, "content": cells})

    def add_compact(self, records: list[dict], arrays: dict[str, np.ndarray]) -> None:
        """Rows already in store form (merging segments copies them unchanged)."""
        n = len(records)
        for key, (_, dtype) in ARRAYS.items():
            a = np.ascontiguousarray(arrays[key], dtype=dtype)
            if a.shape != (n, *self.shape.row_shapes()[key]):
                raise DataError(f"index rows of shape {a.shape} for {key!r}, expected {(n, *self.shape.row_shapes()[key])}")
            self._write(key, a)
        self.records.extend(records)

    def _write(self, key: str, a: np.ndarray) -> None:
        data = a.tobytes()
        fh = self._files[key]
        try:
            fh.write(data[: len(data) // 2])
            if key == "local":
                fh.flush()
                _fault("segment-data")
            fh.write(data[len(data) // 2:])
        except OSError as exc:
            self.abort()
            raise DataError(f"cannot write the index: {exc.strerror or exc}", path=self.tmp) from None

    def seal(self) -> dict:
        """fsync, rename to the final name; returns the manifest's entry for this segment."""
        try:
            for fh in self._files.values():
                fh.close()
            (self.tmp / "files.json").write_text(json.dumps(self.records), encoding="utf-8")
            final = fs.publish_dir(self.tmp, self.root / "segments" / self.id)
        except OSError as exc:
            self.abort()
            raise DataError(f"cannot write the index: {exc.strerror or exc}", path=self.tmp) from None
        _fault("segment-sealed")
        return {"id": self.id, "rows": len(self.records), "dead": []}

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Segment:
    """One published segment, memory-mapped read-only."""

    id: str
    records: list[dict]
    arrays: dict[str, np.ndarray]
    maps: list = field(default_factory=list)  # the mmap objects behind `arrays`

    def release(self) -> None:
        """Drop the pages a query touched from this process (they stay in the kernel's page
        cache), so that resident memory does not grow with every candidate ever read."""
        for mm in self.maps:
            mm.madvise(mmap.MADV_DONTNEED)


def _map(path: Path, dtype: Any, shape: tuple[int, ...], maps: list) -> np.ndarray:
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    maps.append(mm)
    # raw arrays of a known dtype and shape: a short file is an error, never a pickle
    return np.frombuffer(mm, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def open_segment(root: Path, entry: dict, shape: StoreShape) -> Segment:
    folder = root / "segments" / entry["id"]
    rows = int(entry["rows"])
    path = folder / "files.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list) or len(records) != rows:
            raise ValueError(f"lists {len(records) if isinstance(records, list) else '?'} rows, not {rows}")
        arrays, maps = {}, []
        for key, (fname, dtype) in ARRAYS.items():
            path = folder / fname
            full = (rows, *shape.row_shapes()[key])
            arrays[key] = _map(path, dtype, full, maps) if rows else np.zeros(full, dtype)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable index file: {exc}; rebuild the index with --rebuild", path=path) from None
    return Segment(entry["id"], records, arrays, maps)


__all__ = ["INDEX_FORMAT", "IndexFormatError", "StoreShape", "choose_shape", "compact_patches", "SegmentWriter", "Segment",
           "open_segment", "read_manifest", "write_manifest", "WriterLock", "sweep_orphans"]
