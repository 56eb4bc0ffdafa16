"""Inference: predictions, similarity maps and text search over studies (docs/inference.md)."""

from mama_core.inference.heads import ProbeHead, load_head, save_head
from mama_core.inference.index import IndexProgress, SearchHit, build_index, list_indexes, search
from mama_core.inference.maps import calibrate_threshold
from mama_core.inference.predictor import Predictor
from mama_core.inference.types import ImageFeatures, SimilarityMaps, StudyPrediction, ViewPrediction

__all__ = [
    "Predictor", "StudyPrediction", "ViewPrediction", "SimilarityMaps", "ImageFeatures",
    "calibrate_threshold", "ProbeHead", "load_head", "save_head",
    "IndexProgress", "SearchHit", "build_index", "search", "list_indexes",
]
