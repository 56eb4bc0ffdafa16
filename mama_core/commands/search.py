"""`mama search "text"`: studies ranked by similarity to a sentence."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json, print_table

NAME = "search"
HELP = "rank indexed studies by similarity to a free-text sentence"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the sentence to search for")
    parser.add_argument("--index", default=None, help="index name (default: the only index)")
    parser.add_argument("--top", type=int, default=10, help="number of studies to show (default 10)")
    parser.add_argument("--model", default="active", help="'demo', 'active' (default) or a model directory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the index with this model first if it was built with another")
    # default None, resolved in run(): the engine (and torch) load only when the command runs
    parser.add_argument("--local-weight", type=float, default=None, metavar="W",
                        help="share of the sentence-to-patch (local) score in the ranking, 0-1 (default 0.5; "
                             "1 ranks by where a finding is seen, see docs/inference.md)")
    parser.add_argument("--candidates", type=int, default=None, metavar="N",
                        help="views re-ranked by the local score after the global stage (default 512; "
                             "raise it when ranking by where a finding is seen in a large index)")


def _rebuild_if_asked(args, predictor) -> None:
    from mama_core.errors import ModelError
    from mama_core.search.store import IndexFormatError
    from mama_core.search import build_index, check_model, default_index, index_folder, load_manifest

    name = args.index or default_index()
    args.index = name
    try:
        check_model(load_manifest(name), predictor, name)
    except (ModelError, IndexFormatError):
        if not args.rebuild:
            raise
        for _ in build_index(index_folder(name), predictor, name=name, rebuild=True):
            pass


def run(args: argparse.Namespace) -> int:
    from mama_core.inference import Predictor
    from mama_core.search import DEFAULT_CANDIDATES, DEFAULT_LOCAL_WEIGHT, search

    weight = DEFAULT_LOCAL_WEIGHT if args.local_weight is None else args.local_weight
    predictor = Predictor.load(args.model, device=args.device)
    _rebuild_if_asked(args, predictor)
    hits = search(args.text, predictor, name=args.index, top_k=args.top, local_weight=weight,
                  candidates=args.candidates or DEFAULT_CANDIDATES)
    if args.json:
        print_json({"query": args.text, "index": args.index, "model": predictor.name, "hits": [h.to_json() for h in hits]})
        return 0
    rows = [(i, h.study_uid, f"{h.score:.3f}", f"{h.global_score:.3f}", f"{h.local_score:.3f}", h.best_view,
             _ood_mark(h), h.folder) for i, h in enumerate(hits, 1)]
    print_table(["#", "study", "score", "global", "local", "best view", "OOD", "folder"], rows)
    return 0


def _ood_mark(hit) -> str:
    """OUTSIDE when the model flags the study as unlike its training images (docs/inference.md)."""
    status = getattr(hit.ood, "status", "unknown")
    return {"out-of-distribution": "OUTSIDE", "in-distribution": "-"}.get(status, "?")
