"""Worklist, hanging protocol geometry, synchronised zoom, window/level, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from mama_core.dicom import MammoImage
from mama_desktop.hanging import DISPLAY_MAX, WINDOW_PRESETS, HangingProtocol, to_display
from mama_desktop.state import AppState, LoadedView

from .conftest import open_and_wait, wait_views


def test_open_folder_fills_worklist(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    model = window.worklist.model
    rows = [[model.cell(s, c) for c in range(8)] for s in window.state.studies]
    assert {r[7] for r in rows} == {s.uid for s in window.state.studies}
    assert all(r[2].split()[:4] == ["RCC", "LCC", "RMLO", "LMLO"] for r in rows)
    assert all(r[0] for r in rows), "patient ids shown"
    # The first row of the (date-sorted) table is opened automatically.
    assert window.state.study is not None


def test_panes_hold_the_right_view_mirrored(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    study = window.state.study
    for key in ("RCC", "LCC", "RMLO", "LMLO"):
        pane = window.hanging.panes[key]
        view = pane.view
        assert view is not None and view.key == key
        assert Path(view.image.source) == Path(study.images[key])
        assert view.image.laterality == key[0]
        assert np.array_equal(pane.image_item.image, to_display(view.pixels)), "displayed array = pixel data"
        h, w = view.pixels.shape
        # Column 0 is the chest wall in read_image pixels; where does it land on screen?
        chest = pane.image_item.mapToView(QPointF(0.5, h / 2)).x()
        if key.startswith("R"):
            assert pane.canvas.transform().m11() == -1
            assert chest == pytest.approx(w - 0.5), "right breast: chest wall at the right edge"
        else:
            assert pane.canvas.transform().isIdentity()
            assert chest == pytest.approx(0.5), "left breast: chest wall at the left edge"
        assert pane.title.text().startswith(key)


def _marked_image(lat: str, view: str, h: int = 120, w: int = 90) -> MammoImage:
    """Canonical pixels with a bright stripe on the chest-wall side (column 0)."""
    pixels = np.full((h, w), 0.05, dtype=np.float32)
    pixels[:, :10] = 1.0
    return MammoImage(pixels=pixels, laterality=lat, view=view, pixel_spacing_mm=(0.1, 0.1),
                      presentation_intent="FOR PRESENTATION", study_uid="1.2", patient_id="p", study_date=None,
                      flipped=False, source=Path(f"{lat}{view}.dcm"))


def _bright_half(pane) -> str:
    img = pane.graphics.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    arr = np.array(img.constBits(), dtype=np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width()]
    mid = arr.shape[1] // 2
    return "right" if arr[:, mid:].sum() > arr[:, :mid].sum() else "left"


def test_rendered_chest_walls_meet_at_the_centre(qtbot) -> None:
    state = AppState()
    hanging = HangingProtocol(state)
    qtbot.addWidget(hanging)
    hanging.resize(800, 800)
    hanging.show()
    views = {k: LoadedView(k, _marked_image(k[0], k[1:])) for k in ("RCC", "LCC", "RMLO")}
    state.set_views(views)
    qtbot.wait(50)
    assert _bright_half(hanging.panes["RCC"]) == "right"
    assert _bright_half(hanging.panes["RMLO"]) == "right"
    assert _bright_half(hanging.panes["LCC"]) == "left"
    empty = hanging.panes["LMLO"]
    assert empty.view is None and empty.badge.text() == "empty" and "not in study" in empty.title.text()


def test_synchronised_zoom_and_pan(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    panes = window.hanging.panes
    panes["RCC"].vb.scaleBy((0.5, 0.5))
    panes["RCC"].vb.translateBy(x=-10, y=5)
    ref = panes["RCC"].canonical_rect()
    for key in ("LCC", "RMLO", "LMLO"):
        other = panes[key].canonical_rect()
        assert other.left() == pytest.approx(ref.left(), abs=1) and other.top() == pytest.approx(ref.top(), abs=1)
        assert other.width() == pytest.approx(ref.width(), rel=0.02)
    window.sync_action.setChecked(False)
    before = panes["LCC"].canonical_rect()
    panes["RCC"].vb.scaleBy((0.5, 0.5))
    assert panes["LCC"].canonical_rect() == before, "sync off: other panes stay put"


def test_window_level_drag_presets_invert(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    h = window.hanging
    start = h.window
    h.panes["LCC"].vb.windowDrag.emit(60.0, -40.0)  # what a right-drag emits
    assert h.window.width > start.width and h.window.center > start.center
    lo, hi = h.window.levels()
    for pane in h.panes.values():  # the prior's panes (hidden in this layout) too
        assert pane.levels == pytest.approx((lo * DISPLAY_MAX, hi * DISPLAY_MAX))
        assert pane.image_item.display_lut is pane.display_lut
    lut = h.panes["LCC"].display_lut
    grey = (lut & 0xFF).astype(int)
    assert grey[int(h.window.center * DISPLAY_MAX)] in (127, 128) and np.all(np.diff(grey) >= 0)
    h.set_preset("High contrast")
    assert h.panes["RMLO"].levels == pytest.approx(
        tuple(v * DISPLAY_MAX for v in WINDOW_PRESETS["High contrast"].levels()))
    window.invert_action.setChecked(True)
    assert h.panes["RCC"].display_lut[0] & 0xFF == 255 and h.panes["RCC"].display_lut[-1] & 0xFF == 0
    window.hanging.reset()
    assert h.window == WINDOW_PRESETS["Default"] and not h.invert


def test_maximise_by_double_click_and_back(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    h = window.hanging
    h.panes["LMLO"].doubleClicked.emit("LMLO")
    assert h.maximised == "LMLO" and not h.panes["RCC"].isVisible() and h.panes["LMLO"].isVisible()
    h.panes["LMLO"].doubleClicked.emit("LMLO")
    assert h.maximised is None and all(h.panes[k].isVisible() for k in ("RCC", "LCC", "RMLO", "LMLO"))


def test_pixel_readout_in_mm(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    view = window.state.views["RCC"]
    text = window.hanging.describe("RCC", 10, 20)
    assert f"value {view.pixels[10, 20]:.3f}" in text
    sr, sc = view.image.pixel_spacing_mm
    assert f"{20 * sc:.1f} mm from chest wall" in text


def test_keyboard_next_and_previous_study(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    first = window.state.study.uid
    window.activateWindow()
    window.hanging.setFocus()
    qtbot.keyClick(window.hanging, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.state.study.uid != first, timeout=5000)
    wait_views(qtbot, window)
    qtbot.keyClick(window.hanging, Qt.Key.Key_PageUp)
    qtbot.waitUntil(lambda: window.state.study.uid == first, timeout=5000)


def test_corrupt_files_give_notifications_not_a_crash(qtbot, window, studies_copy: Path) -> None:
    study_dirs = sorted(p for p in studies_copy.iterdir() if p.is_dir())
    # A file that starts like DICOM but is garbage, next to good images...
    (study_dirs[0] / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    # ...a real image cut short (the engine skips it while scanning)...
    cut = study_dirs[1] / "RMLO.dcm"
    cut.write_bytes(cut.read_bytes()[:-5000])
    # ...and one whose header is fine but whose pixel data is too short to decode.
    for d in study_dirs:
        ds = pydicom.dcmread(d / "LCC.dcm")
        ds.PixelData = ds.PixelData[:100]
        ds.save_as(d / "LCC.dcm")
    window.open_folder(studies_copy)
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 2, timeout=20000)
    qtbot.waitUntil(lambda: len(window.state.views) >= 3, timeout=20000)
    texts = [n.message + "\n" + n.details for n in window.notes.history]
    assert any("broken.dcm" in t for t in texts), texts
    assert any("RMLO.dcm" in t for t in texts), texts
    qtbot.waitUntil(lambda: any("LCC.dcm" in n.message and n.level == "error" for n in window.notes.history),
                    timeout=5000)
    assert "LCC" not in window.state.views and window.hanging.panes["LCC"].badge.text() == "empty"
    assert window.isVisible()


def test_missing_folder_is_a_notification(qtbot, window, tmp_path: Path) -> None:
    window.open_folder(tmp_path / "nope")
    assert window.notes.current is not None and window.notes.current.level == "error"


def test_magnifier_follows_the_cursor_at_3x(qtbot, window, studies_dir: Path) -> None:
    open_and_wait(qtbot, window, studies_dir)
    window.magnifier_action.setChecked(True)
    pane = window.hanging.panes["LCC"]
    h, w = pane.view.pixels.shape
    scene_pos = pane.vb.mapViewToScene(QPointF(w / 2, h / 2))
    pane._on_mouse_moved(scene_pos)
    assert pane.magnifier.isVisible()
    # Screen pixels per image pixel: three times the pane's.
    ratio = pane.vb.viewPixelSize()[0] / pane.magnifier.vb.viewPixelSize()[0]
    assert ratio == pytest.approx(3.0, rel=0.05)
    (mx0, mx1), _ = pane.magnifier.vb.viewRange()
    assert (mx0 + mx1) / 2 == pytest.approx(w / 2, abs=w * 0.05)
    window.magnifier_action.setChecked(False)
    assert not pane.magnifier.isVisible()


def test_help_lists_the_shortcuts(qtbot, window) -> None:
    from mama_desktop.help import HelpDialog, shortcut_rows

    rows = dict((text, keys) for keys, text in shortcut_rows(window.shortcut_actions))
    assert "F1" in rows["Keyboard shortcuts"] and "N" in rows["Next study"].split(" / ")
    dialog = HelpDialog(window.shortcut_actions, window)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() >= len(rows)


def test_demo_opens_existing_demo_studies_with_the_demo_model(qtbot, window, studies_dir: Path) -> None:
    import shutil

    from mama_desktop import engine

    shutil.copytree(studies_dir, engine.demo_studies_dir(), dirs_exist_ok=True)
    window.open_demo()
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 2, timeout=20000)
    assert window.state.folder == engine.demo_studies_dir() and window.settings.model == "demo"


def test_lesion_outlines_follow_the_ground_truth_and_toggle(qtbot, window, studies_dir: Path) -> None:
    """The demo set's annotated lesions (mama_core.datasets) outline the right spot of the right
    pane, in the displayed (mirrored) frame, only once the reader asks for them."""
    from mama_core.datasets import lesions_for_image

    open_and_wait(qtbot, window, studies_dir)
    drawn = 0
    for study in window.state.studies:
        window.state.set_study(study)
        qtbot.waitUntil(lambda: all(window.hanging.panes[k].view is not None and
                                    Path(window.hanging.panes[k].view.image.source) == Path(p)
                                    for k, p in study.images.items()), timeout=20000)
        for key, pane in ((k, window.hanging.panes[k]) for k in study.images):
            truth = lesions_for_image(study.images[key])
            assert len(pane.outlines.outlines) == len(truth)
            assert not pane.outlines.group.isVisible()
            for lesion, curve in zip(truth, pane.outlines.outlines):
                canonical = lesion.to_canonical(pane.view.pixels.shape[1], pane.view.image.flipped)
                xs, ys = curve.getData()
                assert (xs.min(), ys.min(), xs.max(), ys.max()) == pytest.approx(canonical.box)
                drawn += 1
    assert drawn > 0, "the fixture studies hold annotated lesions"
    window.outlines_action.trigger()
    assert all(p.outlines.group.isVisible() for p in window.hanging.panes.values())
