"""Optimiser parameter groups (docs/method.md §1.8: AdamW, weight decay 0.1 not on
biases, norms or temperatures)."""

from __future__ import annotations

from torch import nn

# Learned tokens and tables that act as embeddings rather than weights: no decay, as is
# usual for ViTs (cls/register/mask tokens, position embeddings) and for the separator.
_NO_DECAY_NAMES = ("cls_token", "register_tokens", "mask_token", "position_embeddings",
                   "sep_embedding", "logit_scale", "local_scale")


def _decays(name: str, param: nn.Parameter) -> bool:
    # 0-/1-d tensors are biases, norm gains, layer scales and the temperatures.
    if param.ndim < 2:
        return False
    return not any(part in _NO_DECAY_NAMES for part in name.split("."))


def optimizer_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the *trainable* parameters: decayed weights, and the rest."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if _decays(name, param) else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
