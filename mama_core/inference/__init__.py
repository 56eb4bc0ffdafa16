"""Inference: predictions and similarity maps (docs/inference.md); text search is `mama_core.search`."""

from mama_core.inference.heads import ProbeHead, load_head, save_head
from mama_core.inference.maps import calibrate_threshold
from mama_core.inference.predictor import Predictor
from mama_core.inference.types import ImageFeatures, SimilarityMaps, StudyPrediction, ViewPrediction

__all__ = [
    "Predictor", "StudyPrediction", "ViewPrediction", "SimilarityMaps", "ImageFeatures",
    "calibrate_threshold", "ProbeHead", "load_head", "save_head",
]
