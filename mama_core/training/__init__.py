"""Training engine (docs/method.md §1, docs/training.md): pairs, cache and augmentations, the trainer
generator, checkpoints and DDP helpers.

Public names: `TrainConfig` (+ `OptimConfig`, `DataConfig`, `AugmentConfig`), `load_config`,
`apply_overrides`, `train` -> Iterator[`StepReport`], `export_run`, `PairDataset`,
`ImageCache`, `warm_cache`.
"""

from mama_core.training.cache import CacheProgress, ImageCache, warm_cache
from mama_core.training.config import (AugmentConfig, DataConfig, OptimConfig, TrainConfig,
                                       apply_overrides, load_config)
from mama_core.training.data import PairDataset, StepBatchSampler
from mama_core.training.trainer import StepReport, export_run, train

__all__ = [
    "AugmentConfig",
    "CacheProgress",
    "DataConfig",
    "ImageCache",
    "OptimConfig",
    "PairDataset",
    "StepBatchSampler",
    "StepReport",
    "TrainConfig",
    "apply_overrides",
    "export_run",
    "load_config",
    "train",
    "warm_cache",
]
