"""Probe heads stored in a model directory (`heads/`).

Format (one pair of files per task; written by `mama eval --save-heads`, fine-tuning, or
anything else that trains a linear head on frozen image features):

    heads/<task>.safetensors   tensors "weight" [C, D] float32, "bias" [C] float32 and
                               optionally "mean" [D], "std" [D] (input standardisation)
    heads/<task>.json          {"format": 1, "task": "<task>", "classes": [labels...],
                                "feature": "image_global" | "image_global_l2"}

`<task>` is "birads" (7 classes, EMBED asses order A N B P S M K = 0..6), "density"
(4 classes, tissueden 1..4) or "cancer" (2 classes).  `feature` names the input: the raw
global image embedding, or the same L2-normalised.  probabilities = softmax(W ((x - mean) / std) + b).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from mama_core.errors import ModelError

FEATURES = ("image_global", "image_global_l2")
HEAD_FORMAT = 1


@dataclass
class ProbeHead:
    task: str
    classes: list
    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    feature: str = "image_global"

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise ModelError(f"unknown head input feature {self.feature!r}; expected one of {FEATURES}", field="feature")
        if self.weight.ndim != 2 or self.weight.shape[0] != len(self.classes) or self.bias.shape != (len(self.classes),):
            raise ModelError(f"head '{self.task}': weight {self.weight.shape} / bias {self.bias.shape} do not match {len(self.classes)} classes")

    def probabilities(self, raw_global: torch.Tensor) -> np.ndarray:
        """[D] or [N, D] raw global embedding(s) -> class probabilities."""
        x = raw_global.detach().float().cpu().numpy()
        if self.feature == "image_global_l2":
            x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        z = x @ self.weight.T + self.bias
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


def save_head(model_dir: str | Path, head: ProbeHead) -> Path:
    heads = Path(model_dir) / "heads"
    heads.mkdir(parents=True, exist_ok=True)
    tensors = {"weight": head.weight.astype(np.float32), "bias": head.bias.astype(np.float32)}
    if head.mean is not None:
        tensors["mean"] = head.mean.astype(np.float32)
        tensors["std"] = head.std.astype(np.float32)
    save_file(tensors, str(heads / f"{head.task}.safetensors"))
    meta = {"format": HEAD_FORMAT, "task": head.task, "classes": list(head.classes), "feature": head.feature}
    (heads / f"{head.task}.json").write_text(json.dumps(meta, indent=2))
    return heads / f"{head.task}.safetensors"


def load_head(model_dir: str | Path, task: str) -> ProbeHead | None:
    """The head for `task`, or None when the model directory has none."""
    base = Path(model_dir) / "heads" / task
    weights, meta_path = base.with_suffix(".safetensors"), base.with_suffix(".json")
    if not weights.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        t = load_file(str(weights))
        return ProbeHead(task=task, classes=list(meta["classes"]), weight=t["weight"], bias=t["bias"],
                         mean=t.get("mean"), std=t.get("std"), feature=meta.get("feature", "image_global"))
    except ModelError as exc:
        raise ModelError(exc.reason, path=weights) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
        raise ModelError(f"unreadable probe head: {exc}", path=weights) from None
