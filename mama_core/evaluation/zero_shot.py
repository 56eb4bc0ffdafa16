"""Zero-shot classification (paper §4; docs/method.md §1.10): one prompt per class,
optionally prefixed with the image's own unmasked metadata; softmax once over
logit_scale * cosine(image_global, prompt_global)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def record_prompt_meta(record: Any) -> dict:
    """The EMBED-named meta fields of a record, filled from its own columns where missing."""
    meta = dict(record.meta or {})
    meta.setdefault("ImageLateralityFinal", record.laterality)
    meta.setdefault("ViewPosition", record.view)
    return meta


def zero_shot_probs(predictor: Any, features: np.ndarray, records: Sequence[Any], task: str,
                    with_metadata: bool = False) -> np.ndarray:
    """[N, C] class probabilities for raw global features [N, D]."""
    from mama_core.captions import zero_shot_prompts

    img = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
    scale = predictor.logit_scale()
    out = []
    for i, rec in enumerate(records):
        prompts = zero_shot_prompts(task, record_prompt_meta(rec) if with_metadata else None)
        text = predictor._encode_texts(prompts, "caption")
        out.append(torch.softmax(scale * (text @ img[i]).double(), dim=0).numpy())
    return np.stack(out)
