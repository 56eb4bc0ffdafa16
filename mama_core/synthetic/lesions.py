"""Masses and calcification clusters, each rendered into a small patch at full resolution.

Contributions are additive (X-ray attenuation adds along the beam), so a lesion is always
brighter than whatever lies under it. A finding's shape comes from its own seed, so the CC
and MLO of a side show the same lesion, turned a little between projections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mama_core.synthetic.spec import Finding

MASS_AMPLITUDE = {"+": 0.30, "=": 0.22, "-": 0.15, "0": 0.16}
BOX_LEVEL = 0.2  # a lesion's box covers where it adds at least this share of its peak


@dataclass(frozen=True)
class Patch:
    """A lesion contribution `values` whose top-left pixel is (row0, col0) in canonical coordinates."""

    values: np.ndarray
    row0: int
    col0: int


def _grid(centre: tuple[float, float], half: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    row0, col0 = int(np.floor(centre[0] - half)), int(np.floor(centre[1] - half))
    n = int(np.ceil(2 * half)) + 2
    dy = (np.arange(n, dtype=np.float32) + row0 - np.float32(centre[0]))[:, None]
    dx = (np.arange(n, dtype=np.float32) + col0 - np.float32(centre[1]))[None, :]
    return row0, col0, dy, dx


def _radius_profile(rng: np.random.Generator, shape: str) -> tuple[float, np.ndarray, np.ndarray]:
    """(aspect, harmonic amplitudes, phases) of the outline R(theta) = R (1 + sum a_k cos(k theta + p_k))."""
    if shape == "round":
        return float(rng.uniform(0.9, 1.0)), np.array([0.02, 0.015]), rng.uniform(0, 2 * np.pi, 2)
    if shape == "oval":
        return float(rng.uniform(0.55, 0.75)), np.array([0.02, 0.015]), rng.uniform(0, 2 * np.pi, 2)
    if shape == "lobulated":
        amps = np.array([0.0, 0.03, rng.uniform(0.10, 0.16), rng.uniform(0.05, 0.1)])
        return float(rng.uniform(0.7, 0.9)), amps, rng.uniform(0, 2 * np.pi, 4)
    amps = rng.uniform(0.04, 0.12, 6) * (1.0 if shape == "irregular" else 0.7)
    return float(rng.uniform(0.65, 0.95)), amps, rng.uniform(0, 2 * np.pi, 6)


def _outline(theta: np.ndarray, amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    k = np.arange(1, len(amps) + 1, dtype=np.float32)[:, None, None]
    terms = amps[:, None, None] * np.cos(k * theta[None] + phases[:, None, None])
    return (1.0 + terms.sum(axis=0)).astype(np.float32)


def _spicules(rng: np.random.Generator, rho, theta, radius_px: float, spacing_mm: float) -> np.ndarray:
    """Thin radiating lines from the mass edge: a spiculated margin."""
    count = int(rng.integers(9, 16))
    angles = rng.uniform(0, 2 * np.pi, count)
    lengths = radius_px * rng.uniform(1.7, 2.6, count)
    width = max(0.6, 0.35 / spacing_mm)
    out = np.zeros_like(rho)
    for ang, length in zip(angles, lengths):
        along = rho * np.cos(theta - ang)
        across = rho * np.sin(theta - ang)
        line = np.exp(-((across / width) ** 2)) * np.clip(1.0 - along / length, 0.0, 1.0)
        out = np.maximum(out, np.where(along > 0.6 * radius_px, line, 0.0))
    return out.astype(np.float32)


def render_mass(f: Finding, centre: tuple[float, float], spacing_mm: float, turn: float) -> Patch:
    """A mass of diameter `f.size_mm`: soft-edged outline with a mild dome; fat-containing
    masses (EMBED massdens '0') show a dense rim around a mottled lucent centre."""
    rng = np.random.default_rng(f.seed)
    radius = 0.5 * f.size_mm / spacing_mm
    aspect, amps, phases = _radius_profile(rng, f.shape)
    angle = float(rng.uniform(0, np.pi)) + turn
    reach = radius * (2.7 if f.shape == "spiculated" else 1.4) + 3
    row0, col0, dy, dx = _grid(centre, reach)
    a = dx * np.float32(np.cos(angle)) + dy * np.float32(np.sin(angle))
    b = (dy * np.float32(np.cos(angle)) - dx * np.float32(np.sin(angle))) / np.float32(aspect)
    rho, theta = np.sqrt(a * a + b * b), np.arctan2(b, a)
    edge_mm = 1.4 if f.shape in ("irregular", "spiculated") else 0.35
    rel = (radius * _outline(theta, amps, phases) - rho) / max(edge_mm / spacing_mm, 0.7)
    core = np.clip(rel + 0.5, 0.0, 1.0)
    dome = np.sqrt(np.clip(1.0 - (rho / (radius * 1.15)) ** 2, 0.0, 1.0))
    amp = MASS_AMPLITUDE[f.massdens or "="]
    values = amp * core * (0.75 + 0.25 * dome)
    if f.massdens == "0":
        rim = np.exp(-(((rho - radius * 0.92) / max(1.2, 0.08 * radius)) ** 2))
        cell = max(radius * 0.3, 1.0)  # fat lobules: a checker of soft lucent globules
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        mottle = 0.5 + 0.5 * np.cos(a / cell + p1) * np.cos(b * aspect / cell + p2)
        values = amp * (core * (0.45 + 0.25 * mottle) + 0.6 * rim * core)
    if f.shape == "spiculated":
        values = np.maximum(values, 0.55 * amp * _spicules(rng, rho, theta, radius, spacing_mm))
    return Patch(values.astype(np.float32), row0, col0)


def _speck_layout(rng: np.random.Generator, f: Finding, extent_px: float, n: int) -> np.ndarray:
    """Speck centres [n, 2] (dy, dx) relative to the cluster centre, per EMBED calcdistri."""
    if f.calcdistri == "L":
        t = rng.uniform(-0.5, 0.5, n) * extent_px
        return np.stack([0.12 * t + rng.normal(0, 0.04 * extent_px, n), t], axis=1)
    if f.calcdistri == "S":  # a wedge pointing to the nipple (canonical +x)
        t = rng.uniform(-0.5, 0.5, n)
        spread = (0.15 + 0.25 * (0.5 - t)) * extent_px
        return np.stack([rng.uniform(-0.5, 0.5, n) * spread, t * extent_px], axis=1)
    r = 0.5 * extent_px * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.sin(phi), r * np.cos(phi)], axis=1)


def _speck_sizes(rng: np.random.Generator, find: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(long axis mm, short axis mm, amplitude) per speck for EMBED calcfind letters."""
    if find == "A":
        d = rng.uniform(0.15, 0.3, n)
        return d, d, rng.uniform(0.22, 0.32, n)
    if find == "F":
        return rng.uniform(0.7, 1.5, n), rng.uniform(0.15, 0.25, n), rng.uniform(0.55, 0.75, n)
    if find == "R":
        d = rng.uniform(0.25, 0.55, n)
        return d, d, rng.uniform(0.6, 0.8, n)
    return rng.uniform(0.3, 0.9, n), rng.uniform(0.2, 0.5, n), rng.uniform(0.55, 0.8, n)


def render_calcifications(f: Finding, centre: tuple[float, float], spacing_mm: float, turn: float) -> Patch:
    """A cluster of tiny very bright specks spread over `f.size_mm`."""
    rng = np.random.default_rng(f.seed)
    extent = f.size_mm / spacing_mm
    n = int(rng.integers(8, 20))
    layout = _speck_layout(rng, f, extent, n)
    c, s = np.cos(turn), np.sin(turn)
    layout = layout @ np.array([[c, s], [-s, c]])
    long_mm, short_mm, amp = _speck_sizes(rng, f.shape, n)
    orient = rng.uniform(0, np.pi, n)
    row0, col0, dy, dx = _grid(centre, 0.5 * extent * 1.25 + 4)
    out = np.zeros((dy.shape[0], dx.shape[1]), dtype=np.float32)
    for k in range(n):
        py, px = dy - np.float32(layout[k, 0]), dx - np.float32(layout[k, 1])
        a = px * np.float32(np.cos(orient[k])) + py * np.float32(np.sin(orient[k]))
        b = py * np.float32(np.cos(orient[k])) - px * np.float32(np.sin(orient[k]))
        sa = max(0.6, 0.5 * long_mm[k] / spacing_mm)
        sb = max(0.6, 0.5 * short_mm[k] / spacing_mm)
        out = np.maximum(out, np.float32(amp[k]) * np.exp(-((a / sa) ** 2) - (b / sb) ** 2))
    return Patch(out, row0, col0)


def patch_box(p: Patch, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """[x0, y0, x1, y1] (x1, y1 exclusive) in canonical pixels of where the patch adds at
    least BOX_LEVEL of its peak, clipped to the image."""
    peak = float(p.values.max())
    if peak <= 0:
        return None
    rows, cols = np.nonzero(p.values >= BOX_LEVEL * peak)
    x0 = max(0, p.col0 + int(cols.min()))
    y0 = max(0, p.row0 + int(rows.min()))
    x1 = min(shape[1], p.col0 + int(cols.max()) + 1)
    y1 = min(shape[0], p.row0 + int(rows.max()) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def add_patch(canvas: np.ndarray, p: Patch, weight: np.ndarray | None = None) -> None:
    """canvas += patch (times `weight` at those pixels, e.g. breast thickness), clipped to the image."""
    h, w = canvas.shape
    r0, c0 = max(0, p.row0), max(0, p.col0)
    r1, c1 = min(h, p.row0 + p.values.shape[0]), min(w, p.col0 + p.values.shape[1])
    if r1 <= r0 or c1 <= c0:
        return
    part = p.values[r0 - p.row0 : r1 - p.row0, c0 - p.col0 : c1 - p.col0]
    if weight is not None:
        part = part * weight[r0:r1, c0:c1]
    canvas[r0:r1, c0:c1] += part
