"""`lora` and `full` modes: the vision encoder is trained together with the task head.

- lora: LoRA adapters (peft) on the DINOv2 attention projections q_proj / v_proj
  (transformers 5 names, docs/method.md §7), everything else frozen; the adapters are merged into
  the encoder weights before saving, so the new model directory is a plain MaMA model.
- full: every parameter on the image path trains (AdamW only keeps state for parameters
  that receive gradients, so the frozen-by-construction text tower costs nothing).

The head starts from the linear probe fitted first on frozen features ("LP-FT": a random
head would push large, uninformative gradients into the pre-trained encoder in the first
steps), and keeps the probe's input standardisation.

This is the one encoder loop: local fine-tuning gives it a validation split (early stopping,
best state kept); the evaluation protocol's "fine-tuning" rows (`evaluation.runner`) give
none, so every step runs and the last state is kept.
"""

from __future__ import annotations

from typing import Any, Generator, Sequence

import numpy as np
import torch
from torch import nn

from mama_core.errors import ModelError
from mama_core.finetune.compare import balanced_accuracy
from mama_core.finetune.config import FinetuneConfig
from mama_core.finetune.loop import run_steps
from mama_core.finetune.features import autocast_for, extract_global
from mama_core.finetune.probe import sampling_probs
from mama_core.finetune.reports import Clock, FinetuneReport
from mama_core.optim import StopFlag, cosine_scheduler, optimiser_step
from mama_core.inference.heads import ProbeHead
from mama_core.preprocess import normalise
from mama_core.training.augment import augment
from mama_core.training.cache import ImageCache
from mama_core.training.config import AugmentConfig


class StandardisedHead(nn.Module):
    """softmax(W ((x - mean) / std) + b): the inference/heads.py formula, trainable."""

    def __init__(self, probe: ProbeHead):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(probe.mean))
        self.register_buffer("std", torch.from_numpy(probe.std))
        self.linear = nn.Linear(probe.weight.shape[1], probe.weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(probe.weight))
            self.linear.bias.copy_(torch.from_numpy(probe.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.float() - self.mean) / self.std)

    def to_probe_head(self, probe: ProbeHead) -> ProbeHead:
        return ProbeHead(task=probe.task, classes=probe.classes, feature="image_global",
                         weight=self.linear.weight.detach().cpu().numpy().copy(),
                         bias=self.linear.bias.detach().cpu().numpy().copy(), mean=probe.mean, std=probe.std)


def vision_encoder_slot(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute) holding the transformers DINOv2 model inside MamaModel."""
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    for name, module in model.named_modules():
        if isinstance(module, (Dinov2Model, Dinov2WithRegistersModel)):
            parent_name, _, attr = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attr
    raise ModelError("the model has no DINOv2 vision encoder to fine-tune")


def add_lora(model: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """Wrap the vision encoder with peft LoRA adapters; freeze everything else."""
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    parent, attr = vision_encoder_slot(model)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), bias="none")
    setattr(parent, attr, get_peft_model(getattr(parent, attr), lora))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the encoder weights (W + BA) and drop the peft wrapper."""
    from peft import PeftModel

    for name, module in list(model.named_modules()):
        if isinstance(module, PeftModel) and _is_vision_peft(module):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, module.merge_and_unload())
    return model


def _is_vision_peft(module: Any) -> bool:
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    return isinstance(module.get_base_model(), (Dinov2Model, Dinov2WithRegistersModel))


def prepare_trainable(model: nn.Module, cfg: FinetuneConfig) -> list[nn.Parameter]:
    if cfg.mode == "lora":
        with torch.random.fork_rng(devices=[]):  # the adapters' init follows cfg.seed
            torch.manual_seed(cfg.seed)
            add_lora(model, cfg)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _optimiser(params: list[nn.Parameter], head: nn.Module, cfg: FinetuneConfig, total: int):
    groups = [{"params": params, "lr": cfg.resolved_lr},
              # the head is already fitted; it may move faster than the encoder
              {"params": list(head.linear.parameters()), "lr": max(cfg.resolved_lr, 1e-3)}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.resolved_weight_decay)
    warmup = cfg.warmup_for(total)
    return opt, cosine_scheduler(opt, warmup, total)


def _trainable_state(model: nn.Module, head: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"model.{n}": p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state.update({f"head.{n}": p.detach().clone() for n, p in head.named_parameters()})
    return state


def _restore(model: nn.Module, head: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = {f"model.{n}": p for n, p in model.named_parameters()}
    params.update({f"head.{n}": p for n, p in head.named_parameters()})
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def validate(model: nn.Module, head: nn.Module, records: Sequence, y: np.ndarray, cache: ImageCache,
             device: torch.device, cfg: FinetuneConfig) -> tuple[float, float, np.ndarray]:
    """(balanced accuracy, cross-entropy, probabilities [N, C]) on the validation records."""
    feats = torch.cat([f for _, f in extract_global(model, records, cache, device, 16, cfg.bf16)])
    with torch.no_grad():
        logits = head(feats.to(head.mean.device)).float().cpu()
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(y)))
        probs = torch.softmax(logits.double(), dim=1).numpy()
    return balanced_accuracy(y, probs), loss, probs


def train_batch(records: Sequence, cache: ImageCache, device: torch.device, gen: torch.Generator,
                aug: AugmentConfig) -> torch.Tensor:
    """Augmented (docs/method.md §1.9: crop, flips, jitter, blur) model-scale input [B, 1, S, S]."""
    x = torch.stack([augment(cache.load(r.path), aug, gen) for r in records])
    return normalise(x).to(device)


def train_encoder(model: nn.Module, probe: ProbeHead, train: Sequence, y_train: np.ndarray, val: Sequence | None,
                  y_val: np.ndarray | None, cache: ImageCache, device: torch.device, cfg: FinetuneConfig,
                  clock: Clock | None = None,
                  stop: StopFlag = None) -> Generator[FinetuneReport, None, tuple[ProbeHead, float | None]]:
    """Yield 'train'/'validate' reports; leave `model` at its best state (LoRA merged) and
    return (best head, its validation bACC); with `val` None, at its last state and (head, None)."""
    params = prepare_trainable(model, cfg)
    head = StandardisedHead(probe).to(device)
    total = cfg.total_steps(len(train))
    opt, sched = _optimiser(params, head, cfg, total)
    probs = sampling_probs(y_train, cfg.class_balanced)
    gen, aug, y_t = torch.Generator().manual_seed(cfg.seed), AugmentConfig(), torch.from_numpy(y_train)

    def step() -> float:
        model.train()
        idx = torch.multinomial(probs, cfg.resolved_batch_size, replacement=True, generator=gen)
        x = train_batch([train[i] for i in idx.tolist()], cache, device, gen, aug)
        with autocast_for(device, cfg.bf16):
            feats = model.encode_image(x)["image_global"]
        loss = nn.functional.cross_entropy(head(feats), y_t[idx].to(device))
        optimiser_step(loss, opt, sched)
        return loss.item()

    validate_fn = None if val is None else (lambda: validate(model, head, val, y_val, cache, device, cfg)[:2])
    keeper = yield from run_steps(total, step, validate_fn, lambda: _trainable_state(model, head), cfg, clock, stop)
    if val is not None:
        _restore(model, head, keeper.best_state)
    return _finish(model, head, probe, cfg), keeper.best_bacc


def _finish(model: nn.Module, head: StandardisedHead, probe: ProbeHead, cfg: FinetuneConfig) -> ProbeHead:
    """Merge LoRA, freeze and switch to eval mode; the trained head as a ProbeHead."""
    if cfg.mode == "lora":
        merge_lora(model)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return head.cpu().to_probe_head(probe)
