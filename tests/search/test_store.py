"""The vector store without a model: shapes, compaction, both stage-1 paths."""

from __future__ import annotations

import numpy as np
import pytest

from mama_core.search import ranking
from mama_core.search.index import commit, fresh_manifest
from mama_core.search.store import SegmentWriter, StoreShape, choose_shape, compact_patches, write_manifest


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_pool_is_the_finest_that_fits_the_budget():
    assert choose_shape(256, (16, 16)).pool == 1  # the demo: every patch kept (66 KB)
    paper = choose_shape(512, (37, 37))
    assert paper.pool == 3 and paper.cells == 169  # 13 x 13 cells x 514 bytes = 87 KB
    assert paper.cells * (paper.dim + 2) <= 96_000 < StoreShape(512, (37, 37), 2).cells * 514


def test_cells_are_quantised_directions_of_the_content_patches():
    rng = np.random.default_rng(0)
    shape = StoreShape(32, (5, 5), 2)
    patches = _unit(rng.standard_normal((2, 25, 32)))
    content = np.ones((2, 25), dtype=bool)
    content[1, 20:] = False  # the last row of the second image is padding
    codes, scale, cells = compact_patches(patches, content, shape)
    assert codes.shape == (2, 9, 32) and codes.dtype == np.int8 and cells.tolist()[1][6:] == [0, 0, 0]
    grid = patches.reshape(2, 5, 5, 32)
    expected = _unit(grid[0, 2:4, 0:2].reshape(-1, 32).sum(0))  # cell (1, 0) of the first image
    got = codes[0, 3].astype(np.float32) * scale[0, 3].astype(np.float32)
    assert np.abs(got @ expected - 1.0) < 2e-3
    q = _unit(rng.standard_normal(32))
    exact = patches[0] @ q
    one = StoreShape(32, (5, 5), 1)
    c1, s1, _ = compact_patches(patches, content, one)
    approx = (c1[0].astype(np.float32) @ q) * s1[0].astype(np.float32)
    assert np.abs(approx - exact).max() <= np.sqrt(32) / 254 + 1e-3  # int8 bound (+ fp16 scale)


@pytest.fixture()
def snapshot(tmp_path):
    rng = np.random.default_rng(1)
    shape = StoreShape(16, (3, 3), 1)
    root = tmp_path / "ix"
    root.mkdir()
    manifest = fresh_manifest("ix", tmp_path, {"name": "m", "fingerprint": "f"}, shape)
    write_manifest(root, manifest)
    writer = SegmentWriter(root, shape)
    n = 400
    records = [{"path": f"/x/{i}", "size": 0, "mtime_ns": 0, "study_uid": f"s{i // 4}", "view": f"v{i % 4}",
                "folder": "/x"} for i in range(n)]
    writer.add(records, _unit(rng.standard_normal((n, 16))), _unit(rng.standard_normal((n, 9, 16))),
               np.ones((n, 9), dtype=bool))
    commit(root, manifest, [writer.seal()], [])
    return ranking.open_snapshot(root)


def test_exact_and_graph_stage_one_agree_on_a_small_index(snapshot, monkeypatch):
    q = _unit(np.random.default_rng(2).standard_normal(16))
    everything = ranking.rank(snapshot, q, q, top_k=5, candidates=10_000)  # re-ranks all: exact
    exact_stage1 = ranking.rank(snapshot, q, q, top_k=5, local_weight=0.0, candidates=64)
    monkeypatch.setattr(ranking, "EXACT_LIMIT", 10)
    snapshot._stage1 = None
    graph_stage1 = ranking.rank(snapshot, q, q, top_k=5, local_weight=0.0, candidates=64)
    assert type(snapshot.stage1()).__name__ == "IndexHNSWFlat"
    assert [h.study_uid for h in graph_stage1] == [h.study_uid for h in exact_stage1]
    brute = snapshot.globals_ @ q
    assert everything and exact_stage1[0].global_score == pytest.approx(float(brute.max()), abs=1e-6)
