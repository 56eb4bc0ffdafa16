"""Result types of `Predictor` (docs/architecture.md, "Inference")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mama_core.preprocess import Letterbox

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
    sentences: list[str]
    maps: dict[str, np.ndarray]  # view key -> [S, H, W] float32 cosine, native (canonical) pixel coords
    threshold: float  # cosine below which a map reads "no match"
    value_range: tuple[float, float]  # fixed colour-bar range (absolute, never per-map)
    best: dict[str, tuple[float, int, int]]  # view -> (max value, row, col) for sentence 0

    def matches(self, view: str, sentence: int = 0) -> bool:
        """Whether any pixel of this view's map for `sentence` reaches the threshold."""
        return bool(self.maps[view][sentence].max() >= self.threshold)
