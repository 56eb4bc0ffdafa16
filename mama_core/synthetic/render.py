"""Render one view of a synthetic study into stored 12-bit pixels plus lesion boxes.

Everything is drawn in canonical coordinates (chest wall at column 0); right-side images
are then mirrored so they are stored as a modality stores them, chest wall on the right
edge, and boxes are reported in the coordinates of that stored array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mama_core.synthetic import lesions, texture
from mama_core.synthetic.geometry import (
    BreastGeometry,
    image_shape,
    outline_coords,
    pectoral_level,
    pixel_spacing_mm,
    place_lesion,
)
from mama_core.synthetic.spec import IMAGE_KEYS, Finding, StudySpec, study_rng

BITS_STORED = 12
MAX_VALUE = 2**BITS_STORED - 1
BACKGROUND = 0.012  # display-scale level of the air around the breast
FAT = 0.30  # fatty tissue under full compression
GLAND_GAIN = 0.28  # extra brightness of fully dense fibroglandular tissue
SKIN = 0.10
PECTORAL = 0.24
NOISE_DN = 22.0  # quantum noise, stored values


@dataclass(frozen=True)
class LesionBox:
    kind: str  # 'mass' | 'calcification'
    shape: str
    box: tuple[int, int, int, int]  # [x0, y0, x1, y1] in stored-array pixels, x1/y1 exclusive
    finding: int  # index into StudySpec.findings
    size_mm: float


@dataclass(frozen=True)
class RenderedView:
    key: str  # 'RCC', 'LMLO', ...
    pixels: np.ndarray  # uint16 [rows, cols], stored orientation
    lesions: tuple[LesionBox, ...]
    spacing_mm: float


def _grids(shape: tuple[int, int], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (in full-size pixels) of a grid sampled every `step` pixels."""
    ny, nx = -(-shape[0] // step), -(-shape[1] // step)
    ys = ((np.arange(ny, dtype=np.float32) + 0.5) * step - 0.5)[:, None]
    xs = ((np.arange(nx, dtype=np.float32) + 0.5) * step - 0.5)[None, :]
    return ys, xs


def _tissue(g: BreastGeometry, shape, spacing: float, fraction: float, rng) -> np.ndarray:
    """Fibroglandular map at full size, made on the coarse grid and upsampled."""
    step = texture.coarse_factor(spacing)
    ys, xs = _grids(shape, step)
    u, v, r = outline_coords(g, shape, ys, xs)
    coarse = texture.dense_map(rng, u, v, r < 0.97, fraction)
    return texture.upsample(coarse, shape, step)


def _profiles(g: BreastGeometry, shape, spacing: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Look-up tables over the normalised radius r: (tissue weight, skin term, bins per unit r).

    Tissue weight = outline coverage (1-pixel antialiasing) x thickness roll-off over the last
    ~12 mm; skin = a thin bright band inside the outline. Both depend on r alone, so a table
    replaces a dozen full-image passes."""
    depth_px = g.depth * shape[1]
    depth_mm = depth_px * spacing
    bins = int(8 * max(depth_px, g.half_height * shape[0]))
    inner = 1.0 - (np.arange(bins + 2, dtype=np.float64) + 0.5) / bins
    coverage = np.clip(inner * depth_px, 0.0, 1.0)
    thick = np.sqrt(np.clip(inner * depth_mm / 12.0, 0.0, 1.0))
    half_skin = 0.5 * 1.8 / depth_mm
    skin = np.clip(1.0 - np.abs(inner - half_skin) / half_skin, 0.0, 1.0)
    return (coverage * thick).astype(np.float32), (coverage * skin * SKIN).astype(np.float32), float(bins)


def _add_pectoral(image: np.ndarray, tissue: np.ndarray, g: BreastGeometry, spacing: float) -> None:
    """MLO only: the muscle wedge, computed in the top chest-wall corner that can hold it."""
    if g.pectoral_width <= 0:
        return
    shape = image.shape
    h = min(shape[0], int(np.ceil(g.pectoral_height * shape[0])) + 2)
    w = min(shape[1], int(np.ceil(g.pectoral_width * shape[1])) + 2)
    ys, xs = _grids(shape)
    muscle = pectoral_level(g, shape, ys[:h], xs[:, :w], soft_px=1.0 / spacing)
    tissue[:h, :w] *= 1.0 - np.float32(0.8) * muscle  # glands lie in front of the muscle, not over it
    image[:h, :w] += np.float32(PECTORAL) * muscle


def _anatomy(g: BreastGeometry, shape, spacing: float, spec: StudySpec, rng) -> tuple[np.ndarray, np.ndarray]:
    """(display-scale image, breast coverage 0..1) without findings: outline with a thinner
    periphery, skin line, glandular tissue and, on MLO, the pectoral muscle."""
    ys, xs = _grids(shape)
    _, _, r = outline_coords(g, shape, ys, xs)
    weight_lut, skin_lut, bins = _profiles(g, shape, spacing)
    index = np.minimum(r * np.float32(bins), np.float32(bins + 1)).astype(np.intp)
    weight, skin = weight_lut[index], skin_lut[index]
    coverage = np.clip((1.0 - r) * np.float32(g.depth * shape[1]), 0.0, 1.0)
    tissue = _tissue(g, shape, spacing, spec.dense_fraction, rng)
    muscle = np.zeros_like(skin)
    _add_pectoral(muscle, tissue, g, spacing)
    # image = background + weight * (fat + gain * tissue) + skin + muscle, in place.
    tissue *= np.float32(GLAND_GAIN)
    tissue += np.float32(FAT + spec.brightness - BACKGROUND)
    tissue *= weight
    tissue += skin
    muscle *= coverage
    tissue += muscle
    tissue += np.float32(BACKGROUND)
    return tissue, coverage


def _side_depth_mm(spec: StudySpec, side: str, shape, spacing: float) -> float:
    """Nipple-to-chest-wall depth shared by both views of a side (the shorter one), so a
    finding sits the same number of mm behind the nipple on CC and MLO."""
    return min(spec.geometry[f"{side}{v}"].depth for v in ("CC", "MLO")) * shape[1] * spacing


def _render_finding(f: Finding, g: BreastGeometry, view: str, shape, spacing: float, depth_mm: float):
    turn = 0.0 if view == "CC" else float(np.random.default_rng(f.seed + 1).uniform(-0.5, 0.5))
    if f.kind == "mass":
        reach = 0.5 * f.size_mm * (1.6 if f.shape == "spiculated" else 1.1) / spacing
    else:
        reach = 0.6 * f.size_mm / spacing
    offset = f.offset_cc if view == "CC" else f.offset_mlo
    centre = place_lesion(g, shape, f.depth * depth_mm / spacing, offset, reach)
    draw = lesions.render_mass if f.kind == "mass" else lesions.render_calcifications
    return draw(f, centre, spacing, turn)


def _stored(image: np.ndarray, rng) -> np.ndarray:
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(NOISE_DN)
    values = image * np.float32(MAX_VALUE) + noise
    return np.clip(np.rint(values), 0, MAX_VALUE).astype(np.uint16)


def _mirror(box: tuple[int, int, int, int], cols: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return cols - x1, y0, cols - x0, y1


def render_view(spec: StudySpec, key: str, rows: int = 2048) -> RenderedView:
    """Pixels and lesion boxes of image `key` ('RCC', 'LCC', 'RMLO', 'LMLO') of `spec`."""
    side, view = key[0], key[1:]
    shape, spacing = image_shape(rows), pixel_spacing_mm(rows)
    g = spec.geometry[key]
    rng = study_rng(spec.seed, spec.index, 1 + IMAGE_KEYS.index(key))
    image, coverage = _anatomy(g, shape, spacing, spec, rng)
    depth_mm = _side_depth_mm(spec, side, shape, spacing)
    boxes: list[LesionBox] = []
    for i, f in enumerate(spec.findings):
        if f.side != side:
            continue
        patch = _render_finding(f, g, view, shape, spacing, depth_mm)
        lesions.add_patch(image, patch, coverage)
        box = lesions.patch_box(patch, shape)
        if box is not None:
            box = _mirror(box, shape[1]) if side == "R" else box
            boxes.append(LesionBox(f.kind, f.label, box, i, f.size_mm))
    pixels = _stored(image, rng)
    if side == "R":
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    return RenderedView(key, pixels, tuple(boxes), spacing)
