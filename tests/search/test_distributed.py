"""`mama index` under torchrun (2 gloo processes on the CPU) builds the same index as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mama_core.search import build_index, index_dir, search
from mama_core.search.ranking import open_snapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_ranks_build_the_index_one_process_builds(predictor, studies_dir, tiny_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "torchrun-data"
    env = {**os.environ, "MAMA_DATA_DIR": str(data), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "mama_core.cli", "index", str(studies_dir), "--name", "ddp", "--model", str(tiny_model_dir),
           "--device", "cpu", "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert reports[-1]["finished"]  # rank 0 reports; each rank encoded its own share
    assert reports[-1]["total"] == 4

    monkeypatch.setenv("MAMA_DATA_DIR", str(data))
    two = open_snapshot(index_dir("ddp"))
    assert len(two.manifest["segments"]) == 2  # one segment per rank, merged by one manifest
    distributed_hits = search("There is a spiculated mass.", predictor, name="ddp", top_k=10)

    monkeypatch.setenv("MAMA_DATA_DIR", str(tmp_path / "single-data"))
    list(build_index(studies_dir, predictor, name="ddp"))
    one = open_snapshot(index_dir("ddp"))
    single_hits = search("There is a spiculated mass.", predictor, name="ddp", top_k=10)

    by_path = {r["path"]: i for i, r in enumerate(one.records)}
    assert sorted(by_path) == sorted(r["path"] for r in two.records) and len(by_path) == 8
    for i, rec in enumerate(two.records):
        j = by_path[rec["path"]]
        assert rec == one.records[j]
        np.testing.assert_array_equal(two.globals_[i], one.globals_[j])
        ref2, ref1 = two.refs[i], one.refs[j]
        cells2 = two.segments[two.seg_ids[ref2[0]]].arrays["local"][ref2[1]]
        cells1 = one.segments[one.seg_ids[ref1[0]]].arrays["local"][ref1[1]]
        np.testing.assert_array_equal(cells2, cells1)
    assert [h.to_json() for h in distributed_hits] == [h.to_json() for h in single_hits]
