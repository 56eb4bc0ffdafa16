"""Typed training configuration: YAML on disk, `--set key.sub=value` overrides, validation.

Every section is a dataclass validated in `__post_init__` and built by the one config
mechanism (`mama_core.config`). The model and loss sections are plain dicts here, built
into `mama_core.model.ModelConfig` and `mama_core.losses.LossConfig` (which own their own
validation); `TrainConfig` checks them at construction so that a bad value fails before
any weight is loaded.

Defaults follow the paper's optimisation recipe (docs/method.md §1.8): AdamW lr 4e-5,
weight decay 0.1, cosine schedule with 4k warm-up over 40k steps, bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mama_core.config import (Config, build, choice, in_interval, non_negative_int, non_negative_number,
                              ordered_pair, positive_int, positive_number, probability, read_yaml, device_name)
from mama_core.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")
# Which encoders' transformer blocks recompute their activations in the backward pass.
CHECKPOINTING = ("none", "vision", "text", "all")
BALANCE = ("none", "birads", "density")
CACHE_DTYPES = ("float16", "uint16")


@dataclass
class OptimConfig(Config):
    """AdamW + cosine schedule with linear warm-up (paper §4: lr 4e-5, wd 0.1, 4k/40k)."""

    lr: float = field(default=4e-5, metadata={
        "help": "peak AdamW learning rate, reached after the warm-up (paper: 4e-5)"})
    weight_decay: float = field(default=0.1, metadata={
        "help": "AdamW weight decay; biases, norms and temperatures get none unless decay_all (paper: 0.1)"})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW (beta1, beta2)"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    warmup_steps: int = field(default=4000, metadata={
        "help": "steps of linear warm-up from 0 to lr (paper: 4000)"})
    max_steps: int = field(default=40000, metadata={
        "help": "optimiser steps of the whole run; the cosine decay ends here (paper: 40000)"})
    min_lr_ratio: float = field(default=0.0, metadata={
        "help": "cosine floor as a fraction of lr (0 = decay to zero)"})
    grad_clip: float = field(default=0.0, metadata={
        "help": "max global gradient norm; 0 = off (the paper does not clip)"})
    # Weight decay on every trainable parameter (the released code's single AdamW group)
    # instead of sparing biases, norms, embeddings-like tokens and temperatures (the paper).
    decay_all: bool = field(default=False, metadata={
        "help": "weight decay on every trainable parameter, one AdamW group (released code)"})

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives a list
        positive_number(self.lr, "lr")
        non_negative_number(self.weight_decay, "weight_decay")
        ordered_pair(self.betas, "betas", 0.0, 0.999999)
        positive_number(self.eps, "eps")
        non_negative_int(self.warmup_steps, "warmup_steps")
        positive_int(self.max_steps, "max_steps")
        probability(self.min_lr_ratio, "min_lr_ratio")
        non_negative_number(self.grad_clip, "grad_clip")


@dataclass
class AugmentConfig(Config):
    """Training augmentations (docs/method.md §1.9), all written with torch ops.

    Flips: images arrive canonical (chest wall at column 0, whatever the laterality), so a
    horizontal flip yields what an uncanonicalised image of the other breast looks like —
    anatomically plausible, and it makes the model robust to images whose orientation
    heuristic failed. It is on by default (p=0.5); side information lives in the caption and
    is masked 80 % of the time anyway. A vertical flip puts the pectoral muscle of an MLO view
    at the bottom, which no real image shows, so it is off by default.
    """

    crop_scale: tuple[float, float] = field(default=(0.7, 1.0), metadata={
        "help": "random resized crop: (min, max) fraction of the square's area kept"})
    crop_ratio: tuple[float, float] = field(default=(0.8, 1.25), metadata={
        "help": "random resized crop: (min, max) aspect ratio w/h"})
    hflip_prob: float = field(default=0.5, metadata={
        "help": "probability of a horizontal flip (looks like the other breast; side is in the caption)"})
    vflip_prob: float = field(default=0.0, metadata={
        "help": "probability of a vertical flip (off: no real MLO has the pectoral muscle at the bottom)"})
    brightness: float = field(default=0.1, metadata={"help": "additive brightness shift drawn from [-b, b]"})
    contrast: float = field(default=0.2, metadata={
        "help": "multiplicative contrast factor drawn from [1-c, 1+c]"})
    gamma: float = field(default=0.2, metadata={"help": "gamma = exp(u) with u drawn from [-g, g]"})
    blur_prob: float = field(default=0.3, metadata={"help": "probability of a Gaussian blur"})
    blur_sigma: tuple[float, float] = field(default=(0.1, 1.5), metadata={
        "help": "(min, max) blur sigma in pixels of the model input"})

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.crop_ratio = tuple(float(v) for v in self.crop_ratio)
        self.blur_sigma = tuple(float(v) for v in self.blur_sigma)
        ordered_pair(self.crop_scale, "crop_scale", 0.01, 1.0)
        ordered_pair(self.crop_ratio, "crop_ratio", 0.1, 10.0)
        ordered_pair(self.blur_sigma, "blur_sigma", 0.0, 20.0)
        for name in ("hflip_prob", "vflip_prob", "blur_prob"):
            probability(getattr(self, name), name)
        for name in ("brightness", "contrast", "gamma"):
            in_interval(getattr(self, name), name, 0.0, 1.0)


@dataclass
class DataConfig(Config):
    """Pairs, captions, cache and loader (docs/method.md §1.1, §1.9)."""

    mask_prob: float = field(default=0.8, metadata={
        "help": "probability of masking each meta-information field of a training caption (paper: 0.8)"})
    second_view_prob: float = field(default=0.5, metadata={
        "help": "probability that the second view is another image of the study (else an augmented copy)"})
    val_fraction: float = field(default=0.1, metadata={
        "help": "share of patients held out for the validation loss (0 = none)"})
    split_seed: int = field(default=0, metadata={
        "help": "seed of the patient-level train/validation split (fixed so resumed and distributed runs agree)"})
    num_workers: int = field(default=2, metadata={"help": "DataLoader worker processes"})
    balance: str = field(default="none", metadata={"help": "class-balanced sampling: none | birads | density"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "folder of the decoded-image cache; null = <user cache dir>/images"})
    cache_dtype: str = field(default="float16", metadata={
        "help": "storage type of cached images: float16 | uint16"})
    cache_workers: int = field(default=0, metadata={
        "help": "processes that prefill the image cache (0 = in the main process)"})

    def __post_init__(self) -> None:
        probability(self.mask_prob, "mask_prob")
        probability(self.second_view_prob, "second_view_prob")
        in_interval(self.val_fraction, "val_fraction", 0.0, 1.0)
        non_negative_int(self.split_seed, "split_seed")
        non_negative_int(self.num_workers, "num_workers")
        non_negative_int(self.cache_workers, "cache_workers")
        choice(self.balance, BALANCE, "balance")
        choice(self.cache_dtype, CACHE_DTYPES, "cache_dtype")


@dataclass
class TrainConfig(Config):
    """Everything one training run needs besides the data and the output folder."""

    model: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the model: see the model.* options (mama_core.model.ModelConfig)"})
    loss: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the objective, eq. (4): see the loss.* options (mama_core.losses.LossConfig)"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={
        "help": "optimiser and schedule: see the optim.* options"})
    data: DataConfig = field(default_factory=DataConfig, metadata={
        "help": "pairs, captions, cache and loader: see the data.* options"})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={
        "help": "training augmentations: see the augment.* options"})
    batch_size: int = field(default=36, metadata={
        "help": "image-caption pairs per process per micro-batch (reference recipe: 36 per GPU x 4 GPUs)"})
    grad_accum: int = field(default=1, metadata={
        "help": "micro-batches per optimiser step (effective batch = batch_size x grad_accum x processes)"})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32; master weights stay fp32"})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "older spelling of checkpointing: vision (kept for existing configs)"})
    checkpointing: str = field(default="none", metadata={
        "help": "activation checkpointing per encoder: none | vision (ViT blocks) | text (text blocks) | all"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the two encoders (slow first steps; worth it on long GPU runs)"})
    sync_batchnorm: bool = field(default=False, metadata={
        "help": "under torchrun on CUDA, BatchNorm layers (the reference preset's heads) normalise over "
                "the whole global batch instead of each process's share; the released code does not"})
    image_size: int | None = field(default=None, metadata={
        "help": "model input size in pixels; null = model.vision.image_size, else overrides it"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, batches and dropout"})
    device: str = field(default="auto", metadata={
        "help": "auto | cpu | cuda | cuda:N (under torchrun each process takes its local GPU)"})
    log_every: int = field(default=10, metadata={
        "help": "steps between logged reports (metrics.csv, TensorBoard, console)"})
    ckpt_every: int = field(default=1000, metadata={"help": "steps between checkpoints (0 = only at the end)"})
    keep_last: int = field(default=3, metadata={"help": "checkpoints kept in the run folder"})
    val_every: int = field(default=0, metadata={"help": "steps between validation losses; 0 = only at the end"})
    val_batches: int = field(default=20, metadata={
        "help": "at most this many validation batches per validation"})
    deterministic: bool = field(default=True, metadata={
        "help": "deterministic kernels on CPU (exact resume; a little slower)"})

    def __post_init__(self) -> None:
        self.optim = _section(OptimConfig, self.optim, "optim")
        self.data = _section(DataConfig, self.data, "data")
        self.augment = _section(AugmentConfig, self.augment, "augment")
        for name in ("batch_size", "grad_accum", "log_every", "keep_last", "val_batches"):
            positive_int(getattr(self, name), name)
        for name in ("seed", "ckpt_every", "val_every"):
            non_negative_int(getattr(self, name), name)
        choice(self.precision, PRECISIONS, "precision")
        device_name(self.device, "device")
        if self.image_size is not None:
            non_negative_int(self.image_size, "image_size")
            self.model = _nested_set(dict(self.model), ["vision", "image_size"], self.image_size)
        if self.checkpointing not in CHECKPOINTING:
            raise ConfigError(f"must be one of {CHECKPOINTING}, got {self.checkpointing!r}", field="checkpointing")
        if self.checkpointing in ("vision", "all") or self.grad_checkpointing:
            self.model = _nested_set(dict(self.model), ["vision", "gradient_checkpointing"], True)
        if self.checkpointing in ("text", "all"):
            self.model = _nested_set(dict(self.model), ["text", "gradient_checkpointing"], True)
        self.loss_config()
        self.model_config()

    # The sub-configs owned by other modules, built (and so validated) on demand.
    def loss_config(self):
        from mama_core.losses import LossConfig

        return build(LossConfig, dict(self.loss), "loss")

    def model_config(self):
        from mama_core.model import ModelConfig

        return build(ModelConfig, _deep_copy(self.model), "model")


# --------------------------------------------------------------------------- building


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _section(cls: type, value: Any, name: str) -> Any:
    return value if isinstance(value, cls) else build(cls, value, name)


# --------------------------------------------------------------------------- overrides


def _parse_scalar(text: str, hint: Any, name: str) -> Any:
    """The text of one `--set` value, typed by its field's hint (YAML syntax otherwise)."""
    origin = typing.get_origin(hint)
    if hint is str:
        return text
    if origin in (typing.Union, types.UnionType) and str in typing.get_args(hint):
        return None if text.strip().lower() in ("none", "null", "~") else text
    if origin is tuple and "," in text and not text.strip().startswith("["):
        text = f"[{text}]"  # allow `--set augment.crop_scale=0.6,1.0`
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}", field=name) from None


def _nested_set(data: dict, keys: list[str], value: Any) -> dict:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = dict(child) if isinstance(child, dict) else {}
        node = node[key]
    node[keys[-1]] = value
    return data


def _hint_for(keys: list[str]) -> Any:
    """The type hint of a dotted path inside TrainConfig (Any inside the dict sections)."""
    cls: Any = TrainConfig
    hint: Any = Any
    for key in keys:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return Any
        hints = typing.get_type_hints(cls)
        if key not in hints:
            raise ConfigError("unknown option", field=".".join(keys))
        hint = hints[key]
        cls = hint
    return hint


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` strings to a config mapping, typing each value by its field."""
    data = _deep_copy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value", field="--set")
        keys = key.split(".")
        value = _parse_scalar(text, _hint_for(keys), key)
        _nested_set(data, keys, value)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML file (or the defaults) plus `--set` overrides."""
    data = read_yaml(Path(path)) if path is not None else {}
    try:
        overridden = apply_overrides(data, list(overrides or []))
    except ConfigError as exc:
        raise ConfigError(exc.reason, path=path, field=exc.field) from None
    return TrainConfig.from_dict(overridden, path=path)


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
