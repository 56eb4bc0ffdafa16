"""`continue-pretraining` mode: more steps of the MaMA objective (eq. 4) on the local
studies, captions built from their own tables, through `mama_core.training`.

The run is the trainer's own (`train(..., init_from=base model directory)`): the loop, data
pipeline, image cache, losses and export are the trainer's; only the starting weights
differ.  The local alignment term is on from the first step (delta = 0): the base model has
already been through the paper's global-only warm-up.  Validation here is zero-shot balanced accuracy on the
held-out cases at the end; there is no early stopping on a contrastive run this short.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Generator

import torch

from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.optim import Cancelled, StopFlag
from mama_core.training import trainer
from mama_core.training.config import TrainConfig


def train_config(cfg: FinetuneConfig, model_info: dict, n_train: int, device: torch.device) -> TrainConfig:
    total = cfg.total_steps(n_train)
    return TrainConfig.from_dict({
        "model": model_info["model"],
        "loss": {"delta_steps": 0},
        "optim": {"lr": cfg.resolved_lr, "weight_decay": cfg.resolved_weight_decay,
                  "warmup_steps": cfg.warmup_for(total), "max_steps": total},
        "data": {"val_fraction": 0.0, "num_workers": 0, "split_seed": cfg.seed},
        "batch_size": cfg.resolved_batch_size, "seed": cfg.seed,
        "precision": "auto" if cfg.bf16 else "fp32",
        "device": str(device), "log_every": 1, "ckpt_every": 0,
    })


def continue_pretraining(loaded: Any, local: Any, cfg: FinetuneConfig, clock: Clock, stop: StopFlag, out: Path,
                         device: torch.device) -> Generator[FinetuneReport, None, float | None]:
    """Yield 'train' reports; leave the new model directory at `out`."""
    config = train_config(cfg, loaded.info, len(local.train), device)
    run_dir = out.parent / "pretrain-run"
    clock.new_phase()
    for report in trainer.train(config, local.train, run_dir, stop=stop, init_from=loaded.ref.dir):
        if report.cancelled:
            raise Cancelled
        yield FinetuneReport("train", report.step, report.max_steps, report.loss, eta_s=report.eta_s,
                             elapsed_s=clock.elapsed(), message="MaMA objective on local studies",
                             extra={"losses": report.losses})
        if report.model_dir:
            shutil.move(report.model_dir, out)
    shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints of a run nobody will resume
    return None
