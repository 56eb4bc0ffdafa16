"""Two-stage ranking of indexed studies for a sentence (docs/inference.md, "Text search").

Scores, per view v (the documented absolute scale; cosines in [-1, 1]):
    global_v = cos(text_global, image_global_v)                           (paper eq. (2) space)
    local_v  = max over content cells c of cos(sentence_local, cell_c)    (SLA, eq. (3))
    score_v  = (1 - w) * global_v + w * local_v        (w = local_weight, DEFAULT_LOCAL_WEIGHT)
per study: global = max_v global_v, local = max_v local_v, score = max_v score_v,
best_view = argmax_v score_v.  With pool 1 (the demo's shapes) a cell is one patch, so the
local score is the exact SLA score up to int8 rounding.

Stage 1 ranks views by global_v with FAISS (an exact inner-product index up to
EXACT_LIMIT views, an HNSW graph beyond); stage 2 computes score_v exactly as above for every
view of the studies of the best `candidates` views, reading only their cells from the
memory-mapped local store.  When the index holds no more views than `candidates`, every
view is re-ranked and the result is exact.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mama_core.errors import ConfigError, DataError
from mama_core.search.store import Segment, StoreShape, open_segment, read_manifest

DEFAULT_LOCAL_WEIGHT = 0.5  # an even share of the global and the local score
DEFAULT_CANDIDATES = 512  # views re-ranked by stage 2 (all of them in smaller indexes)
EXACT_LIMIT = 300_000  # views searched exactly by stage 1; an ANN graph beyond
RERANK_BATCH = 128  # views scored per step (results are reported after each step)
CELL_BLOCK = 8  # views whose cells are widened to float32 at once (4x less CPU than all at once)


@dataclass
class SearchHit:
    study_uid: str
    folder: str
    score: float
    global_score: float
    local_score: float
    best_view: str
    best_path: str = ""  # the image file of best_view
    ood: Any = None  # inference.ood.OODResult of the study, from its stored global embeddings

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["ood"] = self.ood.to_json() if self.ood is not None else None
        return out


@dataclass
class Snapshot:
    """One published generation of an index, opened for queries (cheap to share)."""

    root: Path
    manifest: dict
    shape: StoreShape
    segments: dict[str, Segment]
    refs: np.ndarray  # [N, 2] (segment number, row) of each live view
    seg_ids: list[str]
    records: list[dict]  # the live views' file records, in refs order
    globals_: np.ndarray  # [N, D] float32
    study_views: dict[str, np.ndarray] = field(default_factory=dict)
    _stage1: Any = None

    @property
    def size(self) -> int:
        return len(self.records)

    def stage1(self) -> Any:
        if self._stage1 is None:
            self._stage1 = _faiss_index(self.globals_)
        return self._stage1


def _faiss_index(vectors: np.ndarray) -> Any:
    import faiss

    d = vectors.shape[1]
    if len(vectors) <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:  # exact search grows linearly; a graph keeps a query in milliseconds at 10^6
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 256
    if len(vectors):
        index.add(vectors)
    return index


def open_snapshot(root: Path) -> Snapshot:
    """Read the manifest and map its segments; retried once when a writer replaced them
    between the two reads (a compaction deletes segments a new manifest no longer lists)."""
    for attempt in range(3):
        manifest = read_manifest(root)
        try:
            return _open(root, manifest)
        except FileNotFoundError:
            if attempt == 2:
                raise DataError("the index changed while it was being opened; try again", path=root) from None
    raise AssertionError("unreachable")


def _open(root: Path, manifest: dict) -> Snapshot:
    shape = StoreShape.from_json(manifest["shape"])
    segments, refs, records, globals_ = {}, [], [], []
    seg_ids = [e["id"] for e in manifest["segments"]]
    for i, entry in enumerate(manifest["segments"]):
        seg = segments[entry["id"]] = open_segment(root, entry, shape)
        live = np.setdiff1d(np.arange(int(entry["rows"])), np.asarray(entry.get("dead", []), dtype=np.int64))
        refs.append(np.stack([np.full(len(live), i), live], axis=1))
        records.extend(seg.records[r] for r in live)
        globals_.append(np.asarray(seg.arrays["global"][live], dtype=np.float32))
    snap = Snapshot(root, manifest, shape, segments,
                    np.concatenate(refs) if refs else np.zeros((0, 2), dtype=np.int64), seg_ids, records,
                    np.concatenate(globals_) if globals_ else np.zeros((0, shape.dim), dtype=np.float32))
    by_study: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_study.setdefault(rec["study_uid"], []).append(i)
    snap.study_views = {u: np.asarray(v) for u, v in by_study.items()}
    return snap


_OPEN: dict[str, tuple[tuple, tuple, Snapshot]] = {}
_OPEN_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    return st.st_ino, st.st_mtime_ns, st.st_size


def _files_stamp(snap: Snapshot) -> tuple:
    """Identity of every file the snapshot read: segments are never rewritten in place, so
    a change means damage or a replaced index, and the snapshot is reopened (and checked)."""
    from mama_core.search.store import ARRAYS

    names = ["files.json"] + [fname for fname, _ in ARRAYS.values()]
    return tuple(_stamp(snap.root / "segments" / s / n) for s in snap.seg_ids for n in names)


def cached_snapshot(root: Path) -> Snapshot:
    """The snapshot of the current manifest, reopened only when the manifest changed (a
    writer publishes by replacing it, which changes its inode and mtime) or a file under it did."""
    stamp = _stamp(root / "manifest.json")
    if not stamp:
        raise DataError("no search index here; build one with `mama index FOLDER`", path=root)
    with _OPEN_LOCK:
        held = _OPEN.get(str(root))
    if held and held[0] == stamp and held[1] == _files_stamp(held[2]):
        return held[2]
    snap = open_snapshot(root)
    with _OPEN_LOCK:
        _OPEN[str(root)] = (stamp, _files_stamp(snap), snap)
    return snap


# --------------------------------------------------------------------------- scoring


def check_weight(local_weight: float) -> None:
    if not 0.0 <= local_weight <= 1.0:
        raise ConfigError(f"must be between 0 and 1, not {local_weight}", field="local_weight")


def candidate_views(snap: Snapshot, t_global: np.ndarray, candidates: int) -> np.ndarray:
    """Stage 1: the studies of the best views by global score, in that order, each with all
    its views (a study's best view for the blended score may not be its best global one),
    until about `candidates` views are collected."""
    if snap.size <= candidates:
        order = np.argsort(-(snap.globals_ @ t_global), kind="stable")
    else:
        index = snap.stage1()
        if hasattr(index, "hnsw"):  # the graph's beam must be wider than the list it returns
            index.hnsw.efSearch = max(256, 2 * candidates)
        _, ids = index.search(np.asarray(t_global, dtype=np.float32)[None], candidates)
        order = ids[0][ids[0] >= 0]
    seen: dict[str, None] = {}
    count = 0
    for i in order:
        uid = snap.records[i]["study_uid"]
        if uid not in seen:
            seen[uid] = None
            count += len(snap.study_views[uid])
            if count >= candidates:
                break
    return np.concatenate([snap.study_views[u] for u in seen]) if seen else np.zeros(0, dtype=np.int64)


def local_scores(snap: Snapshot, views: np.ndarray, t_local: np.ndarray) -> np.ndarray:
    """Stage 2: max over content cells of cos(sentence, cell) for each view (-1 without cells)."""
    out = np.empty(len(views), dtype=np.float32)
    q = np.asarray(t_local, dtype=np.float32)
    refs = snap.refs[views]
    for s in np.unique(refs[:, 0]):
        at = np.nonzero(refs[:, 0] == s)[0]
        arrays = snap.segments[snap.seg_ids[s]].arrays
        for start in range(0, len(at), CELL_BLOCK):  # a few views at a time stay in the CPU cache
            part = at[start:start + CELL_BLOCK]
            rows = refs[part, 1]
            sims = (arrays["local"][rows].astype(np.float32) @ q) * arrays["scale"][rows].astype(np.float32)
            sims[arrays["content"][rows] == 0] = -np.inf
            best = sims.max(axis=1) if sims.shape[1] else np.full(len(rows), -np.inf)
            out[part] = np.where(np.isfinite(best), best, -1.0)
        snap.segments[snap.seg_ids[s]].release()
    return out


def rank_progressively(snap: Snapshot, t_global: np.ndarray, t_local: np.ndarray, top_k: int = 10,
                       local_weight: float = DEFAULT_LOCAL_WEIGHT,
                       candidates: int = DEFAULT_CANDIDATES) -> Iterator[list[SearchHit]]:
    """The running top-k after each batch of re-ranked views (the last one is final)."""
    check_weight(local_weight)
    views = candidate_views(snap, t_global, max(int(candidates), 1))
    best: dict[str, SearchHit] = {}
    for start in range(0, max(len(views), 1), RERANK_BATCH):
        chunk = views[start:start + RERANK_BATCH]
        g = snap.globals_[chunk] @ np.asarray(t_global, dtype=np.float32)
        loc = local_scores(snap, chunk, t_local)
        score = (1.0 - local_weight) * g + local_weight * loc
        for i, v in enumerate(chunk):
            rec = snap.records[v]
            _merge_hit(best, SearchHit(rec["study_uid"], rec["folder"], float(score[i]), float(g[i]),
                                       float(loc[i]), rec["view"], rec["path"]))
        yield sorted(best.values(), key=lambda h: h.score, reverse=True)[:top_k]


def mark_ood(snap: Snapshot, hits: list[SearchHit], stats: Any, known: dict | None = None) -> list[SearchHit]:
    """Each hit's out-of-distribution verdict from the global embeddings the index already
    holds (no image is read again); "unknown" when the model has no statistics. `known`
    (study uid -> verdict) carries verdicts across the refinements of one search."""
    from mama_core.inference import ood

    known = {} if known is None else known
    for hit in hits:
        if hit.study_uid not in known:
            views = snap.study_views.get(hit.study_uid, np.zeros(0, dtype=np.int64))
            embeddings = {snap.records[v]["view"]: snap.globals_[v] for v in views}
            known[hit.study_uid] = ood.study_result(stats, ood.view_results(stats, embeddings))
        hit.ood = known[hit.study_uid]
    return hits


def rank(snap: Snapshot, t_global: np.ndarray, t_local: np.ndarray, top_k: int = 10,
         local_weight: float = DEFAULT_LOCAL_WEIGHT, candidates: int = DEFAULT_CANDIDATES) -> list[SearchHit]:
    hits: list[SearchHit] = []
    for hits in rank_progressively(snap, t_global, t_local, top_k, local_weight, candidates):
        pass
    return hits


def _merge_hit(best: dict, view_hit: SearchHit) -> None:
    """Keep per study the best view score and the best global and local scores."""
    hit = best.get(view_hit.study_uid)
    if hit is None:
        best[view_hit.study_uid] = view_hit
        return
    hit.global_score = max(hit.global_score, view_hit.global_score)
    hit.local_score = max(hit.local_score, view_hit.local_score)
    if view_hit.score > hit.score:
        hit.score, hit.best_view, hit.best_path = view_hit.score, view_hit.best_view, view_hit.best_path


__all__ = ["SearchHit", "Snapshot", "DEFAULT_LOCAL_WEIGHT", "DEFAULT_CANDIDATES", "open_snapshot",
           "cached_snapshot", "rank", "rank_progressively", "candidate_views", "local_scores"]
