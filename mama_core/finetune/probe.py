"""Training a linear head on frozen global features, as a generator of reports.

The recipe is the paper's linear probe (SGD, momentum 0.9, lr 5e-4, weight decay 1e-3,
cosine schedule with linear warm-up, class-balanced sampling), with the schedule and
sampling weights of `mama_core.optim`; unlike `train_linear_probe` it
validates as it goes, stops early on the validation balanced accuracy, honours a stop
flag, and returns the best head as an `inference.heads.ProbeHead` ready to save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator

import numpy as np
import torch
from torch import nn

from mama_core.evaluation.linear_probe import probe_step
from mama_core.finetune.compare import balanced_accuracy
from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.early_stopping import EarlyStopping
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.inference.heads import ProbeHead
from mama_core.optim import Cancelled, StopFlag, balanced_probs, cosine_scheduler, should_stop


@dataclass
class FeatureSplit:
    """Raw global features [N, D] with task labels [N] (class indices 0..C-1)."""

    x: np.ndarray
    y: np.ndarray


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Frozen embeddings have arbitrary scale; standardising lets the paper's small rate
    # converge in a few hundred steps (same choice as evaluation.linear_probe).
    return x.mean(axis=0).astype(np.float32), (x.std(axis=0) + 1e-6).astype(np.float32)


def sampling_probs(y: np.ndarray, n_classes: int, balanced: bool) -> torch.Tensor:
    """Per-sample draw probabilities: each class present equally often, or uniform."""
    if balanced:
        return torch.from_numpy(balanced_probs(y))
    return torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)


def validate_head(head: nn.Linear, x_val: torch.Tensor, y_val: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(balanced accuracy, cross-entropy) of the head on the validation split."""
    with torch.no_grad():
        logits = head(x_val)
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(y_val)))
        probs = torch.softmax(logits.double(), dim=1).numpy()
    return balanced_accuracy(y_val, probs), loss


def to_probe_head(state: dict, mean: np.ndarray, std: np.ndarray, task: str, classes: list) -> ProbeHead:
    return ProbeHead(task=task, classes=classes, weight=state["weight"].numpy().copy(),
                     bias=state["bias"].numpy().copy(), mean=mean, std=std, feature="image_global")


def train_probe(train: FeatureSplit, val: FeatureSplit, cfg: FinetuneConfig, classes: list, clock: Clock,
                stop: StopFlag = None) -> Generator[FinetuneReport, None, tuple[ProbeHead, float | None]]:
    """Yield 'train'/'validate' reports; return (best head, its validation bACC)."""
    mean, std = standardisation(train.x)
    x = torch.from_numpy((train.x - mean) / std)
    y = torch.from_numpy(train.y.astype(np.int64))
    x_val = torch.from_numpy((val.x - mean) / std)
    total = cfg.total_steps(len(train.y))
    head, opt, sched = _probe_optimiser(x.shape[1], cfg, total)
    probs = sampling_probs(train.y, cfg.n_classes, cfg.class_balanced)
    gen = torch.Generator().manual_seed(cfg.seed)
    keeper, interval = EarlyStopping(cfg.patience), cfg.validation_interval(total)
    clock.new_phase()
    for step in range(1, total + 1):
        if should_stop(stop):
            raise Cancelled
        loss = probe_step(head, x, y, probs, cfg.resolved_batch_size, gen, opt, sched)
        report = FinetuneReport("train", step, total, loss.item(), eta_s=clock.eta(step, total),
                                elapsed_s=clock.elapsed(), best_val_bacc=keeper.best_bacc)
        if step % interval == 0 or step == total:
            bacc, val_loss = validate_head(head, x_val, val.y, cfg.n_classes)
            keeper.update(bacc, val_loss, step, head.state_dict())
            report.phase, report.val_bacc, report.best_val_bacc = "validate", bacc, keeper.best_bacc
            report.message = f"validation balanced accuracy {bacc:.3f} (best {keeper.best_bacc:.3f} at step {keeper.best_step})"
        yield report
        if keeper.should_stop:
            yield FinetuneReport("validate", step, total, loss.item(), bacc, 0.0,
                                 f"early stop: no better validation balanced accuracy for {cfg.patience} checks",
                                 clock.elapsed(), keeper.best_bacc)
            break
    return to_probe_head(keeper.best_state, mean, std, cfg.task, classes), keeper.best_bacc


def _probe_optimiser(dim: int, cfg: FinetuneConfig, total: int):
    torch.manual_seed(cfg.seed)
    head = nn.Linear(dim, cfg.n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=cfg.resolved_lr, momentum=cfg.momentum,
                          weight_decay=cfg.resolved_weight_decay)
    warmup = cfg.warmup_for(total)
    return head, opt, cosine_scheduler(opt, warmup, total)
