"""Building and updating a text-search index over the studies of a folder.

`build_index` is a generator of `IndexProgress` honouring a stop flag.  A file is
identified by its resolved path, size and mtime: new or changed files are encoded, files
gone from the folder leave the index, unchanged ones cost nothing.  Encoded rows go into a
new segment (`mama_core.search.store`), published every COMMIT_ROWS files or COMMIT_SECONDS,
so a long run can be stopped, killed or searched at any time and keeps what was published.

Under `torchrun` (a process group is initialised) every rank encodes every world-size-th
study of the work list into its own segment; rank 0 publishes them all at the end.  A
study's views are encoded in one forward in either case, so one process and several build
the same index.  Files are decoded in worker processes (`workers`) while the model encodes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mama_core.errors import DataError, MamaError, ModelError
from mama_core.optim import should_stop
from mama_core.paths import user_data_dir
from mama_core.search.store import (
    SegmentWriter,
    StoreShape,
    WriterLock,
    choose_shape,
    read_manifest,
    sweep_orphans,
    write_manifest,
    INDEX_FORMAT,
)

log = logging.getLogger(__name__)

COMMIT_ROWS = 1024  # publish at least every this many encoded files...
COMMIT_SECONDS = 60.0  # ...or this often, whichever comes first
MAX_SEGMENTS = 16  # more than this after a run: the small segments are merged into one


@dataclass
class IndexProgress:
    done: int  # files handled so far (unchanged files count at once)
    total: int  # files to handle (on this rank under torchrun)
    encoded: int  # files encoded so far in this run (new or changed)
    path: str | None  # the file just handled
    study_uid: str | None
    finished: bool = False
    removed: int = 0  # files dropped because they left the folder
    failed: int = 0  # files that could not be decoded (skipped, named in the log)
    elapsed_s: float = 0.0
    eta_s: float | None = None  # seconds left at the current rate (None until known)
    cancelled: bool = False  # the last report of a run ended by its stop flag

    def to_json(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- names


def index_name_for(folder: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(folder).resolve().name).strip("-") or "index"


def index_dir(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise DataError(f"invalid index name {name!r} (letters, digits, '_', '-', '.')", field="name")
    return user_data_dir() / "indexes" / name


def list_indexes() -> list[str]:
    root = user_data_dir() / "indexes"
    return sorted(p.name for p in root.glob("*") if (p / "manifest.json").exists()) if root.exists() else []


def load_manifest(name: str) -> dict:
    """The published manifest of index `name` (DataError naming it when absent/unreadable)."""
    root = index_dir(name)
    try:
        return read_manifest(root)
    except FileNotFoundError:
        known = ", ".join(list_indexes()) or "none"
        raise DataError(f"no search index named {name!r} (known: {known}); build one with `mama index FOLDER`",
                        path=root / "manifest.json") from None


def index_folder(name: str) -> Path:
    """The folder an index was built from, read leniently so that `--rebuild` also works on
    an index of an older format."""
    import json

    path = index_dir(name) / "manifest.json"
    try:
        folder = json.loads(path.read_text(encoding="utf-8")).get("folder")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"cannot tell which folder the index was built from ({exc}); "
                        "pass it: `mama index FOLDER --rebuild`", path=path) from None
    if not isinstance(folder, str):
        raise DataError("the manifest names no folder; pass it: `mama index FOLDER --rebuild`", path=path)
    return Path(folder)


def default_index() -> str:
    names = list_indexes()
    if len(names) == 1:
        return names[0]
    if not names:
        raise DataError("no search index yet; build one with `mama index FOLDER`")
    raise DataError(f"several indexes ({', '.join(names)}); choose one with --index")


def model_id(predictor: Any) -> dict:
    return {"name": predictor.name, "fingerprint": predictor.fingerprint}


def check_model(manifest: dict, predictor: Any, name: str) -> None:
    """Refuse to mix embeddings of two models: they live in different spaces."""
    built = manifest.get("model", {})
    if built.get("fingerprint") != predictor.fingerprint:
        raise ModelError(
            f"index {name!r} was built with model {built.get('name')!r} ({built.get('fingerprint')}); "
            f"the current model is {predictor.name!r} ({predictor.fingerprint}). "
            "Rebuild it with --rebuild (or `mama index FOLDER --rebuild`)", path=index_dir(name))


def predictor_shape(predictor: Any) -> StoreShape:
    grid = tuple(int(g) for g in predictor.model.patch_grid(predictor.image_size))
    return choose_shape(int(predictor.model.config.embed_dim), grid)


def fresh_manifest(name: str, folder: Path | str, model: dict, shape: StoreShape) -> dict:
    return {"format": INDEX_FORMAT, "name": name, "folder": str(folder), "model": model,
            "shape": shape.to_json(), "generation": 0, "segments": []}


# --------------------------------------------------------------------------- committing


def live_rows(root: Path, manifest: dict) -> dict[str, tuple[str, int, dict]]:
    """path -> (segment id, row, record) of every live row."""
    import json

    out: dict[str, tuple[str, int, dict]] = {}
    for entry in manifest["segments"]:
        try:
            records = json.loads((root / "segments" / entry["id"] / "files.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"unreadable index segment: {exc}; rebuild the index with --rebuild",
                            path=root / "segments" / entry["id"]) from None
        dead = set(entry.get("dead", []))
        for row, rec in enumerate(records):
            if row not in dead:
                out[rec["path"]] = (entry["id"], row, rec)
    return out


def commit(root: Path, manifest: dict, new_segments: list[dict], dead: list[tuple[str, int]]) -> None:
    """Publish `new_segments` and tombstone `dead` rows in one atomic manifest replacement;
    segments left with no live row are deleted once the new manifest is durable."""
    by_id = {e["id"]: e for e in manifest["segments"]}
    for seg_id, row in dead:
        if seg_id in by_id and row not in by_id[seg_id]["dead"]:
            by_id[seg_id]["dead"].append(row)
    keep = [e for e in manifest["segments"] if len(e["dead"]) < e["rows"]]
    manifest["segments"] = keep + [e for e in new_segments if e["rows"]]
    manifest["generation"] = int(manifest.get("generation", 0)) + 1
    write_manifest(root, manifest)
    sweep_orphans(root, manifest)  # emptied segments, and a replaced (older) index's files
    shutil.rmtree(root / "features", ignore_errors=True)  # format 1 left per-file features here


def merge_small_segments(root: Path, manifest: dict) -> None:
    """Keep the segment count (files opened per query) bounded: rewrite the small (under
    1/MAX_SEGMENTS of the index) or mostly dead segments as one.  Large segments are never
    rewritten, so a big archive is not copied again at the end of every run.  Rows are
    copied as stored; nothing is re-encoded."""
    from mama_core.search.store import open_segment

    shape = StoreShape.from_json(manifest["shape"])
    live = sum(e["rows"] - len(e["dead"]) for e in manifest["segments"])
    small = [e for e in manifest["segments"]
             if (e["rows"] - len(e["dead"])) * MAX_SEGMENTS < live or len(e["dead"]) * 2 > e["rows"]]
    if len(manifest["segments"]) <= MAX_SEGMENTS or len(small) < 2:
        return
    writer = SegmentWriter(root, shape)
    for entry in small:
        seg = open_segment(root, entry, shape)
        live = np.setdiff1d(np.arange(entry["rows"]), np.asarray(entry["dead"], dtype=np.int64))
        for start in range(0, len(live), 4096):
            rows = live[start:start + 4096]
            writer.add_compact([seg.records[r] for r in rows], {k: a[rows] for k, a in seg.arrays.items()})
    merged = writer.seal()
    ids = {e["id"] for e in small}
    manifest["segments"] = [e for e in manifest["segments"] if e["id"] not in ids]
    commit(root, manifest, [merged], [])


# --------------------------------------------------------------------------- the work list


def folder_files(folder: Path) -> list[tuple[str, str, str, str]]:
    """(path, study uid, view key, study folder) for every image of every study, in a
    deterministic order (every rank computes the same list)."""
    from mama_core.dicom import find_studies

    rows = []
    for study in find_studies(folder):
        for key, path in sorted(study.images.items()):
            rows.append((str(Path(path).resolve()), study.uid, key, str(Path(path).resolve().parent)))
    return rows


def _unchanged(rec: dict, path: str, uid: str, key: str) -> bool:
    from mama_core.inference.cache import file_key

    _, size, mtime = file_key(path)
    return rec["size"] == size and rec["mtime_ns"] == mtime and rec["study_uid"] == uid and rec["view"] == key


def plan(rows: list[tuple[str, str, str, str]], live: dict) -> tuple[list[list[tuple]], list[tuple[str, int]]]:
    """(studies to encode, each a list of its file rows; rows of files gone from the folder)."""
    present = {r[0] for r in rows}
    gone = [(seg, row) for p, (seg, row, _) in live.items() if p not in present]
    todo: dict[str, list[tuple]] = {}
    for r in rows:
        held = live.get(r[0])
        if held is None or not _unchanged(held[2], r[0], r[1], r[2]):
            todo.setdefault(r[1], []).append(r)
    return list(todo.values()), gone


# --------------------------------------------------------------------------- encoding


def _read(path: str) -> Any:
    """Worker body: decode one file; the error instead of raising across processes."""
    from mama_core.dicom import read_image

    try:
        return read_image(path)
    except (MamaError, OSError, ValueError) as exc:
        return DataError(f"cannot decode for the index: {exc}", path=path)


def _worker_start(parent: int) -> None:
    """Decoding-worker set-up: a worker must not outlive a killed `mama index` (it would keep
    the caller's output pipes open), so it leaves when its parent is gone, and it does not
    hold the parent's stdout/stderr at all (errors come back as values)."""
    import threading

    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def decoded_studies(studies: list[list[tuple]], workers: int) -> Iterator[tuple[list[tuple], list[Any]]]:
    """(file rows, decoded images or errors) per study, in order; `workers` > 0 decodes in
    that many processes, a few studies ahead of the encoder."""
    if workers <= 0:
        for rows in studies:
            yield rows, [_read(r[0]) for r in rows]
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_start,
                             initargs=(os.getpid(),)) as pool:
        ahead: list[tuple[list[tuple], list[Future]]] = []
        pending = iter(studies)
        for rows in pending:
            ahead.append((rows, [pool.submit(_read, r[0]) for r in rows]))
            if len(ahead) > 2 * workers:
                rows0, futs = ahead.pop(0)
                yield rows0, [f.result() for f in futs]
        for rows0, futs in ahead:
            yield rows0, [f.result() for f in futs]


def encode_study(predictor: Any, rows: list[tuple], images: list[Any]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Records and arrays of the decodable views of one study (one vision forward)."""
    from mama_core.inference.cache import file_key
    from mama_core.inference.maps import content_patch_mask

    for img in images:
        if isinstance(img, Exception):
            log.warning("not indexed: %s", img)  # names the file and the reason, no patient data
    ok = [(r, img) for r, img in zip(rows, images) if not isinstance(img, Exception)]
    if not ok:
        return [], {}
    feats = predictor.encode_decoded([Path(r[0]) for r, _ in ok], [img for _, img in ok])
    records = []
    for (path, uid, key, folder), _ in ok:
        _, size, mtime = file_key(path)
        records.append({"path": path, "size": size, "mtime_ns": mtime, "study_uid": uid, "view": key, "folder": folder})
    arrays = {"global": np.stack([f.image_global.numpy() for f in feats]),
              "patches": np.stack([f.image_patches.numpy() for f in feats]),
              "content": np.stack([content_patch_mask(f).reshape(-1) for f in feats])}
    return records, arrays


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """State of one build on one rank."""

    root: Path
    manifest: dict
    shape: StoreShape
    rank: int = 0
    world: int = 1
    writer: SegmentWriter | None = None
    sealed: list | None = None  # segments sealed but not published (torchrun: until the end)
    replaced: dict | None = None  # path -> (segment, row) of the old row of a re-encoded file
    gone: list | None = None
    last_commit: float = 0.0

    def add(self, records: list[dict], arrays: dict[str, np.ndarray]) -> None:
        if self.writer is None:
            self.writer = SegmentWriter(self.root, self.shape)
        self.writer.add(records, arrays["global"], arrays["patches"], arrays["content"])

    def seal(self) -> None:
        if self.writer is not None and len(self.writer):
            self.sealed.append((self.writer.seal(), [r["path"] for r in self.writer.records]))
        elif self.writer is not None:
            self.writer.abort()
        self.writer = None

    def publish(self, sealed: list) -> None:
        """Rank 0: list the sealed segments, tombstoning the rows they replace."""
        dead = list(self.gone)
        for _, paths in sealed:
            dead += [self.replaced[p] for p in paths if p in self.replaced]
        commit(self.root, self.manifest, [e for e, _ in sealed], dead)
        self.gone, self.last_commit = [], time.monotonic()

    def due(self) -> bool:
        return self.writer is not None and (len(self.writer) >= COMMIT_ROWS or
                                            time.monotonic() - self.last_commit >= COMMIT_SECONDS)


def _start(folder: Path, predictor: Any, name: str, rebuild: bool, rank: int) -> tuple[Path, dict]:
    """The manifest to build on (rank 0 also clears what a crash left)."""
    root = index_dir(name)
    root.mkdir(parents=True, exist_ok=True)
    if rebuild or not (root / "manifest.json").exists():
        # A rebuild publishes over the old index only at its first commit: until then the
        # previous index stays searchable.
        return root, fresh_manifest(name, folder, model_id(predictor), predictor_shape(predictor))
    manifest = load_manifest(name)
    check_model(manifest, predictor, name)
    if rank == 0:
        sweep_orphans(root, manifest)
    return root, manifest


def build_index(folder: str | Path, predictor: Any, name: str | None = None,
                stop: Callable[[], bool] | Any | None = None, rebuild: bool = False,
                workers: int = 0, dist: Any = None) -> Iterator[IndexProgress]:
    """Index every study image under `folder`; yields IndexProgress as files are handled,
    then one with finished=True.  `stop` (callable or threading.Event) ends the run early
    after publishing what was encoded; its last report then says cancelled=True.  `dist`: a
    `mama_core.training.distributed.DistInfo` when running under torchrun."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise DataError("not a folder", path=folder)
    name = name or index_name_for(folder)
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    root = index_dir(name)
    root.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        with WriterLock(root):
            yield from _build(folder, predictor, name, stop, rebuild, workers, dist, rank, world)
    else:
        yield from _build(folder, predictor, name, stop, rebuild, workers, dist, rank, world)


def _build(folder, predictor, name, stop, rebuild, workers, dist, rank, world) -> Iterator[IndexProgress]:
    from mama_core.training import distributed as ddp

    if world > 1:
        ddp.barrier(dist)  # rank 0 holds the lock before anyone reads the manifest
    root, manifest = _start(folder, predictor, name, rebuild, rank)
    if world > 1:
        ddp.barrier(dist)
    rows = folder_files(folder)
    live = {} if rebuild else live_rows(root, manifest)
    studies, gone = plan(rows, live)
    mine = studies[rank::world]
    run = _Run(root, manifest, StoreShape.from_json(manifest["shape"]), rank, world, sealed=[],
               replaced={p: (s, r) for p, (s, r, _) in live.items()}, gone=gone if rank == 0 else [],
               last_commit=time.monotonic())
    todo_files = sum(len(s) for s in mine)
    unchanged = (len(rows) - sum(len(s) for s in studies)) if rank == 0 else 0
    total, done, encoded, failed, t0 = unchanged + todo_files, unchanged, 0, 0, time.monotonic()
    stopped = False
    if rank == 0 and world == 1 and (rebuild or gone) and not mine:
        run.publish([])  # nothing to encode: the removals (or the emptied rebuild) still publish
    if unchanged:
        yield _progress(done, total, encoded, (None, None), t0, unchanged, len(gone), failed)
    # worker processes cost a start-up each: only worth it for a longer work list
    for study_rows, images in decoded_studies(mine, min(workers, len(mine) // 8)):
        if should_stop(stop):
            stopped = True
            break
        records, arrays = encode_study(predictor, study_rows, images)
        failed += len(study_rows) - len(records)
        if records:
            run.add(records, arrays)
        if world == 1 and run.due():
            run.seal()
            run.publish(run.sealed)
            run.sealed = []
        for row in study_rows:  # one report per file, as the CLI's JSON lines promise
            done += 1
            encoded += any(r["path"] == row[0] for r in records)
            yield _progress(done, total, encoded, row, t0, unchanged, len(gone), failed)
    run.seal()
    sealed = ddp.gather_objects(run.sealed, dist) if world > 1 else [run.sealed]
    if rank == 0:
        all_sealed = [s for part in sealed for s in part]
        if all_sealed or run.gone:
            run.publish(all_sealed)
        merge_small_segments(root, manifest)
    if world > 1:
        ddp.barrier(dist)
    yield IndexProgress(done, total, encoded, None, None, finished=not stopped, removed=len(gone), failed=failed,
                        elapsed_s=time.monotonic() - t0, eta_s=0.0 if not stopped else None, cancelled=stopped)


def _progress(done: int, total: int, encoded: int, row: tuple, t0: float, unchanged: int, removed: int,
              failed: int) -> IndexProgress:
    elapsed = time.monotonic() - t0
    work = done - unchanged
    eta = elapsed / work * (total - done) if work > 0 else None
    return IndexProgress(done, total, encoded, row[0], row[1], removed=removed, failed=failed,
                         elapsed_s=elapsed, eta_s=eta)


__all__ = ["IndexProgress", "build_index", "index_dir", "index_name_for", "list_indexes", "load_manifest",
           "index_folder", "default_index", "check_model", "predictor_shape", "fresh_manifest", "commit",
           "live_rows", "merge_small_segments"]
