"""Frozen global image features of a list of records, extracted once in batches.

Images come through the training image cache (`mama_core.training.cache.ImageCache`:
each DICOM decoded, resized and padded once, docs/method.md §1.9), so a second run on the
same folder, and the LoRA/full modes that read images every step, skip DICOM decoding.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch

from mama_core.optim import bf16_autocast
from mama_core.preprocess import normalise
from mama_core.training.cache import ImageCache, default_cache_dir


def image_cache(model: Any) -> ImageCache:
    """The decoded-image cache at the model's input size and resize mode."""
    vision = model.config.vision
    return ImageCache(default_cache_dir(), int(vision.image_size), resize=vision.resize)


def autocast_for(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when the config asks for it; nothing on CPU."""
    return bf16_autocast(device, bf16 and device.type == "cuda")


def load_batch(cache: ImageCache, records: Sequence[Any]) -> torch.Tensor:
    """[B, 1, S, S] model-scale input (mean 0.5 / std 0.5) of the records' images."""
    return normalise(torch.stack([cache.load(r.path) for r in records]))


def extract_global(model: Any, records: Sequence[Any], cache: ImageCache, device: torch.device,
                   batch_size: int = 16, bf16: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (images done, raw `image_global` [b, D] float32 CPU) batch by batch.

    Raw, not L2-normalised: probe heads standardise their input (inference/heads.py
    `feature: image_global`) and zero-shot normalises itself."""
    model.eval()
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        x = load_batch(cache, chunk).to(device)
        with torch.inference_mode(), autocast_for(device, bf16):
            out = model.encode_image(x)["image_global"]
        yield start + len(chunk), out.float().cpu()
