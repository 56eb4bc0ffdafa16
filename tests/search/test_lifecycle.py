"""Index life cycle: updates, removals, crashes mid-write, searching during a build,
format versions, one writer at a time, segment merges."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mama_core.errors import DataError
from mama_core.search import build_index, index_dir, search
from mama_core.search import index as index_mod
from mama_core.search.ranking import open_snapshot

REPO = Path(__file__).resolve().parents[2]
QUERY = "There is a spiculated mass."


def _run(folder, predictor, name="life", **kw):
    return list(build_index(folder, predictor, name=name, **kw))[-1]


def _ranking(predictor, name="life"):
    return [(h.study_uid, round(h.score, 6), h.best_view) for h in search(QUERY, predictor, name=name, top_k=50)]


@pytest.fixture()
def folder(studies_dir, tmp_path):
    return Path(shutil.copytree(studies_dir, tmp_path / "archive"))


def _more_studies(folder: Path, seed: int) -> None:
    from mama_core.synthetic import generate_studies

    generate_studies(folder / f"more-{seed}", 1, seed=seed, rows=256)


def test_removed_and_updated_files_leave_or_replace_their_rows(predictor, folder):
    _run(folder, predictor)
    gone = next(p for p in folder.iterdir() if p.name.startswith("study_"))
    shutil.rmtree(gone)
    report = _run(folder, predictor)
    assert report.removed == 4 and report.encoded == 0
    snap = open_snapshot(index_dir("life"))
    assert snap.size == 4 and len({r["study_uid"] for r in snap.records}) == 1
    assert index_mod.load_manifest("life")["segments"][0]["dead"]  # tombstoned, not rewritten
    assert len(_ranking(predictor)) == 1


def test_search_works_while_an_update_is_being_written(predictor, folder, monkeypatch):
    _run(folder, predictor)
    before = _ranking(predictor)
    _more_studies(folder, 31)
    _more_studies(folder, 32)
    monkeypatch.setattr(index_mod, "COMMIT_ROWS", 8)  # publish after every second study
    run = build_index(folder, predictor, name="life")
    next(run)  # the unchanged files
    next(run)  # the first new study is encoded into a segment not yet published
    assert [p for p in (index_dir("life") / "segments").iterdir() if p.name.startswith(".tmp-")]
    assert _ranking(predictor) == before
    for _ in range(4):
        next(run)  # the second new study is encoded and both are published
    assert len(_ranking(predictor)) == 4
    assert list(run)[-1].finished


def _kill_run(folder: Path, model: Path, data: Path, point: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAMA_DATA_DIR": str(data), "MAMA_FAULT_POINT": f"index.{point}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mama_core.cli", "index", str(folder), "--name", "life", "--model", str(model),
           "--device", "cpu", "--json"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["segment-data", "manifest"])
def test_sigkill_mid_write_leaves_the_previous_index_searchable(predictor, folder, tiny_model_dir, point):
    _run(folder, predictor)
    before = _ranking(predictor)
    manifest_before = (index_dir("life") / "manifest.json").read_bytes()
    _more_studies(folder, 41)
    proc = _kill_run(folder, tiny_model_dir, Path(os.environ["MAMA_DATA_DIR"]), point)
    assert proc.returncode == -9, proc.stderr[-3000:]
    segments = index_dir("life") / "segments"
    if point == "segment-data":  # killed half-way through the new segment's cell array
        staging = [p for p in segments.iterdir() if p.name.startswith(".tmp-")]
        assert len(staging) == 1
        written = (staging[0] / "local.i8").stat().st_size
        shape = open_snapshot(index_dir("life")).shape
        assert 0 < written < 4 * shape.cells * shape.dim  # a study's 4 views were not all written
    else:  # the new segment was complete and durable, the new manifest half in its temp file
        assert len([p for p in segments.iterdir() if not p.name.startswith(".")]) == 2
        partial = list(index_dir("life").glob(".tmp-*manifest.json"))
        assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(manifest_before) * 2
    assert (index_dir("life") / "manifest.json").read_bytes() == manifest_before
    assert _ranking(predictor) == before
    final = _run(folder, predictor)  # the next run clears the debris and completes the update
    assert final.encoded == 4 and len(_ranking(predictor)) == 3
    assert not [p for p in segments.iterdir() if p.name.startswith(".tmp-")]
    assert not list(index_dir("life").glob(".tmp-*"))
    assert len(list(segments.iterdir())) == 2


def test_old_format_is_refused_with_the_way_out(predictor, folder):
    from mama_core.cli import main

    root = index_dir("old")
    (root / "features").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"format": 1, "name": "old", "folder": str(folder), "files": {}}))
    with pytest.raises(DataError, match="--rebuild") as info:
        search(QUERY, predictor, name="old")
    assert "format 1" in str(info.value) and "manifest.json" in str(info.value)
    assert main(["index", "--rebuild", "--name", "old", "--model", str(predictor.model_dir), "--device", "cpu",
                 "--json"]) == 0
    assert len(_ranking(predictor, "old")) == 2
    assert not (root / "features").exists()


def test_one_writer_at_a_time(predictor, folder):
    from mama_core.search.store import WriterLock

    with WriterLock(index_dir("life")):
        with pytest.raises(DataError, match="another process"):
            _run(folder, predictor)
    assert _run(folder, predictor).encoded == 8


def test_many_small_segments_are_merged_without_changing_results(predictor, folder, monkeypatch):
    _more_studies(folder, 51)
    _run(folder, predictor, name="whole")
    monkeypatch.setattr(index_mod, "COMMIT_ROWS", 4)
    monkeypatch.setattr(index_mod, "MAX_SEGMENTS", 2)
    _run(folder, predictor)
    manifest = index_mod.load_manifest("life")
    assert len(manifest["segments"]) == 1 and manifest["segments"][0]["rows"] == 12
    assert _ranking(predictor) == _ranking(predictor, "whole")
    g = {r["path"]: v for r, v in zip(*_globals("life"))}
    g2 = {r["path"]: v for r, v in zip(*_globals("whole"))}
    assert g.keys() == g2.keys() and all(np.array_equal(g[k], g2[k]) for k in g)


def _globals(name):
    snap = open_snapshot(index_dir(name))
    return snap.records, snap.globals_
