"""The desktop's lesion outline overlay on a bare pyqtgraph ViewBox (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QTransform

from mama_core.datasets import Lesion
from mama_desktop.lesion_overlay import LesionOverlay, outline_points

WIDTH, HEIGHT = 80, 100


def view_rect(vb, curve) -> tuple[float, float, float, float]:
    """The extent of a curve's points in the ViewBox's coordinates (x0, y0, x1, y1)."""
    xs, ys = curve.getData()
    points = [vb.mapFromItemToView(curve, QPointF(float(x), float(y))) for x, y in zip(xs, ys)]
    px, py = [p.x() for p in points], [p.y() for p in points]
    return (min(px), min(py), max(px), max(py))


@pytest.fixture
def view(qtbot):
    pg.setConfigOptions(imageAxisOrder="row-major")
    widget = pg.GraphicsView()
    vb = pg.ViewBox()
    widget.setCentralItem(vb)
    image = pg.ImageItem(axisOrder="row-major")
    image.setImage(np.zeros((HEIGHT, WIDTH), np.float32))
    vb.addItem(image)
    qtbot.addWidget(widget)
    yield vb, image
    widget.close()  # the widget (held here) owns the ViewBox


LESIONS = [
    Lesion(kind="mass", box=(10.0, 20.0, 30.0, 50.0), label="Mass"),
    Lesion(kind="calcification", box=(56.0, 6.0, 64.0, 14.0), circle=(60.0, 10.0, 4.0), label="CALC B"),
    Lesion(kind="asymmetry", box=(5.0, 60.0, 25.0, 90.0), polygon=((5.0, 60.0), (25.0, 70.0), (15.0, 90.0))),
]


def test_outlines_sit_on_the_image_and_follow_its_mirror(view):
    vb, image = view
    overlay = LesionOverlay(vb, image)
    overlay.set_lesions([les.to_canonical(WIDTH, flipped=False) for les in LESIONS])
    assert len(overlay.outlines) == 3 and len(overlay.texts) == 2  # the polygon has no label
    mass, calc, poly = (view_rect(vb, c) for c in overlay.outlines)
    assert mass == pytest.approx((10.0, 20.0, 30.0, 50.0))
    assert calc == pytest.approx((56.0, 6.0, 64.0, 14.0), abs=0.01)
    assert poly == pytest.approx((5.0, 60.0, 25.0, 90.0))
    # a pane that shows a right breast mirrored: the outlines are mirrored with the image
    image.setTransform(QTransform(-1.0, 0.0, 0.0, 1.0, float(WIDTH), 0.0))
    overlay.set_lesions([les.to_canonical(WIDTH, flipped=False) for les in LESIONS])
    assert view_rect(vb, overlay.outlines[1]) == pytest.approx((WIDTH - 64.0, 6.0, WIDTH - 56.0, 14.0), abs=0.01)


def test_downsampled_display_and_toggle(view):
    vb, image = view
    overlay = LesionOverlay(vb, image, labels=False)
    # the lesions refer to a native image twice the displayed one
    overlay.set_lesions([LESIONS[1].to_canonical(2 * WIDTH, flipped=True)], native_shape=(2 * HEIGHT, 2 * WIDTH))
    # mirrored into the canonical frame: centre x 160 - 60 = 100 native -> 50 displayed
    assert view_rect(vb, overlay.outlines[0]) == pytest.approx((48.0, 3.0, 52.0, 7.0), abs=0.01)
    assert overlay.texts == []
    assert overlay.group.isVisible()
    assert overlay.toggle() is False and not overlay.group.isVisible() and not overlay.outlines[0].isVisible()
    overlay.set_lesions([LESIONS[0].to_canonical(WIDTH, False)])  # a new image keeps the user's choice
    assert not overlay.group.isVisible()
    overlay.set_visible(True)
    assert overlay.outlines[0].isVisible()
    overlay.remove()
    assert overlay.group.scene() is None


def test_stored_frame_lesions_are_refused(view):
    vb, image = view
    with pytest.raises(ValueError, match="canonical"):
        LesionOverlay(vb, image).set_lesions([LESIONS[0]])


def test_outline_shapes():
    xs, ys = outline_points(LESIONS[0])
    assert list(zip(xs, ys)) == [(10, 20), (30, 20), (30, 50), (10, 50), (10, 20)]
    xs, ys = outline_points(LESIONS[1])
    assert np.allclose(np.hypot(xs - 60, ys - 10), 4.0) and np.allclose((xs[0], ys[0]), (xs[-1], ys[-1]))
