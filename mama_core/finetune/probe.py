"""The one linear-probe loop: a linear head trained on frozen global features, as a
generator of reports.

The recipe is the paper's linear probe (SGD, momentum 0.9, lr 5e-4, weight decay 1e-3,
cosine schedule with linear warm-up, class-balanced sampling; docs/method.md §1.10), with
the schedule and sampling weights of `mama_core.optim`. Two callers:

- local fine-tuning (`finetune.run`) gives a validation split: the loop validates as it
  goes, stops early on the validation balanced accuracy and returns the best head;
- the evaluation protocol (`evaluation.runner`, `fit_probe`) gives none: every step runs
  and the last head is returned, as in the paper's tables.

Either way the result is an `inference.heads.ProbeHead`, ready to save or to predict with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Sequence

import numpy as np
import torch
from torch import nn

from mama_core.finetune.compare import balanced_accuracy
from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.loop import run_steps
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.inference.heads import ProbeHead
from mama_core.optim import StopFlag, balanced_probs, cosine_scheduler, optimiser_step


@dataclass
class FeatureSplit:
    """Raw global features [N, D] with task labels [N] (class indices 0..C-1)."""

    x: np.ndarray
    y: np.ndarray


def standardisation(x: np.ndarray, on: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the training features (zeros / ones when off). Frozen embeddings have
    arbitrary scale; standardising lets the paper's small rate converge in a few hundred steps."""
    if not on:
        return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    return x.mean(axis=0).astype(np.float32), (x.std(axis=0) + 1e-6).astype(np.float32)


def sampling_probs(y: np.ndarray, balanced: bool) -> torch.Tensor:
    """Per-sample draw probabilities: each class present equally often, or uniform."""
    if balanced:
        return torch.from_numpy(balanced_probs(y))
    return torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)


def probe_step(head: nn.Module, x: torch.Tensor, y: torch.Tensor, probs: torch.Tensor, batch_size: int,
               gen: torch.Generator, opt: torch.optim.Optimizer, sched) -> torch.Tensor:
    """Draw a batch by `probs` (with replacement: class-balanced when `probs` are) and take one
    optimiser step of cross-entropy on it; returns the loss."""
    batch = torch.multinomial(probs, batch_size, replacement=True, generator=gen)
    loss = nn.functional.cross_entropy(head(x[batch]), y[batch])
    optimiser_step(loss, opt, sched)
    return loss


def validate_head(head: nn.Linear, x_val: torch.Tensor, y_val: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy, cross-entropy) of the head on the validation split."""
    with torch.no_grad():
        logits = head(x_val)
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(y_val)))
        probs = torch.softmax(logits.double(), dim=1).numpy()
    return balanced_accuracy(y_val, probs), loss


def to_probe_head(state: dict, mean: np.ndarray, std: np.ndarray, task: str, classes: list) -> ProbeHead:
    return ProbeHead(task=task, classes=list(classes), weight=state["weight"].numpy().copy(),
                     bias=state["bias"].numpy().copy(), mean=mean, std=std, feature="image_global")


def train_probe(train: FeatureSplit, val: FeatureSplit | None, cfg: FinetuneConfig, classes: Sequence,
                clock: Clock | None = None,
                stop: StopFlag = None) -> Generator[FinetuneReport, None, tuple[ProbeHead, float | None]]:
    """Yield 'train'/'validate' reports; return (best head, its validation bACC), or with
    `val` None (no validation, no early stopping) (last head, None)."""
    mean, std = standardisation(train.x, cfg.standardise)
    x = torch.from_numpy((train.x - mean) / std)
    y = torch.from_numpy(train.y.astype(np.int64))
    x_val = None if val is None else torch.from_numpy((val.x - mean) / std)
    total = cfg.total_steps(len(train.y))
    head, opt, sched = _probe_optimiser(x.shape[1], len(classes), cfg, total)
    probs = sampling_probs(train.y, cfg.class_balanced)
    gen = torch.Generator().manual_seed(cfg.seed)

    def step() -> float:
        return probe_step(head, x, y, probs, cfg.resolved_batch_size, gen, opt, sched).item()

    validate = None if x_val is None else (lambda: validate_head(head, x_val, val.y))
    keeper = yield from run_steps(total, step, validate, head.state_dict, cfg, clock, stop)
    state = head.state_dict() if x_val is None else keeper.best_state
    return to_probe_head(state, mean, std, cfg.task, classes), keeper.best_bacc


def fit_probe(features: np.ndarray, labels: np.ndarray, cfg: FinetuneConfig, classes: Sequence) -> ProbeHead:
    """The evaluation protocol's probe: every step of `train_probe` without validation."""
    split = FeatureSplit(np.asarray(features, np.float32), np.asarray(labels, np.int64))
    head, _ = run_to_end(train_probe(split, None, cfg, classes))
    return head


def run_to_end(job: Generator):
    """Drain a job's reports and return its result (for callers that show no progress)."""
    while True:
        try:
            next(job)
        except StopIteration as done:
            return done.value


def _probe_optimiser(dim: int, n_classes: int, cfg: FinetuneConfig, total: int):
    with torch.random.fork_rng(devices=[]):  # the head's init follows cfg.seed, not whatever ran before
        torch.manual_seed(cfg.seed)
        head = nn.Linear(dim, n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=cfg.resolved_lr, momentum=cfg.momentum,
                          weight_decay=cfg.resolved_weight_decay)
    return head, opt, cosine_scheduler(opt, cfg.warmup_for(total), total)
