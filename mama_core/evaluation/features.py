"""Batched image-feature extraction for evaluation, cached on disk per (model, image).

Evaluation touches every image of a split several times (zero-shot, probes at three data
fractions, ...); the vision forward is the only expensive step, so raw global embeddings
are stored in `user_cache_dir()/eval-features/<model fingerprint>.safetensors`, keyed by the
image file's path + size + mtime (an edited file is encoded again)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from mama_core.inference.cache import file_key
from mama_core.paths import user_cache_dir
from mama_core.preprocess import fit_to_square, normalise


def _key(path: str | Path) -> str:
    return hashlib.sha1(repr(file_key(path)).encode()).hexdigest()


class FeatureStore:
    """Raw global image embeddings of one model, on disk (safetensors, no pickle)."""

    def __init__(self, predictor: Any, cache_dir: Path | None = None, batch_size: int = 8):
        self.predictor = predictor
        self.batch_size = batch_size
        root = cache_dir or user_cache_dir() / "eval-features"
        root.mkdir(parents=True, exist_ok=True)
        self.file = root / f"{predictor.fingerprint}.safetensors"
        self.features: dict[str, np.ndarray] = load_file(str(self.file)) if self.file.exists() else {}
        self.encoded = 0  # images run through the vision encoder by this store
        self.progress: Callable[[int, int], None] | None = None  # (encoded, to encode) per batch

    def global_features(self, paths: Sequence[str | Path]) -> np.ndarray:
        """[N, D] raw (un-normalised) global embeddings, encoding only uncached files."""
        keys = [_key(p) for p in paths]
        todo = [(k, p) for k, p in dict(zip(keys, paths)).items() if k not in self.features]
        if self.progress is not None and todo:
            self.progress(0, len(todo))
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i : i + self.batch_size]
            for (k, _), vec in zip(batch, self._encode([p for _, p in batch])):
                self.features[k] = vec
            if self.progress is not None:
                self.progress(i + len(batch), len(todo))
        if todo:
            save_file(self.features, str(self.file))
        return np.stack([self.features[k] for k in keys])

    def _encode(self, paths: list[str | Path]) -> np.ndarray:
        from mama_core.dicom import read_image

        size, resize = self.predictor.image_size, self.predictor.resize_mode
        x = torch.stack([normalise(fit_to_square(read_image(p).pixels, size, resize)[0]) for p in paths])[:, None]
        with self.predictor._lock, torch.inference_mode(), self.predictor._autocast():
            out = self.predictor.model.encode_image(x.to(self.predictor.device))
        self.encoded += len(paths)
        return out["image_global"].float().cpu().numpy()
