"""Fibroglandular texture: band-limited noise made on a coarse grid and upsampled.

The heavy part (FFT filtering, thresholding to the density class's dense fraction) runs on
a ~0.8 mm grid, whatever the output resolution, so its cost is fixed and the texture has
the same physical scale at every `rows`. Upsampling is separable linear interpolation done
with gathers (no BLAS reductions), so the result is bit-identical from run to run.
"""

from __future__ import annotations

import numpy as np

COARSE_MM = 0.8  # grid spacing of the texture


def coarse_factor(spacing_mm: float) -> int:
    """Full-resolution pixels per coarse texture pixel."""
    return max(1, int(round(COARSE_MM / spacing_mm)))


def band_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell_mm: float, lo_mm: float, hi_mm: float, stretch: float = 1.0
) -> np.ndarray:
    """White noise filtered in Fourier space to keep structures between `hi_mm` and `lo_mm`
    across (a 1/f-weighted band), normalised to zero mean and unit std. `stretch` > 1 draws
    structures out along the columns, i.e. towards the nipple, like ducts and ligaments."""
    white = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0], d=cell_mm)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=cell_mm)[None, :] * stretch
    f = np.sqrt(fy * fy + fx * fx)
    gain = np.exp(-((f * hi_mm) ** 2)) * (1.0 - np.exp(-((f * lo_mm) ** 2))) / np.maximum(f, 1.0 / lo_mm)
    out = np.fft.irfft2(np.fft.rfft2(white) * gain, s=shape).astype(np.float32)
    out -= out.mean()
    return out / max(float(out.std()), 1e-6)


def _axis_weights(n_out: int, n_in: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Pixel centres: output pixel i sits at input coordinate (i + 0.5) / factor - 0.5.
    pos = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) / factor - 0.5, 0.0, n_in - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def upsample(coarse: np.ndarray, shape: tuple[int, int], factor: float) -> np.ndarray:
    """Separable linear interpolation of a coarse [h, w] grid onto the full [H, W] grid."""
    r0, r1, wr = _axis_weights(shape[0], coarse.shape[0], factor)
    c0, c1, wc = _axis_weights(shape[1], coarse.shape[1], factor)
    rows = coarse[r0] * (1.0 - wr)[:, None] + coarse[r1] * wr[:, None]
    return rows[:, c0] * (1.0 - wc)[None, :] + rows[:, c1] * wc[None, :]


def gland_prior(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where fibroglandular tissue gathers: a cone behind the nipple, thinning towards the
    skin and leaving a fat layer in front of the chest wall."""
    along = np.clip(u / 0.18, 0.0, 1.0) * np.clip((1.05 - u) / 0.3, 0.0, 1.0)
    return (along * np.exp(-((v / 0.7) ** 2))).astype(np.float32)


def dense_map(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, inside: np.ndarray, fraction: float
) -> np.ndarray:
    """Coarse tissue map in [0, ~1.2]: soft-thresholded noise + prior, the threshold set so
    that `fraction` of the breast area is dense (docs/method.md §1.2: density follows the class), times
    finer texture so dense regions are mottled rather than flat."""
    shape = u.shape
    field = band_noise(rng, shape, COARSE_MM, 40.0, 5.0, stretch=1.8) + 2.2 * gland_prior(u, v)
    detail = band_noise(rng, shape, COARSE_MM, 12.0, 1.6, stretch=2.5)
    values = field[inside] if inside.any() else field.ravel()
    threshold = np.quantile(values, 1.0 - fraction)
    dense = 1.0 / (1.0 + np.exp(-(field - threshold) / 0.3))
    return (dense * (0.82 + 0.2 * detail) + 0.04 * detail).astype(np.float32)
