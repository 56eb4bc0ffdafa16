"""A tiny PNG writer (zlib + struct, PNG spec §11-12) and a fixed colour map for map overlays.

Qt-free so `mama query --png` works headless; no plotting library is installed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

# Fixed anchors (dark blue -> magenta -> orange -> yellow), interpolated linearly.
_ANCHORS = np.array([
    [0.00, 0, 0, 80],
    [0.35, 120, 20, 140],
    [0.70, 240, 110, 40],
    [1.00, 255, 240, 60],
], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """[...] values in [0, 1] -> [..., 3] uint8 RGB."""
    v = np.clip(values, 0.0, 1.0)
    rgb = [np.interp(v, _ANCHORS[:, 0], _ANCHORS[:, i]) for i in (1, 2, 3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write [H, W, 3] uint8 (or [H, W] grey) as an 8-bit PNG, filter type 0 on every row."""
    img = np.asarray(rgb, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    path = Path(path)
    path.write_bytes(data)
    return path


def overlay(pixels: np.ndarray, sim: np.ndarray, value_range: tuple[float, float], threshold: float,
            max_alpha: float = 0.6) -> np.ndarray:
    """Grey image [H, W] in [0, 1] with a similarity map [H, W] on top, absolute scale.

    Alpha ramps from 0 at the no-match threshold to `max_alpha` at the top of the range, so
    values below the threshold leave the image untouched (docs/method.md §3)."""
    lo, hi = value_range
    grey = (np.clip(pixels, 0, 1) * 255.0)[..., None]
    colour = colormap((sim - lo) / max(hi - lo, 1e-6)).astype(np.float64)
    alpha = np.clip((sim - threshold) / max(hi - threshold, 1e-6), 0, 1)[..., None] * max_alpha
    return (grey * (1 - alpha) + colour * alpha).round().astype(np.uint8)
