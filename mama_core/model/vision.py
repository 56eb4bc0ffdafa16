"""DINOv2 vision encoder through transformers (docs/method.md §1.3).

Three sources: a random-init config, a local Hugging Face directory, or a torch.hub-format
DINOv2 state dict converted to transformers' parameter names on load. Position embeddings
are resized once, at load, to the configured image size so that the parameter shape always
follows `VisionConfig.image_size` (transformers would otherwise re-interpolate every step).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
)

from mama_core.errors import ConfigError, ModelError
from mama_core.model.config import VisionConfig

# torch.hub DINOv2 block keys -> transformers layer keys (qkv is split separately).
_HUB_BLOCK_MAP = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attention.o_proj",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HUB_TOP_MAP = {
    "cls_token": "embeddings.cls_token",
    "mask_token": "embeddings.mask_token",
    "register_tokens": "embeddings.register_tokens",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias|gamma)$")


# --------------------------------------------------------------------------- configs


def hf_vision_config(cfg: VisionConfig) -> Dinov2Config | Dinov2WithRegistersConfig:
    """The transformers config for the sizes in `cfg` (registers or not)."""
    if not float(cfg.mlp_ratio).is_integer():
        # transformers 5 types DINOv2's mlp_ratio as int.
        raise ConfigError(f"must be a whole number for DINOv2, got {cfg.mlp_ratio}", field="vision.mlp_ratio")
    common = dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                  num_attention_heads=cfg.num_heads, mlp_ratio=int(cfg.mlp_ratio),
                  patch_size=cfg.patch_size, image_size=cfg.image_size)
    if cfg.registers:
        return Dinov2WithRegistersConfig(num_register_tokens=cfg.num_register_tokens, **common)
    return Dinov2Config(**common)


def _model_class(hf_cfg) -> type:
    if hf_cfg.model_type == "dinov2_with_registers":
        return Dinov2WithRegistersModel
    if hf_cfg.model_type == "dinov2":
        return Dinov2Model
    raise ModelError(f"not a DINOv2 model (model_type {hf_cfg.model_type!r})")


def config_from_hf(cfg: VisionConfig, hf_cfg) -> VisionConfig:
    """`cfg` with the architecture fields taken from a loaded transformers config."""
    registers = hf_cfg.model_type == "dinov2_with_registers"
    return replace(cfg, registers=registers,
                   num_register_tokens=getattr(hf_cfg, "num_register_tokens", cfg.num_register_tokens),
                   hidden_size=hf_cfg.hidden_size, num_layers=hf_cfg.num_hidden_layers,
                   num_heads=hf_cfg.num_attention_heads, mlp_ratio=float(hf_cfg.mlp_ratio),
                   patch_size=hf_cfg.patch_size)


# --------------------------------------------------------------------------- position embeddings


def resize_pos_embed(pos: Tensor, grid: int) -> Tensor:
    """[1, 1+N, D] -> [1, 1+grid^2, D]: bicubic (antialiased) like transformers' runtime
    `interpolate_pos_encoding`, done once instead of at every forward."""
    old = int(round((pos.shape[1] - 1) ** 0.5))
    if old * old != pos.shape[1] - 1:
        raise ModelError(f"position embeddings of {pos.shape[1] - 1} patches are not a square grid")
    if old == grid:
        return pos
    cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
    dim = pos.shape[-1]
    patch_pos = patch_pos.reshape(1, old, old, dim).permute(0, 3, 1, 2).float()
    patch_pos = F.interpolate(patch_pos, size=(grid, grid), mode="bicubic",
                              align_corners=False, antialias=True)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos.dtype)
    return torch.cat([cls_pos, patch_pos], dim=1)


def _set_grid(model: nn.Module, image_size: int) -> None:
    """Resize the model's position-embedding parameter to `image_size` in place."""
    grid = image_size // model.config.patch_size
    emb = model.embeddings
    with torch.no_grad():
        new = resize_pos_embed(emb.position_embeddings.data, grid)
    if new.shape != emb.position_embeddings.shape:
        emb.position_embeddings = nn.Parameter(new)
    model.config.image_size = image_size


# --------------------------------------------------------------------------- hub conversion


def _split_qkv(prefix: str, kind: str, tensor: Tensor) -> dict[str, Tensor]:
    """DINOv2 fuses q, k, v (in that order) into one [3D, ...] projection."""
    q, k, v = tensor.chunk(3, dim=0)
    return {f"{prefix}.attention.{n}_proj.{kind}": t.clone() for n, t in zip("qkv", (q, k, v))}


def _convert_block_key(key: str, tensor: Tensor) -> dict[str, Tensor] | None:
    match = _BLOCK_KEY.match(key)
    if match is None:
        return None
    index, name, kind = match.groups()
    prefix = f"encoder.layer.{index}"
    if name == "attn.qkv":
        return _split_qkv(prefix, kind, tensor)
    full = f"{name}.{kind}" if kind == "gamma" else name
    target = _HUB_BLOCK_MAP.get(full)
    if target is None:
        return None
    return {f"{prefix}.{target}" + ("" if kind == "gamma" else f".{kind}"): tensor}


def hub_to_transformers(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename a torch.hub DINOv2 state dict to transformers' names.

    Returns (converted, unconverted keys). Position embeddings keep their grid here.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key in _HUB_TOP_MAP:
            out[_HUB_TOP_MAP[key]] = tensor
            continue
        converted = _convert_block_key(key, tensor)
        if converted is None:
            unknown.append(key)
        else:
            out.update(converted)
    if "embeddings.mask_token" in out and out["embeddings.mask_token"].ndim == 3:
        out["embeddings.mask_token"] = out["embeddings.mask_token"].reshape(1, -1)
    return out, unknown


def _read_hub_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ModelError("torch.hub DINOv2 state dict not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling refusal or corrupt file
        raise ModelError(f"cannot read as a weights-only state dict ({exc})", path=path) from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError("not a state dict of tensors", path=path)
    return state


def load_hub_state(model: nn.Module, path: Path) -> None:
    """Load a torch.hub DINOv2 file into `model`; any mismatch is a ModelError naming keys."""
    converted, unknown = hub_to_transformers(_read_hub_file(path))
    pos_key = "embeddings.position_embeddings"
    if pos_key in converted:
        grid = model.config.image_size // model.config.patch_size
        converted[pos_key] = resize_pos_embed(converted[pos_key], grid)
    require_matching_state(model.state_dict(), converted, path, "state dict does not fit the configured DINOv2",
                           unexpected=unknown)
    model.load_state_dict(converted, strict=True)


def require_matching_state(expected: dict, tensors: dict, path: Path, what: str, unexpected=None) -> None:
    """Strict loading: every expected key present, nothing unexpected, every shape equal —
    else a ModelError naming the keys (never a partial load)."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected) if unexpected is None else unexpected)
    if missing or unexpected:
        raise ModelError(f"{what}: missing {missing}, unexpected {unexpected}", path=path)
    bad = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
           for k, v in tensors.items() if v.shape != expected[k].shape]
    if bad:
        raise ModelError(f"shape mismatch: {bad}", path=path)


# --------------------------------------------------------------------------- build


def _from_hf_dir(cfg: VisionConfig) -> nn.Module:
    path = Path(cfg.path)
    if not (path / "config.json").is_file():
        raise ModelError("not a Hugging Face model directory (no config.json)", path=path)
    try:
        hf_cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        cls = _model_class(hf_cfg)
        return cls.from_pretrained(path, local_files_only=True, attn_implementation="sdpa",
                                    dtype=torch.float32)  # fp32 master weights
    except ModelError as exc:
        raise ModelError(exc.reason, path=path) from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load DINOv2 ({exc})", path=path) from exc


def build_vision(cfg: VisionConfig, hf_config: dict | None = None) -> tuple[nn.Module, VisionConfig]:
    """The DINOv2 encoder and the resolved VisionConfig (architecture as actually built).

    `hf_config` (a transformers config dict saved with a model directory) rebuilds the
    exact architecture with random weights, which the caller then overwrites.
    """
    if hf_config is not None:
        cfg_cls = Dinov2Config if hf_config.get("model_type") == "dinov2" else Dinov2WithRegistersConfig
        hf_cfg = cfg_cls.from_dict(hf_config)
        model = _model_class(hf_cfg)._from_config(hf_cfg, attn_implementation="sdpa")
    elif cfg.source == "hf":
        model = _from_hf_dir(cfg)
    else:
        model = Dinov2WithRegistersModel if cfg.registers else Dinov2Model
        model = model._from_config(hf_vision_config(cfg), attn_implementation="sdpa")
        if cfg.source == "hub":
            load_hub_state(model, Path(cfg.path))
    _set_grid(model, cfg.image_size)
    if cfg.gradient_checkpointing:
        checkpoint_blocks(model)
    return model, config_from_hf(cfg, model.config)


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute each transformer block's activations in the backward pass (non-reentrant
    torch.utils.checkpoint, which also works when a block's input needs no gradient)."""
    # transformers 5 renamed the switch; use whichever this version has.
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def num_prefix_tokens(model: nn.Module) -> int:
    """CLS plus register tokens that precede the patch tokens in the encoder output."""
    return 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
