"""The hanging protocol: RCC | LCC over RMLO | LMLO with the chest walls meeting at the centre.

`read_image` returns every image in canonical orientation (chest wall at column 0). Right-side
images are therefore shown mirrored (chest wall at their right edge, next to the centre line)
and left-side images as they are (chest wall at their left edge). The mirror is a QTransform
on the ImageItem, so pixel coordinates under the cursor stay those of `read_image`.

Zoom/pan are synchronised in canonical coordinates (distance from the chest wall), so zooming
into one breast's chest wall zooms into the other breast's chest wall too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from .state import AppState, LoadedView

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

LAYOUT = {"RCC": (0, 0), "LCC": (0, 1), "RMLO": (1, 0), "LMLO": (1, 1)}
VIEW_NAMES = {"CC": "craniocaudal", "MLO": "mediolateral oblique"}
DISPLAY_MAX = 65535  # pixels are shown as uint16 so pyqtgraph can fold levels into one LUT


@dataclass(frozen=True)
class Window:
    """Window/level in read_image units ([0, 1])."""

    center: float = 0.5
    width: float = 1.0

    def levels(self) -> tuple[float, float]:
        return self.center - self.width / 2, self.center + self.width / 2

    def dragged(self, dx: float, dy: float) -> "Window":
        # Horizontal drag widens/narrows the window, vertical drag moves the level (the usual
        # reading-room convention); exponential in width so it never crosses zero.
        width = float(np.clip(self.width * math.exp(dx * 0.006), 0.01, 4.0))
        center = float(np.clip(self.center - dy * 0.002, -0.5, 1.5))
        return Window(center, width)


WINDOW_PRESETS = {
    "Default": Window(0.5, 1.0),
    "High contrast": Window(0.55, 0.5),
    "Soft": Window(0.5, 1.4),
    "Dense tissue": Window(0.72, 0.45),
}


def to_display(pixels: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint16, done in the loading worker (not on the GUI thread)."""
    return np.round(np.clip(pixels, 0.0, 1.0) * DISPLAY_MAX).astype(np.uint16)


def mirror_transform(width: int) -> QTransform:
    """x -> width - x: column 0 (the chest wall) lands at the right edge."""
    return QTransform(-1.0, 0.0, 0.0, 1.0, float(width), 0.0)


def gray_lut(invert: bool) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8)
    return ramp[::-1].copy() if invert else ramp


class ReadingViewBox(pg.ViewBox):
    """Left-drag pans, wheel zooms, right-drag (or Ctrl+left-drag) adjusts window/level."""

    windowDrag = Signal(float, float)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setBackgroundColor("#000000")

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if ev.button() == Qt.MouseButton.RightButton or (ev.button() == Qt.MouseButton.LeftButton and ctrl):
            ev.accept()
            if not ev.isStart():
                delta = ev.screenPos() - ev.lastScreenPos()
                self.windowDrag.emit(float(delta.x()), float(delta.y()))
            return
        super().mouseDragEvent(ev, axis)


class Magnifier(pg.GraphicsView):
    """A small overlay that shows the neighbourhood of the cursor at 3x the pane's zoom."""

    ZOOM = 3.0
    SIZE = 190

    def __init__(self, parent: QWidget):
        super().__init__(parent, background="#000000")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFixedSize(self.SIZE, self.SIZE)
        self.setStyleSheet("border: 2px solid #6fa8dc;")
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.setCentralItem(self.vb)
        self.item = pg.ImageItem()
        self.vb.addItem(self.item)
        self.hide()

    def follow(self, source: pg.ImageItem, view_pos: QPointF, pixel_size: tuple[float, float],
               widget_pos: QPointF) -> None:
        """Centre on `view_pos`; `pixel_size` is the pane's image units per screen pixel, so
        the magnifier's is a third of it: 3x the pane's current zoom."""
        if source.image is None:
            self.hide()
            return
        if self.item.image is not source.image:
            self.item.setImage(source.image, autoLevels=False, levels=source.levels)
            self.item.setTransform(source.transform())
        self.item.setLevels(source.levels)
        self.item.setLookupTable(source.lut)
        half_w = self.SIZE / 2 * pixel_size[0] / self.ZOOM
        half_h = self.SIZE / 2 * pixel_size[1] / self.ZOOM
        self.vb.setRange(QRectF(view_pos.x() - half_w, view_pos.y() - half_h, 2 * half_w, 2 * half_h), padding=0)
        parent = self.parentWidget()
        x = min(max(0, int(widget_pos.x()) + 20), max(0, parent.width() - self.SIZE))
        y = min(max(0, int(widget_pos.y()) + 20), max(0, parent.height() - self.SIZE))
        self.move(x, y)
        self.show()
        self.raise_()


class ViewPane(QFrame):
    """One view: an image ImageItem, a heat-map ImageItem above it, labels, a magnifier."""

    hovered = Signal(str, int, int)  # key, row, col (read_image pixel coordinates)
    left = Signal(str)
    doubleClicked = Signal(str)
    rangeChanged = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.view: LoadedView | None = None
        self.mirrored = key.startswith("R")
        self.magnify = False
        self.setObjectName("ViewPane")
        self.graphics = pg.GraphicsView(background="#000000")
        self.vb = ReadingViewBox()
        self.graphics.setCentralItem(self.vb)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item.setZValue(10)
        self.heat_item.hide()
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.heat_item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)
        self.title = QLabel(self._title_text(None), self.graphics)
        self.title.setObjectName("PaneTitle")
        self.badge = QLabel("", self.graphics)  # 'no match' / 'empty'
        self.badge.setObjectName("PaneBadge")
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.magnifier = Magnifier(self.graphics)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_clicked)
        self.vb.sigRangeChanged.connect(lambda *_: self.rangeChanged.emit(self.key))
        self.set_view(None)

    # ----- content -------------------------------------------------------------------------
    def _title_text(self, view: LoadedView | None) -> str:
        side = {"R": "Right", "L": "Left"}.get(self.key[0], "")
        code = self.key[1:]
        name = VIEW_NAMES.get(code, code)
        text = f"{self.key}  ·  {side} {name}"
        return text if view is not None else f"{text}  ·  not in study"

    def set_view(self, view: LoadedView | None) -> None:
        self.view = view
        self.title.setText(self._title_text(view))
        self.heat_item.hide()
        self.magnifier.item.clear()
        if view is None:
            self.image_item.clear()
            self.set_badge("empty")
            return
        display = view.display if view.display is not None else to_display(view.pixels)
        self.image_item.setImage(display, autoLevels=False, levels=(0, DISPLAY_MAX))
        width = display.shape[1]
        self.image_item.setTransform(mirror_transform(width) if self.mirrored else QTransform())
        self.heat_item.setTransform(self.image_item.transform())
        self.set_badge("")
        self.fit()

    def set_badge(self, text: str) -> None:
        self.badge.setText(text)
        self.badge.setVisible(bool(text))
        self._place_overlays()

    def set_window(self, window: Window, invert: bool) -> None:
        lo, hi = window.levels()
        self.image_item.setLevels((lo * DISPLAY_MAX, hi * DISPLAY_MAX))
        self.image_item.setLookupTable(gray_lut(invert))

    def set_heat(self, values: np.ndarray | None, lut: np.ndarray, levels: tuple[float, float], opacity: float) -> None:
        if values is None or self.view is None:
            self.heat_item.hide()
            return
        self.heat_item.setImage(values, autoLevels=False, levels=levels)
        self.heat_item.setLookupTable(lut)
        self.heat_item.setOpacity(opacity)
        self.heat_item.show()

    # ----- geometry ------------------------------------------------------------------------
    def image_size(self) -> tuple[int, int] | None:
        if self.view is None:
            return None
        h, w = self.view.pixels.shape
        return int(h), int(w)

    def fit(self) -> None:
        size = self.image_size()
        if size is not None:
            self.vb.setRange(QRectF(0, 0, size[1], size[0]), padding=0.02)

    def canonical_rect(self) -> QRectF | None:
        """The shown region in read_image coordinates (x measured from the chest wall)."""
        size = self.image_size()
        if size is None:
            return None
        (x0, x1), (y0, y1) = self.vb.viewRange()
        if self.mirrored:
            x0, x1 = size[1] - x1, size[1] - x0
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def set_canonical_rect(self, rect: QRectF) -> None:
        size = self.image_size()
        if size is None:
            return
        x0, x1 = rect.left(), rect.right()
        if self.mirrored:
            x0, x1 = size[1] - x1, size[1] - x0
        self.vb.setRange(xRange=(x0, x1), yRange=(rect.top(), rect.bottom()), padding=0)

    def pixel_at_scene(self, scene_pos: QPointF) -> tuple[int, int] | None:
        size = self.image_size()
        if size is None:
            return None
        p = self.image_item.mapFromScene(scene_pos)  # undoes the mirror: array coordinates
        row, col = int(math.floor(p.y())), int(math.floor(p.x()))
        if 0 <= row < size[0] and 0 <= col < size[1]:
            return row, col
        return None

    # ----- events --------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        hit = self.pixel_at_scene(scene_pos)
        if hit is None:
            self.magnifier.hide()
            self.left.emit(self.key)
            return
        self.hovered.emit(self.key, *hit)
        if self.magnify:
            view_pos = self.vb.mapSceneToView(scene_pos)
            widget_pos = self.graphics.mapFromScene(scene_pos)
            self.magnifier.follow(self.image_item, view_pos, tuple(self.vb.viewPixelSize()), QPointF(widget_pos))
        else:
            self.magnifier.hide()

    def _on_clicked(self, ev) -> None:
        if ev.double():
            ev.accept()
            self.doubleClicked.emit(self.key)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.magnifier.hide()
        self.left.emit(self.key)
        super().leaveEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        self.title.adjustSize()
        # Labels sit at the outer edge, away from the centre line where the chest walls meet.
        x = 8 if self.mirrored else max(8, self.graphics.width() - self.title.width() - 8)
        self.title.move(x, 6)
        self.badge.adjustSize()
        self.badge.move(
            max(0, (self.graphics.width() - self.badge.width()) // 2),
            max(0, (self.graphics.height() - self.badge.height()) // 2),
        )

    def set_highlight(self, on: bool) -> None:
        self.setProperty("highlight", on)
        self.style().unpolish(self)
        self.style().polish(self)


class HangingProtocol(QWidget):
    """Four panes plus the shared reading state: window/level, invert, sync, magnifier."""

    hoverText = Signal(str)
    hoveredView = Signal(str)  # key of the pane under the cursor ('' when none)
    windowChanged = Signal(object)  # Window

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.window = WINDOW_PRESETS["Default"]
        self.invert = False
        self.sync = True
        self.maximised: str | None = None
        self._syncing = False
        self.map_values: dict[str, np.ndarray | None] = {}
        self.panes: dict[str, ViewPane] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for key, (r, c) in LAYOUT.items():
            pane = ViewPane(key, self)
            pane.hovered.connect(self._on_hover)
            pane.left.connect(lambda _k: self.hoverText.emit(""))
            pane.doubleClicked.connect(self.toggle_maximise)
            pane.rangeChanged.connect(self._on_range_changed)
            pane.vb.windowDrag.connect(self._on_window_drag)
            grid.addWidget(pane, r, c)
            self.panes[key] = pane
        state.studyChanged.connect(lambda _s: self.show_views({}))
        state.viewsChanged.connect(self.show_views)
        state.focusViewChanged.connect(self.highlight)

    # ----- content -------------------------------------------------------------------------
    def show_views(self, views: dict[str, LoadedView]) -> None:
        self._syncing = True
        try:
            for key, pane in self.panes.items():
                pane.set_view(views.get(key))
                pane.set_window(self.window, self.invert)
        finally:
            self._syncing = False
        self.map_values = {}
        self.highlight("")

    def show_maps(self, per_view: dict[str, np.ndarray | None], lut: np.ndarray, levels: tuple[float, float],
                  opacity: float, badges: dict[str, str]) -> None:
        """Heat maps per view (None hides one) and per-view badges such as 'no match'."""
        self.map_values = dict(per_view)
        for key, pane in self.panes.items():
            pane.set_heat(per_view.get(key), lut, levels, opacity)
            pane.set_badge(badges.get(key, "") if pane.view is not None else "empty")

    def clear_maps(self) -> None:
        self.map_values = {}
        for pane in self.panes.values():
            pane.heat_item.hide()
            pane.set_badge("" if pane.view is not None else "empty")

    def highlight(self, key: str) -> None:
        for k, pane in self.panes.items():
            pane.set_highlight(k == key)

    # ----- window/level --------------------------------------------------------------------
    def set_window(self, window: Window) -> None:
        self.window = window
        for pane in self.panes.values():
            pane.set_window(window, self.invert)
        self.windowChanged.emit(window)

    def set_preset(self, name: str) -> None:
        self.set_window(WINDOW_PRESETS[name])

    def cycle_preset(self) -> str:
        names = list(WINDOW_PRESETS)
        current = next((n for n, w in WINDOW_PRESETS.items() if w == self.window), None)
        name = names[(names.index(current) + 1) % len(names)] if current else names[0]
        self.set_preset(name)
        return name

    def set_invert(self, on: bool) -> None:
        self.invert = on
        self.set_window(self.window)

    def _on_window_drag(self, dx: float, dy: float) -> None:
        self.set_window(self.window.dragged(dx, dy))

    # ----- zoom / pan ------------------------------------------------------------------------
    def set_sync(self, on: bool) -> None:
        self.sync = on

    def set_magnifier(self, on: bool) -> None:
        for pane in self.panes.values():
            pane.magnify = on
            if not on:
                pane.magnifier.hide()

    def fit(self) -> None:
        self._syncing = True
        try:
            for pane in self.panes.values():
                pane.fit()
        finally:
            self._syncing = False

    def reset(self) -> None:
        """Default window, no inversion, fitted, all four panes shown."""
        self.invert = False
        self.set_window(WINDOW_PRESETS["Default"])
        self.restore()
        self.fit()

    def zoom(self, factor: float) -> None:
        """Zoom every pane about its centre (keyboard +/-); sync keeps them together."""
        pane = self._reference_pane()
        if pane is not None:
            pane.vb.scaleBy((1 / factor, 1 / factor))

    def _reference_pane(self) -> ViewPane | None:
        if self.maximised:
            return self.panes[self.maximised]
        return next((p for p in self.panes.values() if p.view is not None), None)

    def _on_range_changed(self, key: str) -> None:
        if self._syncing or not self.sync:
            return
        rect = self.panes[key].canonical_rect()
        if rect is None:
            return
        self._syncing = True
        try:
            for other, pane in self.panes.items():
                if other != key:
                    pane.set_canonical_rect(rect)
        finally:
            self._syncing = False

    # ----- maximise --------------------------------------------------------------------------
    def toggle_maximise(self, key: str) -> None:
        if self.maximised is not None:
            self.restore()
        else:
            self.maximise(key)

    def maximise(self, key: str) -> None:
        self.maximised = key
        for k, pane in self.panes.items():
            pane.setVisible(k == key)

    def restore(self) -> None:
        self.maximised = None
        for pane in self.panes.values():
            pane.setVisible(True)

    # ----- cursor readout --------------------------------------------------------------------
    def _on_hover(self, key: str, row: int, col: int) -> None:
        self.hoveredView.emit(key)
        self.hoverText.emit(self.describe(key, row, col))

    def describe(self, key: str, row: int, col: int) -> str:
        view = self.panes[key].view
        if view is None:
            return ""
        value = float(view.pixels[row, col])
        text = f"{key}  row {row}  col {col}  value {value:.3f}"
        spacing = getattr(view.image, "pixel_spacing_mm", None)
        if spacing:
            text += f"  ·  {row * spacing[0]:.1f} mm down, {col * spacing[1]:.1f} mm from chest wall"
        heat = self.map_values.get(key)
        if heat is not None and heat.shape == view.pixels.shape:
            text += f"  ·  similarity {float(heat[row, col]):+.3f}"
        return text
