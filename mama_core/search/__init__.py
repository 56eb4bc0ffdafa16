"""Text search over indexed studies: index life cycle, vector store, two-stage ranking.

    build_index(folder, predictor)        -> Iterator[IndexProgress]   (mama_core.search.index)
    search(text, predictor, name)         -> list[SearchHit]           (two stages, ranking.py)

docs/inference.md ("Text search") describes the layout, the scores and the guarantees.
"""

from __future__ import annotations

from typing import Any, Iterator

from mama_core.errors import DataError
from mama_core.search.index import (
    IndexProgress,
    build_index,
    check_model,
    default_index,
    index_dir,
    index_folder,
    index_name_for,
    list_indexes,
    load_manifest,
)
from mama_core.search.ranking import (
    DEFAULT_CANDIDATES,
    DEFAULT_LOCAL_WEIGHT,
    SearchHit,
    cached_snapshot,
    check_weight,
    mark_ood,
    rank_progressively,
)


def search_progressively(text: str, predictor: Any, name: str | None = None, top_k: int = 10,
                         local_weight: float = DEFAULT_LOCAL_WEIGHT,
                         candidates: int = DEFAULT_CANDIDATES) -> Iterator[list[SearchHit]]:
    """The running top `top_k` studies for `text`, refined as stage 2 re-ranks candidates
    (best stage-1 candidates first); the last list is the answer.  `local_weight` in [0, 1]
    is the share of the SLA (sentence-to-patch) score."""
    if not text.strip():
        raise DataError("empty search text")
    check_weight(local_weight)
    name = name or default_index()
    load_manifest(name)  # a clear error for a missing or old index
    snap = cached_snapshot(index_dir(name))
    check_model(snap.manifest, predictor, name)
    t_global, t_local = predictor.query_embeddings(text)
    stats, known = getattr(predictor, "ood_stats", None), {}
    for hits in rank_progressively(snap, t_global, t_local, top_k, local_weight, candidates):
        yield mark_ood(snap, hits, stats, known)  # each study's verdict computed once per search


def search(text: str, predictor: Any, name: str | None = None, top_k: int = 10,
           local_weight: float = DEFAULT_LOCAL_WEIGHT, candidates: int = DEFAULT_CANDIDATES) -> list[SearchHit]:
    """Studies of index `name` ranked by similarity to `text` (see `ranking`)."""
    hits: list[SearchHit] = []
    for hits in search_progressively(text, predictor, name, top_k, local_weight, candidates):
        pass
    return hits


__all__ = ["IndexProgress", "SearchHit", "build_index", "search", "search_progressively", "list_indexes",
           "index_dir", "index_folder", "index_name_for", "load_manifest", "check_model", "default_index",
           "DEFAULT_LOCAL_WEIGHT", "DEFAULT_CANDIDATES"]
