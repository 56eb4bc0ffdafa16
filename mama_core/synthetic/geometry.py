"""Breast outline, skin line and pectoral muscle in canonical image coordinates.

Canonical means the chest wall lies along column 0 (the orientation readers produce); the
renderer mirrors right-side images afterwards so they are stored as a modality stores
them. Geometry is kept in fractions of the image size so one spec renders at any `rows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ASPECT = 0.8125  # columns / rows, e.g. 2048 x 1664 (a 24 x 30 cm style detector)
FIELD_MM = 204.8  # image height in mm: 0.1 mm pixels at 2048 rows


def image_shape(rows: int) -> tuple[int, int]:
    cols = 2 * round(rows * ASPECT / 2)
    return rows, cols


def pixel_spacing_mm(rows: int) -> float:
    return FIELD_MM / rows


@dataclass(frozen=True)
class BreastGeometry:
    """A half-ellipse outline from the chest wall: the nipple sits at column `depth * W`
    on the axis row `centre * H + droop * x`. All lengths are fractions of H (rows) or W
    (columns)."""

    centre: float  # axis row at the chest wall, fraction of H
    half_height: float  # fraction of H
    depth: float  # nipple to chest wall, fraction of W
    droop: float  # axis slope in rows per column (MLO breasts sag towards the feet)
    skew: float  # outline asymmetry
    pectoral_width: float = 0.0  # along the top edge, fraction of W (0: no muscle, as on CC)
    pectoral_height: float = 0.0  # along the chest wall, fraction of H


def _cc(rng: np.random.Generator, depth: float, size: float) -> BreastGeometry:
    return BreastGeometry(
        centre=float(rng.uniform(0.47, 0.53)), half_height=0.40 * size, depth=depth,
        droop=0.0, skew=float(rng.uniform(-0.12, 0.12)),
    )


def _mlo(rng: np.random.Generator, depth: float, size: float) -> BreastGeometry:
    centre = float(rng.uniform(0.40, 0.46))
    half_height = float(rng.uniform(0.50, 0.56)) * min(1.0, size + 0.05)
    # Width of the outline where it crosses the top edge: the muscle must stay inside it.
    top = depth * np.sqrt(max(0.0, 1.0 - (centre / half_height) ** 2))
    return BreastGeometry(
        centre=centre, half_height=half_height, depth=depth, droop=float(rng.uniform(0.04, 0.12)),
        skew=float(rng.uniform(-0.08, 0.08)), pectoral_width=float(rng.uniform(0.45, 0.75)) * top,
        pectoral_height=float(rng.uniform(0.32, 0.48)),
    )


def sample_side_geometry(rng: np.random.Generator) -> dict[str, BreastGeometry]:
    """Geometry of the four views: both sides share a breast size (small jitter); the MLO
    shows a little more depth than the CC, as the oblique view includes more posterior tissue."""
    size = float(rng.uniform(0.85, 1.1))
    base_depth = float(rng.uniform(0.55, 0.75))
    out: dict[str, BreastGeometry] = {}
    for side in ("R", "L"):
        depth = float(np.clip(base_depth * rng.uniform(0.96, 1.04), 0.45, 0.8))
        out[f"{side}CC"] = _cc(rng, depth, size)
        out[f"{side}MLO"] = _mlo(rng, min(0.9, depth * float(rng.uniform(1.0, 1.1))), size)
    return out


def outline_coords(g: BreastGeometry, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray):
    """(u, v, r) on a grid: u = depth fraction (0 chest wall, 1 nipple), v = signed position
    across the breast, r = normalised radius (r < 1 inside, r = 1 on the skin line).
    `ys` [n, 1] and `xs` [1, m] are canonical pixel coordinates of the full-size image."""
    h, w = shape
    u = xs / np.float32(g.depth * w)
    v = (ys - np.float32(g.centre * h) - np.float32(g.droop) * xs) / np.float32(g.half_height * h)
    r = np.sqrt(u * u + v * v) * (1.0 + np.float32(g.skew) * u * v)
    return np.broadcast_to(u, r.shape), v, r.astype(np.float32, copy=False)


def pectoral_level(g: BreastGeometry, shape: tuple[int, int], ys, xs, soft_px: float) -> np.ndarray | None:
    """0..1 coverage of the pectoral muscle: a wedge on the chest-wall side of the top edge
    with a slightly convex front (MLO only)."""
    if g.pectoral_width <= 0:
        return None
    h, w = shape
    a = xs / np.float32(g.pectoral_width * w)
    b = ys / np.float32(g.pectoral_height * h)
    s = a + b - 0.25 * a * b  # < 1 inside; the cross term bows the front outwards
    scale = np.float32(min(g.pectoral_width * w, g.pectoral_height * h) / max(soft_px, 1e-3))
    return np.clip((1.0 - s) * scale, 0.0, 1.0)


def inside_pectoral(g: BreastGeometry, shape: tuple[int, int], y: float, x: float, margin_px: float) -> bool:
    if g.pectoral_width <= 0:
        return False
    h, w = shape
    pw, ph = g.pectoral_width * w + margin_px, g.pectoral_height * h + margin_px
    a, b = x / pw, y / ph
    return bool(a + b - 0.25 * a * b < 1.0)


def place_lesion(
    g: BreastGeometry, shape: tuple[int, int], distance_px: float, offset: float, extent_px: float
) -> tuple[float, float]:
    """Centre (row, col) of a lesion `distance_px` behind the nipple, `offset` (-1..1) across
    the breast; pulled towards the axis until it clears the skin and the pectoral muscle."""
    h, w = shape
    rx = g.depth * w
    x = float(np.clip(rx - distance_px, extent_px + 2.0, rx - extent_px))
    half = g.half_height * h * np.sqrt(max(0.0, 1.0 - (x / rx) ** 2))
    axis = g.centre * h + g.droop * x
    for scale in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0, -0.3, -0.6):
        y = float(np.clip(axis + offset * scale * 0.75 * half, extent_px, h - extent_px))
        _, _, r = outline_coords(g, shape, np.float32([[y]]), np.float32([[x]]))
        clear = r[0, 0] + extent_px / max(1.0, min(rx, g.half_height * h)) < 0.95
        if clear and not inside_pectoral(g, shape, y, x, extent_px):
            return y, x
    return float(np.clip(axis + 0.4 * half, extent_px, h - extent_px)), x
