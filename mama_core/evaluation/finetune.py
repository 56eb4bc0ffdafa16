"""End-to-end fine-tuning for evaluation (paper Tables 1-3, "fine-tuning" rows): the vision
encoder plus a linear head on the global embedding, trained together with a short schedule.

A copy of the model is trained, so the predictor's weights are never changed.  AdamW,
lr 1e-5 for the encoder and 1e-3 for the head, cosine schedule with warm-up, class-balanced
sampling, bf16 autocast on CUDA."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mama_core.errors import ConfigError
from mama_core.evaluation.linear_probe import subsample_fraction
from mama_core.optim import balanced_probs, cosine_scheduler
from mama_core.preprocess import fit_to_square, normalise


@dataclass
class FinetuneConfig:
    steps: int = 200
    batch_size: int = 8
    encoder_lr: float = 1e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("steps and batch_size must be positive", field="steps")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}", field="fraction")


def _load_inputs(paths: Sequence[Any], size: int, resize: str) -> torch.Tensor:
    from mama_core.dicom import read_image

    return torch.stack([normalise(fit_to_square(read_image(p).pixels, size, resize)[0]) for p in paths])[:, None]


class _Classifier(nn.Module):
    def __init__(self, model: nn.Module, dim: int, n_classes: int):
        super().__init__()
        self.model = model
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.encode_image(x)["image_global"].float())


def finetune_and_predict(predictor: Any, train_paths: Sequence[Any], train_labels: np.ndarray,
                         test_paths: Sequence[Any], n_classes: int, cfg: FinetuneConfig | None = None) -> np.ndarray:
    """Train a copy of the vision encoder + head on the training images; [N_test, C] probabilities."""
    cfg = cfg or FinetuneConfig()
    torch.manual_seed(cfg.seed)
    labels = np.asarray(train_labels, dtype=np.int64)
    idx = subsample_fraction(labels, cfg.fraction, cfg.seed)
    size, dev = predictor.image_size, predictor.device
    x_train, y_train = _load_inputs([train_paths[i] for i in idx], size, predictor.resize_mode), torch.from_numpy(labels[idx])
    with predictor._lock:
        model = copy.deepcopy(predictor.model)
    clf = _Classifier(model, int(predictor.model.config.embed_dim), n_classes).to(dev).train()
    opt = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.encoder_lr},
        {"params": clf.head.parameters(), "lr": cfg.head_lr},
    ], weight_decay=cfg.weight_decay)
    sched = cosine_scheduler(opt, cfg.warmup_steps, cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    probs = torch.from_numpy(balanced_probs(labels[idx]))
    for _ in range(cfg.steps):
        b = torch.multinomial(probs, cfg.batch_size, replacement=True, generator=gen)
        with predictor._autocast():
            loss = nn.functional.cross_entropy(clf(x_train[b].to(dev)), y_train[b].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return _predict(clf, predictor, test_paths, cfg.batch_size)


def _predict(clf: nn.Module, predictor: Any, paths: Sequence[Any], batch: int) -> np.ndarray:
    clf.eval()
    out = []
    with torch.inference_mode(), predictor._autocast():
        for i in range(0, len(paths), batch):
            x = _load_inputs(paths[i : i + batch], predictor.image_size, predictor.resize_mode).to(predictor.device)
            out.append(torch.softmax(clf(x).float(), dim=-1).cpu().numpy())
    return np.concatenate(out)
