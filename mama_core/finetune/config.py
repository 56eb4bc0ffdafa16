"""`FinetuneConfig`: what a local fine-tuning run does, validated on construction.

Defaults per mode.  The linear probe follows the paper's recipe (SGD, momentum 0.9,
lr 5e-4, weight decay 1e-3, cosine schedule, 100 warm-up steps, class-balanced sampling);
the paper trains far longer, but on the few hundred local images a workstation user has,
a few hundred steps reach the plateau (measured in docs/finetuning.md).  LoRA and full
fine-tuning use AdamW with smaller rates for the encoder; continue-pretraining uses the
paper's pre-training rate (AdamW 4e-5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mama_core.errors import ConfigError

TASK_CLASSES: dict[str, int] = {"birads": 7, "density": 4, "cancer": 2}
MODES: tuple[str, ...] = ("linear-probe", "lora", "full", "continue-pretraining")

DEFAULT_STEPS = {"linear-probe": 300, "lora": 200, "full": 200, "continue-pretraining": 200}
DEFAULT_LR = {"linear-probe": 5e-4, "lora": 1e-4, "full": 1e-5, "continue-pretraining": 4e-5}
DEFAULT_WD = {"linear-probe": 1e-3, "lora": 1e-2, "full": 0.05, "continue-pretraining": 0.1}
DEFAULT_BATCH = {"linear-probe": 64, "lora": 8, "full": 8, "continue-pretraining": 8}


@dataclass
class FinetuneConfig:
    task: str = "density"
    mode: str = "linear-probe"
    base_model: str = "active"  # "active" (registry) or a model directory
    name: str | None = None  # registry name; default "<task>-<mode>"
    val_fraction: float = 0.25  # of patients, held out for validation and the comparison
    seed: int = 0
    max_steps: int | None = None  # optimiser steps; default per mode, or from `epochs`
    epochs: float | None = None  # alternative to max_steps: passes over the training split
    lr: float | None = None  # default per mode (DEFAULT_LR)
    weight_decay: float | None = None
    momentum: float = 0.9  # probe SGD (paper)
    warmup_steps: int = 100  # paper's probe warm-up; capped at a fifth of the run
    batch_size: int | None = None
    class_balanced: bool = True
    patience: int = 5  # validations without a better balanced accuracy before stopping
    eval_every: int | None = None  # steps between validations; default ~ total / 20
    standardise: bool = True  # probe input standardisation (see evaluation.linear_probe)
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # DINOv2 attention names (transformers 5)
    bf16: bool = True  # bf16 autocast on CUDA (fp32 master weights); ignored on CPU
    device: str | None = None  # None: CUDA when available, else CPU

    def __post_init__(self) -> None:
        if self.task not in TASK_CLASSES:
            raise ConfigError(f"unknown task {self.task!r}; expected one of {sorted(TASK_CLASSES)}", field="task")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; expected one of {list(MODES)}", field="mode")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}", field="val_fraction")
        for key in ("max_steps", "batch_size", "eval_every"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"{key} must be positive, got {value}", field=key)
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}", field="epochs")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}", field="lr")
        if self.patience < 1 or self.warmup_steps < 0:
            raise ConfigError("patience must be >= 1 and warmup_steps >= 0", field="patience")
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

    def base_is_active(self) -> bool:
        return str(self.base_model) == "active"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        out["base_model"] = str(self.base_model) if isinstance(self.base_model, Path) else self.base_model
        return out
