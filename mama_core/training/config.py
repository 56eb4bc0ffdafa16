"""Typed training configuration: YAML on disk, `--set key.sub=value` overrides, validation.

Every section is a dataclass validated in `__post_init__` (DESIGN §5.2). The model and loss
sections are plain dicts here, handed to `mama_core.model.ModelConfig.from_dict` and
`mama_core.losses.LossConfig.from_dict`, which own their own validation; `TrainConfig`
checks them at construction so that a bad value fails before any weight is loaded.

Defaults follow the paper's optimisation recipe (DESIGN §1 "Optimisation"): AdamW lr 4e-5,
weight decay 0.1, cosine schedule with 4k warm-up over 40k steps, bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mama_core.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")
BALANCE = ("none", "birads", "density")
CACHE_DTYPES = ("float16", "uint16")


def _positive(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"must be a positive number, got {value!r}", field=name)


def _non_negative_int(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"must be a non-negative integer, got {value!r}", field=name)


def _probability(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(f"must be a probability in [0, 1], got {value!r}", field=name)


def _range(value: tuple[float, float], name: str, low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ConfigError(f"must be (min, max) with {low} <= min <= max <= {high}, got {value!r}", field=name)


@dataclass
class OptimConfig:
    """AdamW + cosine schedule with linear warm-up (paper §4: lr 4e-5, wd 0.1, 4k/40k)."""

    lr: float = 4e-5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 4000
    max_steps: int = 40000
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    grad_clip: float = 0.0  # max global grad norm; 0 = off (the paper does not clip)

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives a list
        _positive(self.lr, "lr")
        if not self.weight_decay >= 0:
            raise ConfigError(f"must be >= 0, got {self.weight_decay!r}", field="weight_decay")
        _range(self.betas, "betas", 0.0, 0.999999)
        _positive(self.eps, "eps")
        _non_negative_int(self.warmup_steps, "warmup_steps")
        _non_negative_int(self.max_steps, "max_steps")
        if self.max_steps < 1:
            raise ConfigError("must be at least 1", field="max_steps")
        _probability(self.min_lr_ratio, "min_lr_ratio")
        if not self.grad_clip >= 0:
            raise ConfigError(f"must be >= 0, got {self.grad_clip!r}", field="grad_clip")


@dataclass
class AugmentConfig:
    """Training augmentations (DESIGN §1 "Images"), all written with torch ops.

    Flips: images arrive canonical (chest wall at column 0, whatever the laterality), so a
    horizontal flip yields what an uncanonicalised image of the other breast looks like —
    anatomically plausible, and it makes the model robust to images whose orientation
    heuristic failed. It is on by default (p=0.5); side information lives in the caption and
    is masked 80 % of the time anyway. A vertical flip puts the pectoral muscle of an MLO view
    at the bottom, which no real image shows, so it is off by default.
    """

    crop_scale: tuple[float, float] = (0.7, 1.0)  # fraction of the square's area kept
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # modest aspect-ratio range (w/h)
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    brightness: float = 0.1  # additive shift drawn from [-b, b]
    contrast: float = 0.2  # multiplicative factor drawn from [1-c, 1+c]
    gamma: float = 0.2  # gamma = exp(u), u from [-g, g]
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # in pixels of the model input

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.crop_ratio = tuple(float(v) for v in self.crop_ratio)
        self.blur_sigma = tuple(float(v) for v in self.blur_sigma)
        _range(self.crop_scale, "crop_scale", 0.01, 1.0)
        _range(self.crop_ratio, "crop_ratio", 0.1, 10.0)
        _range(self.blur_sigma, "blur_sigma", 0.0, 20.0)
        for name in ("hflip_prob", "vflip_prob", "blur_prob"):
            _probability(getattr(self, name), name)
        for name in ("brightness", "contrast", "gamma"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"must be in [0, 1), got {getattr(self, name)!r}", field=name)


@dataclass
class DataConfig:
    """Pairs, captions, cache and loader (DESIGN §1 "Data unit", "Images")."""

    mask_prob: float = 0.8  # meta-information masking of training captions
    second_view_prob: float = 0.5  # second view = another image of the study
    val_fraction: float = 0.1  # patients held out for the validation loss
    split_seed: int = 0  # fixed so that resumed and distributed runs see the same split
    num_workers: int = 2
    balance: str = "none"  # "none" | "birads" | "density": WeightedRandomSampler
    cache_dir: str | None = None  # None = <user cache dir>/images
    cache_dtype: str = "float16"  # "float16" | "uint16"
    cache_workers: int = 0  # processes that prefill the cache (0 = in-process)

    def __post_init__(self) -> None:
        _probability(self.mask_prob, "mask_prob")
        _probability(self.second_view_prob, "second_view_prob")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.val_fraction!r}", field="val_fraction")
        _non_negative_int(self.split_seed, "split_seed")
        _non_negative_int(self.num_workers, "num_workers")
        _non_negative_int(self.cache_workers, "cache_workers")
        if self.balance not in BALANCE:
            raise ConfigError(f"must be one of {BALANCE}, got {self.balance!r}", field="balance")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ConfigError(f"must be one of {CACHE_DTYPES}, got {self.cache_dtype!r}", field="cache_dtype")


@dataclass
class TrainConfig:
    """Everything one training run needs besides the data and the output folder."""

    model: dict[str, Any] = field(default_factory=dict)  # mama_core.model.ModelConfig.from_dict
    loss: dict[str, Any] = field(default_factory=dict)  # mama_core.losses.LossConfig.from_dict
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 36  # per process (the reference recipe: 36 per GPU x 4 GPUs)
    grad_accum: int = 1
    precision: str = "auto"  # auto: bf16 autocast on CUDA (fp32 master weights), fp32 on CPU
    grad_checkpointing: bool = False
    image_size: int | None = None  # None = model.vision.image_size; else overrides it
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    log_every: int = 10
    ckpt_every: int = 1000
    keep_last: int = 3
    val_every: int = 0  # steps between validation losses; 0 = only at the end
    val_batches: int = 20  # at most this many validation batches per evaluation
    deterministic: bool = True  # torch.use_deterministic_algorithms on CPU

    def __post_init__(self) -> None:
        self.optim = _section(OptimConfig, self.optim, "optim")
        self.data = _section(DataConfig, self.data, "data")
        self.augment = _section(AugmentConfig, self.augment, "augment")
        for name in ("batch_size", "grad_accum", "log_every", "keep_last", "val_batches"):
            _non_negative_int(getattr(self, name), name)
            if getattr(self, name) < 1:
                raise ConfigError("must be at least 1", field=name)
        for name in ("seed", "ckpt_every", "val_every"):
            _non_negative_int(getattr(self, name), name)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"must be one of {PRECISIONS}, got {self.precision!r}", field="precision")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"must be auto, cpu, cuda or cuda:N, got {self.device!r}", field="device")
        if self.image_size is not None:
            _non_negative_int(self.image_size, "image_size")
            self.model = _nested_set(dict(self.model), ["vision", "image_size"], self.image_size)
        if self.grad_checkpointing:
            self.model = _nested_set(dict(self.model), ["vision", "gradient_checkpointing"], True)
        self.loss_config()
        self.model_config()

    # The sub-configs owned by other modules, built (and so validated) on demand.
    def loss_config(self):
        from mama_core.losses import LossConfig

        try:
            return LossConfig.from_dict(dict(self.loss))
        except ConfigError as exc:
            raise _prefixed(exc, "loss") from None
        except TypeError as exc:
            raise ConfigError(str(exc), field="loss") from None

    def model_config(self):
        from mama_core.model import ModelConfig

        try:
            return ModelConfig.from_dict(_deep_copy(self.model))
        except ConfigError as exc:
            raise _prefixed(exc, "model") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), field="model") from None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for section in ("optim", "augment"):
            for key, value in data[section].items():
                if isinstance(value, tuple):
                    data[section][key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _build(cls, data, "")


# --------------------------------------------------------------------------- building


def _prefixed(exc: ConfigError, prefix: str) -> ConfigError:
    name = f"{prefix}.{exc.field}" if exc.field and exc.field != prefix else prefix
    return ConfigError(exc.reason, path=exc.path, field=name)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _section(cls: type, value: Any, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping, got {type(value).__name__}", field=name)
    return _build(cls, value, name)


def _build(cls: type, data: Any, prefix: str) -> Any:
    """A dataclass from a mapping: unknown keys and bad values become ConfigErrors naming
    the dotted field."""
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping, got {type(data).__name__}", field=prefix or None)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown option (known: {', '.join(sorted(names))})", field=where)
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise (_prefixed(exc, prefix) if prefix else exc) from None


def _as_float(value: Any, name: str) -> float:
    # PyYAML (YAML 1.1) reads `4e-5` as a string: accept any text float() understands.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, got {value!r}", field=name)
    return float(value)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Check/convert a YAML value against a field's type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name) if isinstance(value, dict) else value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}", field=name)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"must be an integer, got {value!r}", field=name)
        return value
    if hint is float:
        return _as_float(value, name)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, got {value!r}", field=name)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"must be a list of {len(args)} values, got {value!r}", field=name)
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {value!r}", field=name)
        return value
    return value


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
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(Path(path))
    try:
        return TrainConfig.from_dict(apply_overrides(data, list(overrides or [])))
    except ConfigError as exc:
        if exc.path is None and path is not None:
            raise ConfigError(exc.reason, path=path, field=exc.field) from None
        raise


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level of a training config must be a mapping", path=path)
    return data


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
