"""Distributed data parallel set-up (docs/method.md §1.8: one GPU, several, or several machines).

Launch with torchrun, which sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR:

    torchrun --nproc_per_node=4 -m mama_core.cli train --config ... --data ... --out ...
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend c10d \
             --rdzv-endpoint HOST:29500 --rdzv-id RUN -m mama_core.cli train ...

NCCL on GPUs, gloo on CPU. The losses all-gather embeddings with gradient
(`mama_core.losses.gather_outputs`) so every rank's loss is the loss of the global batch.

Gradient scale under DDP, worked out once: every rank computes the same global loss L.
`torch.distributed.nn.functional.all_gather` sums, in backward, the gradients that all
ranks send to each slice, so rank r's embeddings receive K * dL/dz_r (K = world size), and
rank r's parameter gradients are K * (its share of dL/dθ). DDP then *averages* over ranks:
(1/K) * sum_r K * share_r = dL/dθ — exactly the single-process gradient on the
concatenated batch, with no extra factor. Parameters used outside the gather (the logit
scales) get the full dL/ds on every rank, and the average leaves that unchanged too.
`tests/training/test_distributed.py` checks this numerically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mama_core.optim import auto_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False  # whether we must destroy the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' = the local rank's GPU when CUDA is available, else the CPU."""
    if preference == "auto":
        preference = auto_device("auto").type
    if preference == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(preference)


def init_distributed(preference: str = "auto") -> DistInfo:
    """Join the process group torchrun (or a test's spawn) describes; single process else."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local, _set_device(pick_device(preference, local)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=_set_device(pick_device(preference)))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = _set_device(pick_device(preference, local))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, device, True)


def _set_device(device: torch.device) -> torch.device:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def cleanup(info: DistInfo) -> None:
    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _collective_device(info: DistInfo) -> torch.device:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    return info.device if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device(info))
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when it is True on any (a stop request seen by one rank)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=_collective_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: object, info: DistInfo) -> list:
    """`obj` from every rank, in rank order (on every rank)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
