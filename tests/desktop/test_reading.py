"""Reading real-size images: display pyramid, level of detail, native magnifier, window/level
without re-processing, current vs prior layout, and memory that plateaus across studies."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF

from mama_core.dicom import MammoImage
from mama_desktop.hanging import (COMPARE_LAYOUT, DISPLAY_MAX, MIN_LEVEL_SIDE, PRIOR, HangingProtocol,
                                  build_pyramid, to_display)
from mama_desktop.state import AppState, LoadedView

ROWS, COLS = 2400, 1500


def _image(lat: str, view: str, rows: int = ROWS, cols: int = COLS, seed: int | None = 0) -> MammoImage:
    if seed is None:  # flat grey: as much memory, far less time to make
        pixels = np.full((rows, cols), 0.4, dtype=np.float32)
    else:
        pixels = np.random.default_rng(seed).random((rows, cols), dtype=np.float32)
    return MammoImage(pixels=pixels, laterality=lat, view=view, pixel_spacing_mm=(0.07, 0.07),
                      presentation_intent="FOR PRESENTATION", study_uid="1.2", patient_id="p", study_date=None,
                      flipped=False, source=Path(f"{lat}{view}.dcm"))


def _views(keys=("RCC", "LCC", "RMLO", "LMLO"), **kw) -> dict[str, LoadedView]:
    out = {}
    for i, key in enumerate(keys):
        image = _image(key[0], key[1:], seed=i, **kw)
        out[key] = LoadedView(key, image, pyramid=build_pyramid(image.pixels))
    return out


@pytest.fixture
def hanging(qtbot):
    state = AppState()
    widget = HangingProtocol(state)
    qtbot.addWidget(widget)
    widget.resize(900, 800)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_pyramid_levels_are_block_means_down_to_screen_size() -> None:
    pixels = np.random.default_rng(1).random((1001, 700), dtype=np.float32)
    levels = build_pyramid(pixels)
    shapes = [lv.shape for lv in levels]
    assert shapes[0] == (500, 350) and all(lv.dtype == np.uint16 for lv in levels)
    assert all(b == (a[0] // 2, a[1] // 2) for a, b in zip(shapes, shapes[1:]))
    assert max(shapes[-1]) <= MIN_LEVEL_SIDE < max(shapes[-2])
    block = pixels[2:4, 6:8].mean() * DISPLAY_MAX
    assert abs(int(levels[0][1, 3]) - block) <= 1
    assert abs(int(levels[1][0, 1]) - levels[0][0:2, 2:4].astype(float).mean()) <= 1
    assert build_pyramid(pixels[:200, :100]) == [], "small images are drawn as they are"


def test_drawn_level_matches_the_pane_and_native_pixels_when_zoomed(qtbot, hanging) -> None:
    hanging.state.set_views(_views())
    pane = hanging.panes["RCC"]
    screen = pane.graphics.width() * pane.graphics.height()
    assert pane.shown.level >= 2, "a fitted 2400-row image is drawn from a reduced level"
    assert pane.image_item.image.size <= 4 * screen
    # Zoom in far: level 0, a crop around what is visible, with the native values.
    pane.vb.scaleBy((0.05, 0.05))
    shown = pane.shown
    assert shown.level == 0 and pane.image_item.image.size < pane.view.pixels.size / 20
    assert shown.native_rect().contains(pane.visible_native_rect())
    view = pane.view.pixels[shown.r0:shown.r1, shown.c0:shown.c1]
    assert np.array_equal(pane.image_item.image, to_display(view))
    # The drawn crop sits at its canonical place: its first pixel maps to (c0, r0) in the canvas.
    corner = pane.canvas.mapFromItem(pane.image_item, QPointF(0, 0))
    assert (corner.x(), corner.y()) == pytest.approx((shown.c0, shown.r0))
    # Synchronised: the other panes zoomed as well and draw native pixels too.
    assert hanging.panes["LMLO"].shown.level == 0


def test_window_level_is_a_lookup_on_the_drawn_array(qtbot, hanging) -> None:
    hanging.state.set_views(_views())
    pane = hanging.panes["LCC"]
    drawn, shown = pane.image_item.image, pane.shown
    hanging.set_window(hanging.window.dragged(80, -30))
    assert pane.image_item.image is drawn and pane.shown is shown, "nothing re-cropped or re-converted"
    lo, hi = hanging.window.levels()
    assert pane.levels == pytest.approx((lo * DISPLAY_MAX, hi * DISPLAY_MAX))
    hanging.grab()
    # What is drawn: the drawn array through the window's lookup, as grey pixels.
    expected = np.clip((drawn / DISPLAY_MAX - lo) / (hi - lo), 0, 1) * 255
    grey = pane.image_item._grey
    assert np.abs((grey & 0xFF).astype(float) - expected).max() <= 1.0
    assert np.array_equal(grey & 0xFF, (grey >> 8) & 0xFF), "grey: equal channels"


def test_magnifier_shows_native_pixels_at_a_fitted_view(qtbot, hanging) -> None:
    hanging.state.set_views(_views())
    hanging.set_magnifier(True)
    pane = hanging.panes["RMLO"]
    assert pane.shown.level > 0
    centre = QPointF(COLS / 2, ROWS / 2)
    pane._on_mouse_moved(pane.vb.mapViewToScene(pane.canvas.mapToParent(centre)))
    mag = pane.magnifier
    assert mag.isVisible()
    r0, r1, c0, c1 = mag.crop
    assert np.array_equal(mag.item.image, to_display(pane.view.pixels[r0:r1, c0:c1]))
    assert r0 <= ROWS / 2 <= r1 and c0 <= COLS / 2 <= c1
    assert mag.vb.viewPixelSize()[0] <= 1.0 + 1e-6, "at least one screen pixel per native pixel"
    # Zoomed in, it magnifies 3x the pane.
    pane.vb.scaleBy((0.1, 0.1))
    pane._on_mouse_moved(pane.vb.mapViewToScene(pane.canvas.mapToParent(centre)))
    ratio = pane.vb.viewPixelSize()[0] / mag.vb.viewPixelSize()[0]
    assert ratio == pytest.approx(3.0, rel=0.05)


def test_current_and_prior_side_by_side_with_shared_zoom_and_window(qtbot, hanging) -> None:
    state = hanging.state
    state.set_views(_views())
    state.set_prior_views(_views(rows=2000, cols=1300))
    hanging.toggle_layout()
    assert hanging.layout_name == "compare"
    assert all(hanging.panes[k].isVisible() for k in COMPARE_LAYOUT)
    assert hanging.panes[PRIOR + "RCC"].mirrored and not hanging.panes[PRIOR + "LCC"].mirrored
    # Same view side by side: the prior's pane is the current one's neighbour in the grid.
    for key in ("RCC", "LCC", "RMLO", "LMLO"):
        (r1, c1), (r2, c2) = COMPARE_LAYOUT[key], COMPARE_LAYOUT[PRIOR + key]
        assert r1 == r2 and abs(c1 - c2) == 1
    hanging.panes["LCC"].vb.scaleBy((0.3, 0.3))
    hanging.panes["LCC"].vb.translateBy(x=50, y=40)
    ref = hanging.panes["LCC"].canonical_rect()
    other = hanging.panes[PRIOR + "RCC"].canonical_rect()
    assert (other.left(), other.top(), other.width()) == pytest.approx((ref.left(), ref.top(), ref.width()), abs=1)
    hanging.set_preset("High contrast")
    assert hanging.panes[PRIOR + "LMLO"].levels == hanging.panes["LMLO"].levels
    hanging.toggle_layout()
    assert not hanging.panes[PRIOR + "RCC"].isVisible() and hanging.panes["RCC"].isVisible()


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm", encoding="utf-8") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_plateaus_over_thirty_real_size_studies(qtbot, window, monkeypatch) -> None:
    """30 studies of 3062 x 2394 (a GE detector's size; one view each to keep the test cheap)
    opened one after the other through the real study loader: resident memory stays flat."""
    from mama_core.dicom import Study
    from mama_desktop import engine

    def read(path):
        key = Path(path).stem.split("-")[1]
        image = _image(key[0], key[1:], rows=3062, cols=2394, seed=None)
        return image

    monkeypatch.setattr(engine, "read_image", read)
    monkeypatch.setattr(engine, "tags_for_display", lambda path: [])
    studies = [Study(uid=f"1.{i}", patient_id=f"p{i}", date="20200101",
                     images={"LCC": Path(f"/nowhere/{i}-LCC.dcm")})
               for i in range(30)]
    window.state.set_studies(studies)
    samples = []
    for i, study in enumerate(studies):
        window.open_study(study.uid)
        qtbot.waitUntil(lambda: len(window.state.views) == 1, timeout=20000)
        gc.collect()
        samples.append(_rss_mb())
    per_study = 3062 * 2394 * 4 / 2**20  # the float pixels alone: 28 MB
    growth = max(samples[10:]) - max(samples[:10])
    print(f"RSS after study 5: {samples[5]:.0f} MB, max after 10: {max(samples[10:]):.0f} MB")
    assert growth < 0.5 * per_study, f"memory grows by {growth:.0f} MB over 25 studies"
    assert max(samples) - min(samples) < 3 * per_study
