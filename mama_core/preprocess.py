"""Model input geometry (docs/method.md §1.9): resize the long side to `size`, pad to a square,
normalise with mean 0.5 / std 0.5.

Images arrive in canonical orientation (chest wall at column 0), so padding goes to the
right and the bottom: the breast stays anchored at the top-left and the mapping between
model patches and native pixels is a single scale factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEAN = 0.5
STD = 0.5


@dataclass(frozen=True)
class Letterbox:
    """How a native [H, W] image sits inside the square model input."""

    native_shape: tuple[int, int]  # (H, W) of the native pixels
    size: int  # side of the square model input
    scale: float  # model pixels per native pixel (of the long side when stretched)
    stretched: bool = False  # both sides resized to `size` (stretch_to_square), no padding

    @property
    def content_shape(self) -> tuple[int, int]:
        """(h, w) of the resized image inside the square, before padding."""
        if self.stretched:
            return self.size, self.size
        h, w = self.native_shape
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))


def letterbox_for(native_shape: tuple[int, int], size: int) -> Letterbox:
    h, w = native_shape
    return Letterbox(native_shape=(int(h), int(w)), size=int(size), scale=size / max(h, w))


def resize_to_square(pixels: np.ndarray | torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """[H, W] float in [0, 1] -> ([size, size] float32 in [0, 1], Letterbox). Not normalised,
    so it can be cached as uint8/float16 and augmented before `normalise`."""
    img = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    box = letterbox_for(tuple(img.shape), size)
    h, w = box.content_shape
    resized = F.interpolate(img[None, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    out = torch.zeros(size, size, dtype=torch.float32)
    out[:h, :w] = resized[0, 0].clamp_(0.0, 1.0)
    return out, box


def stretch_to_square(pixels: np.ndarray | torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """[H, W] float in [0, 1] -> [size, size] with both sides resized, the aspect ratio not
    kept: the released MaMA code's input (VisionConfig.resize = "stretch", docs/method.md §4)."""
    img = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    box = Letterbox(native_shape=(int(img.shape[0]), int(img.shape[1])), size=int(size),
                    scale=size / max(img.shape), stretched=True)
    out = F.interpolate(img[None, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].clamp_(0.0, 1.0), box


def fit_to_square(pixels: np.ndarray | torch.Tensor, size: int, mode: str = "letterbox") -> tuple[torch.Tensor, Letterbox]:
    """The square model input for a resize mode ("letterbox" or "stretch")."""
    return stretch_to_square(pixels, size) if mode == "stretch" else resize_to_square(pixels, size)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """[..., H, W] in [0, 1] -> model scale (mean 0.5, std 0.5)."""
    return (images - MEAN) / STD


def tissue_patch_mask(images: torch.Tensor, patch_size: int, min_level: float = 0.1,
                      whole: bool = False) -> torch.Tensor:
    """[B, C, H, W] normalised model input -> [B, P] bool: patches holding breast tissue —
    any tissue pixel, or with `whole` only patches whose every pixel is tissue.

    A pixel is air (or letterbox padding) when it does not rise `min_level` (in [0, 1]
    units) above the image's darkest level; measuring from the darkest level rather than 0
    keeps the test valid after intensity augmentation. An image with no tissue patch at
    all keeps every patch, so the local loss always has something to align."""
    x = images.float().mean(dim=1) * STD + MEAN
    floor = x.flatten(1).amin(dim=1)[:, None, None]
    level = x - floor
    if whole:  # the patch's darkest pixel must be tissue
        level = -F.max_pool2d(-level[:, None], patch_size)[:, 0]
    else:
        level = F.max_pool2d(level[:, None], patch_size)[:, 0]
    mask = level.flatten(1) > min_level
    return mask | ~mask.any(dim=1, keepdim=True)


def patch_map_to_content(grid_values: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """Per-patch values [S, gh, gw] (covering the whole square input) -> [S, h, w] on the
    resized image inside the square (`box.content_shape`), padding dropped: a small grid that
    covers exactly the native image, so it can be drawn stretched over it."""
    full = F.interpolate(grid_values[None].float(), size=(box.size, box.size), mode="bilinear", align_corners=False)[0]
    h, w = box.content_shape
    return full[:, :h, :w]


def content_to_native(content: torch.Tensor, native_shape: tuple[int, int]) -> torch.Tensor:
    """[S, h, w] content-grid values -> [S, H, W] on the native pixel grid (bilinear)."""
    return F.interpolate(content[None].float(), size=tuple(native_shape), mode="bilinear", align_corners=False)[0]


def patch_map_to_native(grid_values: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """Upsample per-patch values [S, gh, gw] (covering the whole square input) to the native
    pixel grid [S, H, W], dropping the padded region. Values are interpolated, never rescaled,
    so absolute similarity levels survive (docs/method.md §3)."""
    s = grid_values.shape[0]
    native = content_to_native(patch_map_to_content(grid_values, box), box.native_shape)
    return native.reshape(s, *box.native_shape)
