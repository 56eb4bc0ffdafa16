"""Text search at archive scale: build rate, disk, memory and query latency of the two-stage
index (`mama_core.search`), and its agreement with exact full-patch scoring.

    python benchmarks/search_scale.py --images 100000 --dim 512 --grid 37 [--json]

1. Fills an index through the index's own writer (`SegmentWriter` + `commit`, the path
   `build_index` takes after the model) with synthetic embeddings: a unique random global
   embedding per image; the patch tensors [grid*grid, dim] of a batch of 64 are 64 fixed random ones
   (the writer's cost does not depend on the values; quality is judged on real indexes
   below).  Every patch counts as content (the worst case: real mammograms are about half
   padding).  Build rate = images / time spent in the writer, commits and merges included.
2. Disk bytes per image (everything under the index folder); resident memory of a fresh
   process that opens the index and runs the queries (`rss_mb`), and the build's peak.
3. Query latency p50 / p95 over distinct one-sentence queries, text encoding included: the
   demo model encodes the sentence (256-d), a fixed random projection maps it to `--dim`.
4. Unless --no-quality: the real demo indexes (`mama demo-data` seeds 2026 and 9001, 40
   studies each; --demo-dirs) built with `build_index` and the demo model; for every
   documented query and local weight, the top-10 overlap and the average precision of the
   two-stage ranking against exact scoring over full fp32 patches (the old search).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERIES = {  # docs/inference.md's documented queries -> which studies are positives
    "The breasts are extremely dense.": lambda r: r["density"] == 4,
    "A mass is present in the breast.": lambda r: any(les["type"] == "mass" for les in r["lesions"]),
    "There is a mass.": lambda r: any(les["type"] == "mass" for les in r["lesions"]),
    "Calcifications are present in the breast.": lambda r: any(les["type"].startswith("calc") for les in r["lesions"]),
}
WEIGHTS = (0.0, 0.5, 0.75, 1.0)
VIEWS = ("LCC", "LMLO", "RCC", "RMLO")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- 1. build


def synthetic_build(root: Path, n: int, dim: int, grid: int, commit_rows: int, seed: int = 0) -> dict:
    from mama_core.search.index import commit, fresh_manifest, merge_small_segments
    from mama_core.search.store import SegmentWriter, choose_shape, write_manifest

    rng = np.random.default_rng(seed)
    shape = choose_shape(dim, (grid, grid))
    pool = _unit(rng.standard_normal((64, grid * grid, dim), dtype=np.float32))
    content = np.ones((64, grid * grid), dtype=bool)
    root.mkdir(parents=True)
    manifest = fresh_manifest("bench", "/synthetic", {"name": "synthetic", "fingerprint": "synthetic"}, shape)
    write_manifest(root, manifest)
    spent, cpu, writer = 0.0, 0.0, None
    for start in range(0, n, 64):
        m = min(64, n - start)
        glob = _unit(rng.standard_normal((m, dim), dtype=np.float32))
        patches = pool[:m]  # a view: preparing the input costs no copy
        records = [{"path": f"/synthetic/{start + i:07d}.dcm", "size": 0, "mtime_ns": 0,
                    "study_uid": f"study-{(start + i) // 4}", "view": VIEWS[(start + i) % 4],
                    "folder": f"/synthetic/{(start + i) // 4}"} for i in range(m)]
        t, c = time.perf_counter(), time.process_time()
        writer = writer or SegmentWriter(root, shape)
        writer.add(records, glob, patches, content[:m])
        if len(writer) >= commit_rows or start + m == n:
            commit(root, manifest, [writer.seal()], [])
            writer = None
        spent += time.perf_counter() - t
        cpu += time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    merge_small_segments(root, manifest)
    spent += time.perf_counter() - t
    cpu += time.process_time() - c
    return {"build_s": spent, "build_images_per_s": n / spent, "build_cpu_s": cpu,
            "segments": len(manifest["segments"]),
            "pool": shape.pool, "cells": shape.cells}


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- 2-3. queries


def query_latency(root: Path, dim: int, n_queries: int, candidates: int) -> dict:
    from mama_core.inference import Predictor
    from mama_core.search.ranking import cached_snapshot, candidate_views, local_scores, rank

    predictor = Predictor.load("demo", device="cpu")
    proj = np.random.default_rng(1).standard_normal((predictor.model.config.embed_dim, dim)).astype(np.float32)
    t = time.perf_counter()
    snap = cached_snapshot(root)
    snap.stage1()
    open_s = time.perf_counter() - t
    bases = list(QUERIES)
    texts = [f"{bases[i % len(bases)][:-1]} in region {i}." for i in range(n_queries + 1)]
    total, text_ms, rank_ms, cpu_ms = [], [], [], []
    for i, text in enumerate(texts):
        c0 = time.process_time()
        t0 = time.perf_counter()
        g, loc = predictor.query_embeddings(text)
        tg, tl = _unit(g @ proj), _unit(loc @ proj)
        t1 = time.perf_counter()
        hits = rank(snap, tg, tl, top_k=10, local_weight=0.5, candidates=candidates)
        t2 = time.perf_counter()
        c2 = time.process_time()
        assert len(hits) == 10
        if i:  # the first query warms the text model
            total.append((t2 - t0) * 1e3)
            text_ms.append((t1 - t0) * 1e3)
            rank_ms.append((t2 - t1) * 1e3)
            cpu_ms.append((c2 - c0) * 1e3)
    t = time.perf_counter()
    views = candidate_views(snap, tg, candidates)
    s1 = time.perf_counter()
    local_scores(snap, views, tl)
    s2 = time.perf_counter()
    return {"open_s": open_s, "query_p50_ms": float(np.percentile(total, 50)),
            "query_p95_ms": float(np.percentile(total, 95)), "text_p50_ms": float(np.median(text_ms)),
            "rank_p50_ms": float(np.median(rank_ms)), "query_cpu_p50_ms": float(np.median(cpu_ms)), "stage1_ms": (s1 - t) * 1e3, "stage2_ms": (s2 - s1) * 1e3,
            "candidate_views": int(len(views)), "queries": n_queries}


def ann_stage1(root: Path, candidates: int, n_queries: int = 20) -> dict:
    """The ANN stage 1 used beyond EXACT_LIMIT (HNSW), measured at this size: graph build
    time, query time and recall of the exact top `candidates` views."""
    import faiss

    from mama_core.search.ranking import cached_snapshot

    vectors = cached_snapshot(root).globals_
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = max(256, 2 * candidates)  # as mama_core.search.ranking.candidate_views
    hnsw.add(vectors)
    build_s = time.perf_counter() - t
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    queries = _unit(np.random.default_rng(2).standard_normal((n_queries, vectors.shape[1]), dtype=np.float32))
    times, recall = [], []
    for q in queries:
        _, exact = flat.search(q[None], candidates)
        t = time.perf_counter()
        _, approx = hnsw.search(q[None], candidates)
        times.append((time.perf_counter() - t) * 1e3)
        recall.append(len(set(exact[0]) & set(approx[0])) / candidates)
    return {"hnsw_build_s": build_s, "hnsw_query_p50_ms": float(np.median(times)),
            "hnsw_recall_at_candidates": float(np.mean(recall))}


# --------------------------------------------------------------------------- 4. quality


def _exact_scores(feats: dict, rows: list, tg: np.ndarray, tl: np.ndarray, w: float) -> dict[str, float]:
    """The old search: full fp32 patches, content patches only, max over views."""
    best: dict[str, float] = {}
    for rec in rows:
        f, mask = feats[rec["path"]]
        g = float(f.image_global.numpy() @ tg)
        loc = float((f.image_patches.numpy()[mask] @ tl).max()) if mask.any() else -1.0
        s = (1 - w) * g + w * loc
        best[rec["study_uid"]] = max(best.get(rec["study_uid"], -9.0), s)
    return best


def _agreement(exact: dict[str, float], hits: list, truth: dict[str, bool]) -> dict:
    from sklearn.metrics import average_precision_score

    uids = sorted(exact)
    top_exact = sorted(uids, key=lambda u: -exact[u])[:10]
    two = {h.study_uid: h.score for h in hits}
    top_two = [h.study_uid for h in hits[:10]]
    y = [truth[u] for u in uids]
    low = min(two.values()) - 1 if two else 0.0  # a study stage 1 never proposed ranks last
    return {"top10_overlap": len(set(top_exact) & set(top_two)) / 10,
            "ap_exact": float(average_precision_score(y, [exact[u] for u in uids])),
            "ap_two_stage": float(average_precision_score(y, [two.get(u, low) for u in uids]))}


def demo_quality(folder: Path, predictor, variants: dict) -> list[dict]:
    from mama_core.inference.maps import content_patch_mask
    from mama_core.search import build_index, index_dir
    from mama_core.search.index import commit, fresh_manifest, live_rows, load_manifest, model_id
    from mama_core.search.ranking import open_snapshot, rank
    from mama_core.search.store import SegmentWriter, StoreShape, write_manifest

    name = f"q-{folder.name}"
    list(build_index(folder, predictor, name=name))
    root = index_dir(name)
    manifest = load_manifest(name)
    rows = [rec for _, _, rec in live_rows(root, manifest).values()]
    feats = {}
    for rec in rows:
        f = predictor.image_features(rec["path"])
        feats[rec["path"]] = (f, content_patch_mask(f).reshape(-1))
    truth_rows = json.loads((folder / "ground_truth.json").read_text())
    snaps = {}
    for label, (pool, candidates) in variants.items():
        shape = StoreShape.from_json(manifest["shape"])
        if pool != shape.pool:  # the same embeddings, stored at another pooling
            shape = StoreShape(shape.dim, shape.grid, pool)
            other = root.parent / f"{name}-pool{pool}"
            shutil.rmtree(other, ignore_errors=True)
            other.mkdir()
            m = fresh_manifest(name, folder, model_id(predictor), shape)
            write_manifest(other, m)
            writer = SegmentWriter(other, shape)
            writer.add(rows, np.stack([feats[r["path"]][0].image_global.numpy() for r in rows]),
                       np.stack([feats[r["path"]][0].image_patches.numpy() for r in rows]),
                       np.stack([feats[r["path"]][1] for r in rows]))
            commit(other, m, [writer.seal()], [])
            snaps[label] = (open_snapshot(other), candidates)
        else:
            snaps[label] = (open_snapshot(root), candidates)
    out = []
    for query, positive in QUERIES.items():
        truth: dict[str, bool] = {}
        for r in truth_rows:
            truth[r["study_uid"]] = truth.get(r["study_uid"], False) or bool(positive(r))
        tg, tl = predictor.query_embeddings(query)
        for w in WEIGHTS:
            exact = _exact_scores(feats, rows, tg, tl, w)
            for label, (snap, candidates) in snaps.items():
                hits = rank(snap, tg, tl, top_k=len(exact), local_weight=w, candidates=candidates)
                out.append({"set": folder.name, "query": query, "w": w, "variant": label,
                            "positives": sum(truth.values()) / len(truth), **_agreement(exact, hits, truth)})
    return out


def summarise_quality(rows: list[dict]) -> dict:
    summary = {}
    for label in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == label]
        summary[label] = {"min_top10_overlap": min(r["top10_overlap"] for r in mine),
                          "max_ap_diff": max(abs(r["ap_two_stage"] - r["ap_exact"]) for r in mine)}
    return summary


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, required=True)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--grid", type=int, default=37)
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--commit-rows", type=int, default=8192, help="rows per published segment while filling")
    p.add_argument("--candidates", type=int, default=None, help="stage-1 candidate views (default: the engine's)")
    p.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--demo-dirs", type=Path, nargs="*", default=[],
                   help="`mama demo-data` folders for the quality part (seeds 2026 and 9001, 40 studies)")
    p.add_argument("--no-quality", action="store_true")
    p.add_argument("--ann", action="store_true", help="also measure the HNSW stage 1 used beyond EXACT_LIMIT")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and FAISS threads for the queries (default 1: one core per query)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--query-only", type=Path, default=None, help=argparse.SUPPRESS)  # the child below
    return p.parse_args(argv)


def query_process(root: Path, args: argparse.Namespace) -> dict:
    """Steps 2-3 in a fresh process, so that its resident memory is that of a process that
    opens the index and searches (the build's buffers are not counted)."""
    import subprocess

    cmd = [sys.executable, __file__, "--images", str(args.images), "--dim", str(args.dim), "--grid", str(args.grid),
           "--queries", str(args.queries), "--threads", str(args.threads), "--query-only", str(root)]
    if args.candidates:
        cmd += ["--candidates", str(args.candidates)]
    if args.ann:
        cmd.append("--ann")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_queries(root: Path, args: argparse.Namespace, candidates: int) -> dict:
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    result = {"threads": args.threads}
    result.update(query_latency(root, args.dim, args.queries, candidates))
    result["rss_mb"] = rss_mb()
    if args.ann:
        result.update(ann_stage1(root, candidates))
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mama_core.search.ranking import DEFAULT_CANDIDATES

    candidates = args.candidates or DEFAULT_CANDIDATES
    if args.query_only:
        print(json.dumps(run_queries(args.query_only, args, candidates)))
        return 0
    scratch = args.out or Path(tempfile.mkdtemp(prefix="search-scale-"))
    os.environ["MAMA_DATA_DIR"] = str(scratch / "data")
    root = scratch / "synthetic-index"
    try:
        result = {"images": args.images, "dim": args.dim, "grid": args.grid, "candidates": candidates}
        result.update(synthetic_build(root, args.images, args.dim, args.grid, args.commit_rows))
        result["bytes_per_image"] = disk_bytes(root) / args.images
        result["build_rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result.update(query_process(root, args))
        print(json.dumps(result), file=sys.stderr, flush=True)  # kept even if the quality part fails
        if not args.no_quality and args.demo_dirs:
            from mama_core.inference import Predictor
            from mama_core.search.ranking import DEFAULT_CANDIDATES as full

            predictor = Predictor.load("demo", device="cpu", cache_size=1024)
            variants = {"index (pool 1, int8)": (1, full), "pool 2": (2, full),
                        "stage 1 keeps 25 %": (1, 40)}
            rows = [r for d in args.demo_dirs for r in demo_quality(d, predictor, variants)]
            result["quality"] = rows
            result["quality_summary"] = summarise_quality(rows)
    finally:
        if args.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k != "quality":
                print(f"{k}: {v}")
        for r in result.get("quality", []):
            print(f"  {r['set']:10s} {r['variant']:22s} w={r['w']:<4} overlap {r['top10_overlap']:.1f}  "
                  f"AP exact {r['ap_exact']:.3f} two-stage {r['ap_two_stage']:.3f}  {r['query']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
