"""Outlines of annotated lesions (dataset ground truth) over a view's image, with a toggle.

Lesions come from `mama_core.datasets.lesions_for_image(path)` in stored pixels; move them into
the canonical frame first (`Lesion.to_canonical(width, flipped)`, the frame of the view's
pixels).  The overlay draws them in that frame as children of one group. Two ways to place it:
- over an item whose own coordinates are the native canonical pixels (the reading panes'
  canvas, which carries the right-breast mirror): `LesionOverlay(canvas)`; nothing to copy;
- over a bare ViewBox + ImageItem: `LesionOverlay(view_box, image_item)` copies the image item's
  transform (a mirror, or a downsampled display image) — call `set_lesions` again after the
  item has a new image.
Outlines are cosmetic pens: one screen pixel wide at any zoom.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QTransform


# One colour per lesion kind (mama_core.datasets.LESION_KINDS); chosen to stay apart from the
# grey image and from the heat-map colour maps' hues at their maxima.
KIND_COLOURS = {
    "mass": (255, 80, 80),
    "calcification": (255, 220, 40),
    "asymmetry": (60, 220, 255),
    "distortion": (230, 110, 255),
    "other": (235, 235, 235),
}
OVERLAY_Z = 20  # above the image (0) and the sentence heat map (10)
CIRCLE_SEGMENTS = 72


def outline_points(lesion: Any) -> tuple[np.ndarray, np.ndarray]:
    """Closed outline of a lesion (x, y arrays, first point repeated at the end)."""
    if lesion.shape == "polygon":
        points = list(lesion.polygon) + [lesion.polygon[0]]
        xs, ys = zip(*points)
        return np.asarray(xs, float), np.asarray(ys, float)
    if lesion.shape == "circle":
        cx, cy, r = lesion.circle
        angles = np.linspace(0.0, 2.0 * math.pi, CIRCLE_SEGMENTS + 1)
        return cx + r * np.cos(angles), cy + r * np.sin(angles)
    x0, y0, x1, y1 = lesion.box
    return np.array([x0, x1, x1, x0, x0], float), np.array([y0, y0, y1, y1, y0], float)


class LesionOverlay:
    """Lesion outlines over one ImageItem in one ViewBox."""

    def __init__(self, parent: pg.ViewBox | pg.GraphicsObject, image_item: pg.ImageItem | None = None,
                 width: float = 2.0, labels: bool = True):
        self.view_box = parent if isinstance(parent, pg.ViewBox) else None
        self.image_item = image_item
        self.width = width
        self.show_labels = labels
        self.group = pg.ItemGroup()
        self.group.setZValue(OVERLAY_Z)
        if self.view_box is not None:
            self.view_box.addItem(self.group, ignoreBounds=True)  # outlines never change the auto-range
        else:
            self.group.setParentItem(parent)  # the parent's coordinates are native canonical pixels
        self.outlines: list[pg.PlotCurveItem] = []
        self.texts: list[pg.TextItem] = []
        self._visible = True

    # ---- content ------------------------------------------------------------------------
    def set_lesions(self, lesions: list, native_shape: tuple[int, int] | None = None) -> None:
        """Draw `lesions` (canonical frame). `native_shape` (rows, cols) of the pixels the
        lesions refer to, when the image item shows a resized copy of them."""
        self.clear()
        for lesion in lesions:
            if not lesion.canonical:
                raise ValueError("lesions must be in the canonical frame (Lesion.to_canonical) before drawing")
            colour = KIND_COLOURS.get(lesion.kind, KIND_COLOURS["other"])
            xs, ys = outline_points(lesion)
            curve = pg.PlotCurveItem(xs, ys, pen=pg.mkPen(colour, width=self.width, cosmetic=True))
            curve.setParentItem(self.group)
            self.outlines.append(curve)
            if self.show_labels and lesion.label:
                text = pg.TextItem(lesion.label, color=colour, anchor=(0, 1))
                text.setParentItem(self.group)
                text.setPos(lesion.box[0], lesion.box[1])
                self.texts.append(text)
        self.group.setTransform(self._transform(native_shape))
        self.group.setVisible(self._visible)

    def _transform(self, native_shape: tuple[int, int] | None) -> QTransform:
        """Native canonical pixels -> the image item's pixels, then the item's own transform
        (identity when drawn on a canvas in native pixels)."""
        scale = QTransform()
        if self.image_item is None:
            return scale
        image = self.image_item.image
        if native_shape is not None and image is not None and image.shape[0] and image.shape[1]:
            scale = QTransform.fromScale(image.shape[1] / native_shape[1], image.shape[0] / native_shape[0])
        return scale * self.image_item.transform()

    def clear(self) -> None:
        for item in [*self.outlines, *self.texts]:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self.outlines, self.texts = [], []

    # ---- visibility -----------------------------------------------------------------------
    @property
    def visible(self) -> bool:
        return self._visible

    def set_visible(self, visible: bool) -> None:
        self._visible = bool(visible)
        self.group.setVisible(self._visible)

    def toggle(self) -> bool:
        """Flip visibility; returns the new state (for a checkable action)."""
        self.set_visible(not self._visible)
        return self._visible

    def remove(self) -> None:
        """Take the overlay off its view for good."""
        self.clear()
        if self.view_box is not None:
            self.view_box.removeItem(self.group)
        else:
            self.group.setParentItem(None)
