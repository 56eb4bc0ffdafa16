"""MamaModel: DINOv2 vision encoder, HF text encoder + LoRA, global and local heads.

Heads (docs/method.md §1.5): global = a linear projection to d of the mean over the encoder's output
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


def local_head(width: int, out_dim: int, kind: str = "mlp", hidden: int | None = None) -> nn.Module:
    """Per-token head of the local branch: a two-layer MLP (Linear-GELU-Linear), or the
    released code's Conv1d(k=1)-BN-ReLU-Conv1d-BN head (docs/method.md §4)."""
    if kind == "conv_bn":
        return ConvBNHead(width, hidden or width, out_dim)
    hidden = hidden or width
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


class ConvBNHead(nn.Module):
    """Linear-BN-ReLU-Linear-BN(affine=False) over tokens. A kernel-1 Conv1d over [B, C, T]
    is a Linear per token, and BatchNorm1d over [B, C, T] normalises each channel over all B*T
    tokens, so flattening the tokens to rows gives the same layer (`head.{0,1,3,4}` as in the
    released checkpoint). `rows` [B, T] (optional) marks the tokens that take part: padded
    sentence slots must not enter the batch statistics; they come out as zeros."""

    def __init__(self, width: int, hidden: int, out_dim: int):
        super().__init__()
        self.out_dim = out_dim
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim, affine=False))

    def forward(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if rows is None:
            return self.head(flat).view(*x.shape[:-1], self.out_dim)
        keep = rows.reshape(-1).to(flat.device)
        out = flat.new_zeros(flat.shape[0], self.out_dim)
        out[keep] = self.head(flat[keep]).to(out.dtype)
        return out.view(*x.shape[:-1], self.out_dim)


def simclr_head(width: int, out_dim: int) -> nn.Sequential:
    """SimCLR projection head of L_VV in the released recipe: Linear(no bias)-BN-ReLU-
    Linear(no bias)-BN over the pooled image feature (docs/method.md §4)."""
    return nn.Sequential(nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, out_dim, bias=False), nn.BatchNorm1d(out_dim))


def _apply_local(head: nn.Module, x: Tensor, mask: Tensor | None = None) -> Tensor:
    return head(x, mask) if isinstance(head, ConvBNHead) else head(x)


def _three_channels(pixels: Tensor) -> Tensor:
    """DINOv2 takes RGB; mammograms are grey: repeat a single channel (a view, no copy)."""
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


class MamaModel(nn.Module):
    """The MaMA vision-language model (docs/architecture.md "Model")."""

    def __init__(self, config: ModelConfig, *, vision_hf_config: dict | None = None,
                 tokenizer_dir: Path | None = None, frozen_dtype: torch.dtype | None = None):
        super().__init__()
        self.vision, vision_cfg = build_vision(config.vision, vision_hf_config)
        # frozen_dtype: storage type of the frozen text base (TextEncoder); all else fp32.
        self.text = TextEncoder(config.text, tokenizer_dir, frozen_dtype)
        # The vision config as actually built (a local HF dir or hub file may override sizes).
        self.config = dataclasses.replace(config, vision=vision_cfg)
        width, d = vision_cfg.hidden_size, config.embed_dim
        kind, hidden = config.local_head, config.local_hidden
        self.image_global_head = nn.Linear(width, d)
        self.image_local_head = local_head(width, d, kind, hidden)
        self.text_global_head = nn.Linear(self.text.hidden_size, d)
        self.text_local_head = local_head(self.text.hidden_size, d, kind, hidden)
        if config.image_image_head == "simclr":
            self.image_ssl_head = simclr_head(width, d)
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
        """exp'd logit and local scales, clamped at logit_scale_max unless it is None (the
        multipliers 1/tau)."""
        top = self.config.logit_scale_max
        if top is None:
            return self.logit_scale.exp(), self.local_scale.exp()
        return self.logit_scale.exp().clamp(max=top), self.local_scale.exp().clamp(max=top)

    # ----------------------------------------------------------- encoders

    def _pooled_image(self, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
        """(pooled feature [B,W] for the global head, normalised tokens [B,T,W])."""
        mode = self.config.vision.pooling
        out = self.vision(pixel_values=pixel_values, output_hidden_states=mode == "mean_pre_norm")
        tokens = out.last_hidden_state
        if mode == "mean_pre_norm":  # the last block's output, before the final LayerNorm
            return out.hidden_states[-1].mean(dim=1), tokens
        return (tokens[:, 0] if mode == "cls" else tokens.mean(dim=1)), tokens

    def encode_image(self, pixel_values: Tensor) -> dict[str, Tensor]:
        """Raw (unnormalised) image_global [B,D], image_patches [B,P,D] and the pooled
        encoder feature image_pooled [B,W]."""
        pixel_values = _three_channels(pixel_values)
        param = self.image_global_head.weight
        pooled, tokens = self._pooled_image(pixel_values.to(param.device))
        patches = tokens[:, self.num_prefix_tokens:]
        out = {"image_global": self.image_global_head(pooled),
               "image_patches": _apply_local(self.image_local_head, patches), "image_pooled": pooled}
        if self.config.local_tissue_only:
            whole = self.config.tissue_patch_rule == "whole"
            out["patch_mask"] = tissue_patch_mask(pixel_values, self.config.vision.patch_size, whole=whole).to(patches.device)
        return out

    def tokenize(self, captions: list[str]) -> dict[str, Tensor]:
        """Token ids with a separator after every sentence (docs/method.md §1.4; §4 for the released tokenization)."""
        return self.text.tokenize(captions, split=True)

    def encode_text(self, tokens: dict[str, Tensor], pooling: str | None = None) -> dict[str, Tensor]:
        """Raw text_global [B,D], sentences [B,S,D] and sentence_mask [B,S] (bool);
        `pooling` overrides the caption pooling (zero-shot prompts)."""
        pooled, states, mask = self.text(tokens, pooling=pooling)
        return {"text_global": self.text_global_head(pooled),
                "sentences": self._sentence_head(states, mask), "sentence_mask": mask}

    def _sentence_head(self, states: Tensor, mask: Tensor) -> Tensor:
        head = self.text_local_head
        if not (isinstance(head, ConvBNHead) and self.training):
            return _apply_local(head, states, mask)
        # Released code: in training each caption's sentences pass the BN head on their own,
        # so the batch statistics are per caption (one sentence alone has none: batch-wide).
        if int(mask.sum(dim=1).min()) < 2:
            return head(states, mask)
        return torch.stack([head(states[b:b + 1], mask[b:b + 1])[0] for b in range(states.shape[0])])

    def _prompt_pooling(self) -> str | None:
        return self.config.text.zero_shot_pooling

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        """Raw text_global [N,D] of zero-shot prompts (whole captions), pooled with
        text.zero_shot_pooling (the released code reads another position than in training)."""
        return self.encode_text(self.tokenize(prompts), pooling=self._prompt_pooling())["text_global"]

    def encode_sentences(self, sentences: list[str]) -> dict[str, Tensor]:
        """Each string as a one-sentence caption (queries, map sentences)."""
        tokens = self.text.tokenize(sentences, split=False)
        out = self.encode_text(tokens, pooling=self._prompt_pooling())
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
            if hasattr(self, "image_ssl_head"):  # each view's BN statistics on its own
                out["image_ssl"] = self.image_ssl_head(img["image_pooled"][:batch])
                out["image2_ssl"] = self.image_ssl_head(img["image_pooled"][batch:])
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


def build_model(cfg: ModelConfig, frozen_dtype: torch.dtype | None = None) -> MamaModel:
    """A fresh model from `cfg` (encoders from their sources, heads randomly initialised);
    `frozen_dtype` stores the frozen LoRA base in that type (bf16 training)."""
    return MamaModel(cfg, frozen_dtype=frozen_dtype)
