"""The optimisation pieces every training loop shares (pre-training, fine-tuning, linear
probes, evaluation): the learning-rate schedule, class balancing, the device choice and the
stop flag. Parameter groups (which weights decay) live in `mama_core.model.params`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Hashable, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the stop flag and class weights serve jobs (PACS
# retrieval, indexing) that should not pay for importing it.
StopFlag = Callable[[], bool] | Any | None  # a threading.Event, anything with is_set(), or a callable


# --------------------------------------------------------------------------- schedule


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.0) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay from 1 to `floor`
    at `total` (the paper's schedule, docs/method.md)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.0,
                     done_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `warmup_cosine`, positioned after `done_steps` optimiser steps.

    The multiplier is a plain function, which LambdaLR leaves out of its state_dict: a resumed
    run follows its own config (a larger `max_steps` extends the schedule) rather than the
    checkpoint's. Resuming = load the optimiser state, then build this with `done_steps`; it
    needs the `initial_lr` the first scheduler wrote into the optimiser's groups."""
    import torch

    def multiplier(step: int) -> float:
        return warmup_cosine(step, warmup, total, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier, last_epoch=done_steps - 1)


def optimiser_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """One plain update: clear the gradients, back-propagate `loss`, step the optimiser and
    its schedule (the probe and encoder loops; the trainer adds scaling and clipping)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


# --------------------------------------------------------------------------- class balancing


def inverse_class_frequency(labels: Sequence[Hashable]) -> np.ndarray:
    """1 / (number of samples of its class) per sample, float64: each class present carries
    the same total weight (missing labels, e.g. None, form their own class)."""
    values = [v.item() if isinstance(v, np.generic) else v for v in labels]
    counts = Counter(values)
    return np.array([1.0 / counts[v] for v in values], dtype=np.float64)


def balanced_probs(labels: Sequence[Hashable]) -> np.ndarray:
    """Per-sample draw probabilities (summing to 1) so each class is drawn equally often."""
    weights = inverse_class_frequency(labels)
    return weights / weights.sum()


# --------------------------------------------------------------------------- device


def auto_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None): the GPU when CUDA is available, else the CPU; anything else as given."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_autocast(device: torch.device, enabled: bool = True):
    """The one mixed-precision context: bf16 autocast with fp32 master weights (docs/method.md
    §1), or nothing when not `enabled`. Callers decide `enabled` (training: the config's
    precision; inference and fine-tuning: on CUDA only)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def peak_memory_mb(device: torch.device) -> float:
    """The job's memory high-water mark: CUDA memory allocated on a GPU, else the process's peak
    resident set (Linux reports ru_maxrss in KiB)."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- stop flag


def should_stop(stop: StopFlag) -> bool:
    """Poll a job's stop flag (None: never stop)."""
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


class Cancelled(Exception):
    """Raised inside a job when its stop flag is seen; the job's entry point turns it into
    its final 'cancelled' report, so callers never see an exception for a cancel they asked for."""
