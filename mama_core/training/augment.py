"""Training augmentations written with torch ops (docs/method.md §1.9: random resized crop,
flips, intensity jitter, blur; there is no CPU torchvision here).

Every function takes a [C, H, W] float tensor in [0, 1] (unnormalised, as the cache stores
it) and an explicit `torch.Generator`, so a sample's augmentation is a pure function of its
seed: resumed and distributed runs see exactly the same images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mama_core.training.config import AugmentConfig


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _coin(g: torch.Generator, prob: float) -> bool:
    # Always draw, so that later draws do not depend on which branches were taken.
    return float(torch.rand((), generator=g)) < prob


def crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
             g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering `scale` of the area with aspect `ratio`
    (log-uniform), clipped to the image."""
    area = height * width * _uniform(g, *scale)
    log_ratio = _uniform(g, math.log(ratio[0]), math.log(ratio[1]))
    aspect = math.exp(log_ratio)
    w = min(width, max(1, round(math.sqrt(area * aspect))))
    h = min(height, max(1, round(math.sqrt(area / aspect))))
    top = int(torch.randint(0, height - h + 1, (), generator=g))
    left = int(torch.randint(0, width - w + 1, (), generator=g))
    return top, left, h, w


def random_resized_crop(img: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                        g: torch.Generator) -> torch.Tensor:
    """Crop a random box and resize it back to the input size (shape is preserved)."""
    _, height, width = img.shape
    top, left, h, w = crop_box(height, width, scale, ratio, g)
    patch = img[None, :, top:top + h, left:left + w]
    out = F.interpolate(patch, size=(height, width), mode="bilinear", align_corners=False,
                        antialias=h > height or w > width)
    return out[0]


def intensity_jitter(img: torch.Tensor, brightness: float, contrast: float, gamma: float,
                     g: torch.Generator) -> torch.Tensor:
    """Gamma, then contrast about the mean, then a brightness shift; clamped to [0, 1]."""
    power = math.exp(_uniform(g, -gamma, gamma))
    factor = _uniform(g, 1.0 - contrast, 1.0 + contrast)
    shift = _uniform(g, -brightness, brightness)
    out = img.clamp(0.0, 1.0).pow_(power)  # one new buffer; everything after is in place
    mean = float(out.mean())
    # (x - mean) * factor + mean + shift, as one multiply and one add over the image.
    return out.mul_(factor).add_(mean * (1.0 - factor) + shift).clamp_(0.0, 1.0)


def gaussian_kernel(sigma: float, radius: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian, radius ceil(3 sigma) unless given."""
    radius = max(1, math.ceil(3.0 * sigma)) if radius is None else max(1, radius)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding keeps the borders unbiased).

    Written as a weighted sum of shifted views rather than a depthwise `conv2d`: on CPU the
    one-channel convolution goes through oneDNN, which builds a new primitive for every
    kernel size and then runs slowly on one thread (about 25 ms per pass at 518 px, against
    about 3 ms for the whole blur here; benchmarks/data_pipeline.py)."""
    channels, height, width = img.shape
    # Reflect padding needs the radius below the image side.
    radius = min(max(1, math.ceil(3.0 * sigma)), height - 1, width - 1)
    weights = gaussian_kernel(sigma, radius).tolist()
    x = F.pad(img[None], (radius, radius, radius, radius), mode="reflect")[0]
    rows = _weighted_shifts(x, weights, width, dim=2)  # [C, H + 2r, W]
    return _weighted_shifts(rows, weights, height, dim=1)


def _weighted_shifts(x: torch.Tensor, weights: list[float], size: int, dim: int) -> torch.Tensor:
    """sum_j weights[j] * x.narrow(dim, j, size): a 1-D correlation along `dim`."""
    centre = len(weights) // 2
    out = x.narrow(dim, centre, size) * weights[centre]
    for j, w in enumerate(weights):
        if j != centre:
            out.add_(x.narrow(dim, j, size), alpha=w)
    return out


def augment(img: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """One training view: crop, flips, intensity jitter, blur. [C,H,W] in [0,1] -> same."""
    out = random_resized_crop(img, cfg.crop_scale, cfg.crop_ratio, g)
    if _coin(g, cfg.hflip_prob):
        out = out.flip(-1)
    if _coin(g, cfg.vflip_prob):
        out = out.flip(-2)
    out = intensity_jitter(out, cfg.brightness, cfg.contrast, cfg.gamma, g)
    sigma = _uniform(g, *cfg.blur_sigma)
    if _coin(g, cfg.blur_prob) and sigma > 0:
        out = gaussian_blur(out, sigma)
    return out.clamp_(0.0, 1.0).contiguous()
