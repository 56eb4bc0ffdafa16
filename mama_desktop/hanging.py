"""The hanging protocol: RCC | LCC over RMLO | LMLO with the chest walls meeting at the centre.

`read_image` returns every image in canonical orientation (chest wall at column 0). Right-side
images are therefore shown mirrored (chest wall at their right edge, next to the centre line)
and left-side images as they are (chest wall at their left edge). The mirror is a QTransform
on the ImageItem, so pixel coordinates under the cursor stay those of `read_image`.

Zoom/pan are synchronised in canonical coordinates (distance from the chest wall), so zooming
into one breast's chest wall zooms into the other breast's chest wall too.

Level of detail: a real mammogram has 10-13 million pixels, a pane a few hundred thousand.
The loading worker builds a pyramid (2x2 means, uint16) once per image; a pane draws the
level whose pixels match its own screen pixels, cropped to the visible region when zoomed in,
and level 0 is the native float image itself. Window/level is pyqtgraph's lookup table
applied to that small drawn array only, so a drag costs the same on 4,000-row images as on
thumbnails. The magnifier always samples native pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from .lesion_overlay import LesionOverlay
from .state import AppState, LoadedView

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

LAYOUT = {"RCC": (0, 0), "LCC": (0, 1), "RMLO": (1, 0), "LMLO": (1, 1)}
PRIOR = "prior:"  # pane keys of the prior study's views: 'prior:RCC', ...
# Current vs prior: each view beside its prior, current views meeting at the centre line and
# every right-side image mirrored alike, so both chest walls of a pair sit on the same side.
COMPARE_LAYOUT = {PRIOR + "RCC": (0, 0), "RCC": (0, 1), "LCC": (0, 2), PRIOR + "LCC": (0, 3),
                  PRIOR + "RMLO": (1, 0), "RMLO": (1, 1), "LMLO": (1, 2), PRIOR + "LMLO": (1, 3)}
EXTRA = "extra"  # the pane that shows one extra view (spot, magnification, ML, ...) alone
LAYOUTS = {"four": LAYOUT, "compare": COMPARE_LAYOUT, "extra": {EXTRA: (0, 0)}}
MIN_LEVEL_SIDE = 256  # the pyramid stops once a level fits in this many pixels
CROP_MARGIN = 0.1  # share of the visible size drawn beyond each edge, so small pans need no new crop
# (0.1 against 0.25: pan/zoom max 53-69 ms against 84-108 ms for 8 views, loaded machine)
WHOLE_LEVEL_SHARE = 0.6  # a crop this large of its level is drawn as the whole level
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
    """float [0, 1] -> uint16, the array pyqtgraph maps through the window's lookup table."""
    return np.round(np.clip(pixels, 0.0, 1.0) * DISPLAY_MAX).astype(np.uint16)


def _half(level: np.ndarray) -> np.ndarray:
    """2x2 block mean (an odd last row/column is dropped), kept as uint16."""
    h, w = (level.shape[0] // 2) * 2, (level.shape[1] // 2) * 2
    blocks = level[:h, :w].astype(np.uint32)
    total = blocks[0::2, 0::2] + blocks[1::2, 0::2] + blocks[0::2, 1::2] + blocks[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint16)


def build_pyramid(pixels: np.ndarray) -> list[np.ndarray]:
    """Display levels 1, 2, ... (each half the previous) as uint16; level 0 is `pixels`.
    Runs in the loading worker. Level k pixel (r, c) covers native rows r*2^k .. (r+1)*2^k."""
    levels: list[np.ndarray] = []
    h, w = pixels.shape
    if max(h, w) <= MIN_LEVEL_SIDE:
        return levels
    first = pixels[: (h // 2) * 2, : (w // 2) * 2]
    mean = first[0::2, 0::2] + first[1::2, 0::2]  # one temporary, summed into in place
    mean += first[0::2, 1::2]
    mean += first[1::2, 1::2]
    mean *= 0.25 * DISPLAY_MAX
    np.clip(mean, 0.0, DISPLAY_MAX, out=mean)
    levels.append(np.rint(mean, out=mean).astype(np.uint16))
    while max(levels[-1].shape) > MIN_LEVEL_SIDE and min(levels[-1].shape) >= 4:
        levels.append(_half(levels[-1]))
    return levels


@dataclass(frozen=True)
class Shown:
    """What a pane draws: pyramid level and the crop in that level's pixels."""

    level: int
    r0: int
    r1: int
    c0: int
    c1: int

    def native_rect(self) -> QRectF:
        f = 2 ** self.level
        return QRectF(self.c0 * f, self.r0 * f, (self.c1 - self.c0) * f, (self.r1 - self.r0) * f)


class PixmapImageItem(pg.ImageItem):
    """An ImageItem that keeps what it draws as a QPixmap, made once per render (a new
    window or crop). pyqtgraph draws its QImage (8-bit indexed for grey) on every paint,
    which Qt converts each time: about 1.6 ms per pane on these CPUs against 0.05 ms for
    a pixmap, and a pan repaints every pane without re-rendering any."""

    smooth = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pixmap: QPixmap | None = None
        self._pixmap_key: int | None = None

    def paint(self, painter, *args):
        if self.image is None:
            return
        if self._renderRequired:
            self.render()
        if self._unrenderable or self.qimage is None:
            return
        if self._pixmap_key != self.qimage.cacheKey():
            self._pixmap = QPixmap.fromImage(self.qimage)
            self._pixmap_key = self.qimage.cacheKey()
        if self.smooth:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        h, w = self.image.shape[:2]
        painter.drawPixmap(QRectF(0, 0, w, h), self._pixmap, QRectF(self._pixmap.rect()))


class GreyImageItem(PixmapImageItem):
    """The image: a uint16 display array through the shared window lookup to grey pixels
    (pyqtgraph would build its own 65,536-entry table per item and per change)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.display_lut = window_lut(Window(), False)
        self._grey: np.ndarray | None = None

    def set_display_lut(self, lut: np.ndarray) -> None:
        self.display_lut = lut
        self._renderRequired = True
        self.update()

    def render(self):
        if self.image is None:
            return
        self._grey = np.take(self.display_lut, self.image)  # a new C-contiguous uint32 array
        h, w = self._grey.shape
        self.qimage = QImage(self._grey.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self._renderRequired = False
        self._unrenderable = False


class SmoothImageItem(PixmapImageItem):
    """Drawn with bilinear filtering: maps come at their own (coarse) grid and are stretched
    over the image smoothly. The grey image stays nearest-neighbour, so zoomed-in pixels are
    the true native pixels."""

    smooth = True


def mirror_transform(width: int) -> QTransform:
    """x -> width - x: column 0 (the chest wall) lands at the right edge."""
    return QTransform(-1.0, 0.0, 0.0, 1.0, float(width), 0.0)


def window_lut(window: Window, invert: bool) -> np.ndarray:
    """uint32[65536]: display value -> opaque grey pixel (0xFFgggggg, Qt's RGB32). Window/level
    and inversion as one lookup, made once per change and shared by every pane, so a drag
    re-renders only the drawn arrays. RGB32 rather than 8-bit grey because Qt turns it into
    a pixmap without a conversion pass (8-bit grey cost about 1 ms more per pane)."""
    lo, hi = window.levels()
    x = np.arange(DISPLAY_MAX + 1, dtype=np.float32) / DISPLAY_MAX
    grey = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0) * 255.0
    if invert:
        grey = 255.0 - grey
    return np.uint32(0xFF000000) | (np.rint(grey).astype(np.uint32) * np.uint32(0x010101))


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
    """A loupe next to the cursor that always shows native pixels: 3x the pane's zoom, and
    at least one screen pixel per image pixel (so at a fitted view it shows the full
    detail that the pane's reduced level cannot)."""

    ZOOM = 3.0
    SIZE = 190

    def __init__(self, parent: QWidget):
        super().__init__(parent, background="#000000")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFixedSize(self.SIZE, self.SIZE)
        self.setStyleSheet("border: 2px solid #6fa8dc;")
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.setCentralItem(self.vb)
        self.canvas = pg.ItemGroup()
        self.vb.addItem(self.canvas)
        self.item = GreyImageItem(axisOrder="row-major")
        self.item.setParentItem(self.canvas)
        self.crop: tuple[int, int, int, int] | None = None  # r0, r1, c0, c1 in native pixels
        self.hide()

    def clear(self) -> None:
        self.item.clear()
        self.crop = None

    def follow(self, pane: "ViewPane", view_pos: QPointF, widget_pos: QPointF) -> None:
        view = pane.view
        if view is None:
            self.hide()
            return
        per_screen = max(self.ZOOM / pane.units_per_screen_pixel(), 1.0)  # screen px per native px
        half = self.SIZE / 2 / per_screen
        self._show_native(pane, view_pos, half)
        self.vb.setRange(QRectF(view_pos.x() - half, view_pos.y() - half, 2 * half, 2 * half), padding=0)
        parent = self.parentWidget()
        x = min(max(0, int(widget_pos.x()) + 20), max(0, parent.width() - self.SIZE))
        y = min(max(0, int(widget_pos.y()) + 20), max(0, parent.height() - self.SIZE))
        self.move(x, y)
        self.show()
        self.raise_()

    def _show_native(self, pane: "ViewPane", view_pos: QPointF, half: float) -> None:
        """Crop native pixels around the cursor (in canonical coordinates)."""
        pixels = pane.view.pixels
        h, w = pixels.shape
        centre = pane.canvas.mapFromParent(view_pos)
        r0, r1 = max(0, int(centre.y() - half) - 1), min(h, int(centre.y() + half) + 2)
        c0, c1 = max(0, int(centre.x() - half) - 1), min(w, int(centre.x() + half) + 2)
        self.canvas.setTransform(pane.canvas.transform())
        if r1 <= r0 or c1 <= c0:
            self.item.clear()
            return
        if self.crop != (r0, r1, c0, c1):
            self.crop = (r0, r1, c0, c1)
            self.item.setImage(to_display(pixels[r0:r1, c0:c1]), autoLevels=False)
            self.item.setRect(QRectF(c0, r0, c1 - c0, r1 - r0))
        if self.item.display_lut is not pane.display_lut:
            self.item.set_display_lut(pane.display_lut)


class ViewPane(QFrame):
    """One view: the image (one pyramid level, cropped to what is visible), a heat map at its
    own resolution above it, labels and a magnifier."""

    hovered = Signal(str, int, int)  # key, row, col (read_image pixel coordinates)
    left = Signal(str)
    doubleClicked = Signal(str)
    rangeChanged = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.view_key = key.removeprefix(PRIOR)
        self.caption = ""  # e.g. the prior's date
        self.view: LoadedView | None = None
        self.mirrored = self.view_key.startswith("R")
        self.magnify = False
        self.levels: tuple[float, float] = (0.0, float(DISPLAY_MAX))  # the window in display units
        self.display_lut = window_lut(Window(), False)
        self.shown: Shown | None = None
        self.setObjectName("ViewPane")
        self.graphics = pg.GraphicsView(background="#000000")
        self.vb = ReadingViewBox()
        self.graphics.setCentralItem(self.vb)
        self.canvas = pg.ItemGroup()
        self.vb.addItem(self.canvas)
        self.image_item = GreyImageItem(axisOrder="row-major")
        self.heat_item = SmoothImageItem(axisOrder="row-major")
        self.heat_item.setZValue(10)
        self.heat_item.hide()
        self.image_item.setParentItem(self.canvas)
        self.heat_item.setParentItem(self.canvas)
        self.outlines = LesionOverlay(self.canvas)  # dataset ground truth, hidden until asked for
        self.outlines.set_visible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)
        self.title = QLabel(self._title_text(None), self.graphics)
        self.title.setObjectName("PaneTitle")
        self.badge = QLabel("", self.graphics)  # 'no match' / 'empty'
        self.badge.setObjectName("PaneBadge")
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # The model's verdict that this image is unlike its training images (docs/inference.md).
        self.ood_badge = QLabel("", self.graphics)
        self.ood_badge.setObjectName("OodBadge")
        self.ood_badge.hide()
        self.magnifier = Magnifier(self.graphics)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_clicked)
        self.vb.sigRangeChanged.connect(self._on_range)
        self.vb.sigResized.connect(lambda *_: self.update_detail())
        self.set_view(None)

    # ----- content -------------------------------------------------------------------------
    def _title_text(self, view: LoadedView | None) -> str:
        side = {"R": "Right", "L": "Left"}.get(self.view_key[:1], "")
        code = self.view_key[1:]
        name = VIEW_NAMES.get(code, code)
        text = f"{self.view_key}  ·  {side} {name}"
        if self.key.startswith(PRIOR):
            text += f"  ·  prior {self.caption}".rstrip()
        return text if view is not None else f"{text}  ·  not in study"

    def set_view(self, view: LoadedView | None) -> None:
        if self.key == EXTRA and view is not None:  # any side and view: hung like its side
            self.view_key, self.mirrored = view.key, view.laterality == "R"
        self.view = view
        self.shown = None
        self.title.setText(self._title_text(view))
        self.heat_item.hide()
        self.heat_item.clear()
        self.magnifier.clear()
        self.outlines.set_lesions(view.lesions if view is not None else [])
        if view is None:
            self.image_item.clear()
            self.set_badge("empty")
            return
        self.canvas.setTransform(mirror_transform(view.pixels.shape[1]) if self.mirrored else QTransform())
        self.set_badge("")
        self.fit()
        self.update_detail(force=True)

    def set_badge(self, text: str) -> None:
        self.badge.setText(text)
        self.badge.setVisible(bool(text))
        self._place_overlays()

    def set_window(self, window: Window, invert: bool, lut: np.ndarray | None = None) -> None:
        """`lut`: the shared window lookup when the caller made it already."""
        lo, hi = window.levels()
        self.levels = (lo * DISPLAY_MAX, hi * DISPLAY_MAX)
        self.display_lut = window_lut(window, invert) if lut is None else lut
        self.image_item.set_display_lut(self.display_lut)
        if self.magnifier.isVisible():
            self.magnifier.item.set_display_lut(self.display_lut)

    def set_heat(self, values: np.ndarray | None, lut: np.ndarray, levels: tuple[float, float], opacity: float) -> None:
        """`values` is the map on its own grid; it is stretched over the whole image."""
        if values is None or self.view is None:
            self.heat_item.hide()
            return
        h, w = self.view.pixels.shape
        self.heat_item.setImage(values, autoLevels=False, levels=levels)
        self.heat_item.setRect(QRectF(0, 0, w, h))
        self.heat_item.setLookupTable(lut)
        self.heat_item.setOpacity(opacity)
        self.heat_item.show()

    # ----- level of detail -----------------------------------------------------------------
    def units_per_screen_pixel(self) -> float:
        size = self.vb.viewPixelSize()
        return float(max(size[0], size[1], 1e-6))

    def wanted_level(self) -> int:
        """The pyramid level whose pixels are closest to the pane's screen pixels."""
        n_levels = 1 + len(self.view.pyramid) if self.view is not None else 1
        return int(np.clip(round(math.log2(self.units_per_screen_pixel())), 0, n_levels - 1))

    def level_array(self, level: int) -> np.ndarray:
        return self.view.pixels if level == 0 else self.view.pyramid[level - 1]

    def visible_native_rect(self) -> QRectF | None:
        rect = self.canonical_rect()
        size = self.image_size()
        if rect is None or size is None:
            return None
        return rect.intersected(QRectF(0, 0, size[1], size[0]))

    def update_detail(self, force: bool = False) -> None:
        """Draw the level matching the zoom, cropped to the visible region plus a margin;
        nothing is redone while the current crop still covers what is visible."""
        if self.view is None or (not force and not self.isVisible()):
            return
        level, visible = self.wanted_level(), self.visible_native_rect()
        if visible is None or visible.isEmpty():
            visible = QRectF(0, 0, self.view.pixels.shape[1], self.view.pixels.shape[0])
        if (not force and self.shown is not None and self.shown.level == level
                and self.shown.native_rect().contains(visible)):
            return
        self._draw(self._crop(level, visible))

    def _crop(self, level: int, visible: QRectF) -> Shown:
        lh, lw = self.level_array(level).shape
        f = 2 ** level
        mx, my = visible.width() * CROP_MARGIN, visible.height() * CROP_MARGIN
        c0 = max(0, int(math.floor((visible.left() - mx) / f)))
        c1 = min(lw, int(math.ceil((visible.right() + mx) / f)))
        r0 = max(0, int(math.floor((visible.top() - my) / f)))
        r1 = min(lh, int(math.ceil((visible.bottom() + my) / f)))
        if (r1 - r0) * (c1 - c0) >= WHOLE_LEVEL_SHARE * lh * lw or r1 <= r0 or c1 <= c0:
            return Shown(level, 0, lh, 0, lw)
        return Shown(level, r0, r1, c0, c1)

    def _draw(self, shown: Shown) -> None:
        data = self.level_array(shown.level)[shown.r0:shown.r1, shown.c0:shown.c1]
        if shown.level == 0:
            data = to_display(data)
        self.shown = shown
        self.image_item.setImage(data, autoLevels=False)
        self.image_item.setRect(shown.native_rect())

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.update_detail()

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
        p = self.canvas.mapFromScene(scene_pos)  # undoes the mirror: array coordinates
        row, col = int(math.floor(p.y())), int(math.floor(p.x()))
        if 0 <= row < size[0] and 0 <= col < size[1]:
            return row, col
        return None

    # ----- events --------------------------------------------------------------------------
    def _on_range(self, *_args) -> None:
        self.update_detail()
        self.rangeChanged.emit(self.key)

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
            self.magnifier.follow(self, view_pos, QPointF(widget_pos))
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
        self.ood_badge.adjustSize()
        # Same outer edge as the title, measured on the badge itself (it is wider).
        bx = 8 if self.mirrored else max(8, self.graphics.width() - self.ood_badge.width() - 8)
        self.ood_badge.move(bx, 6 + self.title.height() + 4)
        self.badge.adjustSize()
        self.badge.move(
            max(0, (self.graphics.width() - self.badge.width()) // 2),
            max(0, (self.graphics.height() - self.badge.height()) // 2),
        )

    def set_ood(self, verdict) -> None:
        """Show the out-of-distribution verdict (inference.ood.OODResult) of this pane's image."""
        flagged = verdict is not None and verdict.flagged
        self.ood_badge.setText("⚠ outside this model's experience" if flagged else "")
        self.ood_badge.setToolTip(f"out-of-distribution score {verdict.score:.3f} > threshold {verdict.threshold:.3f}: "
                                  "predictions and maps for this image are unreliable" if flagged else "")
        self.ood_badge.setVisible(bool(flagged))
        self._place_overlays()

    def set_highlight(self, on: bool) -> None:
        self.setProperty("highlight", on)
        self.style().unpolish(self)
        self.style().polish(self)


class HangingProtocol(QWidget):
    """The panes plus the shared reading state: window/level, invert, sync, magnifier.

    Two layouts: the four screening views, and current vs prior (each view beside the same
    view of the prior study). Zoom/pan and window/level are shared by every visible pane."""

    hoverText = Signal(str)
    hoveredView = Signal(str)  # key of the pane under the cursor ('' when none)
    windowChanged = Signal(object)  # Window
    layoutChanged = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.window = WINDOW_PRESETS["Default"]
        self.invert = False
        self.sync = True
        self.maximised: str | None = None
        self.layout_name = "four"
        self._reading_layout = "four"  # the layout an extra view returns to
        self._syncing = False
        self.map_values: dict[str, np.ndarray | None] = {}
        self.map_sample: Callable[[str, int, int], float] | None = None
        self.panes: dict[str, ViewPane] = {}
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        for key in [*COMPARE_LAYOUT, EXTRA]:
            pane = ViewPane(key, self)
            pane.hovered.connect(self._on_hover)
            pane.left.connect(lambda _k: self.hoverText.emit(""))
            pane.doubleClicked.connect(self.toggle_maximise)
            pane.rangeChanged.connect(self._on_range_changed)
            pane.vb.windowDrag.connect(self._on_window_drag)
            self.panes[key] = pane
        self._arrange()
        state.studyChanged.connect(lambda _s: self.show_views({}))
        state.viewsChanged.connect(self.show_views)
        state.priorViewsChanged.connect(lambda views: self.show_prior(views, self._prior_caption()))
        state.predictionChanged.connect(lambda p: self.show_ood(p, prior=False))
        state.priorPredictionChanged.connect(lambda p: self.show_ood(p, prior=True))
        state.focusViewChanged.connect(self.highlight)

    # ----- layouts -------------------------------------------------------------------------
    def active_keys(self) -> list[str]:
        return list(LAYOUTS[self.layout_name])

    def _arrange(self) -> None:
        for pane in self.panes.values():
            self.grid.removeWidget(pane)
        layout = LAYOUTS[self.layout_name]
        for key, pane in self.panes.items():
            if key in layout:
                self.grid.addWidget(pane, *layout[key])
            pane.setVisible(key in layout and (self.maximised is None or key == self.maximised))

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}")
        if name != EXTRA:
            self._reading_layout = name
        self.layout_name = name
        self.maximised = None
        self._arrange()
        self.layoutChanged.emit(name)
        self._resync()

    def toggle_layout(self) -> str:
        """Four views <-> current vs prior (from an extra view: back to the reading layout)."""
        if self.layout_name == EXTRA:
            self.set_layout(self._reading_layout)
        else:
            self.set_layout("compare" if self.layout_name == "four" else "four")
        return self.layout_name

    def show_extra(self, view: LoadedView) -> None:
        """One extra view alone (Esc goes back to the reading layout)."""
        pane = self.panes[EXTRA]
        pane.set_window(self.window, self.invert)
        self.set_layout(EXTRA)
        pane.set_view(view)

    # ----- content -------------------------------------------------------------------------
    def show_views(self, views: dict[str, LoadedView]) -> None:
        if self.layout_name == EXTRA:
            self.set_layout(self._reading_layout)
        self._fill({k: p for k, p in self.panes.items() if not k.startswith(PRIOR) and k != EXTRA}, views)
        self.map_values = {k: v for k, v in self.map_values.items() if k.startswith(PRIOR)}
        self.highlight("")

    def _prior_caption(self) -> str:
        date = getattr(self.state.prior, "date", None) or ""
        return f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else date

    def show_prior(self, views: dict[str, LoadedView], caption: str = "") -> None:
        """The prior study's views (keys without the prefix), for the comparison layout."""
        panes = {k: p for k, p in self.panes.items() if k.startswith(PRIOR)}
        for pane in panes.values():
            pane.caption = caption
        self._fill(panes, {PRIOR + k: v for k, v in views.items()})
        self.map_values = {k: v for k, v in self.map_values.items() if not k.startswith(PRIOR)}
        self._resync()

    def _fill(self, panes: dict[str, ViewPane], views: dict[str, LoadedView]) -> None:
        self._syncing = True
        try:
            for key, pane in panes.items():
                pane.set_window(self.window, self.invert)
                pane.set_view(views.get(key))
        finally:
            self._syncing = False

    def show_maps(self, per_view: dict[str, np.ndarray | None], lut: np.ndarray, levels: tuple[float, float],
                  opacity: float, badges: dict[str, str], sample: Callable[[str, int, int], float] | None = None) -> None:
        """Heat maps per pane key (current 'RCC', prior 'prior:RCC'; None or absent hides one),
        each on its own grid, and per-pane badges such as 'no match'. `sample(key, row, col)`
        gives the native-pixel value under the cursor."""
        self.map_values = {k: v for k, v in per_view.items() if v is not None}
        self.map_sample = sample
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
        lut = window_lut(window, self.invert)
        for pane in self.panes.values():
            pane.set_window(window, self.invert, lut)
        self.windowChanged.emit(window)

    def set_preset(self, name: str) -> None:
        self.set_window(WINDOW_PRESETS[name])

    def cycle_preset(self) -> str:
        names = list(WINDOW_PRESETS)
        current = next((n for n, w in WINDOW_PRESETS.items() if w == self.window), None)
        name = names[(names.index(current) + 1) % len(names)] if current else names[0]
        self.set_preset(name)
        return name

    def show_ood(self, prediction, prior: bool) -> None:
        """Badge every pane whose image the model flags as out of distribution."""
        for key, pane in self.panes.items():
            if key == EXTRA or key.startswith(PRIOR) != prior:
                continue
            view = getattr(prediction, "views", {}).get(pane.view_key) if prediction is not None else None
            pane.set_ood(getattr(view, "ood", None))

    def set_outlines(self, on: bool) -> None:
        """Show the annotated lesions of public datasets (ground truth) on every pane."""
        for pane in self.panes.values():
            pane.outlines.set_visible(on)

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
        """Default window, no inversion, fitted, all panes of the layout shown."""
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
        return next((self.panes[k] for k in self.active_keys() if self.panes[k].view is not None), None)

    def _resync(self) -> None:
        pane = self._reference_pane()
        if pane is not None and self.sync:
            self._on_range_changed(pane.key)

    def _on_range_changed(self, key: str) -> None:
        if self._syncing or not self.sync or key == EXTRA:  # an extra view has no partner
            return
        rect = self.panes[key].canonical_rect()
        if rect is None:
            return
        self._syncing = True
        try:
            for other, pane in self.panes.items():
                if other not in (key, EXTRA):
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
        self._arrange()

    def restore(self) -> None:
        self.maximised = None
        if self.layout_name == EXTRA:
            self.set_layout(self._reading_layout)
        self._arrange()

    # ----- cursor readout --------------------------------------------------------------------
    def _on_hover(self, key: str, row: int, col: int) -> None:
        view = self.panes[key].view
        # The extra pane shows one of the study's views: name that view (for the tag panel).
        self.hoveredView.emit(view.key if key == EXTRA and view is not None else key)
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
        if self.map_values.get(key) is not None and self.map_sample is not None:
            text += f"  ·  similarity {self.map_sample(key, row, col):+.3f}"
        return text
