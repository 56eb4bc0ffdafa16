"""Result types of `Predictor` (docs/architecture.md, "Inference")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mama_core.preprocess import Letterbox, content_to_native

BIRADS_CLASSES = 7  # EMBED asses A=0 N=1 B=2 P=3 S=4 M=5 K=6
DENSITY_CLASSES = 4  # tissueden 1-4 -> index 0-3


@dataclass
class ImageFeatures:
    """Everything the model says about one image file, computed once and cached.

    `image_global` / `image_patches` are L2-normalised (cosine = dot product) on the CPU in
    float32; `grid` is the (gh, gw) patch grid of the square model input and `letterbox`
    maps that input back onto `read_image(path).pixels`."""

    path: Path
    image_global: torch.Tensor  # [D]
    image_patches: torch.Tensor  # [P, D], P = gh * gw
    grid: tuple[int, int]
    letterbox: Letterbox
    laterality: str | None
    view: str | None
    patient_age: int | None
    study_uid: str | None
    raw_global: torch.Tensor | None = None  # un-normalised global embedding (probe heads)
    patch_mask: torch.Tensor | None = None  # [P] bool: tissue patches (ModelConfig.local_tissue_only)


@dataclass
class ViewPrediction:
    key: str  # 'LCC', 'RMLO', ... or 'L' / 'R' for sides
    birads: np.ndarray  # [7] probabilities
    density: np.ndarray  # [4] probabilities
    ood: Any = None  # inference.ood.OODResult for views; None for sides

    def to_json(self) -> dict:
        out = {"birads": self.birads.tolist(), "density": self.density.tolist()}
        if self.ood is not None:
            out["ood"] = self.ood.to_json()
        return out


@dataclass
class StudyPrediction:
    study_uid: str
    birads: np.ndarray  # [7]
    density: np.ndarray  # [4]
    views: dict[str, ViewPrediction]
    sides: dict[str, ViewPrediction]  # 'L' / 'R'
    method: str  # "zero-shot" | "probe"
    model_name: str
    prompt_metadata: dict[str, dict] = field(default_factory=dict)  # view -> meta used in prompts
    ood: Any = None  # inference.ood.OODResult of the study (largest view score vs the study threshold)
    notice: str | None = None  # what the model is, when users must be told (the demo model)
    calibration: dict = field(default_factory=dict)  # task -> temperature applied (None: uncalibrated)

    def to_json(self) -> dict:
        extra = {"ood": self.ood.to_json()} if self.ood is not None else {}
        if self.notice:
            extra["notice"] = self.notice
        return {**extra, "calibration": self.calibration,
            "study_uid": self.study_uid,
            "birads": self.birads.tolist(),
            "density": self.density.tolist(),
            "views": {k: v.to_json() for k, v in self.views.items()},
            "sides": {k: v.to_json() for k, v in self.sides.items()},
            "method": self.method,
            "model": self.model_name,
            "prompt_metadata": self.prompt_metadata,
        }


@dataclass
class SimilarityMaps:
    """Sentence-to-patch cosines per view, kept at the map's own resolution.

    `grids[view]` is [S, h, w]: the patch cosines bilinearly upsampled to the model input's
    resolution with the letterbox padding dropped, so the grid covers exactly the native image
    of `read_image(path).pixels` (`shapes[view]` = (H, W), canonical orientation). A viewer
    draws it stretched over the image with smooth interpolation; values at native pixels
    (exports, the pointing game) are computed on demand by `native`, `maps` and `value_at`,
    identical to upsampling the grid to every pixel. Values are absolute cosines, never
    rescaled per map: one colour-bar range and one "no match" threshold for all."""

    sentences: list[str]
    grids: dict[str, np.ndarray]  # view key -> [S, h, w] float32 cosine on the map grid
    shapes: dict[str, tuple[int, int]]  # view key -> (H, W) native pixels the grid covers
    threshold: float  # cosine below which a map reads "no match"
    value_range: tuple[float, float]  # fixed colour-bar range (absolute, never per-map)
    _native: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def native(self, view: str) -> np.ndarray:
        """[S, H, W] float32 on the native pixel grid (computed once per view, on demand)."""
        if view not in self._native:
            grid = torch.from_numpy(np.ascontiguousarray(self.grids[view]))
            self._native[view] = content_to_native(grid, self.shapes[view]).numpy().astype(np.float32, copy=False)
        return self._native[view]

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """Every view at native resolution, for exports: costly on real-size images."""
        return {view: self.native(view) for view in self.grids}

    @property
    def best(self) -> dict[str, tuple[float, int, int]]:
        """view -> (max value, row, col) of sentence 0 at native pixels."""
        from mama_core.inference.maps import best_location

        return {view: best_location(self.native(view)[0]) for view in self.grids}

    def peak(self, view: str, sentence: int = 0) -> float:
        """The map's maximum on its own grid (the native maximum is at most this, and equal
        up to interpolation rounding)."""
        return float(self.grids[view][sentence].max())

    def matches(self, view: str, sentence: int = 0) -> bool:
        """Whether this view's map for `sentence` reaches the threshold."""
        return self.peak(view, sentence) >= self.threshold

    def value_at(self, view: str, sentence: int, row: int, col: int) -> float:
        """The native-pixel value at (row, col) without building the native map."""
        from mama_core.inference.maps import sample_native

        return sample_native(self.grids[view][sentence], self.shapes[view], row, col)
