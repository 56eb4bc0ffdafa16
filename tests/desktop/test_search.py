"""Search panel: index in the background, rank, open a hit with its map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mama_desktop import engine

from .conftest import open_and_wait

MASS_QUERY = "A mass is present in the breast."


def _run_search(qtbot, window, text: str) -> list:
    got: list = []
    window.searcher.results.connect(lambda _q, hits: got.extend(hits))
    window.search.field.setText(text)
    window.search.run()
    qtbot.waitUntil(lambda: bool(got) or "fail" in window.search.status.text().lower(), timeout=120000)
    return got


@pytest.mark.slow
def test_search_builds_index_and_opens_the_hit(qtbot, window, studies_dir: Path, tiny_model_dir: Path) -> None:
    """The mechanics with a random-init model: progress, results, opening a result."""
    window.load_model(str(tiny_model_dir), "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=60000)
    open_and_wait(qtbot, window, studies_dir)
    progress: list[tuple[int, int]] = []
    window.searcher.progress.connect(lambda d, t: progress.append((d, t)))
    hits = _run_search(qtbot, window, MASS_QUERY)
    assert {h.study_uid for h in hits} == {s.uid for s in window.state.studies}
    assert progress and progress[-1][0] == progress[-1][1] == 8, "8 images indexed with progress"
    assert window.search.results.count() == 2
    target = window.search.results.item(1)
    uid, view = target.data(0x0100)
    window.search.results.itemClicked.emit(target)
    qtbot.waitUntil(lambda: window.state.study.uid == uid and len(window.state.views) == 4, timeout=20000)
    assert window.sentence_maps.text.toPlainText() == MASS_QUERY
    assert window.hanging.panes[view].property("highlight") is True
    qtbot.waitUntil(lambda: window.state.maps is not None, timeout=30000)


@pytest.mark.slow
def test_rank_by_where_seen_ranks_on_the_local_score(qtbot, window, studies_dir: Path, tiny_model_dir: Path) -> None:
    window.load_model(str(tiny_model_dir), "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=60000)
    open_and_wait(qtbot, window, studies_dir)
    assert window.search.rank_by.currentData() == 0.5  # the engine's default first
    _run_search(qtbot, window, MASS_QUERY)
    got: list = []
    window.searcher.results.connect(lambda _q, hits: got.extend(hits))
    window.search.rank_by.setCurrentIndex(window.search.rank_by.findData(1.0))  # re-runs the last query
    qtbot.waitUntil(lambda: bool(got), timeout=60000)
    assert all(h.score == pytest.approx(h.local_score) for h in got)


@pytest.mark.slow
def test_search_ranks_a_study_with_a_mass_first(qtbot, window, tmp_path: Path) -> None:
    if not (engine.demo_model_dir() / "config.json").exists():
        pytest.skip("needs the trained demo model in resources/models/demo (rebuild it with installer/build_demo.sh)")
    from mama_core.synthetic import generate_studies

    folder = tmp_path / "search-studies"
    generate_studies(folder, 6, seed=11, rows=384)
    truth = json.loads((folder / "ground_truth.json").read_text())
    has_mass = {r["study_uid"] for r in truth if any(les["type"] == "mass" for les in r["lesions"])}
    without = {r["study_uid"] for r in truth} - has_mass
    if not has_mass or not without:
        pytest.skip("the generated set needs studies with and without a mass")
    window.load_model("demo", "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=120000)
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 6, timeout=20000)
    hits = _run_search(qtbot, window, MASS_QUERY)
    ranks = {h.study_uid: i for i, h in enumerate(hits)}
    best_with = min(ranks[u] for u in has_mass)
    best_without = min(ranks[u] for u in without)
    assert best_with < best_without, "a study with a mass ranks above the best study without one"
