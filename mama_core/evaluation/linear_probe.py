"""Linear probe on frozen global image features (paper §4, Tables 1-3, "linear probing").

Recipe (paper): a single linear layer trained with SGD (momentum 0.9, lr 5e-4, weight
decay 1e-3), cosine schedule with 100 warm-up steps, class-balanced sampling, on 1 %, 10 %
or 100 % of the training split.  Features are standardised with the training mean/std
first (a choice of ours, `standardise=True`): frozen embeddings have arbitrary scale and
this lets the paper's small learning rate converge in a few hundred steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mama_core.errors import ConfigError
from mama_core.optim import balanced_probs, cosine_scheduler

FRACTIONS = (0.01, 0.1, 1.0)


@dataclass
class ProbeConfig:
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 1e-3
    warmup_steps: int = 100
    steps: int = 1000
    batch_size: int = 64
    fraction: float = 1.0
    standardise: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction}", field="fraction")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("steps and batch_size must be positive", field="steps")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps must be >= 0", field="warmup_steps")


@dataclass
class LinearProbe:
    """A trained probe: `predict_proba(features)` -> [N, C] softmax probabilities."""

    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [D] standardisation (zeros / ones when off)
    std: np.ndarray  # [D]
    classes: list[int]

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float32) - self.mean) / self.std
        return x @ self.weight.T + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = self.logits(features)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def subsample_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified `fraction` of the samples, at least one per class present."""
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(len(idx) * fraction)))
        keep.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(keep))


def optimiser_step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched) -> None:
    """One update: clear the gradients, back-propagate `loss`, step the optimiser and its schedule."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def probe_step(head: nn.Module, x: torch.Tensor, y: torch.Tensor, probs: torch.Tensor, batch_size: int,
               gen: torch.Generator, opt: torch.optim.Optimizer, sched) -> torch.Tensor:
    """Draw a batch by `probs` (with replacement: class-balanced when `probs` are) and take one
    optimiser step of cross-entropy on it; returns the loss."""
    batch = torch.multinomial(probs, batch_size, replacement=True, generator=gen)
    loss = nn.functional.cross_entropy(head(x[batch]), y[batch])
    optimiser_step(loss, opt, sched)
    return loss


def _standardisation(x: np.ndarray, on: bool) -> tuple[np.ndarray, np.ndarray]:
    if not on:
        return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    return x.mean(axis=0).astype(np.float32), (x.std(axis=0) + 1e-6).astype(np.float32)


def train_linear_probe(features, labels, n_classes: int, cfg: ProbeConfig | None = None) -> LinearProbe:
    """Fit a linear head on frozen features [N, D] with labels [N] in 0..n_classes-1."""
    cfg = cfg or ProbeConfig()
    x_all = np.asarray(features, np.float32)
    y_all = np.asarray(labels, dtype=np.int64)
    idx = subsample_fraction(y_all, cfg.fraction, cfg.seed)
    x_np, y_np = x_all[idx], y_all[idx]
    mean, std = _standardisation(x_np, cfg.standardise)
    x = torch.from_numpy((x_np - mean) / std)
    y = torch.from_numpy(y_np)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):  # the head's init follows cfg.seed, not whatever ran before
        torch.manual_seed(cfg.seed)
        head = nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = cosine_scheduler(opt, cfg.warmup_steps, cfg.steps)
    probs = torch.from_numpy(balanced_probs(y_np))
    for _ in range(cfg.steps):
        probe_step(head, x, y, probs, cfg.batch_size, gen, opt, sched)
    return LinearProbe(
        weight=head.weight.detach().numpy().copy(),
        bias=head.bias.detach().numpy().copy(),
        mean=mean,
        std=std,
        classes=list(range(n_classes)),
    )
