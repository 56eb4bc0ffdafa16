"""`FinetuneConfig`: what a local fine-tuning run does, validated on construction.

Defaults per mode.  The linear probe follows the paper's recipe (SGD, momentum 0.9,
lr 5e-4, weight decay 1e-3, cosine schedule, 100 warm-up steps, class-balanced sampling);
the paper trains far longer, but on the few hundred local images a workstation user has,
a few hundred steps reach the plateau (measured in docs/finetuning.md).  LoRA and full
fine-tuning use AdamW with smaller rates for the encoder; continue-pretraining uses the
paper's pre-training rate (AdamW 4e-5).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mama_core.config import (Config, choice, device_name, in_interval, non_negative_int, non_negative_number,
                              positive_int, positive_number)

TASK_CLASSES: dict[str, int] = {"birads": 7, "density": 4, "cancer": 2}
MODES: tuple[str, ...] = ("linear-probe", "lora", "full", "continue-pretraining")

DEFAULT_STEPS = {"linear-probe": 300, "lora": 200, "full": 200, "continue-pretraining": 200}
DEFAULT_LR = {"linear-probe": 5e-4, "lora": 1e-4, "full": 1e-5, "continue-pretraining": 4e-5}
DEFAULT_WD = {"linear-probe": 1e-3, "lora": 1e-2, "full": 0.05, "continue-pretraining": 0.1}
DEFAULT_BATCH = {"linear-probe": 64, "lora": 8, "full": 8, "continue-pretraining": 8}


@dataclass
class FinetuneConfig(Config):
    task: str = field(default="density", metadata={"help": "what to predict: birads | density | cancer"})
    mode: str = field(default="linear-probe", metadata={
        "help": "linear-probe | lora | full | continue-pretraining"})
    base_model: str = field(default="active", metadata={
        "help": "model to start from: active (the registry's active version) or a model directory"})
    name: str | None = field(default=None, metadata={
        "help": "name of the new registry version; null = <task>-<mode>"})
    val_fraction: float = field(default=0.25, metadata={
        "help": "share of patients held out for validation and the comparison with the active model"})
    seed: int = field(default=0, metadata={"help": "seed of the split, initialisation and sampling"})
    max_steps: int | None = field(default=None, metadata={
        "help": "optimiser steps; null = the mode's default, or from epochs"})
    epochs: float | None = field(default=None, metadata={
        "help": "passes over the training split, instead of max_steps"})
    lr: float | None = field(default=None, metadata={"help": "learning rate; null = the mode's default"})
    weight_decay: float | None = field(default=None, metadata={
        "help": "weight decay; null = the mode's default"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum of the linear probe (paper: 0.9)"})
    warmup_steps: int = field(default=100, metadata={
        "help": "linear warm-up steps, capped at a fifth of the run (paper probe: 100)"})
    batch_size: int | None = field(default=None, metadata={
        "help": "images per step; null = the mode's default"})
    class_balanced: bool = field(default=True, metadata={"help": "sample classes equally often"})
    patience: int = field(default=5, metadata={
        "help": "validations without a better balanced accuracy before stopping early"})
    eval_every: int | None = field(default=None, metadata={
        "help": "steps between validations; null = about a twentieth of the run"})
    standardise: bool = field(default=True, metadata={
        "help": "standardise probe inputs with the training split's mean and std"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (lora mode)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (lora mode)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (lora mode)"})
    lora_targets: tuple[str, ...] = field(default=("q_proj", "v_proj"), metadata={
        "help": "vision modules LoRA wraps (lora mode)"})
    bf16: bool = field(default=True, metadata={
        "help": "bf16 autocast on CUDA with fp32 master weights; ignored on CPU"})
    device: str | None = field(default=None, metadata={
        "help": "cpu | cuda | cuda:N; null = CUDA when available"})

    def __post_init__(self) -> None:
        choice(self.task, tuple(TASK_CLASSES), "task")
        choice(self.mode, MODES, "mode")
        in_interval(self.val_fraction, "val_fraction", 0.0, 1.0, closed_low=False)
        for key in ("max_steps", "batch_size", "eval_every"):
            if getattr(self, key) is not None:
                positive_int(getattr(self, key), key)
        if self.weight_decay is not None:
            non_negative_number(self.weight_decay, "weight_decay")
        for key in ("epochs", "lr"):
            if getattr(self, key) is not None:
                positive_number(getattr(self, key), key)
        positive_int(self.patience, "patience")
        non_negative_int(self.warmup_steps, "warmup_steps")
        if self.device is not None:
            device_name(self.device, "device")
        self.lora_targets = tuple(self.lora_targets)

    # -- resolved values ----------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return TASK_CLASSES[self.task]

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.mode]

    @property
    def resolved_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WD[self.mode]

    @property
    def resolved_batch_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH[self.mode]

    @property
    def display_name(self) -> str:
        return self.name or f"{self.task}-{self.mode}"

    def total_steps(self, n_train: int) -> int:
        """max_steps, else epochs x batches per epoch, else the per-mode default."""
        if self.max_steps is not None:
            return self.max_steps
        if self.epochs is not None:
            per_epoch = -(-n_train // self.resolved_batch_size)
            return max(1, round(self.epochs * per_epoch))
        return DEFAULT_STEPS[self.mode]

    def warmup_for(self, total: int) -> int:
        # 100 warm-up steps in a 120-step run would leave no time at full rate.
        return min(self.warmup_steps, total // 5)

    def validation_interval(self, total: int) -> int:
        return self.eval_every or max(1, total // 20)

    def initial_probe(self) -> "FinetuneConfig":
        """The linear probe that starts the lora/full modes' head (LP-FT): the probe's own
        defaults, whatever steps, rate and batch the encoder stage was given."""
        return replace(self, mode="linear-probe", max_steps=DEFAULT_STEPS["linear-probe"], epochs=None,
                       lr=None, weight_decay=None, batch_size=None)

    def base_is_active(self) -> bool:
        return str(self.base_model) == "active"
