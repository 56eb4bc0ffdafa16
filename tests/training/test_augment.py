from __future__ import annotations

import math

import torch

from mama_core.training.augment import augment, crop_box, gaussian_blur, intensity_jitter, random_resized_crop
from mama_core.training.config import AugmentConfig


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 56, 56, generator=g)


def test_augment_keeps_shape_and_range():
    img = _image()
    cfg = AugmentConfig(hflip_prob=0.5, vflip_prob=0.5, blur_prob=1.0)
    for seed in range(20):
        out = augment(img, cfg, torch.Generator().manual_seed(seed))
        assert out.shape == img.shape and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_augment_is_a_function_of_the_seed():
    img, cfg = _image(), AugmentConfig(blur_prob=0.5)
    a = augment(img, cfg, torch.Generator().manual_seed(3))
    b = augment(img, cfg, torch.Generator().manual_seed(3))
    c = augment(img, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_box_stays_inside_and_respects_scale():
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        top, left, h, w = crop_box(100, 100, (0.7, 1.0), (0.8, 1.25), g)
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 100
        assert h * w >= 0.5 * 100 * 100  # clipping can only trim a little below 0.7


def test_full_crop_is_identity():
    img = _image()
    out = random_resized_crop(img, (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out, img, atol=1e-6)


def test_blur_preserves_constants_and_smooths_noise():
    flat = torch.full((1, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)
    noise = _image()
    assert float(gaussian_blur(noise, 1.0).std()) < 0.5 * float(noise.std())


def test_no_jitter_is_identity():
    img = _image()
    out = intensity_jitter(img, 0.0, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(out, img, atol=1e-6)


def test_flip_options():
    img = _image()
    never = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_prob=0.0, vflip_prob=0.0,
                          brightness=0.0, contrast=0.0, gamma=0.0, blur_prob=0.0)
    always_h = AugmentConfig(**{**never.__dict__, "hflip_prob": 1.0})
    always_v = AugmentConfig(**{**never.__dict__, "vflip_prob": 1.0})
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.allclose(augment(img, never, g()), img, atol=1e-6)
    assert torch.allclose(augment(img, always_h, g()), img.flip(-1), atol=1e-6)
    assert torch.allclose(augment(img, always_v, g()), img.flip(-2), atol=1e-6)
    assert AugmentConfig().vflip_prob == 0.0  # default: anatomically impossible, off


def test_blur_is_the_separable_gaussian_convolution():
    """The shifted-view sum equals the textbook reflect-padded separable convolution."""
    import math

    import torch.nn.functional as F

    from mama_core.training.augment import gaussian_kernel

    img = torch.rand(2, 40, 30, generator=torch.Generator().manual_seed(5))
    for sigma in (0.2, 0.9, 1.5):
        r = math.ceil(3 * sigma)
        k = gaussian_kernel(sigma, r)
        x = F.pad(img[None], (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(2, 1, 1, -1), groups=2)
        expected = F.conv2d(x, k.view(1, 1, -1, 1).expand(2, 1, -1, 1), groups=2)[0]
        assert torch.allclose(gaussian_blur(img, sigma), expected, atol=1e-6)


def test_jitter_is_gamma_then_contrast_then_shift():
    img = _image()
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    out = intensity_jitter(img, 0.1, 0.2, 0.2, g1)
    u = [float(torch.rand((), generator=g2)) for _ in range(3)]
    power, factor, shift = math.exp(-0.2 + 0.4 * u[0]), 0.8 + 0.4 * u[1], -0.1 + 0.2 * u[2]
    x = img.pow(power)
    expected = ((x - x.mean()) * factor + x.mean() + shift).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-6)
