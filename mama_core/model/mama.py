"""MamaModel: DINOv2 vision encoder, HF text encoder + LoRA, global and local heads.

Heads (DESIGN §1): global = a linear projection to d of the mean over the encoder's output
tokens (image) / of the pooled caption token (text); local = a per-token two-layer MLP to d
for patch tokens (CLS and registers removed) and for sentence (separator) states.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from mama_core.model.config import ModelConfig
from mama_core.model.text import TextEncoder
from mama_core.model.vision import build_vision, num_prefix_tokens
from mama_core.preprocess import tissue_patch_mask


def local_head(width: int, out_dim: int) -> nn.Sequential:
    """Per-token two-layer MLP (Linear-GELU-Linear) of the local branch."""
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, out_dim))


def _three_channels(pixels: Tensor) -> Tensor:
    """DINOv2 takes RGB; mammograms are grey: repeat a single channel (a view, no copy)."""
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


class MamaModel(nn.Module):
    """The MaMA vision-language model (docs/architecture.md "Model")."""

    def __init__(self, config: ModelConfig, *, vision_hf_config: dict | None = None,
                 tokenizer_dir: Path | None = None):
        super().__init__()
        self.vision, vision_cfg = build_vision(config.vision, vision_hf_config)
        self.text = TextEncoder(config.text, tokenizer_dir)
        # The vision config as actually built (a local HF dir or hub file may override sizes).
        self.config = dataclasses.replace(config, vision=vision_cfg)
        width, d = vision_cfg.hidden_size, config.embed_dim
        self.image_global_head = nn.Linear(width, d)
        self.image_local_head = local_head(width, d)
        self.text_global_head = nn.Linear(self.text.hidden_size, d)
        self.text_local_head = local_head(self.text.hidden_size, d)
        # Stored as log(1/tau) so that the optimiser works on an unconstrained value (eqs. 2-3).
        init = math.log(config.logit_scale_init)
        self.logit_scale = nn.Parameter(torch.tensor(init))
        self.local_scale = nn.Parameter(torch.tensor(init))

    # ----------------------------------------------------------- geometry

    @property
    def num_prefix_tokens(self) -> int:
        return num_prefix_tokens(self.vision)

    def patch_grid(self, image_size: int | None = None) -> tuple[int, int]:
        """(rows, cols) of patch tokens for a square input of `image_size` pixels."""
        size = image_size or self.config.vision.image_size
        patch = self.config.vision.patch_size
        return size // patch, size // patch

    # ----------------------------------------------------------- scales

    def scales(self) -> tuple[Tensor, Tensor]:
        """exp'd logit and local scales, clamped at logit_scale_max (the multipliers 1/tau)."""
        top = self.config.logit_scale_max
        return self.logit_scale.exp().clamp(max=top), self.local_scale.exp().clamp(max=top)

    # ----------------------------------------------------------- encoders

    def encode_image(self, pixel_values: Tensor) -> dict[str, Tensor]:
        """Raw (unnormalised) image_global [B,D] and image_patches [B,P,D]."""
        pixel_values = _three_channels(pixel_values)
        param = self.image_global_head.weight
        tokens = self.vision(pixel_values=pixel_values.to(param.device)).last_hidden_state
        patches = tokens[:, self.num_prefix_tokens:]
        out = {"image_global": self.image_global_head(tokens.mean(dim=1)),
               "image_patches": self.image_local_head(patches)}
        if self.config.local_tissue_only:
            whole = self.config.tissue_patch_rule == "whole"
            out["patch_mask"] = tissue_patch_mask(pixel_values, self.config.vision.patch_size, whole=whole).to(patches.device)
        return out

    def tokenize(self, captions: list[str]) -> dict[str, Tensor]:
        """Token ids with a separator after every sentence (DESIGN "Sentences for SLA")."""
        return self.text.tokenize(captions, split=True)

    def encode_text(self, tokens: dict[str, Tensor]) -> dict[str, Tensor]:
        """Raw text_global [B,D], sentences [B,S,D] and sentence_mask [B,S] (bool)."""
        pooled, states, mask = self.text(tokens)
        return {"text_global": self.text_global_head(pooled),
                "sentences": self.text_local_head(states), "sentence_mask": mask}

    def encode_sentences(self, sentences: list[str]) -> dict[str, Tensor]:
        """Each string as a one-sentence caption (zero-shot prompts, map queries)."""
        out = self.encode_text(self.text.tokenize(sentences, split=False))
        return {"text_global": out["text_global"], "sentence_local": out["sentences"][:, 0]}

    def forward(self, images: Tensor, images2: Tensor | None, tokens: dict[str, Tensor]) -> dict[str, Tensor]:
        """Everything eq. (4) needs. Both views go through the encoder as one batch."""
        batch = images.shape[0]
        images = _three_channels(images)
        both = images if images2 is None else torch.cat([images, _three_channels(images2)])
        img = self.encode_image(both)
        out = {"image_global": img["image_global"][:batch],
               "image_patches": img["image_patches"][:batch]}
        if "patch_mask" in img:
            out["patch_mask"] = img["patch_mask"][:batch]
        if images2 is not None:
            out["image2_global"] = img["image_global"][batch:]
        out.update(self.encode_text(tokens))
        out["logit_scale"], out["local_scale"] = self.scales()
        return out

    # ----------------------------------------------------------- persistence support

    def base_state_keys(self) -> set[str]:
        """state_dict keys of frozen text base weights (reloaded from the base path)."""
        return {f"text.{k}" for k in self.text.base_state_keys()}

    def saved_state(self) -> dict[str, Tensor]:
        """Every tensor a model directory must hold: all but the frozen text base."""
        skip = self.base_state_keys()
        return {k: v for k, v in self.state_dict().items() if k not in skip}


def build_model(cfg: ModelConfig) -> MamaModel:
    """A fresh model from `cfg` (encoders from their sources, heads randomly initialised)."""
    return MamaModel(cfg)
