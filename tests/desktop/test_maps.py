"""Live sentence maps: debounce, worker, latest wins, absolute scale (event-loop latency: benchmarks/gui_latency.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from mama_desktop.sentence_maps import heat_lut, split_sentences, threshold_position, view_display
from mama_desktop.workers import LatestOnly, TaskRunner

from .conftest import open_and_wait


def test_split_sentences_lines_and_periods() -> None:
    text = "A mass is present in the breast. Calcifications are seen;\n\n  Skin thickening\n..."
    assert split_sentences(text) == ["A mass is present in the breast.", "Calcifications are seen;", "Skin thickening"]


def test_heat_lut_alpha_ramps_from_zero_at_the_threshold() -> None:
    lut = heat_lut("inferno", threshold_position(0.3, (0.2, 0.7)))
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    cut = int(0.2 * 255)  # threshold at 20 % of the scale
    assert lut[: cut + 1, 3].max() == 0, "nothing below the no-match threshold is painted"
    assert lut[-1, 3] == 255 and np.all(np.diff(lut[:, 3].astype(int)) >= 0)


def test_below_threshold_reads_no_match() -> None:
    from mama_core.inference import SimilarityMaps

    grid = np.stack([np.full((4, 3), 0.9), np.full((4, 3), 0.1)]).astype(np.float32)
    maps = SimilarityMaps(["a", "b"], {"RCC": grid}, {"RCC": (400, 300)}, 0.5, (0.0, 1.0))
    per_view, badges = view_display(maps, 0, visible=True)
    assert per_view["RCC"] is grid[0] or np.array_equal(per_view["RCC"], grid[0])
    assert "RCC" not in badges
    per_view, badges = view_display(maps, 1, visible=True, prefix="prior:")
    assert per_view["prior:RCC"] is None and badges["prior:RCC"] == "no match"


def test_latest_request_wins(qtbot) -> None:
    runner = TaskRunner()
    latest = LatestOnly(runner)
    got: list[object] = []
    latest.result.connect(lambda _r, v: got.append(v))
    gate = threading.Event()

    def slow(value):
        gate.wait(5)
        return value

    for i in range(5):
        latest.submit(lambda i=i: slow(i))
    gate.set()
    qtbot.waitUntil(lambda: not latest.busy and bool(got), timeout=5000)
    qtbot.wait(100)
    assert got == [4], "only the newest answer is delivered; the middle requests never ran"
    assert runner.shutdown(5000)


def test_typing_produces_maps_on_four_views_without_blocking(qtbot, window, studies_dir: Path,
                                                             tiny_model_dir: Path, monkeypatch) -> None:
    window.load_model(str(tiny_model_dir), "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=60000)
    open_and_wait(qtbot, window, studies_dir)
    qtbot.waitUntil(lambda: window.state.prediction is not None, timeout=60000)
    # The event loop's latency while maps are computed is a target of benchmarks/gui_latency.py
    # (phase b); here: the maps are computed off the GUI thread.
    predictor = window.state.predictor
    threads: list[threading.Thread] = []
    original = predictor.similarity_maps
    monkeypatch.setattr(predictor, "similarity_maps",
                        lambda *a, **k: (threads.append(threading.current_thread()), original(*a, **k))[1])
    window.sentence_maps.text.setFocus()
    qtbot.keyClicks(window.sentence_maps.text, "A mass is present in the breast.")
    qtbot.keyClick(window.sentence_maps.text, Qt.Key.Key_Return)
    qtbot.keyClicks(window.sentence_maps.text, "Fatty tissue.")
    qtbot.waitUntil(lambda: window.state.maps is not None and len(window.state.maps.sentences) == 2, timeout=30000)
    maps = window.state.maps
    assert set(maps.grids) == {"RCC", "LCC", "RMLO", "LMLO"}
    for key, stack in maps.grids.items():
        assert maps.shapes[key] == window.state.views[key].pixels.shape
        pane = window.hanging.panes[key]
        shown = pane.heat_item.isVisible() or pane.badge.text() == "no match"
        assert shown, f"{key}: a heat map or the no-match state"
        if pane.heat_item.isVisible():
            assert pane.heat_item.levels == pytest.approx(maps.value_range), "absolute scale, not min-max"
            assert pane.heat_item.image.shape == stack.shape[1:], "drawn at the map's own resolution"
    assert window.sentence_maps.selector.count() == 2
    assert window.sentence_maps.colour_bar.threshold == pytest.approx(maps.threshold)
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_hide_and_opacity(qtbot, window, studies_dir: Path, tiny_model_dir: Path) -> None:
    window.load_model(str(tiny_model_dir), "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=60000)
    window.state.predictor.set_calibration(-1.0, (-1.0, 1.0))  # every map above threshold
    open_and_wait(qtbot, window, studies_dir)
    window.sentence_maps.set_text("A mass is present in the breast.")
    qtbot.waitUntil(lambda: window.state.maps is not None, timeout=30000)
    pane = window.hanging.panes["LCC"]
    assert pane.heat_item.isVisible()
    text = window.hanging.describe("LCC", 5, 7)
    native = window.state.maps.native("LCC")[0]
    assert f"similarity {native[5, 7]:+.3f}" in text, "hover reads the native-pixel map value"
    # The map, drawn from its grid, covers exactly the image (in canonical coordinates).
    h, w = window.state.views["LCC"].pixels.shape
    rect = pane.heat_item.mapRectToParent(pane.heat_item.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((w, h))
    window.sentence_maps.opacity.setValue(30)
    assert pane.heat_item.opacity() == pytest.approx(0.3)
    window.maps_action.setChecked(False)
    assert not pane.heat_item.isVisible()
